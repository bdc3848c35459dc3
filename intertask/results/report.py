"""The paper-style report of a results store: Markdown + a self-contained HTML page + PNG figures.

Everything is computed from the stored run records (never typed by hand):

* the main table: rows = intermediate tasks (plus a variant label when a grid varied other
  settings), columns = target tasks (their main metric averaged over the evaluated languages) and
  retrieval tasks; each cell mean ± std over seeds, the difference to the no-intermediate baseline
  with a paired bootstrap CI (see :mod:`intertask.results.stats` for what is resampled), the best
  mean per column in bold;
* per-language heatmaps per target task (scores and deltas), a bar chart of the deltas with CIs;
* XTREME / XTREME-R / XTREME-RU aggregate scores over the tasks present (via
  :mod:`intertask.evaluation.benchmark_scores`);
* provenance: the grid commands, and per run the command, config file, config hash and git commit.
"""

from __future__ import annotations

import base64
import copy
import csv
import html
import io
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from intertask.config import config_hash
from intertask.errors import IntertaskError
from intertask.io import read_json, write_text_atomic
from intertask.progress import progress_bar
from intertask.results.stats import Interval, hierarchical_bootstrap, load_example_scores, paired_bootstrap
from intertask.results.store import BASELINE, STORE_FILE, ResultsStore

PROFILES = ("xtreme", "xtreme-r", "xtreme-ru")


def resolve_store(path: str | Path) -> Path:
    """A results.sqlite file, or a directory (an output_dir) that holds one."""
    path = Path(path)
    if path.is_dir():
        path = path / STORE_FILE
    if not path.is_file():
        raise IntertaskError(f"results store not found: {path} (give the results.sqlite file or the output_dir that holds it)")
    return path


def _main_metric(task: str) -> str:
    from intertask.tasks import TASKS

    if task in TASKS:
        return TASKS.get(task).main_metric
    return "score"


# ----------------------------------------------------------------------------- `intertask results`


def _filter_scores(records: list[dict], task: str | None) -> list[dict]:
    if task is None:
        return records
    out = []
    for r in records:
        r = dict(r)
        r["scores"] = {t: v for t, v in r["scores"].items() if t == task}
        out.append(r)
    return out


def export_results(store_path: str | Path, experiment: str | None = None, task: str | None = None, arm: str | None = None, fmt: str = "table") -> str:
    """The store's records (filtered) as a rich table, long-form CSV, or JSON records."""
    if fmt not in ("table", "csv", "json"):
        raise IntertaskError(f"--format: expected table, csv or json, got {fmt!r}")
    records = _filter_scores(ResultsStore(store_path, readonly=True).query(experiment=experiment, task=task, arm=arm), task)
    if fmt == "json":
        return json.dumps(records, indent=2, ensure_ascii=False)
    rows = [
        (r["run_id"], r["experiment"], r["arm"], r["target"], r.get("seed"), t, lang, metric, value)
        for r in records
        for t, per_lang in r["scores"].items()
        for lang, metrics in per_lang.items()
        for metric, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["run_id", "experiment", "arm", "target", "seed", "task", "language", "metric", "value"])
        w.writerows(rows)
        return buf.getvalue()
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{len(records)} runs" + (f" of {experiment}" if experiment else "")))  # Text: never markup
    for col in ("experiment", "arm", "target", "seed", "task", "metric", "avg", "languages"):
        table.add_column(col, justify="right" if col in ("seed", "avg") else "left")
    for r in records:
        for t, per_lang in r["scores"].items():
            metric = _main_metric(t)
            vals = {lang: m[metric] for lang, m in per_lang.items() if isinstance(m.get(metric), (int, float))}
            avg = statistics.fmean(vals.values()) if vals else None
            langs = " ".join(f"{lang}={100 * v:.1f}" for lang, v in vals.items())
            cells = (r["experiment"], r["arm"], r["target"], str(r.get("seed")), t, metric, "-" if avg is None else f"{100 * avg:.1f}", langs)
            table.add_row(*(Text(str(c)) for c in cells))
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(table)
    if not records:
        console.print(Text("no runs match" + (f" (experiment {experiment!r})" if experiment else "")))
    return console.export_text()


