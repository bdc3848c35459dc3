"""Experiment grids: a base experiment plus lists of values to expand into many runs.

A grid preset is an experiment preset (every key of :class:`ExperimentConfig`) with three extra
top-level sections::

    base: quickstart.yaml            # optional: start from another preset (relative to this file)
    grid:                            # axes; the cross product is run
      intermediate: [squad_v1, panx, null]   # null = no intermediate task (the baseline)
      target: [panx, squad_v1]
      seed: [1, 2]
      target.learning_rate: [2.0e-5, 3.0e-5] # any dotted config key
    per_task:                        # stage settings for one task, wherever it appears
      squad_v1: {max_seq_length: 192, doc_stride: 64}
    executor: {kind: processes, workers: 2}  # see ExecutorConfig

Everything is validated before anything runs (schema with did-you-mean, then every expanded
experiment with :func:`validate_experiment`). Runs whose ``run_id`` is already in the results
store are skipped, so re-running the same command resumes an interrupted grid. Shared
intermediate checkpoints are trained first, one job each (under a file lock), then every run
fans out and finds its intermediate stage complete.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import shlex
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.markup import escape

from intertask.config import (  # noqa: F401  (ExecutorConfig, SlurmConfig: re-exported, grid presets' schema)
    ExecutorConfig,
    ExperimentConfig,
    SlurmConfig,
    StageConfig,
    apply_overrides,
    check_stage,
    from_dict,
    load_yaml,
    to_dict,
)
from intertask.errors import ConfigError, check_name, closest
from intertask.executors import Job, execute_job, make_executor  # noqa: F401  (Job, execute_job: re-exported)
from intertask.io import STAGE_FILE, stage_lock, stage_summary  # noqa: F401  (stage_lock: re-exported, the grid's lock)
from intertask.results.store import BASELINE, STORE_FILE

SHORT_AXES = {"intermediate": "intermediate.task", "target": "target.task"}


# ----------------------------------------------------------------------------- schema


@dataclass
class Run:
    """One expanded grid point: a complete experiment with one arm."""

    cfg: ExperimentConfig
    arm: str
    run_id: str
    axes: dict[str, Any]

    @property
    def label(self) -> str:
        return self.cfg.name


@dataclass
class Grid:
    name: str
    source: Path | None
    axes: dict[str, list[Any]]  # canonical dotted keys -> values
    runs: list[Run]
    executor: ExecutorConfig
    overrides: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the merged preset, for the manifest

    @property
    def output_dir(self) -> Path:
        return Path(self.runs[0].cfg.output_dir) if self.runs else Path(self.data.get("output_dir", "runs"))

    @property
    def command(self) -> str:
        return shlex.join(["intertask", "grid", str(self.source or "-"), *self.overrides])


def _canonical_axis(key: str) -> str:
    return SHORT_AXES.get(key, key)


def _field_type(path: str) -> Any:
    """Type of a dotted ExperimentConfig key, failing with did-you-mean on unknown components."""
    cls: Any = ExperimentConfig
    parts = path.split(".")
    tp: Any = None
    for i, part in enumerate(parts):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"grid.{path}: {'.'.join(parts[:i])} is not a section")
        hints = typing.get_type_hints(cls)
        if part not in hints:
            prefix = ".".join(parts[:i])
            names = list(hints) + (list(SHORT_AXES) if i == 0 else [])
            hint = closest(part, names)
            extra = f"; did you mean {(prefix + '.') if prefix else ''}{hint[0]}?" if hint else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown grid axis {path}{extra}")
        tp = hints[part]
        # StageConfig | None -> StageConfig
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        cls = args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else tp
    return tp


def _set_dotted(data: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def _tag(value: Any) -> str:
    return str(value).replace("/", "_").replace(" ", "")


def _deep_merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, section by section (a mapping merges, anything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_grid_data(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The merged grid preset: `base` preset, then this file, then the overrides."""
    path = Path(path)
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: expected a path to a preset, got {base!r}")
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file() and Path(base).is_file():
            base_path = Path(base)
        data = _deep_merge(load_grid_data(base_path), data)  # a base may have a base of its own
    return apply_overrides(data, list(overrides or []))


