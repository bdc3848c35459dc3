"""`intertask plan`: what a preset or grid will run, what is shared or already done, and the device hours.

Stages are identified exactly as the pipeline names their directories (content hashes of what determines
them: :func:`intertask.pipeline.intermediate_dir`, :func:`intertask.pipeline.target_dir`), so one
intermediate stage that feeds every target shows up once, with the runs it feeds, and a stage whose
``stage.json`` exists is done. Nothing here loads a model or hub data (except ``--measure``).

Training examples per stage: read from the local files (the task's reader, ``max_train_samples`` applied)
when they exist; otherwise the published size of the training set (``PUBLISHED_TRAIN_SIZES``); otherwise
"unknown". Optimiser steps follow the recipe's formula. Device hours = optimiser steps x examples per step x
real tokens per example (``TOKENS_PER_EXAMPLE``: typical XLM-R token counts, capped at the stage's
``max_seq_length``) / a throughput in real tokens per second, which is measured here (``--measure``),
taken from ``GPU_TOKENS_PER_SECOND`` (``--gpu``; the table in docs/performance.md) or given
(``--tokens-per-second``). Training only: dev evaluations and zero-shot evaluation come on top.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intertask.config import ExperimentConfig, StageConfig
from intertask.errors import ConfigError, IntertaskError
from intertask.grid import BASELINE, Grid, build_grid, load_grid_data
from intertask.grid import plan as grid_plan
from intertask.training.kinds import stage_kind

# English training examples of the published training sets (the X-STILTs paper's Table 1 for the intermediate
# tasks, the XTREME paper's Table 1 for the targets' English training data); used when no local file is present.
PUBLISHED_TRAIN_SIZES: dict[str, int] = {
    "anli_plus": 1_104_934,  # ANLI R1-R3 + MNLI + SNLI + FEVER-NLI (no-consensus pairs dropped)
    "anli": 162_865,
    "mnli": 392_702,
    "qqp": 363_846,
    "squad_v1": 87_599,
    "squad_v2": 130_319,
    "hellaswag": 39_905,
    "commonsenseqa": 9_741,
    "cosmosqa": 25_262,
    "ccg": 38_015,
    "siqa": 33_410,
    "paws": 49_401,
    "panx": 20_000,
    "udpos": 21_253,
    "tydiqa": 3_696,
    "copa": 400,
}

# Typical real (non-padding) XLM-R tokens per training sequence, and sequences per example (multiple choice:
# one per choice). Estimates; the tokens of a sequence are capped at the stage's max_seq_length.
TOKENS_PER_EXAMPLE: dict[str, tuple[int, int]] = {
    "panx": (14, 1), "udpos": (25, 1), "ccg": (32, 1),
    "mnli": (42, 1), "xnli": (42, 1), "anli_plus": (50, 1), "anli": (90, 1), "qqp": (30, 1), "paws": (55, 1), "pawsx": (55, 1),
    "squad_v1": (200, 1), "squad_v2": (200, 1), "xquad": (200, 1), "mlqa": (200, 1), "tydiqa": (200, 1),
    "hellaswag": (70, 4), "commonsenseqa": (20, 5), "cosmosqa": (120, 4), "siqa": (40, 3), "copa": (20, 2), "xcopa": (20, 2),
}  # fmt: skip

# Training throughput, real tokens per second, per device and model size (docs/performance.md, "Planning figures").
# (tokens/s, how the figure was obtained)
GPU_TOKENS_PER_SECOND: dict[str, dict[str, tuple[float, str]]] = {
    "h200": {
        "large": (7_530, "measured: XLM-R large, XNLI-like pairs, batch 32, bf16 (issue 14)"),
        "base": (6_845, "measured: XLM-R base, XNLI-like pairs, batch 32, bf16, first run (issue 14)"),
        "small": (6_845, "estimate: as base (short batches are launch-bound on this card)"),
    },
    "h100": {
        "large": (7_530, "estimate: as H200 (same compute; these batches are launch-bound)"),
        "base": (6_845, "estimate: as H200"),
        "small": (6_845, "estimate: as H200 base"),
    },
    "a100": {
        "large": (4_500, "estimate: ~0.6 x H200"),
        "base": (4_100, "estimate: ~0.6 x H200"),
        "small": (4_100, "estimate: as base"),
    },
    "cpu": {
        "small": (90, "measured: e5-small, 1 CPU thread, XNLI pairs, batch 32 (docs/performance.md)"),
        "base": (30, "estimate: ~1/3 of small"),
        "large": (9, "estimate: ~1/10 of small"),
    },
}


def model_size(name_or_path: str) -> str | None:
    """small / base / large from a model name (the embedded default is e5-small); None if it cannot tell."""
    name = str(name_or_path).lower()
    if name == "default":
        return "small"
    for size in ("large", "base", "small"):
        if size in name:
            return size
    return None


@dataclass
class Throughput:
    tokens_per_second: float  # marginal rate: seconds per real token = 1 / tokens_per_second
    source: str
    batch_overhead_seconds: float = 0.0  # fixed cost per micro-batch (measured: launches, optimiser, host work)

    def seconds(self, stage: PlannedStage) -> float | None:
        tokens = stage.tokens
        if tokens is None or stage.steps is None:
            return None
        return (
            tokens / self.tokens_per_second + stage.steps * stage.micro_batches_per_step * self.batch_overhead_seconds
        )


@dataclass
class PlannedStage:
    role: str
    task: str  # task name (a multi-task stage: "multitask")
    directory: Path
    label: str = ""  # intermediate: task/seed; target: the run's name
    runs: list[str] = field(default_factory=list)  # run names that use this stage
    done: bool = False
    examples: int | None = None
    examples_source: str = "unknown"
    examples_per_step: int = 0
    micro_batches_per_step: int = 1
    steps: int | None = None
    tokens_per_example: float | None = None
    hours: float | None = None

    @property
    def shared(self) -> bool:
        return len(self.runs) > 1

    @property
    def tokens(self) -> float | None:
        if self.steps is None or self.tokens_per_example is None:
            return None
        return self.steps * self.examples_per_step * self.tokens_per_example


@dataclass
class StudyPlan:
    grid: Grid
    runs_done: set[str]
    stages: list[PlannedStage]
    throughput: Throughput | None

    @property
    def todo(self) -> list[PlannedStage]:
        return [s for s in self.stages if not s.done]

    def hours(self, todo_only: bool = True) -> float | None:
        stages = self.todo if todo_only else self.stages
        if self.throughput is None or any(s.hours is None for s in stages):
            return None
        return sum(s.hours for s in stages)  # type: ignore[misc]


# ----------------------------------------------------------------------------- counting


class _Counter:
    """Training examples per (task, language, data), read once per plan."""

    def __init__(self) -> None:
        self.cache: dict[tuple, tuple[int | None, str]] = {}

    def __call__(self, task_name: str, stage: StageConfig, cfg: ExperimentConfig) -> tuple[int | None, str]:
        key = (task_name, stage.language, str(cfg.data_dir), cfg.data_source, stage.max_train_samples, cfg.seed)
        if key not in self.cache:
            self.cache[key] = self._count(task_name, stage, cfg)
        return self.cache[key]

    @staticmethod
    def _count(task_name: str, stage: StageConfig, cfg: ExperimentConfig) -> tuple[int | None, str]:
        from intertask.data.loading import has_data, hub_falls_back, load_examples
        from intertask.tasks import get_task

        task = get_task(task_name)
        train_task = get_task(task.train_task) if task.train_task else task
        cap = stage.max_train_samples
        local = cfg.data_source == "local" or hub_falls_back(train_task, "train")  # hub mode reads these locally too
        if local and has_data(train_task, "train", stage.language, Path(cfg.data_dir)):
            try:
                data = load_examples(
                    train_task, "train", stage.language, Path(cfg.data_dir), "local", "skip", cap, cfg.seed
                )
                return len(data.examples), "local files"
            except IntertaskError as exc:
                return None, f"unreadable: {exc}"
        published = PUBLISHED_TRAIN_SIZES.get(train_task.name) if stage.language == train_task.train_language else None
        if published is not None:
            where = ", local files needed (no hub copy)" if cfg.data_source == "hub" and local else ""
            return (min(published, cap) if cap else published), "published" + where
        if cap:
            return cap, "max_train_samples (at most)"
        return None, "unknown"


def _steps(batches_per_epoch: int, stage: StageConfig) -> int:
    """The recipe's optimiser steps for a stage with this many batches per epoch."""
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / stage.gradient_accumulation_steps))
    return stage.max_steps or max(1, math.ceil(stage.num_epochs * steps_per_epoch))


