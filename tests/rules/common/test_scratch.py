"""Scratch folders: made on a tmpfs when there is one, private, removed after use, and the
leftovers of dead builds (whose locks nobody holds) removed by the next one."""

import fcntl
import os

import pytest

from rules.common import scratch
from rules.common.errors import UserError


def test_folder_is_removed_after_use_and_dead_builds_leftovers_go(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNTIME_SCRATCH", str(tmp_path / "s"))
    parent = scratch.base(tmp_path / "cache")
    assert parent == tmp_path / "s" / f"runtime-scratch-{os.geteuid()}"
    assert oct(parent.stat().st_mode & 0o777) == "0o700"
    stale, alive = parent / "rt-trees-dead", parent / "rt-trees-live"
    for path in (stale, alive):
        (path / "tree").mkdir(parents=True)
        (parent / f"{path.name}.lock").touch()
    held = os.open(parent / "rt-trees-live.lock", os.O_RDWR)  # as a running build holds it
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with scratch.folder(tmp_path / "cache", "trees") as work:
            assert work.parent == parent and work.name.startswith("rt-trees-")
            (work / "file").write_text("x")
            assert not stale.exists() and not (parent / "rt-trees-dead.lock").exists()
            assert alive.is_dir()
            scratch.remove_stale(parent)  # another build looking: this one is in use
            assert work.is_dir()
        assert not work.exists() and not (parent / f"{work.name}.lock").exists()
    finally:
        os.close(held)
    assert alive.is_dir()


def test_tmpfs_is_preferred_when_usable(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNTIME_SCRATCH", raising=False)
    monkeypatch.setattr(scratch, "TMPFS", tmp_path / "no-such-tmpfs")
    assert scratch.base(tmp_path / "cache") == tmp_path / "cache" / "scratch"
    monkeypatch.setattr(scratch, "TMPFS", tmp_path)
    monkeypatch.setattr(scratch, "MIN_FREE", 0)
    assert scratch.base(tmp_path / "cache") == tmp_path / f"runtime-scratch-{os.geteuid()}"


def test_a_planted_link_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNTIME_SCRATCH", str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"runtime-scratch-{os.geteuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="not a folder of yours"):
        scratch.base(tmp_path / "cache")