def build_grid(data: dict[str, Any], source: Path | None = None, overrides: list[str] | None = None, check_data: bool = True) -> Grid:
    """Validate a merged grid preset completely and expand it into runs."""
    data = copy.deepcopy(data)
    where = f"{source}: " if source else ""
    try:
        axes_raw = data.pop("grid", None) or {}
        per_task_raw = data.pop("per_task", None) or {}
        executor = from_dict(ExecutorConfig, data.pop("executor", None) or {}, prefix="executor.")
        data.pop("base", None)
        if executor.workers < 0:
            raise ConfigError(f"executor.workers: expected an integer >= 0 (0: automatic), got {executor.workers}")
        if not (executor.poll_seconds > 0 and executor.poll_seconds < float("inf")):
            raise ConfigError(f"executor.poll_seconds: expected a positive number, got {executor.poll_seconds}")
        if not isinstance(axes_raw, dict):
            raise ConfigError(f"grid: expected a mapping of axis -> list of values, got {axes_raw!r}")
        base_cfg = from_dict(ExperimentConfig, data)  # schema check of the base experiment
        check_name(base_cfg.name, "name", allow_slash=True)  # becomes the folder of every run: before any file is touched
        axes: dict[str, list[Any]] = {}
        for key, values in axes_raw.items():
            canon = _canonical_axis(str(key))
            if canon in axes:
                raise ConfigError(f"grid: axis {key} given twice")
            if canon in ("name", "output_dir"):
                raise ConfigError(f"grid: {key} cannot be a grid axis (it is the same for the whole grid)")
            _field_type(canon)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid.{key}: expected a non-empty list of values, got {values!r}")
            if None in values and canon != "intermediate.task":
                raise ConfigError(f"grid.{key}: null is only allowed on the intermediate axis (= no intermediate task)")
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"grid.{key}: duplicate values in {values!r}")
            axes[canon] = values
        if not isinstance(per_task_raw, dict):
            raise ConfigError(f"per_task: expected a mapping of task -> stage settings, got {per_task_raw!r}")
        from intertask.tasks import get_task

        for task_name, settings in per_task_raw.items():
            if str(task_name) != "multitask":  # per_task.multitask: the tasks and sampling of the multi-task intermediate
                get_task(str(task_name))  # did-you-mean on typos
            if not isinstance(settings, dict):
                raise ConfigError(f"per_task.{task_name}: expected a mapping of stage settings, got {settings!r}")
            check_stage(from_dict(StageConfig, {"task": str(task_name), **settings}, prefix=f"per_task.{task_name}."), f"per_task.{task_name}")
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None

    grid_name = base_cfg.name
    # The baseline arm: kept when the base asks for it (baseline: true) or the axis lists null.
    inter_values = axes.get("intermediate.task")
    if inter_values is None:
        inter_values = [base_cfg.intermediate.task] if base_cfg.intermediate else []
        if base_cfg.baseline or not inter_values:
            inter_values = [*inter_values, None]
    elif base_cfg.baseline and None not in inter_values:
        inter_values = [*inter_values, None]
    other_axes = {k: v for k, v in axes.items() if k != "intermediate.task"}
    names = list(other_axes)
    base_inter = data.get("intermediate") or {}

    from intertask.pipeline import validate_experiment  # imports torch: only when expanding

    runs: list[Run] = []
    seen: set[str] = set()
    for inter in inter_values:
        for combo in itertools.product(*(other_axes[n] for n in names)) if names else [()]:
            point = dict(zip(names, combo))
            d = copy.deepcopy(data)
            if inter is None:
                d["intermediate"] = None
                d["baseline"] = True
                point_inter = {k: v for k, v in point.items() if not k.startswith("intermediate.")}
            else:
                d["intermediate"] = {**base_inter, "task": inter}
                d["baseline"] = False
                point_inter = point
            for key, value in point_inter.items():
                _set_dotted(d, key, value)
            for role in ("intermediate", "target"):
                stage = d.get(role)
                if isinstance(stage, dict) and stage.get("task") in per_task_raw:
                    explicit = {k.split(".", 1)[1] for k in point_inter if k.startswith(role + ".")}
                    stage.update({k: v for k, v in per_task_raw[stage["task"]].items() if k not in explicit})
            target = (d.get("target") or {}).get("task") or "?"
            tags = [f"{k.rsplit('.', 1)[-1]}={_tag(v)}" for k, v in point_inter.items() if k not in ("target.task", "seed")]
            seed = d.get("seed", base_cfg.seed)
            d["name"] = f"{grid_name}/{target}/{BASELINE if inter is None else inter}/seed{seed}" + ("-" + "-".join(tags) if tags else "")
            try:
                cfg = from_dict(ExperimentConfig, d)
                arm = arm_of(cfg.intermediate)
                validate_experiment(cfg, check_data=check_data)
            except ConfigError as exc:
                raise ConfigError(f"{where}grid point {d['name']}: {exc}") from None
            rid = run_id(cfg)
            if rid in seen:
                continue
            seen.add(rid)
            runs.append(Run(cfg=cfg, arm=arm, run_id=rid, axes={"intermediate.task": inter, **point_inter}))
    all_axes = {"intermediate.task": inter_values, **other_axes}
    return Grid(name=grid_name, source=source, axes=all_axes, runs=runs, executor=executor, overrides=list(overrides or []), data=data)


