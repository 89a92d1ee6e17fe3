"""Debian version comparison (deb-version(7)), and dependency-relation checks."""

import functools
import re


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split(v: str) -> tuple[int, str, str]:
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch or 0), upstream, revision


def compare(a: str, b: str) -> int:
    """Negative, zero or positive as version a is older, equal or newer than b."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return ea - eb
    return _compare_part(ua, ub) or _compare_part(ra, rb)


sort_key = functools.cmp_to_key(compare)

_RELATION = re.compile(r"^\s*(?P<name>[^\s(:]+)(?::\S+)?\s*(?:\((?P<op><<|<=|=|>=|>>|<|>)\s*"
                       r"(?P<version>[^)\s]+)\s*\))?\s*(?:\[[^\]]*\])?\s*$")


def parse_relation(text: str) -> tuple[str, str | None, str | None]:
    """'libc6 (>= 2.14)' -> ('libc6', '>=', '2.14')."""
    m = _RELATION.match(text)
    if not m:
        raise ValueError(f"cannot parse dependency {text!r}")
    return m["name"], m["op"], m["version"]


def satisfies(version: str, op: str | None, wanted: str | None) -> bool:
    if op is None:
        return True
    c = compare(version, wanted)
    return {"<<": c < 0, "<": c <= 0, "<=": c <= 0, "=": c == 0,
            ">=": c >= 0, ">": c >= 0, ">>": c > 0}[op]
