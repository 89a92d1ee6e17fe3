"""Evaluate a WORKSPACE or BUILD file as real Starlark.

The interpreter is ``starlark-pyo3`` (the Rust ``starlark`` crate): no I/O, no clock, no
randomness; a file sees only the standard Starlark globals plus the rule functions it is given.
Every failure becomes a one-line ``BuildFileError`` naming file, line and column.
"""

import re
from pathlib import Path
from typing import Callable, Mapping

import starlark

from rules.errors import BuildFileError, UserError

_LOCATION = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)\s*$", re.M)
_SNIPPET = re.compile(r"^\s*\d+\s\|", re.M)


class RuleError(Exception):
    """Raised by a rule function for a bad call; located by the interpreter's call site."""


def evaluate(path: Path, display_name: str, functions: Mapping[str, Callable]) -> None:
    """Run the file at ``path`` with ``functions`` as its only non-standard globals."""
    source = Path(path).read_text(encoding="utf-8")
    try:
        ast = starlark.parse(display_name, source)
    except starlark.StarlarkError as e:
        raise _located(display_name, source, str(e), parse=True) from None

    raised: list[RuleError] = []
    module = starlark.Module()
    for name, fn in functions.items():
        module.add_callable(name, _recording(fn, raised))
    try:
        starlark.eval(module, ast, starlark.Globals.standard())
    except starlark.StarlarkError as e:
        message = str(raised[-1]) if raised else None
        raise _located(display_name, source, str(e), message=message) from None


def _recording(fn: Callable, raised: list) -> Callable:
    def call(*args, **kwargs):
        if args:
            raise _remember(raised, RuleError(
                f"{fn.__name__}() takes keyword arguments only (name = value, ...)"))
        try:
            return fn(**kwargs)
        except RuleError as e:
            raise _remember(raised, e)
        except UserError as e:
            raise _remember(raised, RuleError(str(e)))

    call.__name__ = fn.__name__
    return call


def _remember(raised: list, error: RuleError) -> RuleError:
    raised.append(error)
    return error


def _located(name: str, source: str, text: str, parse: bool = False,
             message: str | None = None) -> BuildFileError:
    match = _LOCATION.search(text)
    line, col = (int(match["line"]), int(match["col"])) if match else (1, 1)
    if parse and not _SNIPPET.search(text):
        # The parser reports errors at end of input without a span; point at the end.
        lines = source.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    if message is None:
        message = _first_error_line(text)
        if parse:
            message = "syntax error: " + message.removeprefix("Parse error: ")
    return BuildFileError(name, line, col, message)


def _first_error_line(text: str) -> str:
    for raw in text.splitlines():
        if raw.startswith("error: "):
            msg = raw.removeprefix("error: ").strip()
            head, sep, tail = msg.partition(", expected one of ")
            if sep and tail.count(",") > 4:
                return head
            return msg
    return text.strip().splitlines()[0] if text.strip() else "evaluation failed"
