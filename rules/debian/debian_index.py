"""A Debian archive's package index, verified: InRelease signed (gpgv), Packages by sha256."""

import lzma
import shutil
import subprocess
import tempfile
from pathlib import Path

from rules.fetch import download
from rules.common.errors import UserError


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs as dicts (continuation lines joined with newlines)."""
    stanzas, current, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


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
             cache: Path) -> list[dict[str, str]]:
    release = parse_stanzas(verified_release(mirror, suite, keyring))[0]
    wanted = f"{component}/binary-{arch}/Packages.xz"
    for line in release.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == wanted:
            path = download.fetch_verified(f"{mirror}/dists/{suite}/{wanted}", parts[0], cache,
                                           what=f"{suite}/{wanted}")
            return parse_stanzas(lzma.decompress(path.read_bytes()).decode("utf-8"))
    raise UserError(f"{mirror} {suite}: no {wanted} in its InRelease")


