"""A root that cross-compiles for arm64 on amd64: the image's amd64 python3.9 and bullseye's
own cross gcc, with the arm64 python3.9's headers and sysconfig data.

Unpacked (``dpkg-deb -x``, as rules.debian.python_root) from locked .debs only:

- the amd64 python3.9 of the main lock (python_root.PACKAGES), python3-distutils with its
  python3-lib2to3 (the locks' setuptools 58.0-59.6 build through the standard library's
  distutils; setuptools uses its own only from 60) and libffi7 (setuptools imports ctypes);
- the cross toolchain of constraints/debian-bullseye.cross-arm64.lock.json (rules.lock.cross_lock):
  gcc-10-aarch64-linux-gnu, binutils, the arm64 glibc 2.31 headers and crt files under
  /usr/aarch64-linux-gnu, the compiler's own amd64 libraries (libisl23, libmpfr6, ...);
- from the arm64 libpython3.9-dev (at the arm64 lock's python3.9 version) and libcrypt-dev (at
  its libcrypt1's: Python.h includes <crypt.h>, which bullseye's glibc 2.31 no longer ships and
  no -cross package holds): their headers, moved below the cross compiler's own include
  folder (/usr/aarch64-linux-gnu/include/python3.9, .../aarch64-linux-gnu/python3.9/pyconfig.h,
  .../crypt.h). Debian's /usr/include/python3.9/pyconfig.h is a dispatcher that includes
  <aarch64-linux-gnu/python3.9/pyconfig.h>, which the cross gcc finds there and only there:
  nothing of /usr/include (amd64 by right) is on its path;
- from the arm64 libpython3.9-minimal: ``_sysconfigdata__aarch64-linux-gnu.py`` alone, into
  /usr/lib/python3.9, so that ``_PYTHON_SYSCONFIGDATA_NAME`` gives distutils the arm64
  python's configuration (its EXT_SUFFIX ``.cpython-39-aarch64-linux-gnu.so``, its flags). The
  rest of that package is arm64 code and would replace the amd64 interpreter's own.

No maintainer script runs. The standard library is byte-compiled when the root is made, as the
python root's is (see its docstring: builds must never write into the shared tree). Cached by
the sha256 of every .deb and RECIPE (an action of kind "cross root", about 6 s, 420 MB), and
published by a rename.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rules.common.errors import UserError
from rules.debian import python_root
from rules.fetch import download
from rules.graph import action_cache
from rules.graph.action import Action, Made
from rules.load.model import Project
from rules.lock import cross_lock, debian_lock

RECIPE = 1  # bump when the way the root is made changes
# distutils (setuptools < 60 builds through it) and ctypes' libffi (setuptools imports ctypes)
EXTRA = ("python3-lib2to3", "python3-distutils", "libffi7")
TRIPLETS = {"arm64": "aarch64-linux-gnu"}  # Debian architecture -> GNU triplet
PYTHON = "python3.9"


def triplet(arch: str) -> str:
    if arch not in TRIPLETS:
        raise UserError(f"no cross toolchain for {arch!r} (known: {', '.join(TRIPLETS)})")
    return TRIPLETS[arch]


def packages(project: Project, arch: str) -> tuple[list[dict], list[dict]]:
    """(the amd64 packages unpacked whole, in order; the target packages), all locked."""
    locked = {p["name"]: p for p in debian_lock.load(project)["packages"]}
    missing = [n for n in EXTRA if n not in locked]
    if missing:
        raise UserError(f"the Debian lock has no {', '.join(missing)}: the cross build needs "
                        "them (add them to the Debian packages and run `invoke lock`)")
    whole = python_root.packages(project) + [locked[n] for n in EXTRA]
    seen = {p["sha256"] for p in whole}
    cross = cross_lock.load(project, arch)["packages"]
    for p in cross:
        if p["role"] == "toolchain" and p["sha256"] not in seen:
            if p["name"] in locked and locked[p["name"]]["sha256"] != p["sha256"]:
                raise UserError(f"{p['name']}: the cross lock's {p['version']} is not the main "
                                f"lock's {locked[p['name']]['version']}; run `invoke lock "
                                f"--platform linux/{arch}`")
            whole.append(p)
            seen.add(p["sha256"])
    target = [p for p in cross if p["role"] == "target"]
    for name in (f"lib{PYTHON}-dev", f"lib{PYTHON}-minimal"):
        if name not in {p["name"] for p in target}:
            raise UserError(f"the cross lock has no {arch} {name}: add it to WORKSPACE's "
                            "cross_target_packages and run `invoke lock --platform "
                            f"linux/{arch}`")
    return whole, target


def action(project: Project, arch: str = "arm64") -> Action:
    """The action that makes the cross root for ``arch`` (a tree "root" of the cache)."""
    tri = triplet(arch)
    whole, target = packages(project, arch)

    def run(ctx) -> Made:
        done = action_cache.tree_path(ctx.cache, "cross root", made.key)
        if not done.is_dir():
            _make(whole, target, tri, ctx.cache, done)
        return Made(trees={"root": done.relative_to(ctx.cache).as_posix()})

    made = Action("cross root", f"{PYTHON} -> {arch}", {
        "recipe": str(RECIPE), "triplet": tri,
        **{f"deb {p['name']}": p["sha256"] for p in whole},
        **{f"{arch} deb {p['name']}": p["sha256"] for p in target}}, run)
    return made


def _unpack(p: dict, cache: Path, into: Path) -> None:
    blob = download.cas_path(cache, p["sha256"])
    if not blob.exists():
        raise UserError(f"{p['filename']} is not in the cache: run `invoke fetch` and "
                        "`invoke fetch --platform linux/arm64`")
    proc = subprocess.run(["dpkg-deb", "-x", str(blob), str(into)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot unpack {p['filename']}: {proc.stderr.strip()}")


def _make(whole: list[dict], target: list[dict], tri: str, cache: Path, done: Path) -> None:
    done.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{done.name[:12]}-", dir=done.parent))
    try:
        for p in whole:
            _unpack(p, cache, work)
        # the target's headers, below the cross gcc's own include folder; its sysconfig data
        with tempfile.TemporaryDirectory(dir=done.parent, prefix=".target-") as tmp:
            for p in target:
                _unpack(p, cache, Path(tmp))
            include = work / "usr" / tri / "include"
            if not include.is_dir():
                raise UserError(f"the cross toolchain has no /usr/{tri}/include "
                                f"(libc6-dev-{tri.split('-')[0]}-cross missing from the lock?)")
            shutil.copytree(Path(tmp) / "usr/include", include, symlinks=True,
                            dirs_exist_ok=True)
            name = f"_sysconfigdata__{tri}.py"
            data = Path(tmp) / "usr/lib" / PYTHON / name
            if not data.is_file():
                raise UserError(f"the cross lock's lib{PYTHON}-minimal has no {name}")
            shutil.copyfile(data, work / "usr/lib" / PYTHON / name)
            os.chmod(work / "usr/lib" / PYTHON / name, 0o644)
        python_root.compile_and_publish(work, done)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
