"""The image's python3.9 alone, for byte-compiling: the few locked .debs it needs to run,
unpacked (``dpkg-deb -x``) into a small root of their own.

Byte-compiling needs only the interpreter and the minimal standard library, so it does not
wait for mmdebstrap's full root (about 25 s): Python layers are compiled and written while
that root is made. It is the very interpreter of the image (the same package files, by
sha256), so the .pyc bytes are the ones the full root would give. The root is cached by the
sha256 of its packages and the recipe below (an action of kind "python root"), and published by
a rename, like the other trees.

Its standard library is byte-compiled when the root is made, the way the full root's is
(rules.debian.debian_rootfs), and the compiling processes never write into it: otherwise the first
processes would compile the modules they import and write .pyc files while others load them,
and the objects alive in a compiling process (hence marshal's references in the .pyc files it
writes) would depend on that race. Seen: one .pyc of websocket-client differed between builds.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rules.debian import chroot
from rules.graph import action_cache, scheduler
from rules.graph.action import Action, Made
from rules.fetch import download
from rules.lock import debian_lock
from rules.common.errors import UserError
from rules.load.model import Project

RECIPE = 2  # bump when the way the root is made changes
# python3.9 links libc, libm, libz and libexpat; compileall needs the standard library's pure
# modules (pathlib imports ntpath, from libpython3.9-stdlib).
PACKAGES = ("libc6", "zlib1g", "libexpat1", "libpython3.9-minimal", "libpython3.9-stdlib",
            "python3.9-minimal")
MOUNT_POINTS = ("dev", "proc", "tmp", "mnt")  # what rules.debian.chroot mounts over
STDLIB = "/usr/lib/python3.9"


def packages(project: Project) -> list[dict]:
    """The locked packages of the root, in PACKAGES order."""
    locked = {p["name"]: p for p in debian_lock.load(project)["packages"]}
    missing = [name for name in PACKAGES if name not in locked]
    if missing:
        raise UserError(f"the Debian lock has no {', '.join(missing)}: the image's python3.9 "
                        "needs them (add python3.9 to the Debian packages and run `invoke lock`)")
    return [locked[name] for name in PACKAGES]


def action(project: Project) -> Action:
    """The action that makes the root (a tree of the cache; about a second)."""
    pkgs = packages(project)

    def run(ctx) -> Made:
        done = action_cache.tree_path(ctx.cache, "python root", made.key)
        if not done.is_dir():
            _make(pkgs, ctx.cache, done)
        return Made(trees={"root": done.relative_to(ctx.cache).as_posix()})

    made = Action("python root", "python3.9", {
        "recipe": str(RECIPE), **{f"deb {p['name']}": p["sha256"] for p in pkgs}}, run)
    return made


def build(project: Project, cache: Path) -> Path:
    """The root folder, made if the cache has none."""
    root = action(project)
    return scheduler.run([root], cache)[root].record.tree(cache, "root")


def _make(pkgs: list[dict], cache: Path, done: Path) -> None:
    done.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{done.name[:12]}-", dir=done.parent))
    try:
        for p in pkgs:
            blob = download.cas_path(cache, p["sha256"])
            if not blob.exists():
                raise UserError(f"{p['filename']} is not in the cache: run `invoke fetch`")
            proc = subprocess.run(["dpkg-deb", "-x", str(blob), str(work)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"cannot unpack {p['filename']}: {proc.stderr.strip()}")
        compile_and_publish(work, done)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def compile_and_publish(work: Path, done: Path) -> None:
    """Byte-compile the standard library of the unpacked root ``work`` with its python3.9
    (so that no later process writes into the shared tree), then publish it at ``done`` by a
    rename (rules.debian.cross_root's root too)."""
    for name in MOUNT_POINTS:
        (work / name).mkdir(exist_ok=True)
    chroot.run(work, ["python3.9", "-m", "compileall", "-q", "-j", "1",
                      "--invalidation-mode", "unchecked-hash", STDLIB],
               what="byte-compiling the standard library")
    try:
        os.rename(work, done)
    except OSError:  # a concurrent build published the same root first
        if not done.is_dir():
            raise
        shutil.rmtree(work, ignore_errors=True)
