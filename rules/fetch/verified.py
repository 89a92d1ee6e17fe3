"""Checks of cached inputs against their locked sha256, remembered by (size, mtime, inode) in
`verified.json` of the cache: a no-op rebuild stats the files instead of hashing about 600 MB
again, and a changed file is hashed again."""

import hashlib
import json
from pathlib import Path

from rules.common import atomic
from rules.common.errors import DigestMismatchError, UserError
from rules.fetch import download


class VerifiedBlobs:
    """sha256 checks of cached inputs, remembered by (size, mtime, inode) so that a file is
    hashed again only when it may have changed."""

    def __init__(self, cache: Path):
        self.path = Path(cache) / "verified.json"
        try:
            self.seen = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.seen = {}
        self.dirty = False

    def check(self, sha256: str, name: str) -> Path:
        blob = download.cas_path(self.path.parent, sha256)
        try:
            st = blob.stat()
        except FileNotFoundError:
            raise UserError(f"{name} is not in the cache {self.path.parent}: "
                            "run `invoke fetch` (it needs the network once)") from None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        if self.seen.get(sha256) != stamp:
            actual = sha256_of(blob)
            if actual != sha256:
                raise DigestMismatchError(f"{name} ({blob})", sha256, actual)
            self.seen[sha256] = stamp
            self.dirty = True
        return blob

    def save(self):
        if self.dirty:
            atomic.write_text(self.path, json.dumps(self.seen, sort_keys=True))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
