"""Where a command's output goes (`--out`): what may be replaced there, and how.

An output is made beside its target and renamed into place, so a reader never sees half of
one. What is already at the target is replaced only when it is recognisably an earlier output
of the same kind, written by this engine: an OCI image layout with nothing foreign in it, a
PEX file. Anything else (a folder of the user's files, `--out .`, `--out ~`, a regular file) is
refused with a one-line error before any work starts, and again just before the rename (the
user may have put something there while the build ran), and is never touched.
"""

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from rules.common.errors import UserError

# What oci.write_layout puts in a layout, and nothing else.
LAYOUT_ENTRIES = frozenset({"oci-layout", "index.json", "manifest.json", "blobs"})


def is_image_layout(path: Path) -> bool:
    """An OCI image layout as this engine writes it: `oci-layout`, the two indexes and blobs
    named by their sha256, nothing else. manifest.json (`docker load`'s) must be there: other
    tools (skopeo, umoci) write layouts without it, and the user's tags in those are theirs."""
    path = Path(path)
    try:
        names = {p.name for p in path.iterdir()}
        if not {"oci-layout", "index.json", "manifest.json"} <= names \
                or not names <= LAYOUT_ENTRIES:
            return False
        for name in names - {"blobs"}:  # oci-layout, index.json, manifest.json: plain files
            if not (path / name).is_file() or (path / name).is_symlink():
                return False
        blobs = path / "blobs"
        if blobs.exists():
            if blobs.is_symlink() or {p.name for p in blobs.iterdir()} - {"sha256"}:
                return False
            for blob in (blobs / "sha256").iterdir():
                if blob.is_symlink() or not blob.is_file() or not _is_hex64(blob.name):
                    return False
    except OSError:
        return False
    return True


def is_pex(path: Path) -> bool:
    """A PEX file (a zip that holds PEX-INFO), as `invoke pex` writes it."""
    try:
        with zipfile.ZipFile(path) as z:
            return "PEX-INFO" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _is_hex64(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def check_parent(path: Path, option: str = "--out") -> Path:
    """The absolute ``path``, after checking that a folder can be made there: every existing
    ancestor is a folder (`--out FILE/sub` is refused here, not with a traceback later)."""
    path = Path(path).expanduser().absolute()
    for ancestor in path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise UserError(f"{option} {path}: {ancestor} is a file, not a folder")
            break
    return path


def check_folder(path: Path, recognise: Callable[[Path], bool], what: str,
                 option: str = "--out") -> Path:
    """Refuse ``path`` unless it is absent, an empty folder, or an earlier output that
    ``recognise`` accepts; return it absolute. Nothing is changed."""
    path = check_parent(path, option)
    if path.is_symlink():
        raise UserError(f"refused: {option} {path} is a symbolic link; name a folder")
    if not path.exists():
        return path
    if not path.is_dir():
        raise UserError(f"refused: {option} {path} is a file, not a folder; nothing was changed")
    entries = sorted(p.name for p in path.iterdir())
    if entries and not recognise(path):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise UserError(f"refused: {option} {path} is not empty and is not {what} written by "
                        f"this build (it holds {shown}); nothing was changed: remove it or "
                        f"choose another {option}")
    return path


def check_file(path: Path, recognise: Callable[[Path], bool], what: str,
               option: str = "--out") -> Path:
    """Refuse writing the file ``path`` over something that is not an earlier ``what``."""
    path = check_parent(path, option)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"refused: {path} exists and is not a file; nothing was changed")
    if path.exists() and not recognise(path):
        raise UserError(f"refused: {path} exists and is not {what} written by this build; "
                        f"nothing was changed: remove it or choose another {option}")
    return path


def work_folder(out: Path) -> Path:
    """A new empty folder beside ``out`` (same file system, so the final rename is atomic),
    with the mode a folder made by the user's umask would have (mkdtemp's is 0700)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)
    return work


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (renameat2 RENAME_EXCHANGE, Linux 3.15+); False where the
    file system or libc cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


def publish_folder(work: Path, out: Path, recognise: Callable[[Path], bool], what: str) -> None:
    """Put the finished ``work`` folder at ``out``, replacing an earlier output there only if
    ``recognise`` accepts it. The earlier output is swapped out in one step (so a reader always
    finds a whole layout) and checked again once it is out of the way: if the user put anything
    into it meanwhile, it is swapped back and the build refused. Two builds may publish the
    same folder at once: the last one wins."""
    for attempt in range(5):
        try:
            check_folder(out, recognise, what)
            if out.exists() and any(out.iterdir()):
                if _exchange(work, out):
                    old = work  # the earlier output, now at the work folder's name
                else:
                    old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
                    os.rename(out, old / "old")
                    os.rename(work, out)
                    old = old / "old"
                if not recognise(old):  # something was added since the check: put it back
                    if not _exchange(old, out):
                        shutil.rmtree(out)
                        os.rename(old, out)
                    raise UserError(f"refused: --out {out} changed while the build ran and is "
                                    f"no longer {what} written by this build; nothing was "
                                    f"changed: remove it or choose another --out")
                shutil.rmtree(old.parent if old.name == "old" else old, ignore_errors=True)
                return
            os.rename(work, out)
            return
        except UserError:
            raise
        except OSError:  # another build renamed it first: look again
            if attempt == 4:
                raise
