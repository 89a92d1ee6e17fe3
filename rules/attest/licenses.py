"""Licenses as the packages state them, made into SPDX license expressions.

Debian: the copyright file a .deb installs at /usr/share/doc/<package>/copyright. A
machine-readable one (DEP-5, parsed by python-debian's `debian.copyright`) names its licenses
in Debian's short names (`GPL-2+`, `Expat`, `BSD-3-clause`); these are mapped to SPDX ids
(`GPL-2.0-or-later`, `MIT`, `BSD-3-Clause`) and the names SPDX lacks become
`LicenseRef-Debian-<name>`. A copyright file in free form states nothing a program can read
reliably: NOASSERTION (measured on the 160 packages of the Debian lock: see docs/supply-chain.md).

Python: `License-Expression` (core metadata 2.4) when it is a valid SPDX expression, else the
`License` field when it is an SPDX id or expression, else a single `License ::` classifier
mapped to its SPDX id, else the `License` text as a `LicenseRef-` with that text as extracted
licensing info, else NOASSERTION.

Expressions are checked with `license-expression` (the SPDX license list it ships), which both
spdx-tools and cyclonedx-python-lib use.
"""

import re
from functools import lru_cache

NOASSERTION = "NOASSERTION"

# Debian short names (copyright-format 1.0, "Short name") that are not SPDX ids as they are
DEBIAN = {"expat": "MIT", "artistic": "Artistic-1.0-Perl", "zlib": "Zlib",
          "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
          "bsd-4-clause": "BSD-4-Clause", "isc": "ISC", "apache-2.0": "Apache-2.0",
          "mpl-2.0": "MPL-2.0", "mpl-1.1": "MPL-1.1", "psf-2": "PSF-2.0", "python": "PSF-2.0",
          "openssl": "OpenSSL", "ssleay": "SSLeay-standalone", "curl": "curl", "x11": "X11",
          "cc0-1.0": "CC0-1.0", "cc0": "CC0-1.0", "unicode": "Unicode-DFS-2016",
          "public-domain": "LicenseRef-Debian-public-domain", "mit": "MIT"}
_VERSIONED = re.compile(r"^(a?gpl|lgpl|gfdl)-?(\d+(?:\.\d+)?)(\+)?$", re.I)

# the License :: classifiers most packages use -> SPDX id
CLASSIFIERS = {
    "MIT License": "MIT", "BSD License": None, "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC", "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU Library or Lesser General Public License (LGPL)": None,
    "The Unlicense (Unlicense)": "Unlicense", "Zope Public License": "ZPL-2.1",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0", "Public Domain": None,
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
}


@lru_cache(maxsize=1)
def _licensing():
    from license_expression import get_spdx_licensing

    licensing = get_spdx_licensing()
    # Its tokenizer is built on first use and published before it is filled: two SBOM actions
    # parsing at once in threads of one build raced on it (AttributeError: 'object' object has
    # no attribute 'children', a cold 4.2 build on 2026-12-03). Built here, before it is shared.
    licensing.get_advanced_tokenizer()
    return licensing


@lru_cache(maxsize=1)
def _ids() -> dict[str, str]:
    """lower-case SPDX id -> its spelling."""
    ids = {}
    for key, symbol in _licensing().known_symbols.items():
        ids[key.lower()] = key
        for alias in getattr(symbol, "aliases", ()) or ():
            ids.setdefault(alias.lower(), key)
    return ids


@lru_cache(maxsize=4096)
def valid(expression: str) -> str | None:
    """The expression in canonical form if it is a valid SPDX expression of known ids (and
    LicenseRef-s), else None."""
    if not expression or len(expression) > 4000 or "\n" in expression.strip():
        return None
    try:
        info = _licensing().validate(expression, strict=False)
        if info.errors and not all(str(s).startswith("LicenseRef-")
                                   for s in info.invalid_symbols):
            return None
        keys = _licensing().license_keys(_licensing().parse(expression))
    except Exception:  # (license-expression 30.4 raises on some malformed input)
        return None
    if any(k.lower() not in _ids() and not k.startswith("LicenseRef-") for k in keys):
        return None
    return info.normalized_expression or str(_licensing().parse(expression))