def _tokens_per_example(task_name: str, max_length: int) -> float:
    per, n = TOKENS_PER_EXAMPLE.get(task_name, (max_length, 1))  # unknown task: full rows (an upper bound)
    return float(n * min(per, max_length))


def _plan_stage(ps: PlannedStage, stage: StageConfig, cfg: ExperimentConfig, count: _Counter) -> None:
    max_length = stage.max_seq_length or cfg.model.max_seq_length
    ps.examples_per_step = stage.batch_size * stage.gradient_accumulation_steps
    ps.micro_batches_per_step = stage.gradient_accumulation_steps
    tasks = list(stage.tasks) if stage.tasks else [stage.task]
    if stage_kind(stage) in ("mlm", "captioning", "vqa"):
        tasks = []  # text / image corpora: sized by their own files
    counts = [(t, *count(t, stage, cfg)) for t in tasks]
    if counts and all(n is not None for _, n, _ in counts):
        ps.examples = sum(n for _, n, _ in counts)  # type: ignore[misc]
        ps.examples_source = "; ".join(sorted({src for _, _, src in counts}))
        batches = sum(math.ceil(n / stage.batch_size) for _, n, _ in counts)  # type: ignore[operator]
        ps.steps = _steps(batches, stage)
        weights = [n for _, n, _ in counts]
        ps.tokens_per_example = sum(
            w * _tokens_per_example(t, max_length) for (t, _, _), w in zip(counts, weights)
        ) / max(1, sum(weights))  # type: ignore[misc]
    else:
        ps.examples_source = next((src for _, n, src in counts if n is None), "unknown (corpus-sized stage)")
        if stage.max_steps:
            ps.steps = stage.max_steps  # known without the data
            ps.tokens_per_example = _tokens_per_example(stage.task, max_length)


