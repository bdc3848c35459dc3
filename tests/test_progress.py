"""Progress in a log: plain lines (fake clock, non-terminal stream), rich bars only on a terminal, silence on demand."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from intertask import progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _plain(total: int, **kw):
    clock, out = FakeClock(), io.StringIO()
    return progress.PlainProgress("target: panx", total, stream=out, clock=clock, **kw), clock, out


def test_a_line_every_ten_percent_with_rate_elapsed_eta_and_fields():
    p, clock, out = _plain(100, unit="steps")
    for i in range(100):
        clock.t += 0.5
        p.advance(loss=1.0 / (i + 1))
    p.finish()
    lines = out.getvalue().splitlines()
    assert 9 <= len(lines) <= 11
    first = lines[0]
    assert first.startswith("[progress] target: panx  10/100 steps (10%)  2 steps/s  elapsed 0:05  ETA 0:45  loss=0.1")
    assert all(re.search(r"\d+/100 steps \(\d+%\)", line) for line in lines[:-1])
    assert lines[-1] == "[done] target: panx  100/100 steps in 0:50 (2 steps/s)  loss=0.01"


def test_slow_work_prints_at_least_every_30_seconds():
    p, clock, out = _plain(1000)
    for _ in range(10):
        clock.t += 10
        p.advance()
    lines = out.getvalue().splitlines()
    assert [line.split("elapsed ")[1].split()[0] for line in lines] == ["0:30", "1:00", "1:30"]
    assert "3/1000 (0%)  10 s/it  elapsed 0:30  ETA 2:46:10" in lines[0]


def test_fast_work_prints_only_the_final_line():
    p, clock, out = _plain(50)
    for _ in range(50):
        clock.t += 0.01
        p.advance()
    p.finish()
    assert out.getvalue().splitlines() == ["[done] target: panx  50/50 in 0:00 (100 it/s)"]


def test_at_most_one_line_per_second_when_percentages_fly_by():
    p, clock, out = _plain(20)
    clock.t += 5  # a slow start, then 5 % per 0.1 s
    for _ in range(19):
        clock.t += 0.1
        p.advance()
    assert len(out.getvalue().splitlines()) <= 3


@pytest.fixture
def log_console(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, stderr=True))
    monkeypatch.delenv("INTERTASK_PROGRESS", raising=False)
    return out


def test_progress_bar_in_a_log_prints_plain_lines(log_console):
    assert not progress.interactive()
    with progress.progress_bar("panx test ru", total=3, unit="batches") as advance:
        for _ in range(3):
            advance()
    assert log_console.getvalue().startswith("[done] panx test ru  3/3 batches in 0:00")


def test_progress_bar_says_where_it_stopped(log_console):
    with pytest.raises(KeyboardInterrupt):
        with progress.progress_bar("train", total=10) as advance:
            advance(loss=0.5)
            raise KeyboardInterrupt
    assert log_console.getvalue().startswith("[stopped] train  1/10 in 0:00")
    assert "loss=0.5" in log_console.getvalue()


def test_progress_off_silences_logs_and_bars(log_console, monkeypatch):
    monkeypatch.setenv("INTERTASK_PROGRESS", "0")
    with progress.progress_bar("x", total=3) as advance:
        advance()
    assert log_console.getvalue() == ""


def test_terminal_keeps_the_rich_bar(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=True, width=100))
    monkeypatch.delenv("INTERTASK_PROGRESS", raising=False)
    with progress.progress_bar("x", total=2) as advance:
        advance()
        advance()
    assert "[done]" not in out.getvalue() and "[progress]" not in out.getvalue()


def test_grid_progress_in_a_log(log_console):
    from intertask.grid import GridProgress, Job

    jobs = [Job("run", "a", {}), Job("run", "b", {})]
    with GridProgress(2) as gp:
        for job, err in zip(jobs, [None, "Traceback: boom"]):
            gp.start(job)
            gp.finish(job, err)
    text = log_console.getvalue()
    assert "[grid] started run a (0/2 jobs done)" in text
    assert "[grid] finished run a: 1/2 jobs done (0 failed)" in text and "ETA" in text
    assert "[grid] failed run b: 2/2 jobs done (1 failed)" in text
    assert text.splitlines()[-1].startswith("[done] grid  2/2 jobs in")


def test_slow_rates_per_item():
    p, clock, out = _plain(10, unit="batches")
    clock.t += 40
    p.advance()
    assert "1/10 batches (10%)  40 s/batch  elapsed 0:40  ETA 6:00" in out.getvalue()


def test_a_resumed_stage_rates_only_the_new_steps():
    p, clock, out = _plain(100, unit="steps")
    p.advance(50)  # resumed at step 50
    for _ in range(10):
        clock.t += 1
        p.advance()
    assert "60/100 steps (60%)  1 steps/s  elapsed 0:10  ETA 0:40" in out.getvalue()
