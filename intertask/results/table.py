"""Result tables computed from stored run records: scores per arm and deltas against the baseline."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from intertask.results.store import BASELINE
from intertask.tasks import get_task


@dataclass
class Column:
    task: str
    language: str  # "avg" for the mean over languages
    metric: str

    @property
    def header(self) -> str:
        return f"{self.task} {self.language}"


def main_scores(record: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(task, language) -> the task's main metric, plus each task's average over languages."""
    out: dict[tuple[str, str], float] = {}
    for task_name, per_lang in record["scores"].items():
        metric = get_task(task_name).main_metric
        values = {lang: m[metric] for lang, m in per_lang.items() if metric in m}
        out.update({(task_name, lang): v for lang, v in values.items()})
        if len(values) > 1:
            out[(task_name, "avg")] = statistics.fmean(values.values())
    return out


def build_rows(records: list[dict[str, Any]]) -> tuple[list[Column], list[tuple[str, dict, dict | None]]]:
    """Columns and rows (arm, scores, deltas vs baseline) for one experiment's records."""
    per_arm = {r["arm"]: main_scores(r) for r in records}
    keys: list[tuple[str, str]] = []
    for scores in per_arm.values():
        keys.extend(k for k in scores if k not in keys)
    columns = [Column(t, lang, get_task(t).main_metric) for t, lang in keys]
    base = per_arm.get(BASELINE)
    rows = []
    for arm, scores in per_arm.items():
        deltas = None if base is None or arm == BASELINE else {k: scores[k] - base[k] for k in scores if k in base}
        rows.append((arm, scores, deltas))
    return columns, rows


def _cell(value: float | None, delta: float | None) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:.1f}"
    return text if delta is None else f"{text} ({100 * delta:+.1f})"


def rich_table(records: list[dict[str, Any]], title: str = "") -> Table:
    columns, rows = build_rows(records)
    table = Table(title=Text(title) if title else None, show_lines=False)  # Text: user names are never read as markup
    table.add_column("intermediate task", style="bold")
    for col in columns:
        table.add_column(f"{col.header}\n{col.metric}", justify="right")
    for arm, scores, deltas in rows:
        key = lambda c: (c.task, c.language)  # noqa: E731
        table.add_row(Text(arm), *[_cell(scores.get(key(c)), (deltas or {}).get(key(c))) for c in columns])
    return table


def markdown_table(records: list[dict[str, Any]]) -> str:
    columns, rows = build_rows(records)
    header = "| intermediate task | " + " | ".join(f"{c.header} ({c.metric})" for c in columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    lines = [header, sep]
    for arm, scores, deltas in rows:
        cells = [_cell(scores.get((c.task, c.language)), (deltas or {}).get((c.task, c.language))) for c in columns]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nScores x100; in parentheses the difference to the no-intermediate baseline.\n"
