"""Progress on the terminal for long runs (rich), as a plain callback for the library."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A callback (what, done, total) that draws one bar per `what` on stderr;
    silent when disabled or when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda what, done, total: None
        return
    # Imported here: a quiet run (cron, the benchmark) does not pay rich's import.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bars = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
    tasks: dict[str, int] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = bars.add_task(what, total=total or None)
        bars.update(tasks[what], completed=done)

    with bars:
        yield update
