"""Debian version order and dependency relations, by python-debian (dpkg's rules, not ours).

``compare`` and ``sort_key`` are ``debian.debian_support.Version`` (deb-version(7): epochs,
``~`` sorting before everything, letters before other symbols, numeric runs compared as numbers);
``parse_relation`` is ``debian.deb822.PkgRelation``, which understands architecture qualifiers
(``python3:any``), ``[arch]`` lists and ``<profile>`` restrictions. What stays ours is the
policy around them: a relation python-debian cannot parse is an error here (the library logs a
warning and returns the whole text as the package name), and the deprecated ``<``/``>``
operators mean ``<=``/``>=`` as dpkg reads them.

``Version`` is slower than the comparison it replaced: sorting the bullseye index's 58,657
versions takes 6.0 s against 1.6 s, in the same order (``.venv/bin/python tools/bench_libs.py
debian``). The Debian lock compares only the packages found in more than one archive (main,
-updates, -security), a few milliseconds either way, and only when it is resolved again; no
build compares versions.

python-debian is imported when first used (deb822 takes about 20 ms to import, debian_support
about 9 ms): every task imports the Debian lock's module, and only resolving it compares.
"""

_OPS = {"<<": lambda c: c < 0, "<=": lambda c: c <= 0, "<": lambda c: c <= 0,
        "=": lambda c: c == 0, ">=": lambda c: c >= 0, ">": lambda c: c >= 0,
        ">>": lambda c: c > 0}


def sort_key(version: str):
    """A key that sorts versions oldest first: python-debian's ``Version``."""
    from debian.debian_support import Version  # imported when used: every task imports us

    return Version(version)


def compare(a: str, b: str) -> int:
    """Negative, zero or positive as version a is older, equal or newer than b."""
    va, vb = sort_key(a), sort_key(b)
    return (va > vb) - (va < vb)


def parse_relation(text: str) -> tuple[str, str | None, str | None]:
    """'libc6 (>= 2.14)' -> ('libc6', '>=', '2.14'); one relation, no ``|`` or ``,``."""
    from debian.deb822 import PkgRelation  # 20 ms to import, so only when used

    groups = PkgRelation.parse_relations(text)
    if len(groups) != 1 or len(groups[0]) != 1:
        raise ValueError(f"cannot parse dependency {text!r}: one relation expected")
    relation = groups[0][0]
    name = relation["name"]
    if not name or any(c in name for c in " \t\n()[]<>|,"):  # python-debian's unparsed fallback
        raise ValueError(f"cannot parse dependency {text!r}")
    if relation["version"] is None:
        return name, None, None
    op, version = relation["version"]
    if op not in _OPS:
        raise ValueError(f"cannot parse dependency {text!r}: unknown operator {op!r}")
    return name, op, version


def satisfies(version: str, op: str | None, wanted: str | None) -> bool:
    """Whether ``version`` meets ``op wanted`` (no operator: any version does)."""
    if op is None:
        return True
    return _OPS[op](compare(version, wanted))
