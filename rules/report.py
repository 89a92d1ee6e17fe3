"""Terminal output: a live status line for long steps and summary tables (rich)."""

import contextlib
import sys

from rich.console import Console
from rich.table import Table

console = Console(stderr=False, highlight=False)


@contextlib.contextmanager
def status(message: str):
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        print(f"{message} ...", file=sys.stderr, flush=True)
        yield


def table(title: str, columns, rows) -> None:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    console.print(t)