# ----------------------------------------------------------------------------- the plan


def load_plan_grid(path: str | Path, overrides: list[str] | None = None, check_data: bool = False) -> Grid:
    """A preset or a grid preset as a grid (a plain experiment is a grid without axes)."""
    return build_grid(load_grid_data(path, overrides), Path(path), overrides, check_data=check_data)


def make_plan(grid: Grid, throughput: Throughput | None = None) -> StudyPlan:
    from intertask.pipeline import intermediate_dir, target_dir
    from intertask.training.recipe import STAGE_FILE

    _, _, done_runs = grid_plan(grid)
    runs_done = {r.run_id for r in done_runs}
    stages: dict[Path, PlannedStage] = {}
    count = _Counter()
    for run in grid.runs:
        cfg = run.cfg
        inter = cfg.intermediate if run.arm != BASELINE else None
        pairs: list[tuple[str, StageConfig, Path]] = []
        if inter is not None:
            pairs.append(("intermediate", inter, intermediate_dir(cfg)))
        pairs.append(("target", cfg.target, target_dir(cfg, run.arm, inter)))
        for role, stage, directory in pairs:
            ps = stages.get(directory)
            if ps is None:
                label = f"{stage.task}/seed{cfg.seed} ({directory.name})" if role == "intermediate" else cfg.name
                done = (directory / STAGE_FILE).is_file() or (role == "target" and run.run_id in runs_done)
                ps = stages[directory] = PlannedStage(
                    role=role, task=stage.task, directory=directory, label=label, done=done
                )
                _plan_stage(ps, stage, cfg, count)
            ps.runs.append(cfg.name)
    if throughput is not None:
        for ps in stages.values():
            seconds = throughput.seconds(ps)
            ps.hours = None if seconds is None else seconds / 3600
    ordered = sorted(stages.values(), key=lambda s: (s.role != "intermediate", s.task, s.label))
    return StudyPlan(grid=grid, runs_done=runs_done, stages=ordered, throughput=throughput)


# ----------------------------------------------------------------------------- throughput


