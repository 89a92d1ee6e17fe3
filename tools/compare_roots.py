"""Two Debian roots compared file by file: what one has that the other lacks, and every
entry whose type, mode, owner, link target or bytes differ. Prints a report, asserts nothing.

    .venv/bin/python tools/compare_roots.py A B                # e.g. mmdebstrap's, extracted
    .venv/bin/python tools/compare_roots.py A B --mtime EPOCH  # also mtimes, clamped to EPOCH
    .venv/bin/python tools/compare_roots.py A B --summary      # counts and the first 40 of each

Mount points (dev, proc, sys) are walked like any folder. Directory mtimes are never compared
(they say when the last file went in, and a layer clamps them); file mtimes only with --mtime,
clamped to EPOCH as the layers clamp them.
"""

import argparse
import hashlib
import os
import stat
import sys
from pathlib import Path


def walk(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out["/" + os.path.relpath(path, root)] = os.lstat(path)
    return out


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def kind(st: os.stat_result) -> str:
    return {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "link",
            stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo",
            stat.S_IFSOCK: "socket"}.get(stat.S_IFMT(st.st_mode), "?")


def compare(a: Path, b: Path, mtime: int | None = None) -> dict[str, list[str]]:
    """Differences by kind: "only in A", "only in B", "type", "mode", "owner", "link",
    "bytes", "mtime"; each a list of lines."""
    wa, wb = walk(a), walk(b)
    out: dict[str, list[str]] = {k: [] for k in ("only in A", "only in B", "type", "mode",
                                                  "owner", "link", "bytes", "mtime")}
    out["only in A"] = sorted(set(wa) - set(wb))
    out["only in B"] = sorted(set(wb) - set(wa))
    for rel in sorted(set(wa) & set(wb)):
        sa, sb = wa[rel], wb[rel]
        if kind(sa) != kind(sb):
            out["type"].append(f"{rel}: {kind(sa)} / {kind(sb)}")
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            out["mode"].append(f"{rel}: {stat.S_IMODE(sa.st_mode):o} / "
                               f"{stat.S_IMODE(sb.st_mode):o}")
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            out["owner"].append(f"{rel}: {sa.st_uid}:{sa.st_gid} / {sb.st_uid}:{sb.st_gid}")
        if kind(sa) == "link":
            ta, tb = os.readlink(a / rel[1:]), os.readlink(b / rel[1:])
            if ta != tb:
                out["link"].append(f"{rel}: {ta} / {tb}")
        elif kind(sa) == "file":
            if sa.st_size != sb.st_size or sha256(a / rel[1:]) != sha256(b / rel[1:]):
                out["bytes"].append(f"{rel}: {sa.st_size} / {sb.st_size} bytes")
        if mtime is not None and kind(sa) != "dir":
            ma, mb = min(int(sa.st_mtime), mtime), min(int(sb.st_mtime), mtime)
            if ma != mb:
                out["mtime"].append(f"{rel}: {ma} / {mb}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--mtime", type=int, help="compare file mtimes clamped to this epoch")
    parser.add_argument("--summary", action="store_true", help="at most 40 lines per kind")
    args = parser.parse_args(argv)
    found = compare(args.a, args.b, args.mtime)
    print(f"A: {args.a}\nB: {args.b}")
    for what, lines in found.items():
        print(f"{what}: {len(lines)}")
        for line in lines[:40] if args.summary else lines:
            print(f"  {line}")
        if args.summary and len(lines) > 40:
            print(f"  ... {len(lines) - 40} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
