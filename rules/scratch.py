"""Scratch folders for work that is thrown away once its output is in the cache (package trees
unpacked and compiled for a layer, the Debian root while mmdebstrap makes it).

They go to a tmpfs when there is one (``/dev/shm``; ``RUNTIME_SCRATCH`` names another folder):
creating tens of thousands of small files there costs about a third of what it costs on a
disk's file system, measured on this project's trees. Each folder is named after the process
that made it, so a build killed with kill -9 leaves nothing behind for long: the next build
removes the folders of processes that no longer exist.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

TMPFS = Path("/dev/shm")
MIN_FREE = 4 << 30  # bytes a tmpfs must have free to be used (the largest work is ~1.5 GB)


def base(cache: Path) -> Path:
    """The folder scratch folders are made in (created if needed)."""
    chosen = os.environ.get("RUNTIME_SCRATCH")
    if chosen:
        folder = Path(chosen)
    elif _usable_tmpfs(TMPFS):
        folder = TMPFS / f"runtime-scratch-{os.geteuid()}"
    else:
        folder = Path(cache) / "scratch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _usable_tmpfs(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    # mmdebstrap runs the maintainer scripts of the root it makes there, and makes its devices
    if st.f_flag & (os.ST_NOEXEC | os.ST_NODEV):
        return False
    return os.access(path, os.W_OK) and st.f_bavail * st.f_frsize >= MIN_FREE


@contextlib.contextmanager
def folder(cache: Path, what: str):
    """A new empty folder, removed on exit (and by a later build if this process is killed)."""
    parent = base(cache)
    remove_stale(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{what}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(parent: Path) -> None:
    """Remove the scratch folders of processes that are gone."""
    for entry in parent.iterdir():
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
