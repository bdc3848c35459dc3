"""Progress display: rich bars on a terminal, plain lines in a log; `INTERTASK_PROGRESS=0` silences both.

On a terminal `progress_bar` draws a transient rich bar with ETA. When stderr is not a terminal (``nohup``, SLURM,
CI, ``| tee``) a bar would show nothing, so long work prints plain lines instead (:class:`PlainProgress`): one
whenever another 10 % is done (but not within a second of the previous line) and at least one every 30 s, each with
what, done / total, percent, rate, elapsed, ETA and the latest fields (e.g. ``loss=0.53``), and a final line with
the elapsed time; work that ends within a few seconds prints the final line only::

    [progress] target: panx  120/1000 steps (12%)  3.2 steps/s  elapsed 0:37  ETA 4:35  loss=0.531
    [done] target: panx  1000/1000 steps in 5:12 (3.2 steps/s)  loss=0.102
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)

PLAIN_INTERVAL = 30.0  # seconds: the longest silence in a log
PLAIN_FRACTION = 0.1  # a line at every 10 %
PLAIN_MIN_GAP = 1.0  # ... but not within a second of the previous one (fast work: a few lines at most)
PLAIN_QUIET = 3.0  # work finished within this many seconds (and printed nothing yet) prints only its final line


def enabled() -> bool:
    return os.environ.get("INTERTASK_PROGRESS", "1") != "0"


def interactive() -> bool:
    """Whether progress goes to a terminal (rich bars) rather than a log (plain lines)."""
    return console.is_terminal


def hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _fields(fields: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


class PlainProgress:
    """Plain progress lines for a log (see the module docstring). `clock` and `stream` are injectable for tests."""

    def __init__(
        self,
        description: str,
        total: int,
        unit: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = PLAIN_INTERVAL,
        fraction: float = PLAIN_FRACTION,
    ) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.stream, self.clock, self.interval, self.fraction = stream, clock, interval, fraction
        self.done = self.base = 0
        self.fields: dict = {}
        self.start = self.last = clock()
        self.next_mark = self._mark_after(0)
        self.printed = 0

    def _mark_after(self, done: int) -> int:
        step = max(1, math.ceil(self.total * self.fraction))
        return (done // step + 1) * step

    def write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else console.file
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken log must not stop the work
            pass
        self.printed += 1

    def _counts(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.done}/{self.total}{unit}"

    def _rate(self, elapsed: float) -> tuple[float, str]:
        rate = (self.done - self.base) / elapsed if elapsed > 0 else 0.0
        unit = self.unit or "it"
        one = unit[:-2] if unit.endswith(("ches", "shes", "sses")) else unit[:-1] if unit.endswith("s") else unit
        return rate, (f"{rate:.3g} {unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/{one}")

    def advance(self, n: int = 1, **fields) -> None:
        if self.done == 0 and n > 1 and self.clock() - self.start < 0.1:
            self.base = n  # a resumed stage jumps to its checkpoint's step: not part of the rate
        self.done += n
        if fields:
            self.fields.update(fields)
        now = self.clock()
        crossed = self.done >= self.next_mark
        if crossed:
            self.next_mark = self._mark_after(self.done)
        if self.done >= self.total:
            return  # the final line says it
        due = now - self.last >= self.interval or (crossed and now - self.last >= PLAIN_MIN_GAP and now - self.start >= PLAIN_QUIET)
        if due:
            self.last = now
            elapsed = now - self.start
            rate, rate_text = self._rate(elapsed)
            eta = f"  ETA {hms((self.total - self.done) / rate)}" if rate > 0 else ""
            pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            extra = f"  {_fields(self.fields)}" if self.fields else ""
            self.write(f"[progress] {self.description}  {self._counts()}{pct}  {rate_text}  elapsed {hms(elapsed)}{eta}{extra}")

    def finish(self, failed: bool = False) -> None:
        elapsed = self.clock() - self.start
        _, rate_text = self._rate(elapsed)
        extra = f"  {_fields(self.fields)}" if self.fields else ""
        word = "stopped" if failed or self.done < self.total else "done"
        self.write(f"[{word}] {self.description}  {self._counts()} in {hms(elapsed)} ({rate_text}){extra}")


@contextmanager
def progress_bar(description: str, total: int, unit: str = "") -> Iterator[Callable[..., None]]:
    """Yield an `advance(n=1, **fields)` callable: a rich bar with ETA on a terminal, plain lines in a log."""
    if not enabled() or total == 0:
        yield lambda n=1, **kw: None
        return
    if not interactive():
        plain = PlainProgress(description, total, unit)
        failed = True
        try:
            yield plain.advance
            failed = False
        finally:
            plain.finish(failed=failed)
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
            status = _fields(fields)
            progress.update(tid, advance=n, **({"status": status} if fields else {}))

        yield advance


def log(message: str) -> None:
    console.print(message)
