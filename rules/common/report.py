"""Terminal output: a live status line for long steps and summary tables (rich)."""

import contextlib
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# (not a terminal, e.g. CI logs: wide enough that tables do not wrap)
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 160)


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
        t.add_row(*(escape(cell) for cell in row))  # cells are data, never markup
    console.print(t)


@contextlib.contextmanager
def progress(title: str, total: int, done: int = 0):
    """A progress bar over ``total`` items; yields a thread-safe ``advance(n)``."""
    import threading

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    lock = threading.Lock()
    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                   disable=not console.is_terminal)
    with bar:
        task = bar.add_task(title, total=total, completed=done)

        def advance(n: int = 1):
            with lock:
                bar.advance(task, n)

        yield advance
    if not console.is_terminal:
        print(f"{title}: {total} done", file=sys.stderr, flush=True)


def image_summary(result) -> None:
    rows = []
    for step in result.steps:
        rows.append((step.name, f"{step.layer.size / 1e6:.1f}", str(step.layer.entries),
                     "hit" if step.hit else "built", f"{step.seconds:.1f}s",
                     step.layer.digest[7:19]))
    total = sum({s.layer.digest: s.layer.size for s in result.steps}.values())  # (shared
    hits = sum(s.hit for s in result.steps)  # blobs of two platforms counted once)
    rows.append(("total", f"{total / 1e6:.1f}", "", f"{hits}/{len(result.steps)} hits",
                 f"{result.seconds:.1f}s", ""))
    table(f"Runtime {result.line.version} (Airflow {result.line.airflow}) -> {result.out}",
          ("layer", "MB", "entries", "cache", "time", "digest"), rows)
    from rules.oci import layout

    for item in layout.group(result.images):
        if isinstance(item, layout.Index):  # the tag names the index of the platforms
            console.print(f"{item.repo}:{item.tag}  {item.digest}  (image index)")
            for image in item.images:
                console.print(f"  linux/{image.architecture}  {image.digest}")
        else:
            console.print(f"{item.repo}:{item.tag}  {item.digest}")
