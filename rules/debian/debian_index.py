"""A Debian archive's package index, verified: InRelease signed (gpgv), Packages by sha256.

InRelease and the Packages paragraphs are read by python-debian (``deb822.Release``, which also
splits the SHA256 list, and ``Deb822.iter_paragraphs``, its pure Python reader: apt_pkg would be
faster but is a system package, not a pinned wheel). It is slower than the splitter it
replaced: the 46 MB bullseye main index (58,657 paragraphs) takes 3.2 s against 0.43 s, 2.4 s
when only the 12 fields the lock reads are kept, and resolving the Debian lock again went from
1.4 s to 3.9 s, the same lock written (2 cores, load 3.6; ``.venv/bin/python
tools/bench_libs.py debian``). That cost is paid only when the Debian lock is resolved again
(WORKSPACE's Debian inputs changed), next to downloading the indexes; a lock whose inputs are
unchanged, `invoke lock --check` and every build never read an index, so we take it.

Each index fetched is remembered (``last_fetched``): `invoke audit` compares the locks with the
indexes as last fetched, offline, and says how old they are (InRelease's Date).
"""

import hashlib
import json
import lzma
import shutil
import subprocess
import tempfile
from pathlib import Path

from rules.common import atomic
from rules.fetch import download
from rules.common.errors import UserError

INDEXES = "debian-indexes"  # (in the cache) the last index fetched per archive, component, arch


def parse_stanzas(text: str, fields: list[str] | None = None) -> list[dict[str, str]]:
    """deb822 paragraphs as plain dicts, by python-debian (a continuation line keeps its leading
    space after the newline, as deb822 writes it); only ``fields`` when given."""
    from debian import deb822  # 20 ms to import; every task imports this module, few read indexes

    return [dict(paragraph) for paragraph in deb822.Deb822.iter_paragraphs(text, fields=fields)]


def verified_release(mirror: str, suite: str, keyring: str) -> str:
    """The cleartext of ``dists/SUITE/InRelease`` once its signature checks out."""
    url = f"{mirror}/dists/{suite}/InRelease"
    signed = download.fetch_bytes(url)
    if not shutil.which("gpgv"):
        raise UserError("gpgv is needed to verify Debian's InRelease files: apt-get install gpgv")
    if not Path(keyring).exists():
        raise UserError(f"keyring {keyring} not found: apt-get install debian-archive-keyring")
    with tempfile.NamedTemporaryFile(suffix=".InRelease") as f:
        f.write(signed)
        f.flush()
        proc = subprocess.run(["gpgv", "--keyring", keyring, "--output", "-", f.name],
                              capture_output=True)
    if proc.returncode != 0:
        raise UserError(f"signature check failed for {url}:\n{proc.stderr.decode().strip()}")
    return proc.stdout.decode("utf-8")


def packages(mirror: str, suite: str, component: str, arch: str, keyring: str,
             cache: Path, fields: list[str] | None = None) -> list[dict[str, str]]:
    """The paragraphs of the suite's Packages index (only ``fields`` when given: the parse
    takes about half as long with the dozen fields the Debian lock reads)."""
    from debian import deb822

    release = deb822.Release(verified_release(mirror, suite, keyring))
    wanted = f"{component}/binary-{arch}/Packages.xz"
    for entry in release.get("SHA256", []):  # python-debian splits it: sha256, size, name
        if entry["name"] == wanted:
            path = download.fetch_verified(f"{mirror}/dists/{suite}/{wanted}", entry["sha256"],
                                           cache, what=f"{suite}/{wanted}")
            _remember(cache, mirror, suite, component, arch, entry["sha256"], release)
            return parse_stanzas(lzma.decompress(path.read_bytes()).decode("utf-8"), fields)
    raise UserError(f"{mirror} {suite}: no {wanted} in its InRelease")


def _pointer(cache: Path, mirror: str, suite: str, component: str, arch: str) -> Path:
    name = f"{mirror}/{suite}/{component}/{arch}".split("://", 1)[-1].replace("/", "_")
    return Path(cache) / INDEXES / f"{name}.json"


def release_date(text: str):
    """An InRelease ``Date`` as an aware datetime, or None when it is missing or unreadable."""
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError, IndexError):
        return None


def _remember(cache, mirror, suite, component, arch, sha256: str, release) -> None:
    """Remember the index just fetched, unless the archive served an InRelease older than the
    one fetched before: that is a replayed (or rolled back) archive, and is refused."""
    pointer = _pointer(cache, mirror, suite, component, arch)
    date = release.get("Date", "")
    try:
        before = json.loads(pointer.read_text())["date"]
    except (OSError, ValueError, KeyError, TypeError):
        before = ""
    new, old = release_date(date), release_date(before)
    if new and old and new < old:
        raise UserError(f"{mirror} {suite}: its InRelease is dated {date}, older than the one "
                        f"fetched before ({before}): a replayed or rolled-back archive is "
                        f"refused (if the mirror was changed on purpose, remove {pointer})")
    atomic.write_text(pointer, json.dumps(
        {"archive": f"{mirror} {suite}", "component": component, "arch": arch,
         "sha256": sha256, "date": date}, indent=2) + "\n")


class IndexUnreadable(Exception):
    """The remembered index cannot be read back from the cache (the message says why)."""


def last_fetched(cache: Path, mirror: str, suite: str, component: str, arch: str,
                 fields: list[str] | None = None) -> tuple[str, list[dict[str, str]]] | None:
    """(InRelease's Date, the paragraphs) of the index last fetched for this archive, read from
    the cache (offline); None if it was never fetched; IndexUnreadable if the pointer or the
    index in the cache is damaged or gone."""
    path = _pointer(cache, mirror, suite, component, arch)
    if not path.exists():
        return None
    try:
        pointer = json.loads(path.read_text())
        sha256, date = pointer["sha256"], str(pointer.get("date", ""))
        data = download.cas_path(cache, sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IndexUnreadable(f"the cached index does not match its sha256 {sha256[:12]}")
        return date, parse_stanzas(lzma.decompress(data).decode("utf-8"), fields)
    except IndexUnreadable:
        raise
    except (OSError, ValueError, KeyError, TypeError, lzma.LZMAError) as e:
        raise IndexUnreadable(f"{path.name}: {type(e).__name__}: {e}") from None
