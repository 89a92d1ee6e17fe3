"""The cross root's package set (rules/debian/cross_root.py), from the committed locks."""

import pytest

from rules.common.errors import UserError
from rules.debian import cross_root, python_root
from rules.load import project
from rules.lock import cross_lock, debian_lock
from tests.fixtures import REPO


def test_the_root_is_the_images_python_the_toolchain_and_the_arm64_headers():
    proj = project.load(REPO)
    whole, target = cross_root.packages(proj, "arm64")
    names = [p["name"] for p in whole]
    assert names[:len(python_root.PACKAGES)] == list(python_root.PACKAGES)
    assert len(names) == len(set(names)) and len({p["sha256"] for p in whole}) == len(whole)
    main = {p["name"]: p["sha256"] for p in debian_lock.load(proj)["packages"]}
    for p in whole:  # a package of the main lock is its very file: the image's python3.9
        assert main.get(p["name"], p["sha256"]) == p["sha256"], p["name"]
    toolchain = {p["name"] for p in cross_lock.load(proj, "arm64")["packages"]
                 if p["role"] == "toolchain"}
    assert toolchain <= set(names)
    assert {p["name"] for p in target} == set(proj.debian.cross_target_packages)
    assert all(p["arch"] == "arm64" for p in target)


def test_action_key_follows_every_deb_and_unknown_arches_are_refused():
    proj = project.load(REPO)
    made = cross_root.action(proj)
    assert made.kind == "cross root" and made.key == cross_root.action(proj).key
    assert sum(k.startswith("deb ") for k in made.inputs) == len(cross_root.packages(
        proj, "arm64")[0])
    with pytest.raises(UserError, match="riscv64"):
        cross_root.action(proj, "riscv64")
