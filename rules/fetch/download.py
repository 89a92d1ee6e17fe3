"""Downloads into a content-addressed cache: verified by sha256, written atomically."""

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from rules.common.errors import DigestMismatchError, UserError


def cas_path(cache: Path, sha256: str) -> Path:
    return Path(cache) / "cas" / "sha256" / sha256[:2] / sha256


def fetch_bytes(url: str, attempts: int = 3, timeout: float = 60) -> bytes:
    last = None
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            last = e
            if isinstance(e, urllib.error.HTTPError) and e.code == 404:
                break
            time.sleep(1 + 2 * attempt)
    raise UserError(f"cannot download {url}: {last}")


def fetch_verified(url: str, sha256: str, cache: Path, what: str | None = None) -> Path:
    """The cached file for ``sha256``, downloading it from ``url`` on a miss."""
    target = cas_path(cache, sha256)
    if target.exists():
        return target
    data = fetch_bytes(url)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise DigestMismatchError(what or url, sha256, actual)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".dl-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target