def load_grid(path: str | Path, overrides: list[str] | None = None, check_data: bool = True) -> Grid:
    return build_grid(load_grid_data(path, overrides), Path(path), overrides, check_data)


def arm_of(stage: StageConfig | None) -> str:
    """The pipeline's arm label for an intermediate stage (multimodal variants get their own)."""
    if stage is None:
        return BASELINE
    try:
        from intertask.multimodal.stage import arm_name
    except ImportError:  # pragma: no cover - without the multimodal extension the label is the task
        return stage.task
    return arm_name(stage)


def run_id(cfg: ExperimentConfig) -> str:
    """The run_id the pipeline gives the record of a single-arm experiment (same formula)."""
    if cfg.intermediate is not None and cfg.baseline:
        raise ValueError("grid runs have exactly one arm")
    from intertask.pipeline import run_id as pipeline_run_id

    return pipeline_run_id(cfg, arm_of(cfg.intermediate))


# ----------------------------------------------------------------------------- jobs (run by intertask.executors)


def plan(grid: Grid, store_path: Path | None = None) -> tuple[list[Job], list[Job], list[Run]]:
    """(intermediate jobs, run jobs, runs already done): what is left to do for this grid."""
    from intertask.pipeline import intermediate_dir
    from intertask.results.store import ResultsStore

    done_ids: set[str] = set()
    store_file = store_path or grid.output_dir / STORE_FILE
    if Path(store_file).is_file():
        done_ids = ResultsStore(store_file).run_ids()
    todo = [r for r in grid.runs if r.run_id not in done_ids]
    done = [r for r in grid.runs if r.run_id in done_ids]
    inter_jobs: dict[Path, Job] = {}
    for r in todo:
        if r.cfg.intermediate is None:
            continue
        d = intermediate_dir(r.cfg)
        if d in inter_jobs or stage_summary(d)[0] is not None:
            continue
        label = f"{r.cfg.intermediate.task}/seed{r.cfg.seed} ({d.name})"
        inter_jobs[d] = Job("intermediate", label, to_dict(r.cfg))
    run_jobs = [Job("run", r.label, to_dict(r.cfg), r.run_id) for r in todo]
    return list(inter_jobs.values()), run_jobs, done