# ----------------------------------------------------------------------------- aggregation


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def _shared_part(config: dict) -> dict:
    """What must match between an arm and its baseline: everything but the arm and the seed."""
    d = copy.deepcopy(config)
    for k in ("name", "seed", "baseline", "output_dir", "intermediate", "logging"):  # logging: how it was observed
        d.pop(k, None)
    (d.get("target") or {}).pop("task", None)
    (d.get("target") or {}).pop("init_encoder_from", None)
    return d


def _variant_part(config: dict) -> dict:
    d = _shared_part(config)
    inter = dict(config.get("intermediate") or {})
    inter.pop("task", None)
    d["intermediate"] = inter
    return d


@dataclass
class Cell:
    values: dict[int, float] = field(default_factory=dict)  # seed -> score
    pairs: dict[int, tuple[float, float]] = field(default_factory=dict)  # seed -> (score, baseline score)
    langs: dict[str, dict[int, float]] = field(default_factory=dict)  # lang -> seed -> score
    base_langs: dict[str, dict[int, float]] = field(default_factory=dict)
    records: list[tuple[dict, dict | None]] = field(default_factory=list)  # (record, its baseline record)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else 0.0


@dataclass
class ReportData:
    rows: list[tuple[str, str]]  # (arm, variant label)
    columns: list[str]  # target tasks, then retrieval tasks
    targets: list[str]
    cells: dict[tuple[tuple[str, str], str], Cell]
    intervals: dict[tuple[tuple[str, str], str], Interval]
    records: list[dict]
    benchmark: dict[str, dict[tuple[str, str], dict[int, dict]]]  # profile -> row -> seed -> result
    benchmark_note: str = ""
    record_rows: dict[str, tuple[str, str]] = field(default_factory=dict)  # run_id -> its row (for the learning curves)

    def best(self, col: str) -> tuple[str, str] | None:
        scored = [(c.mean, row) for row in self.rows if (c := self.cells.get((row, col))) and c.mean is not None]
        return max(scored)[1] if scored else None


def _task_avg(per_lang: dict, task: str) -> tuple[float | None, dict[str, float]]:
    metric = _main_metric(task)
    vals = {lang: float(m[metric]) for lang, m in per_lang.items() if isinstance(m, dict) and isinstance(m.get(metric), (int, float))}
    return (statistics.fmean(vals.values()) if vals else None), vals