def gpu_throughput(gpu: str, model: str, size: str | None = None) -> Throughput:
    table = GPU_TOKENS_PER_SECOND.get(gpu.lower())
    if table is None:
        raise ConfigError(
            f"--gpu {gpu!r}: no figures for this device; known: {', '.join(GPU_TOKENS_PER_SECOND)} (or give --tokens-per-second N, or --measure)"
        )
    size = size or model_size(model)
    if size is None:
        raise ConfigError(f"--gpu: cannot tell the size of model {model!r}; add --model-size small|base|large")
    if size not in table:
        raise ConfigError(f"--model-size {size!r}: expected one of {', '.join(table)}")
    tps, note = table[size]
    return Throughput(tps, f"{gpu.lower()}, {size} model: {tps:,.0f} tokens/s ({note})")


def measure_throughput(cfg: ExperimentConfig, seconds: float = 3.0) -> Throughput:
    """Time forward + backward + AdamW steps of the configured model on this machine's device, at the first target
    stage's batch size and two sequence lengths (16 tokens and its max_seq_length), and fit time per micro-batch =
    overhead + tokens / rate: short-sentence batches are dominated by the fixed cost, long ones by the tokens."""
    import torch

    from intertask.models.loading import build_model, load_tokenizer
    from intertask.tasks import get_task

    stage = cfg.target
    task = get_task(stage.task)
    max_length = stage.max_seq_length or cfg.model.max_seq_length
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = load_tokenizer(cfg.model.name_or_path)
        model = build_model(task, cfg.model.name_or_path, None, cfg.model.freeze_embeddings).to(device)
    except (OSError, ValueError) as exc:
        raise IntertaskError(
            f"--measure: cannot load model {cfg.model.name_or_path!r} here ({exc}); use --gpu NAME or --tokens-per-second N instead"
        ) from None
    model.train()
    rows = stage.batch_size
    # the encoder dominates the cost: a sequence-classification-shaped step whatever the head
    encoder = getattr(model, model.base_model_prefix, model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )

    def timed(length: int, budget: float) -> float:
        ids = torch.randint(5, max(6, len(tokenizer)), (rows, length), device=device)
        mask = torch.ones_like(ids)

        def one_step() -> None:
            with autocast:
                out = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            out.float().pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()

        one_step()  # warm-up (allocations, kernels)
        steps, start = 0, time.perf_counter()
        while steps < 2 or (time.perf_counter() - start < budget and steps < 50):
            one_step()
            steps += 1
        return (time.perf_counter() - start) / steps

    short, long = min(16, max_length), max_length
    t_short, t_long = timed(short, seconds / 2), timed(long, seconds / 2)
    per_token = (t_long - t_short) / (rows * (long - short)) if long > short else 0.0
    if per_token <= 0:  # no measurable length effect: one rate from the long batches
        overhead, rate = 0.0, rows * long / t_long
    else:
        overhead, rate = max(0.0, t_short - per_token * rows * short), 1.0 / per_token
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    source = (f"measured here on {name}, {cfg.model.name_or_path}, batch {rows}: {rows * short / t_short:,.0f} tokens/s at {short} tokens, "
              f"{rows * long / t_long:,.0f} at {long}; fitted {overhead * 1000:.0f} ms per micro-batch + {rate:,.0f} tokens/s")  # fmt: skip
    return Throughput(rate, source, overhead)


# ----------------------------------------------------------------------------- output