@dataclass
class GridOutcome:
    total: int
    skipped: int
    completed: list[dict[str, Any]]
    failed: list[tuple[Job, str]]
    seconds: float


def run_grid(grid: Grid, executor: Any | None = None, show_progress: bool = True, write: Callable[[str], None] | None = None) -> GridOutcome:
    """Run what is left of the grid: shared intermediates first, then every run."""
    from intertask.io import write_json_atomic
    from intertask.results.store import ResultsStore

    started = time.time()
    say = write or (lambda msg: None)
    inter_jobs, run_jobs, done = plan(grid)
    executor = executor or make_executor(grid.executor, grid.output_dir)
    manifest = {
        "grid": grid.name,
        "command": grid.command,
        "source": str(grid.source) if grid.source else None,
        "axes": grid.axes,
        "executor": to_dict(grid.executor),
        "preset": grid.data,
        "runs": [
            {
                "run_id": r.run_id,
                "name": r.cfg.name,
                "arm": r.arm,
                "axes": r.axes,
                "command": f"intertask run {Path(r.cfg.output_dir) / r.cfg.name / 'config.yaml'}",
            }
            for r in grid.runs
        ],
    }
    from intertask.models.source import check_model_source

    for model in sorted({r.cfg.model.name_or_path for r in grid.runs}):  # each model once (a hub id: one look-up)
        check_model_source(model, "model.name_or_path")
    ResultsStore(grid.output_dir / STORE_FILE).check_writable()  # before any job: a store that cannot take results fails now
    write_json_atomic(grid.output_dir / "grids" / f"{_tag(grid.name)}.json", manifest)
    say(
        f"grid {escape(grid.name)}: {len(grid.runs)} runs, {len(done)} already in the store, {len(run_jobs)} to run, "
        f"{len(inter_jobs)} intermediate checkpoints to train ({executor.describe()})"
    )
    completed: list[dict[str, Any]] = []
    failed: list[tuple[Job, str]] = []
    with GridProgress(len(inter_jobs) + len(run_jobs), enabled=show_progress) as progress:
        for phase in (inter_jobs, run_jobs):
            if not phase:
                continue
            for job, result, error in executor.run(phase, on_start=progress.start):
                progress.finish(job, error)
                if error is None:
                    completed.append(result)
                    if job.kind == "run" and job.run_id not in result.get("run_ids", [job.run_id]):
                        # The pipeline named the record differently: resuming could not skip it.
                        say(
                            f"[yellow]warning[/yellow]: {escape(job.label)}: the pipeline stored run_id(s) {escape(str(result.get('run_ids')))} "
                            f"but the grid expected {escape(str(job.run_id))}; intertask.grid.run_id is out of date"
                        )
                else:
                    failed.append((job, error))
                    last = error.strip().splitlines()[-1] if error.strip() else error
                    say(f"[red]failed[/red]: {escape(job.description)}: {escape(last)}")
            if failed and phase is inter_jobs:
                # Runs that need a failed intermediate would fail again: run only the others.
                from intertask.pipeline import intermediate_dir

                bad = {str(intermediate_dir(from_dict(ExperimentConfig, j.config))) for j, _ in failed}
                keep = []
                for j in run_jobs:
                    c = from_dict(ExperimentConfig, j.config)
                    if c.intermediate is not None and str(intermediate_dir(c)) in bad:
                        failed.append((j, "its intermediate stage failed"))
                        progress.finish(j, "skipped")
                    else:
                        keep.append(j)
                run_jobs[:] = keep
    return GridOutcome(total=len(grid.runs), skipped=len(done), completed=completed, failed=failed, seconds=round(time.time() - started, 1))