def aggregate(records: list[dict], n_boot: int = 2000, confidence: float = 0.95) -> ReportData:
    records = sorted(records, key=lambda r: r.get("created", ""))  # later runs win on duplicates
    # Variant labels: within one (target, arm), which settings differ between its runs.
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        groups.setdefault((r["target"], r["arm"]), {})[config_hash(_variant_part(r["config"]))] = _flat(_variant_part(r["config"]))
    labels: dict[tuple[str, str, str], str] = {}
    for (target, arm), variants in groups.items():
        if len(variants) == 1:
            labels[(target, arm, next(iter(variants)))] = ""
            continue
        keys = sorted({k for v in variants.values() for k in v if len({json.dumps(x.get(k), default=str) for x in variants.values()}) > 1})
        for h, flat in variants.items():
            labels[(target, arm, h)] = ", ".join(f"{k.split('.', 1)[-1] if k.startswith('target.') else k}={flat.get(k)}" for k in keys)

    def row_of(r: dict) -> tuple[str, str]:
        return (r["arm"], labels[(r["target"], r["arm"], config_hash(_variant_part(r["config"])))])

    baselines: dict[tuple[str, str, Any], dict] = {}  # (target, shared hash, seed) -> record
    base_by_seed: dict[Any, dict] = {}
    for r in records:
        if r["arm"] == BASELINE:
            baselines[(r["target"], config_hash(_shared_part(r["config"])), r.get("seed"))] = r
            base_by_seed[r.get("seed")] = r

    targets: list[str] = []
    retrieval: list[str] = []
    cells: dict[tuple[tuple[str, str], str], Cell] = {}
    for r in records:
        row = row_of(r)
        seed = r.get("seed")
        base = baselines.get((r["target"], config_hash(_shared_part(r["config"])), seed)) if r["arm"] != BASELINE else None
        for task, per_lang in r["scores"].items():
            is_target = task == r["target"]
            bucket = targets if is_target else retrieval
            if task not in bucket:
                bucket.append(task)
            value, langs = _task_avg(per_lang, task)
            if value is None:
                continue
            cell = cells.setdefault((row, task), Cell())
            if not is_target and seed in cell.values:
                continue  # the same encoder's retrieval score, seen through another target's run
            cell.values[seed] = value
            for lang, v in langs.items():
                cell.langs.setdefault(lang, {})[seed] = v
            b = base if is_target else (base_by_seed.get(seed) if r["arm"] != BASELINE else None)
            if b is not None and task in b["scores"]:
                bvalue, blangs = _task_avg(b["scores"][task], task)
                if bvalue is not None:
                    cell.pairs[seed] = (value, bvalue)
                    for lang, v in blangs.items():
                        cell.base_langs.setdefault(lang, {})[seed] = v
                    cell.records.append((r, b))
    retrieval = [t for t in retrieval if t not in targets]
    rows = sorted({row_of(r) for r in records}, key=lambda x: (x[0] != BASELINE, x[0], x[1]))

    intervals: dict[tuple[tuple[str, str], str], Interval] = {}
    with progress_bar("report: bootstrap intervals", total=sum(1 for c in cells.values() if c.pairs), unit="cells") as advance:
        for key, cell in cells.items():
            if not cell.pairs:
                continue
            seeds = sorted(cell.pairs, key=str)
            interval = _example_level_interval(cell, key[1], n_boot, confidence)
            if interval is None:
                interval = paired_bootstrap([cell.pairs[s][0] for s in seeds], [cell.pairs[s][1] for s in seeds], n_boot, confidence)
            intervals[key] = interval
            advance()

    benchmark, note = _benchmarks(records, row_of)
    return ReportData(rows, targets + retrieval, targets, cells, intervals, records, benchmark, note, {r["run_id"]: row_of(r) for r in records})


def _example_level_interval(cell: Cell, task: str, n_boot: int, confidence: float) -> Interval | None:
    """Seeds x examples bootstrap when every pair has per-example scores saved (else None)."""
    arm_rows, base_rows, kind = [], [], None
    for r, b in cell.records:
        ea, eb = load_example_scores(r), load_example_scores(b) if b else None
        if not ea or not eb or task not in ea or task not in eb:
            return None
        langs = sorted(set(ea[task]) & set(eb[task]))
        if not langs:
            return None
        kind = ea[task][langs[0]].get("kind", "mean")
        # The task's score is the mean over languages of per-language metrics; pooling examples
        # over languages instead weights languages by size -- per language, then averaged:
        import numpy as np

        arm_rows.append([np.asarray(ea[task][lang]["values"], dtype=float) for lang in langs])
        base_rows.append([np.asarray(eb[task][lang]["values"], dtype=float) for lang in langs])
    if not arm_rows:
        return None
    try:
        # One interval per language would multiply the work; resample within the concatenated
        # languages per seed, which keeps the pairing (same examples) and the seed structure.
        import numpy as np

        A = [np.concatenate([x.reshape(len(x), -1) for x in seed_rows]) for seed_rows in arm_rows]
        B = [np.concatenate([x.reshape(len(x), -1) for x in seed_rows]) for seed_rows in base_rows]
        return hierarchical_bootstrap(A, B, kind=kind or "mean", n_boot=min(n_boot, 1000), confidence=confidence)
    except ValueError:
        return None


