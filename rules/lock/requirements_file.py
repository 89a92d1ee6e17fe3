"""Read and write pip requirements files in pip-compile's layout."""

import re
from dataclasses import dataclass

from packaging.utils import canonicalize_name

UNSAFE = ("distribute", "pip", "setuptools")  # pip-compile lists these last, under a comment
UNSAFE_COMMENT = "# The following packages are considered to be unsafe in a requirements file:"
_EXTRAS = re.compile(r"\[[^\]]*\]")  # written as pip-compile does: `pkg[a,b]==1.0`
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>\S+)")


@dataclass
class Entry:
    name: str  # canonical
    version: str
    lines: list[str]  # the pin line, its hash lines and its `# via` notes

    @property
    def hashes(self) -> list[str]:
        return [h for line in self.lines for h in re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)]


def parse(text: str) -> tuple[list[str], list[Entry]]:
    """Split a lock into its leading comment lines and its entries (the unsafe comment dropped)."""
    header: list[str] = []
    entries: list[Entry] = []
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            line = _EXTRAS.sub(lambda m: m[0].replace(" ", ""), line, count=1)
            entries.append(Entry(canonicalize_name(match["name"]), match["version"], [line]))
        elif entries and line.startswith((" ", "\t")):
            entries[-1].lines.append(line)
        elif not entries:
            header.append(line)
        elif line.strip() and line != UNSAFE_COMMENT:
            raise ValueError(f"unexpected line in requirements file: {line!r}")
    return header, entries


def render(header: list[str], entries: list[Entry]) -> str:
    safe = sorted((e for e in entries if e.name not in UNSAFE), key=lambda e: e.name)
    unsafe = sorted((e for e in entries if e.name in UNSAFE), key=lambda e: e.name)
    out = list(header)
    for entry in safe:
        out.extend(entry.lines)
    if unsafe:
        out.extend(["", UNSAFE_COMMENT])
        for entry in unsafe:
            out.extend(entry.lines)
    return "\n".join(out) + "\n"
