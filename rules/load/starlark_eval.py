"""Evaluate a WORKSPACE or BUILD file as real Starlark.

The interpreter is ``starlark-pyo3`` (the Rust ``starlark`` crate): no I/O, no clock, no
randomness; a file sees only the standard Starlark globals plus the rule functions it is given.
Every failure becomes a one-line ``BuildFileError`` naming file, line and column.

Evaluation is bounded and interruptible. The Rust evaluator never returns to Python inside a
loop, so Python's own SIGINT handling cannot stop it (a `for i in range(1000000000)` in a `def`
ran for minutes and ignored Ctrl-C); the interpreter asks a ``check_cancelled`` callback as it
goes (about 9,000 times a second, measured), and ours says stop when Ctrl-C was pressed
(then ``KeyboardInterrupt``: exit 130) or when the file has run longer than its budget,
``RUNTIME_EVAL_TIMEOUT`` seconds (default 10; the project's own files take milliseconds).
The interpreter's "cancelled" error carries the location it stopped at, which names the loop.
"""

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

import starlark

from rules.common.errors import BuildFileError, UserError

_LOCATION = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)\s*$", re.M)
_SNIPPET = re.compile(r"^\s*\d+\s\|", re.M)


DEFAULT_TIMEOUT = 10.0


class RuleError(Exception):
    """Raised by a rule function for a bad call; located by the interpreter's call site."""


def evaluate(path: Path, display_name: str, functions: Mapping[str, Callable]) -> None:
    """Run the file at ``path`` with ``functions`` as its only non-standard globals."""
    source = _read(Path(path), display_name)
    try:
        ast = starlark.parse(display_name, source)
    except starlark.StarlarkError as e:
        raise _located(display_name, source, str(e), parse=True) from None

    raised: list[RuleError] = []
    module = starlark.Module()
    for name, fn in functions.items():
        module.add_callable(name, _recording(fn, raised))
    budget = _timeout()
    with _Cancellation(budget) as cancel:
        try:
            starlark.eval_with(starlark.EvalOptions(check_cancelled=cancel.check), module, ast,
                               starlark.Globals.standard())
        except starlark.StarlarkError as e:
            if cancel.interrupted:
                raise KeyboardInterrupt from None  # (the CLI says "interrupted", exit 130)
            if cancel.timed_out:
                raise _located(display_name, source, str(e), message=(
                    f"evaluation stopped after {budget:g} s (RUNTIME_EVAL_TIMEOUT): a loop that "
                    f"runs too long here?")) from None
            message = str(raised[-1]) if raised else None
            raise _located(display_name, source, str(e), message=message) from None
    if cancel.interrupted:  # Ctrl-C in the last instants of a file that then finished
        raise KeyboardInterrupt


def _read(path: Path, name: str) -> str:
    """The file's text; a FIFO, a folder or bytes that are not UTF-8 are errors, not a hang or
    a traceback."""
    import stat

    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise BuildFileError(name, 1, 1, "not a regular file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BuildFileError(name, 1, 1, f"not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise BuildFileError(name, 1, 1, f"cannot be read ({e.strerror})") from None


_SECONDS = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*")
MAX_TIMEOUT = 86400.0


def _timeout() -> float:
    raw = os.environ.get("RUNTIME_EVAL_TIMEOUT", "")
    if not raw:
        return DEFAULT_TIMEOUT
    value = float(raw) if _SECONDS.fullmatch(raw) else -1.0
    if not 0.01 <= value <= MAX_TIMEOUT:
        raise UserError(f"RUNTIME_EVAL_TIMEOUT={raw!r}: expected a number of seconds from 0.01 "
                        f"to {MAX_TIMEOUT:g}")
    return value


class _Cancellation:
    """Answers the interpreter's "cancelled?": Ctrl-C pressed, or the budget spent. While it is
    active (main thread only), SIGINT only sets a flag: the evaluator cannot take an exception
    raised inside its callback."""

    def __init__(self, budget: float):
        self.deadline = time.monotonic() + budget
        self.interrupted = self.timed_out = False
        self._previous = None

    def check(self) -> bool:
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.interrupted or self.timed_out

    def _on_sigint(self, signum, frame):
        self.interrupted = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _recording(fn: Callable, raised: list) -> Callable:
    def call(*args, **kwargs):
        if args:
            raise _remember(raised, RuleError(
                f"{fn.__name__}() takes keyword arguments only (name = value, ...)"))
        try:
            return fn(**kwargs)
        except RuleError as e:
            raise _remember(raised, e) from None
        except UserError as e:
            raise _remember(raised, RuleError(str(e))) from None

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
