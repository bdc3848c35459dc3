"""Progress display (rich), quiet when not attached to a terminal or when disabled."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


def enabled() -> bool:
    return os.environ.get("INTERTASK_PROGRESS", "1") != "0"


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[..., None]]:
    """Yield an `advance(n=1, **fields)` callable; renders a bar with ETA when enabled."""
    if not enabled() or total == 0:
        yield lambda n=1, **kw: None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=console, transient=True) as progress:
        tid = progress.add_task(description, total=total, status="")

        def advance(n: int = 1, **fields) -> None:
            status = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            progress.update(tid, advance=n, **({"status": status} if fields else {}))

        yield advance


def log(message: str) -> None:
    console.print(message)
