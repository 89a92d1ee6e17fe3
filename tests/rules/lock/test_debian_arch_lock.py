"""The Debian lock of another architecture (arm64), beside the main one."""

import json
import shutil

import pytest

from rules.load import project
from rules.lock import debian_lock
from rules.common.errors import StaleLockError, UserError
from tests.fixtures import REPO


def stanza(version, sha="aa"):
    return {"Package": "libc", "Version": version, "Architecture": "arm64",
            "Filename": f"pool/l/libc_{version}.deb", "SHA256": sha, "Size": "1"}


def test_preferred_version_wins_over_newer_ones_in_any_order():
    for order in (["2.1", "2.2", "2.0"], ["2.2", "2.1", "2.0"], ["2.0", "2.1", "2.2"]):
        u = debian_lock.Universe(prefer={"libc": "2.1"})
        for v in order:
            u.add(stanza(v), "http://mirror")
        assert u.best["libc"]["Version"] == "2.1", order


def test_newest_wins_when_the_preferred_version_is_gone():
    u = debian_lock.Universe(prefer={"libc": "1.9"})
    for v in ("2.1", "2.2", "2.0"):
        u.add(stanza(v), "http://mirror")
    assert u.best["libc"]["Version"] == "2.2"


def test_arch_lock_path_and_unknown_arch():
    proj = project.load(REPO)
    assert debian_lock.arch_lock_path(proj.debian, "arm64") == (
        "constraints/debian-bullseye.arm64.lock.json")
    with pytest.raises(UserError, match="riscv64"):
        debian_lock.arch_lock_path(proj.debian, "riscv64")


def test_committed_arm64_lock_follows_the_main_lock():
    proj = project.load(REPO)
    doc = debian_lock.load_arch(proj, "arm64")
    main = {p["name"]: p for p in debian_lock.load(proj)["packages"]}
    arm = {p["name"]: p for p in doc["packages"]}
    assert set(arm) == set(main)
    for name, p in arm.items():
        assert p["arch"] in ("arm64", "all"), name
        if p["arch"] == "all":  # the very same file
            assert p["sha256"] == main[name]["sha256"], name
    differ = {d["name"] for d in doc["differences"]}
    assert differ == {n for n in arm if arm[n]["version"] != main[n]["version"]}


def test_arm64_lock_is_stale_when_hand_edited_or_the_main_lock_moves(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    arm = dst / "constraints/debian-bullseye.arm64.lock.json"
    doc = json.loads(arm.read_text())
    doc["packages"][0]["version"] += "x"
    arm.write_text(json.dumps(doc))
    with pytest.raises(StaleLockError, match="edited by hand"):
        debian_lock.load_arch(project.load(dst), "arm64")
    shutil.copy(REPO / "constraints/debian-bullseye.arm64.lock.json", arm)
    main = dst / "constraints/debian-bullseye.lock.json"
    doc = json.loads(main.read_text())
    doc["packages"] = doc["packages"][1:]
    doc["packages_sha256"] = debian_lock.packages_digest(doc["packages"])
    main.write_text(json.dumps(doc))
    with pytest.raises(StaleLockError, match="does not follow"):
        debian_lock.load_arch(project.load(dst), "arm64")


def test_a_file_the_mirror_does_not_serve_is_never_chosen():
    u = debian_lock.Universe(prefer={"libc": "2.2"})
    u.unserved = {"http://security/pool/l/libc_2.2.deb"}
    u.add(stanza("2.1"), "http://mirror")
    u.add(stanza("2.2"), "http://security")
    assert u.best["libc"]["Version"] == "2.1"