def ref(name: str, prefix: str = "") -> str:
    """A LicenseRef- id for a license SPDX does not list (letters, digits, '.', '-')."""
    return "LicenseRef-" + prefix + re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")[:60]


def debian_short_name(name: str) -> str:
    """One Debian short name (`GPL-2+`, `Expat`, `BSD-3-clause`) -> an SPDX id or a
    LicenseRef-Debian-... ."""
    name = name.strip().rstrip(",")
    lower = name.lower()
    if lower in DEBIAN:
        return DEBIAN[lower]
    m = _VERSIONED.match(name)
    if m:
        family, version, plus = m.group(1).upper(), m.group(2), m.group(3)
        if "." not in version:
            version += ".0"
        return f"{family}-{version}-{'or-later' if plus else 'only'}"
    if lower in _ids() and not lower.startswith(("gpl", "lgpl", "agpl", "gfdl")):
        return _ids()[lower]
    return ref(name, "Debian-")


def debian_synopsis(synopsis: str) -> str:
    """A DEP-5 `License:` synopsis (`GPL-2+ or Artistic`, `LGPL-2.1+ and BSD-3-clause`) as an
    SPDX expression."""
    words = re.split(r"\s+(or|and)\s+", synopsis.strip(), flags=re.I)
    parts = []
    for i, word in enumerate(words):
        if i % 2:
            parts.append(word.upper())
        else:
            word = re.sub(r"\s+with\s+.*$", "", word, flags=re.I)  # exceptions: kept apart
            parts.append(debian_short_name(word))
    return " ".join(parts)


def debian_copyright(text: str) -> tuple[str, dict[str, str]]:
    """(SPDX expression or NOASSERTION, {LicenseRef id: its text}) of a copyright file."""
    import logging

    from debian import copyright as dep5

    logging.getLogger("debian.copyright").setLevel(logging.ERROR)  # "Fixing Format URL"...
    try:
        parsed = dep5.Copyright(text.splitlines(), strict=False)
    except Exception:  # not machine-readable (NotMachineReadableError), or malformed
        return NOASSERTION, {}
    found: list[str] = []
    refs: dict[str, str] = {}
    texts = {}
    for para in parsed.all_license_paragraphs():
        if para.license and para.license.synopsis:
            texts[para.license.synopsis.strip()] = para.license.text or ""
    for para in parsed.all_files_paragraphs():
        lic = para.license
        if lic is None or not lic.synopsis:
            continue
        expression = debian_synopsis(lic.synopsis)
        if expression not in found:
            found.append(expression)
        for name in re.split(r"\s+(?:or|and)\s+", lic.synopsis.strip(), flags=re.I):
            spdx = debian_short_name(re.sub(r"\s+with\s+.*$", "", name, flags=re.I))
            if spdx.startswith("LicenseRef-"):
                refs[spdx] = (lic.text or texts.get(name.strip()) or name.strip())
    if not found:
        return NOASSERTION, {}
    expression = " AND ".join(f"({e})" if " " in e else e for e in found)
    checked = valid(expression)
    return (checked, refs) if checked else (NOASSERTION, {})


def common_licenses(text: str) -> list[str]:
    """The files of /usr/share/common-licenses a free-form copyright file refers to: not an
    assertion of the package's license (a file may name them for some of its parts only), kept
    as a comment beside NOASSERTION."""
    return sorted(set(re.findall(r"/usr/share/common-licenses/([A-Za-z0-9.+_-]+[A-Za-z0-9+])",
                                 text)))


def python_license(expression: str | None, license_text: str | None,
                   classifiers: list[str], name: str) -> tuple[str, dict[str, str]]:
    """(SPDX expression or NOASSERTION, {LicenseRef id: its text}) from core metadata."""
    for candidate in (expression, license_text):
        if candidate and valid(candidate.strip()):
            return valid(candidate.strip()), {}
    mapped = {CLASSIFIERS.get(c.split(" :: ", 2)[-1]) for c in classifiers
              if c.startswith("License ::")}
    mapped.discard(None)
    if len(mapped) == 1:
        return mapped.pop(), {}
    text = (license_text or "").strip()
    if text and text.upper() not in ("UNKNOWN", "NONE"):
        lid = ref(name, "PyPI-")
        return lid, {lid: text}
    return NOASSERTION, {}