def _fmt_int(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def _fmt_hours(h: float | None) -> str:
    if h is None:
        return "–"
    return f"{h:.2f}" if h < 10 else f"{h:,.0f}"


def plan_rows(p: StudyPlan) -> list[dict[str, Any]]:
    return [
        {
            "status": "done" if s.done else "todo", "role": s.role, "task": s.task, "label": s.label, "stage": str(s.directory),
            "runs": len(s.runs), "shared": s.shared, "examples": s.examples, "examples_source": s.examples_source,
            "steps": s.steps, "examples_per_step": s.examples_per_step, "tokens_per_example": s.tokens_per_example,
            "tokens": s.tokens, "device_hours": s.hours,
        }
        for s in p.stages
    ]  # fmt: skip


def plan_summary(p: StudyPlan) -> dict[str, Any]:
    inter = [s for s in p.stages if s.role == "intermediate"]
    return {
        "grid": p.grid.name,
        "runs": len(p.grid.runs),
        "runs_done": len(p.runs_done),
        "stages": len(p.stages),
        "stages_done": sum(s.done for s in p.stages),
        "intermediate_stages": len(inter),
        "shared_stages": sum(s.shared for s in p.stages),
        "runs_fed_by_shared_stages": sum(len(s.runs) for s in p.stages if s.shared),
        "unknown_sizes": sum(s.steps is None for s in p.todo),
        "throughput": None
        if p.throughput is None
        else {"tokens_per_second": p.throughput.tokens_per_second, "source": p.throughput.source},
        "device_hours_todo": p.hours(todo_only=True),
        "device_hours_total": p.hours(todo_only=False),
    }


def render_plan(p: StudyPlan, console: Any, stages: bool | None = None) -> None:
    """The stage table (default: when there are at most 60 stages), the table per role and task, and the totals."""
    from rich.table import Table

    if stages is None:
        stages = len(p.stages) <= 60
    if stages:
        table = Table(title=f"plan: {p.grid.name} -- stages")
        for col, justify in (
            ("status", "left"),
            ("role", "left"),
            ("task", "left"),
            ("stage", "left"),
            ("runs", "right"),
            ("examples", "right"),
            ("steps", "right"),
            ("tokens/ex.", "right"),
            ("device h", "right"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for s in p.stages:
            status = "[green]done[/green]" if s.done else "[yellow]todo[/yellow]"
            runs = f"{len(s.runs)} (shared)" if s.shared else str(len(s.runs))
            examples = _fmt_int(s.examples) + (
                "" if s.examples_source == "local files" else f" [dim]({s.examples_source})[/dim]"
            )
            table.add_row(
                status,
                s.role,
                s.task,
                s.label,
                runs,
                examples,
                _fmt_int(s.steps),
                "–" if s.tokens_per_example is None else f"{s.tokens_per_example:.0f}",
                _fmt_hours(s.hours),
            )
        console.print(table)
    groups: dict[tuple[str, str], list[PlannedStage]] = {}
    for s in p.stages:
        groups.setdefault((s.role, s.task), []).append(s)
    table = Table(title=f"plan: {p.grid.name} -- per task" + ("" if stages else " (--stages lists every stage)"))
    for col, justify in (
        ("role", "left"),
        ("task", "left"),
        ("stages", "right"),
        ("done", "right"),
        ("runs fed", "right"),
        ("examples / stage", "right"),
        ("steps / stage", "right"),
        ("device h (todo)", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for (role, task), group in groups.items():
        sizes = sorted({_fmt_int(s.examples) for s in group})
        steps = sorted({_fmt_int(s.steps) for s in group})
        todo = [s for s in group if not s.done]
        hours = None if any(s.hours is None for s in todo) else sum(s.hours or 0.0 for s in todo)
        source = group[0].examples_source
        examples = " / ".join(sizes) + ("" if source == "local files" else f" [dim]({source})[/dim]")
        table.add_row(
            role, task, str(len(group)), str(sum(s.done for s in group)), str(sum(len(s.runs) for s in group)),
            examples, " / ".join(steps), _fmt_hours(hours) if p.throughput else "–",
        )
    console.print(table)
    summary = plan_summary(p)
    console.print(
        f"{summary['runs']} runs ({summary['runs_done']} done); {summary['stages']} stages ({summary['stages_done']} done): "
        f"{summary['intermediate_stages']} intermediate, {summary['shared_stages']} shared by {summary['runs_fed_by_shared_stages']} runs"
    )
    if p.throughput is None:
        console.print("device hours: give a throughput (--measure, --gpu h200|h100|a100|cpu, or --tokens-per-second N)")
        return
    console.print(f"throughput: {p.throughput.source}")
    todo, total = summary["device_hours_todo"], summary["device_hours_total"]
    known = sum(s.hours or 0.0 for s in p.todo)
    if todo is None:
        console.print(
            f"estimated device hours still to run: at least {_fmt_hours(known)} ({summary['unknown_sizes']} stages of unknown size not counted)"
        )
    else:
        console.print(
            f"estimated device hours still to run: {_fmt_hours(todo)} (whole study: {_fmt_hours(total)}); training only, evaluation comes on top"
        )