def _benchmarks(records: list[dict], row_of) -> tuple[dict, str]:
    try:
        from intertask.evaluation.benchmark_scores import benchmark_score
    except ImportError:  # HOOK: intertask/evaluation/benchmark_scores.py (another developer's module)
        return {}, "XTREME aggregate scores unavailable: intertask.evaluation.benchmark_scores is not installed."
    merged: dict[tuple[str, str], dict[Any, dict]] = {}
    for r in records:
        per_seed = merged.setdefault(row_of(r), {}).setdefault(r.get("seed"), {})
        for task, per_lang in r["scores"].items():
            per_seed.setdefault(task, {}).update(per_lang)
    out: dict[str, dict] = {}
    for profile in PROFILES:
        rows = {}
        for row, per_seed in merged.items():
            try:
                results = {seed: benchmark_score(scores, profile) for seed, scores in per_seed.items()}
            except IntertaskError:
                continue
            if any(res["tasks"] for res in results.values()):
                rows[row] = results
        if rows:
            out[profile] = rows
    return out, ""


# ----------------------------------------------------------------------------- rendering helpers


def _pct(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _row_name(row: tuple[str, str]) -> str:
    arm, label = row
    name = "– (no intermediate)" if arm == BASELINE else arm
    return f"{name} [{label}]" if label else name


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def _delta_text(iv: Interval | None) -> str:
    if iv is None:
        return ""
    return f"{_pct(iv.delta, True)} [{_pct(iv.low, True)}, {_pct(iv.high, True)}]"


# ----------------------------------------------------------------------------- figures


def _figures(data: ReportData, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths: list[Path] = []
    for task in data.columns:
        langs = sorted({lang for row in data.rows if (c := data.cells.get((row, task))) for lang in c.langs}, key=lambda lang: (lang != "en", lang))
        rows = [row for row in data.rows if (row, task) in data.cells]
        if not langs or not rows:
            continue
        scores = np.full((len(rows), len(langs)), np.nan)
        deltas = np.full((len(rows), len(langs)), np.nan)
        for i, row in enumerate(rows):
            cell = data.cells[(row, task)]
            for j, lang in enumerate(langs):
                vals = cell.langs.get(lang, {})
                if vals:
                    scores[i, j] = 100 * statistics.fmean(vals.values())
                pairs = [(vals[s], cell.base_langs[lang][s]) for s in vals if s in cell.base_langs.get(lang, {})]
                if pairs:
                    deltas[i, j] = 100 * statistics.fmean(a - b for a, b in pairs)
        has_delta = not np.all(np.isnan(deltas))
        ncols = 2 if has_delta else 1
        fig, axes = plt.subplots(1, ncols, figsize=(max(4.0, 1.0 + 0.7 * len(langs)) * ncols, 1.2 + 0.5 * len(rows)), squeeze=False)
        panels = [(axes[0][0], scores, "viridis", f"{task}: {_main_metric(task)} x100 (mean over seeds)")]
        if has_delta:
            lim = np.nanmax(np.abs(deltas)) or 1.0
            panels.append((axes[0][1], deltas, "RdBu", "difference to the baseline"))
        for ax, mat, cmap, title in panels:
            kwargs = {"vmin": -lim, "vmax": lim} if cmap == "RdBu" else {}
            im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, aspect="auto", **kwargs)
            ax.set_xticks(range(len(langs)), langs)
            ax.set_yticks(range(len(rows)), [_row_name(r) for r in rows])
            ax.set_title(title, fontsize=9)
            for i in range(mat.shape[0]):
                for j in range(mat.shape[1]):
                    if not np.isnan(mat[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{mat[i, j]:+.1f}" if cmap == "RdBu" else f"{mat[i, j]:.1f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="black" if cmap == "RdBu" or mat[i, j] > np.nanmean(mat) else "white",
                        )
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        path = out / f"heatmap-{_safe(task)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    arms = [row for row in data.rows if row[0] != BASELINE and any((row, c) in data.intervals for c in data.columns)]
    cols = [c for c in data.columns if any((row, c) in data.intervals for row in arms)]
    if arms and cols:
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(cols) * max(1, len(arms)) / 2), 3.6))
        width = 0.8 / len(arms)
        for k, row in enumerate(arms):
            xs, ys, lo, hi = [], [], [], []
            for j, col in enumerate(cols):
                iv = data.intervals.get((row, col))
                if iv is None:
                    continue
                xs.append(j - 0.4 + width * (k + 0.5))
                ys.append(100 * iv.delta)
                lo.append(100 * (iv.delta - iv.low))
                hi.append(100 * (iv.high - iv.delta))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=_row_name(row))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cols)), cols)
        ax.set_ylabel("difference to baseline (x100)")
        ax.set_title("Intermediate task vs no intermediate task (bootstrap CI)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "deltas.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _stage_history(record: dict, role: str) -> tuple[list[dict], str | None]:
    """A stage's dev evaluations (stage.json `history`) and main metric: from the record, else its stage.json."""
    brief = (record.get("stages") or {}).get(role) or {}
    history, metric = brief.get("history"), brief.get("main_metric")
    if history is None and brief.get("dir"):
        stage_file = Path(brief["dir"]) / "stage.json"
        if stage_file.is_file():
            try:
                summary = read_json(stage_file)
            except (OSError, ValueError):
                return [], None
            history, metric = summary.get("history"), summary.get("main_metric")
    return list(history or []), metric


def _curves(data: ReportData, out: Path) -> list[Path]:
    """Learning curves per target task: English dev main metric and training loss over optimiser steps, one line per
    run (colour = row of the table), target stage and -- dashed, on their own steps -- the intermediate stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    for target in data.targets:
        runs = [(r, row) for row in data.rows for r in data.records if r["target"] == target and data.record_rows.get(r["run_id"]) == row]
        curves = []
        for r, row in runs:
            for role in ("target", "intermediate"):
                history, metric = _stage_history(r, role)
                metric = metric or (_main_metric(target) if role == "target" else None)
                points = [h for h in history if isinstance(h.get("step"), int)]
                if points:
                    curves.append((row, role, r.get("seed"), metric, points, (r.get("stages") or {}).get(role, {}).get("task")))
        if not curves:
            continue
        colours = {row: plt.get_cmap("tab10")(i % 10) for i, row in enumerate(dict.fromkeys(c[0] for c in curves))}
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), squeeze=False)
        labelled: set[str] = set()
        for row, role, _seed, metric, points, task in curves:
            style = "-" if role == "target" else "--"
            label = _row_name(row) + ("" if role == "target" else f" (intermediate {task})")
            kw = {"color": colours[row], "linestyle": style, "marker": "o", "markersize": 3, "linewidth": 1.2}
            if label not in labelled:  # one legend entry per row and stage, however many seeds
                kw["label"] = label
                labelled.add(label)
            scored = [(h["step"], h[metric]) for h in points if metric and isinstance(h.get(metric), (int, float))]
            if scored:
                axes[0][0].plot([s for s, _ in scored], [100 * v for _, v in scored], **kw)
            losses = [(h["step"], h["loss"]) for h in points if isinstance(h.get("loss"), (int, float))]
            if losses:
                axes[0][1].plot([s for s, _ in losses], [v for _, v in losses], **{k: v for k, v in kw.items() if k != "label"})
        axes[0][0].set_title(f"{target}: English dev {_main_metric(target)} x100 (dashed: intermediate stage, its own metric)", fontsize=8)
        axes[0][1].set_title("training loss at each dev evaluation", fontsize=8)
        for ax in axes[0]:
            ax.set_xlabel("optimiser step")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"curves-{_safe(target)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- documents


def _provenance(data: ReportData, store_path: Path) -> tuple[list[str], list[dict]]:
    commands = []
    grids_dir = store_path.parent / "grids"
    if grids_dir.is_dir():
        for manifest in sorted(grids_dir.glob("*.json")):
            try:
                commands.append(read_json(manifest)["command"])
            except (KeyError, ValueError, OSError):
                continue
    runs = []
    for r in data.records:
        cfg_file = Path(r["config"].get("output_dir", ".")) / r["experiment"] / "config.yaml"
        runs.append({
            "run_id": r["run_id"], "arm": r["arm"], "target": r["target"], "seed": r.get("seed"),
            "command": f"intertask run {cfg_file}", "config_hash": r.get("config_hash"), "git_hash": r.get("git_hash"),
            "created": r.get("created"), "seconds": r.get("seconds"), "config": r["config"],
        })  # fmt: skip
    return commands, runs


def _table_cells(data: ReportData) -> list[list[tuple[str, str, bool]]]:
    """Per row, per column: (score text, delta text, is best)."""
    best = {c: data.best(c) for c in data.columns}
    out = []
    for row in data.rows:
        line = []
        for col in data.columns:
            cell = data.cells.get((row, col))
            if cell is None or cell.mean is None:
                line.append(("–", "", False))
                continue
            score = f"{_pct(cell.mean)} ± {_pct(cell.std)}"
            line.append((score, _delta_text(data.intervals.get((row, col))), best[col] == row))
        out.append(line)
    return out


def _n_seeds(data: ReportData) -> str:
    ns = sorted({len(c.values) for c in data.cells.values()})
    return "/".join(map(str, ns)) or "0"


def _benchmark_rows(data: ReportData) -> list[tuple[str, str, list[str]]]:
    """(profile, row name, [mean ± std, tasks present]) per profile and row."""
    out = []
    for profile, rows in data.benchmark.items():
        for row in data.rows:
            if row not in rows:
                continue
            results = list(rows[row].values())
            scores = [res["score"] for res in results if res["score"] is not None]
            if not scores:
                continue
            std = statistics.stdev(scores) if len(scores) > 1 else 0.0
            present = sorted({t for res in results for t in res["tasks"]})
            complete = all(res["complete"] for res in results)
            out.append(
                (profile, _row_name(row), [f"{_pct(statistics.fmean(scores))} ± {_pct(std)}", ", ".join(present) + ("" if complete else " (incomplete)")])
            )
    return out


RESAMPLING = (
    "Δ = mean over seeds of (arm − baseline) for runs with the same seed and the same settings; in brackets "
    "the {conf:.0%} percentile interval of a paired bootstrap over {level} ({n_boot} resamples). What is resampled: "
    "seeds (pairs of arm and baseline runs) — and, where per-example scores were saved, also the evaluation "
    "examples within each seed, with the same examples for both arms. With few seeds the seed-level interval is "
    "coarse (2 seeds allow only 3 distinct resample means)."
)


def _markdown(
    data: ReportData, figures: list[Path], commands: list[str], runs: list[dict], store_path: Path, n_boot: int, confidence: float, title: str
) -> str:
    L = [f"# {title}", "", f"Results store: `{store_path}` — {len(data.records)} runs, {len(data.rows)} rows, seeds per cell: {_n_seeds(data)}.", ""]
    L += ["## Zero-shot results", "", "Rows: intermediate task; columns: target task (its main metric averaged over the evaluated languages, x100) "
          "and retrieval tasks. Each cell: mean ± std over seeds; second line: Δ vs the no-intermediate baseline [bootstrap CI]. "
          "**Bold**: best mean in the column.", ""]  # fmt: skip
    L.append("| intermediate task | " + " | ".join(f"{c} ({_main_metric(c)})" for c in data.columns) + " |")
    L.append("|---|" + "---:|" * len(data.columns))
    for row, line in zip(data.rows, _table_cells(data)):
        cells = []
        for score, delta, best in line:
            s = f"**{score}**" if best else score
            cells.append(s + (f"<br>Δ {delta}" if delta else ""))
        L.append(f"| {_row_name(row)} | " + " | ".join(cells) + " |")
    levels = sorted({iv.level for iv in data.intervals.values()}) or ["seeds"]
    L += ["", RESAMPLING.format(level=" / ".join(levels), conf=confidence, n_boot=n_boot), ""]
    L += ["## Benchmark aggregates", ""]
    bench = _benchmark_rows(data)
    if bench:
        L += ["| profile | intermediate task | score (mean ± std over seeds) | tasks present |", "|---|---|---:|---|"]
        L += [f"| {p} | {name} | {v[0]} | {v[1]} |" for p, name, v in bench]
        L += [
            "",
            "Scored with `intertask.evaluation.benchmark_scores.benchmark_score` over the tasks present; "
            "an incomplete profile is not comparable to published totals.",
            "",
        ]
    else:
        L += [data.benchmark_note or "No XTREME / XTREME-R / XTREME-RU task among the stored scores.", ""]
    L += ["## Figures", ""]
    L += [f"![{p.stem}]({p.name})" for p in figures]
    L += ["", "## Provenance", ""]
    if commands:
        L += ["Grid commands:", ""] + [f"    {c}" for c in commands] + [""]
    L += ["| run | seed | command | config hash | git |", "|---|---:|---|---|---|"]
    L += [f"| `{r['run_id']}` | {r['seed']} | `{r['command']}` | `{r['config_hash']}` | `{r['git_hash']}` |" for r in runs]
    L += ["", "Every run's full config is in `configs/` next to this report (and in the store's record).", ""]
    return "\n".join(L)


BEST_ATTR = ' class="best"'
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}td.best .score{font-weight:bold;background:#e6f4ea}.delta{color:#555;font-size:12px;display:block}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}pre{background:#f6f8fa;padding:0.6em;overflow-x:auto;font-size:12px}
code{font-size:12px}.note{color:#555;font-size:13px}
"""


def _html(data: ReportData, figures: list[Path], commands: list[str], runs: list[dict], store_path: Path, n_boot: int, confidence: float, title: str) -> str:
    e = html.escape
    H = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>", f"<style>{CSS}</style></head><body>"]
    H.append(
        f'<h1>{e(title)}</h1><p class="note">Results store: <code>{e(str(store_path))}</code> — {len(data.records)} runs, seeds per cell: {_n_seeds(data)}.</p>'
    )
    H.append(
        '<h2>Zero-shot results</h2><p class="note">Rows: intermediate task; columns: target task (main metric averaged over '
        "the evaluated languages, x100) and retrieval tasks. Each cell: mean ± std over seeds, then Δ vs the no-intermediate "
        "baseline [bootstrap CI]. Highlighted: best mean in the column.</p>"
    )
    H.append(
        '<table id="main"><thead><tr><th>intermediate task</th>'
        + "".join(f"<th>{e(c)}<br><small>{e(_main_metric(c))}</small></th>" for c in data.columns)
        + "</tr></thead><tbody>"
    )
    for row, line in zip(data.rows, _table_cells(data)):
        tds = "".join(
            f'<td{BEST_ATTR if best else ""}><span class="score">{e(score)}</span>' + (f'<span class="delta">Δ {e(delta)}</span>' if delta else "") + "</td>"
            for score, delta, best in line
        )
        H.append(f"<tr><th>{e(_row_name(row))}</th>{tds}</tr>")
    H.append("</tbody></table>")
    levels = sorted({iv.level for iv in data.intervals.values()}) or ["seeds"]
    H.append(f"<p class=\"note\">{e(RESAMPLING.format(level=' / '.join(levels), conf=confidence, n_boot=n_boot))}</p>")
    H.append("<h2>Benchmark aggregates</h2>")
    bench = _benchmark_rows(data)
    if bench:
        H.append("<table><tr><th>profile</th><th>intermediate task</th><th>score</th><th>tasks present</th></tr>")
        H += [f"<tr><td>{e(p)}</td><td>{e(n)}</td><td>{e(v[0])}</td><td>{e(v[1])}</td></tr>" for p, n, v in bench]
        H.append("</table>")
    else:
        H.append(f"<p class=\"note\">{e(data.benchmark_note or 'No XTREME / XTREME-R / XTREME-RU task among the stored scores.')}</p>")
    H.append("<h2>Figures</h2>")
    for p in figures:
        b64 = base64.b64encode(p.read_bytes()).decode("ascii")
        H.append(f"<figure><img alt=\"{e(p.stem)}\" src=\"data:image/png;base64,{b64}\"><figcaption class=\"note\">{e(p.name)}</figcaption></figure>")
    H.append("<h2>Provenance</h2>")
    if commands:
        H.append("<p>Grid commands:</p><pre>" + e("\n".join(commands)) + "</pre>")
    H.append("<table><tr><th>run</th><th>seed</th><th>command</th><th>config hash</th><th>git</th><th>seconds</th></tr>")
    for r in runs:
        H.append(f"<tr><td><code>{e(r['run_id'])}</code></td><td>{e(str(r['seed']))}</td><td><code>{e(r['command'])}</code></td><td><code>{e(str(r['config_hash']))}</code></td><td><code>{e(str(r['git_hash']))}</code></td><td>{e(str(r['seconds']))}</td></tr>")
    H.append("</table><h3>Configs</h3>")
    for r in runs:
        H.append(
            f"<details><summary><code>{e(r['run_id'])}</code></summary>"
            f"<pre>{e(yaml.safe_dump(r['config'], sort_keys=False, allow_unicode=True))}</pre></details>"
        )
    H.append("</body></html>")
    return "\n".join(H)


def write_report(
    store_path: str | Path, output: str | Path, experiment: str | None = None, n_boot: int = 2000, confidence: float = 0.95, title: str | None = None
) -> list[Path]:
    """Write report.md, report.html (self-contained), report.json, the PNG figures and the configs; return the paths."""
    store_path = resolve_store(store_path)
    records = ResultsStore(store_path, readonly=True).query(experiment=experiment)
    if not records:
        raise IntertaskError(f"{store_path}: no runs" + (f" for experiment {experiment!r}" if experiment else ""))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    data = aggregate(records, n_boot=n_boot, confidence=confidence)
    figures = _figures(data, out) + _curves(data, out)
    commands, runs = _provenance(data, store_path)
    title = title or f"intertask report{': ' + experiment if experiment else ''}"
    paths = list(figures)
    cfg_dir = out / "configs"
    cfg_dir.mkdir(exist_ok=True)
    for r in runs:
        write_text_atomic(cfg_dir / f"{_safe(r['run_id'])}.yaml", yaml.safe_dump(r["config"], sort_keys=False, allow_unicode=True))
    md = out / "report.md"
    write_text_atomic(md, _markdown(data, figures, commands, runs, store_path, n_boot, confidence, title))
    page = out / "report.html"
    write_text_atomic(page, _html(data, figures, commands, runs, store_path, n_boot, confidence, title))
    summary = {
        "rows": [_row_name(r) for r in data.rows],
        "columns": data.columns,
        "cells": {
            f"{_row_name(row)} | {col}": {
                "mean": c.mean,
                "std": c.std,
                "seeds": {str(k): v for k, v in c.values.items()},
                **({"delta": data.intervals[(row, col)].as_dict()} if (row, col) in data.intervals else {}),
            }
            for (row, col), c in data.cells.items()
        },
    }
    js = out / "report.json"
    write_text_atomic(js, json.dumps(summary, indent=2, ensure_ascii=False))
    return [md, page, js, *paths]