class GridProgress:
    """rich progress for the grid: jobs done / remaining, the jobs in flight, elapsed and ETA."""

    def __init__(self, total: int, enabled: bool = True):
        from intertask.progress import enabled as progress_enabled

        self.total = total
        self.enabled = enabled and progress_enabled() and total > 0
        self.running: dict[str, float] = {}
        self.failed = 0
        self._progress = None
        self._saved_env: str | None = None
        self._plain: Any = None  # a log, not a terminal: plain lines per job (stages print their own)

    def __enter__(self) -> GridProgress:
        from intertask.progress import PlainProgress, interactive

        if self.enabled and not interactive():
            self._plain = PlainProgress("grid", self.total, unit="jobs")
        elif self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.text import Text

            from intertask.progress import console

            owner = self

            class InFlight(ProgressColumn):  # re-rendered on every refresh: live "running for" times
                def render(self, task: Any) -> Text:
                    return Text.from_markup(owner._status())

            self._progress = Progress(
                TextColumn("[bold]grid[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("done"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), InFlight(), console=console, transient=False,
            )  # fmt: skip
            self._progress.__enter__()
            self._tid = self._progress.add_task("grid", total=self.total, status="")
            # One live display at a time: stages' own bars are hidden while the grid bar shows.
            self._saved_env = os.environ.get("INTERTASK_PROGRESS")
            os.environ["INTERTASK_PROGRESS"] = "0"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._plain is not None:
            self._plain.finish(failed=exc[0] is not None)
        if self._progress is not None:
            self._progress.__exit__(*exc)
            if self._saved_env is None:
                os.environ.pop("INTERTASK_PROGRESS", None)
            else:
                os.environ["INTERTASK_PROGRESS"] = self._saved_env

    def _status(self) -> str:
        now = time.time()
        parts = [f"{label} ({now - t:.0f}s)" for label, t in list(self.running.items())[:3]]
        more = f" +{len(self.running) - 3}" if len(self.running) > 3 else ""
        failed = f" [red]{self.failed} failed[/red]" if self.failed else ""
        return ("now: " + ", ".join(parts) + more if parts else "") + failed

    def start(self, job: Job) -> None:
        self.running[job.description] = time.time()
        if self._plain is not None:
            self._plain.write(f"[grid] started {job.description} ({self._plain.done}/{self.total} jobs done)")
        if self._progress is not None:
            self._progress.update(self._tid, status=self._status())

    def finish(self, job: Job, error: str | None) -> None:
        self.running.pop(job.description, None)
        self.failed += error is not None
        if self._plain is not None:
            from intertask.progress import hms

            p = self._plain
            p.done += 1
            elapsed = time.monotonic() - p.start
            eta = f", ETA {hms(elapsed / p.done * (self.total - p.done))}" if p.done < self.total else ""
            outcome = "skipped" if error == "skipped" else "failed" if error else "finished"
            p.write(f"[grid] {outcome} {job.description}: {p.done}/{self.total} jobs done ({self.failed} failed), elapsed {hms(elapsed)}{eta}")
        if self._progress is not None:
            self._progress.update(self._tid, advance=1, status=self._status())


def summary_lines(grid: Grid, outcome: GridOutcome) -> list[str]:
    runs_done = sum(1 for c in outcome.completed if c["kind"] == "run")
    lines = [
        f"grid {grid.name}: {runs_done} runs completed, {outcome.skipped} skipped (already in the store), "
        f"{len([f for f in outcome.failed if f[0].kind == 'run'])} failed, in {outcome.seconds} s"
    ]
    for job, error in outcome.failed:
        lines.append(f"  failed {job.description}: {error.strip().splitlines()[-1] if error.strip() else error}")
    return lines


def describe_grid(grid: Grid) -> list[str]:
    lines = [
        f"grid {grid.name}: {len(grid.runs)} runs",
        *(f"  {k}: {', '.join('null' if v is None else str(v) for v in vals)}" for k, vals in grid.axes.items()),
    ]
    return lines


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `intertask grid`")
