"""Scratch folders: made on a tmpfs when there is one, removed after use, and the leftovers
of killed builds removed by the next one."""

import os
import subprocess

from rules import scratch


def test_folder_is_removed_after_use_and_dead_builds_leftovers_go(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNTIME_SCRATCH", str(tmp_path / "scratch"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / "scratch" / f"{dead.pid}-trees-abc"
    alive = tmp_path / "scratch" / f"{os.getppid()}-trees-def"
    (stale / "tree").mkdir(parents=True)
    alive.mkdir()
    with scratch.folder(tmp_path / "cache", "trees") as work:
        assert work.parent == tmp_path / "scratch" and work.name.startswith(f"{os.getpid()}-")
        (work / "file").write_text("x")
        assert not stale.exists() and alive.is_dir()
    assert not work.exists()


def test_tmpfs_is_preferred_when_usable(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNTIME_SCRATCH", raising=False)
    monkeypatch.setattr(scratch, "TMPFS", tmp_path / "no-such-tmpfs")
    assert scratch.base(tmp_path / "cache") == tmp_path / "cache" / "scratch"
    monkeypatch.setattr(scratch, "TMPFS", tmp_path)
    monkeypatch.setattr(scratch, "MIN_FREE", 0)
    assert scratch.base(tmp_path / "cache") == tmp_path / f"runtime-scratch-{os.geteuid()}"
