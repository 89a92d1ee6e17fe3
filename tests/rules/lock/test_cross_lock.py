"""The cross toolchain's lock (rules.lock.cross_lock), beside the arm64 lock."""

import json
import shutil

import pytest

from rules.common.errors import StaleLockError, UserError
from rules.load import project
from rules.lock import cross_lock, debian_lock
from tests.fixtures import REPO


def lock_of(*packages):
    return {"packages": [{"name": n, "version": v, "source": s} for n, v, s in packages]}


def test_a_target_package_takes_the_target_locks_version_of_itself_or_of_its_source():
    target = lock_of(("libpython3.9-minimal", "3.9.2-1", "python3.9"),
                     ("python3.9", "3.9.2-1", "python3.9"), ("libc6", "2.31-13", "glibc"))
    got = cross_lock.wanted_versions(["libpython3.9-dev", "libpython3.9-minimal"], target,
                                     {"libpython3.9-dev": "python3.9"})
    assert got == {"libpython3.9-dev": "3.9.2-1", "libpython3.9-minimal": "3.9.2-1"}


def test_a_target_package_of_an_unlocked_source_is_refused():
    with pytest.raises(UserError, match="python3.11"):
        cross_lock.wanted_versions(["libpython3.11-dev"], lock_of(("libc6", "2", "glibc")),
                                   {"libpython3.11-dev": "python3.11"})


def test_lock_path_sits_beside_the_arch_lock():
    proj = project.load(REPO)
    assert cross_lock.lock_path(proj.debian, "arm64") == (
        "constraints/debian-bullseye.cross-arm64.lock.json")


def test_committed_cross_lock_is_current_and_follows_the_locks():
    """`invoke lock --platform linux/arm64 --check`'s check of the cross lock, offline."""
    proj = project.load(REPO)
    doc = cross_lock.load(proj, "arm64")
    main = {p["name"]: p for p in debian_lock.load(proj)["packages"]}
    arm = {p["name"]: p for p in debian_lock.load_arch(proj, "arm64")["packages"]}
    tools = [p for p in doc["packages"] if p["role"] == "toolchain"]
    target = [p for p in doc["packages"] if p["role"] == "target"]
    assert {p["name"] for p in tools} >= set(proj.debian.cross_packages)
    for p in tools:
        assert p["arch"] in (proj.debian.arch, "all"), p["name"]
        if p["name"] in main:  # the main lock's very file
            assert p["sha256"] == main[p["name"]]["sha256"], p["name"]
    assert {p["name"] for p in target} == set(proj.debian.cross_target_packages)
    by_source = {a["source"]: a["version"] for a in arm.values()}
    for p in target:  # the headers of the arm64 image's own python3.9 (and libcrypt1)
        assert p["arch"] == "arm64" and p["version"] == by_source[p["source"]], p["name"]
    assert {p["version"] for p in target if p["source"] == "python3.9"} == {
        arm["python3.9"]["version"]}


def test_cross_lock_is_stale_when_the_workspace_list_changes(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    ws = dst / "WORKSPACE"
    ws.write_text(ws.read_text().replace('"linux-libc-dev-arm64-cross",', ""))
    with pytest.raises(StaleLockError, match="does not follow"):
        cross_lock.load(project.load(dst), "arm64")
    shutil.copy(REPO / "WORKSPACE", ws)
    path = dst / "constraints/debian-bullseye.cross-arm64.lock.json"
    doc = json.loads(path.read_text())
    doc["packages"][0]["version"] += "x"
    path.write_text(json.dumps(doc))
    with pytest.raises(StaleLockError, match="edited by hand"):
        cross_lock.load(project.load(dst), "arm64")
