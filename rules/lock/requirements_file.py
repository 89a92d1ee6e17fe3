"""Read and write pip requirements files in pip-compile's layout.

Kept our own on purpose: these locks are written by uv in pip-compile's layout only (one
``name==version`` pin, its ``--hash=sha256:`` continuation lines and its ``# via`` notes; no
options, no ``-r``), and every build reads them: a no-op rebuild of Runtime 4.2 reads a lock
6 times. pip-requirements-parser 32.0.1 (pip's own parser, pinned in the dev lock) reads the
same pins and hashes from every committed lock (tests/rules/lock/test_requirements_file.py),
but takes 300-320 ms for the four locks against 2.8 ms here (108-116x), and with it the
in-process no-op rebuild went from 0.14 s to 0.75-1.22 s (two runs, 2 cores, load about 3;
``.venv/bin/python tools/bench_libs.py req noop``): `invoke image` no-op takes 0.34 s in
all, so it would reach or pass the 1 s a no-op build may take. It also keeps no line layout
to write back, and its ``RequirementsFile.from_string`` fails (``NameError: Path``), so it
reads only files. A line this reader does not understand after the first pin is an error,
never skipped.
"""

import re
from dataclasses import dataclass

from packaging.utils import canonicalize_name

UNSAFE = ("distribute", "pip", "setuptools")  # pip-compile lists these last, under a comment
UNSAFE_COMMENT = "# The following packages are considered to be unsafe in a requirements file:"
_EXTRAS = re.compile(r"\[[^\]]*\]")  # written as pip-compile does: `pkg[a,b]==1.0`
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;]+)")


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
