"""Deterministic layer tars, written into the content-addressed store.

Same tree in, same bytes out, whatever the machine, umask, clock or path: entries sorted, owner
0:0 unless the caller maps a path to another owner, no user or group names, modes normalised
for trees we staged ourselves, mtimes clamped to the line's SOURCE_DATE_EPOCH, PAX headers with
no atime/ctime, gzip at a fixed level with mtime 0 and no file name. The uncompressed sha256 is
the layer's diff_id, the compressed one its digest.
"""

import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from rules.download import cas_path

GZIP_LEVEL = 6
SKIP_TOP = {"dev", "proc", "sys", "run", "tmp"}  # provided by the runtime (contents dropped)


@dataclass(frozen=True)
class Layer:
    digest: str  # sha256:<hex> of the gzip blob
    diff_id: str  # sha256:<hex> of the tar
    size: int  # bytes of the gzip blob
    entries: int

    def blob(self, cache: Path) -> Path:
        return cas_path(cache, self.digest.removeprefix("sha256:"))

    def to_json(self) -> dict:
        return {"digest": self.digest, "diff_id": self.diff_id, "size": self.size,
                "entries": self.entries}

    @classmethod
    def from_json(cls, data: dict) -> "Layer":
        return cls(data["digest"], data["diff_id"], data["size"], data["entries"])


class _HashingWriter:
    def __init__(self, sink, hasher):
        self.sink, self.hasher, self.size = sink, hasher, 0

    def write(self, data):
        self.hasher.update(data)
        self.size += len(data)
        return self.sink.write(data)

    def tell(self):
        return self.size

    def flush(self):
        self.sink.flush()


def walk(root: Path) -> list[str]:
    """Every path below ``root`` (relative, POSIX), in byte order (parents sort first).
    The contents of SKIP_TOP folders are left out; the folders themselves are kept."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        if rel and rel.split("/")[0] in SKIP_TOP:
            dirnames[:] = []
            continue
        out.extend(f"{rel}/{name}" if rel else name for name in dirnames + filenames)
    return sorted(out, key=lambda p: p.encode())


def tree_entries(root: Path, prefix: str = "", paths: Iterable[str] | None = None
                 ) -> dict[str, Path]:
    """Image path -> host path for the tree at ``root`` placed at ``prefix``."""
    root = Path(root)
    base = prefix.strip("/")
    rels = list(paths) if paths is not None else walk(root)
    return {f"{base}/{rel}" if base else rel: root / rel for rel in rels}


def write_tree(root: Path, cache: Path, epoch: int, *, normalize_modes: bool = False,
               owner: Callable[[str], tuple[int, int]] | None = None,
               paths: Iterable[str] | None = None, prefix: str = "") -> Layer:
    """Write the tree at ``root`` (or just ``paths`` of it) as a layer at ``prefix``."""
    return write_entries(tree_entries(root, prefix, paths), cache, epoch,
                         normalize_modes=normalize_modes, owner=owner)


def write_entries(entries: dict[str, Path | None], cache: Path, epoch: int, *,
                  normalize_modes: bool = False,
                  owner: Callable[[str], tuple[int, int]] | None = None,
                  modes: dict[str, int] | None = None) -> Layer:
    """Write a layer from image path -> host path (None: a plain directory). Missing parent
    directories are added; entries are written in byte order of their image paths."""
    names = dict(entries)
    for name in list(names):
        parts = name.split("/")
        for i in range(1, len(parts)):
            names.setdefault("/".join(parts[:i]), None)
    order = sorted(names, key=lambda n: n.encode())
    blobs = Path(cache) / "cas" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    tar_sha, gz_sha = hashlib.sha256(), hashlib.sha256()
    seen_inodes: dict[tuple[int, int], str] = {}
    count = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            gz_out = _HashingWriter(raw, gz_sha)
            with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL,
                               fileobj=gz_out, mtime=0) as gz:
                tar_out = _HashingWriter(gz, tar_sha)
                with tarfile.TarFile(fileobj=tar_out, mode="w", format=tarfile.PAX_FORMAT,
                                     encoding="utf-8") as tar:
                    for name in order:
                        info, data = _entry(name, names[name], epoch, normalize_modes,
                                            owner, seen_inodes)
                        if info is None:
                            continue
                        if modes and name in modes:
                            info.mode = modes[name]
                        tar.addfile(info, data)
                        if data:
                            data.close()
                        count += 1
            raw.flush()
            os.fsync(raw.fileno())
        result = Layer(f"sha256:{gz_sha.hexdigest()}", f"sha256:{tar_sha.hexdigest()}",
                       gz_out.size, count)
        target = result.blob(cache)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        return result
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entry(name: str, path: Path | None, epoch: int, normalize: bool, owner,
           seen_inodes: dict):
    info = tarfile.TarInfo(name)
    info.uid, info.gid = owner(name) if owner else (0, 0)
    info.uname = info.gname = ""
    if path is None:
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
        return info, None
    st = os.lstat(path)
    info.mtime = min(int(st.st_mtime), epoch)
    mode = stat.S_IMODE(st.st_mode)
    data = None
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        mode = 0o755 if normalize else mode
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        mode = 0o777
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen_inodes:
            info.type, info.linkname = tarfile.LNKTYPE, seen_inodes[key]
        else:
            if st.st_nlink > 1:
                seen_inodes[key] = name
            info.type, info.size = tarfile.REGTYPE, st.st_size
            data = open(path, "rb")
        if normalize:
            mode = 0o755 if mode & 0o100 else 0o644
    else:
        return None, None  # devices, sockets, fifos: the container runtime provides them
    info.mode = mode
    return info, data
