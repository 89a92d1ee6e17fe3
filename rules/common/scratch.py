"""Scratch folders for work that is thrown away once its output is in the cache (package trees
unpacked and compiled for a layer, the Debian root while mmdebstrap makes it).

They go to a tmpfs when there is one (``/dev/shm``; ``RUNTIME_SCRATCH`` names another place):
creating tens of thousands of small files there costs about a third of what it costs on a
disk's file system, measured on this project's trees. Otherwise they go to the cache.

Each folder ``rt-<what>-<random>`` has a lock file beside it, held (flock) while the folder is in
use. The kernel drops the lock when its process dies, even by kill -9, and in any container
that shares the folder, so the next build removes the folders whose locks it can take.
"""

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from rules.common.errors import UserError

TMPFS = Path("/dev/shm")
MIN_FREE = 4 << 30  # bytes a tmpfs must have free to be used (the largest work is ~1.5 GB)
PREFIX = "rt-"
LOCK = ".lock"


def base(cache: Path) -> Path:
    """The private folder scratch folders are made in (created if needed)."""
    chosen = os.environ.get("RUNTIME_SCRATCH")
    if chosen:
        folder = Path(chosen) / f"runtime-scratch-{os.geteuid()}"
    elif _usable_tmpfs(TMPFS):
        folder = TMPFS / f"runtime-scratch-{os.geteuid()}"
    else:
        folder = Path(cache) / "scratch"
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise UserError(f"scratch folder {folder} is not a folder of yours: remove it, or set "
                        "RUNTIME_SCRATCH to another place")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)
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
    """A new empty folder, removed on exit (and by a later build if this process dies)."""
    parent = base(cache)
    remove_stale(parent)
    fd, lock = tempfile.mkstemp(prefix=f"{PREFIX}{what}-", suffix=LOCK, dir=parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = Path(lock[:-len(LOCK)])
        path.mkdir(mode=0o700)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        Path(lock).unlink(missing_ok=True)
        os.close(fd)


def remove_stale(parent: Path) -> None:
    """Remove the scratch folders whose lock no process holds."""
    for lock in parent.glob(f"{PREFIX}*{LOCK}"):
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            shutil.rmtree(str(lock)[:-len(LOCK)], ignore_errors=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
