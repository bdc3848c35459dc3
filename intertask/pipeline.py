"""The X-STILTs pipeline: [intermediate task] -> English target task -> zero-shot evaluation.

Each arm of an experiment (the no-intermediate baseline, and the run with the intermediate task)
writes a self-describing result record (JSON next to its checkpoints, and a row in the results
store). Stages and evaluations are keyed by the hash of what determines them, so re-running the
same command reuses everything already computed, and an intermediate checkpoint is shared by
every target and experiment that asks for the same intermediate training.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

import intertask
from intertask.config import ExperimentConfig, StageConfig, check_doc_stride, check_model_positions, check_values, config_hash, identity_dict, to_dict
from intertask.errors import ConfigError, IntertaskError
from intertask.evaluation.zero_shot import evaluate_retrieval, evaluate_target, pick_languages, retrieval_split
from intertask.io import check_output_dir, read_json, stage_lock, write_json_atomic, write_text_atomic
from intertask.models.loading import MODEL_DIR
from intertask.models.source import check_model_source
from intertask.progress import log
from intertask.results.stats import save_example_scores
from intertask.results.store import BASELINE, STORE_FILE, ResultsStore, git_hash
from intertask.results.table import markdown_table, rich_table
from intertask.tasks import get_task
from intertask.tasks.retrieval import RetrievalTask
from intertask.threads import apply_thread_policy
from intertask.training.checkpoint import fault_point
from intertask.training.kinds import validate_stage
from intertask.training.recipe import StageContext, run_stage

# ----------------------------------------------------------------------------- validation


def validate_experiment(cfg: ExperimentConfig, check_data: bool = True) -> list[str]:
    """Check everything that can be checked before compute; raise ConfigError on the first problem.

    Returns notes (e.g. which languages will be evaluated).
    """
    notes: list[str] = []
    check_values(cfg)  # ranges and safe names, before any file is touched
    check_model_positions(cfg)
    stages = [("intermediate", cfg.intermediate), ("target", cfg.target)]
    for role, stage in stages:  # an incomplete config is named before anything is looked up on disk
        if stage is not None and not stage.task and not stage.tasks:
            raise ConfigError(f"{role}.task is required")
    if check_data and cfg.data_source == "local" and not Path(cfg.data_dir).is_dir():
        raise ConfigError(data_dir_hint(cfg.data_dir, "data_dir"))
    for role, stage in stages:
        if stage is None:
            continue
        from intertask.training.packing import validate_switches

        validate_switches(stage, role, cfg.model)  # packing / bucket_lengths (issue 14)
        if stage.task and not stage.tasks and get_task(stage.task).head.name.startswith("span_qa"):
            check_doc_stride(stage, role, cfg.model.max_seq_length)
        notes += validate_stage(stage, role, Path(cfg.data_dir), cfg.data_source, check_data)  # each stage kind checks its own settings
    if cfg.intermediate is None and not cfg.baseline:
        raise ConfigError("nothing to run: no intermediate task and baseline=false")
    target = get_task(cfg.target.task)
    langs = pick_languages(target, cfg.evaluation.languages, cfg.evaluation.split, cfg.data_dir, cfg.data_source) if check_data else cfg.evaluation.languages
    notes.append(f"{target.name}: zero-shot evaluation on {', '.join(langs) or 'every language'} ({cfg.evaluation.split})")
    for name in cfg.evaluation.retrieval_tasks:
        task = get_task(name)
        if not isinstance(task, RetrievalTask):
            raise ConfigError(f"evaluation.retrieval_tasks: {name} is not a retrieval task")
        split = retrieval_split(task, cfg.evaluation.split)
        rlangs = pick_languages(task, cfg.evaluation.retrieval_languages, split, cfg.data_dir, "local") if check_data else cfg.evaluation.retrieval_languages
        notes.append(f"{name}: retrieval on {', '.join(rlangs) or 'every language'} ({split})")
    if check_data and not Path(cfg.data_dir).is_dir():
        raise ConfigError(data_dir_hint(cfg.data_dir, "data_dir"))
    return notes


def check_models(cfg: ExperimentConfig) -> None:
    """The model (and any init_encoder_from) can be loaded: a typo fails now, not after the first stage.

    Kept out of validate_experiment (called for every grid point): a hub id may be looked up on the hub once."""
    check_model_source(cfg.model.name_or_path, "model.name_or_path")
    for role in ("intermediate", "target"):
        stage = getattr(cfg, role)
        if stage is not None and stage.init_encoder_from is not None:
            check_model_source(stage.init_encoder_from, f"{role}.init_encoder_from")


def data_dir_hint(data_dir: Path | str, option: str) -> str:
    """The message for a data directory that does not exist, with how to point at one."""
    how = "--data-dir PATH" if option.startswith("--") else "data_dir=PATH on the command line or data_dir: in the config"
    default = " (the default ../shared/data is the development layout)" if Path(data_dir) == Path("../shared/data") else ""
    if Path(data_dir).exists():
        return f"{option} {data_dir}: not a directory; give the folder holding the task data with {how}"
    return f"{option} {data_dir}: not found (no such directory){default}; give the folder holding the task data with {how} (data/sample holds a small sample)"


# ----------------------------------------------------------------------------- running


def _stage_key(cfg: ExperimentConfig, stage: StageConfig) -> str:
    """Everything that determines a stage's checkpoint, hashed (data_dir by value, not by meaning)."""
    return config_hash(
        {
            "model": identity_dict(cfg.model),
            "stage": identity_dict(stage),
            "seed": cfg.seed,
            "data_dir": str(cfg.data_dir),
            "data_source": cfg.data_source,
            "mixed_precision": cfg.mixed_precision,
        }
    )


def intermediate_dir(cfg: ExperimentConfig) -> Path:
    assert cfg.intermediate is not None
    return Path(cfg.output_dir) / "intermediate" / f"{cfg.intermediate.task}-{_stage_key(cfg, cfg.intermediate)}"


def target_dir(cfg: ExperimentConfig, arm: str, intermediate: StageConfig | None) -> Path:
    """The directory `run_arm` gives an arm's target stage (its key includes the encoder it starts from)."""
    encoder_from = intermediate_dir(cfg) if intermediate is not None else cfg.target.init_encoder_from
    target_cfg = dataclasses.replace(cfg.target, init_encoder_from=encoder_from)
    return Path(cfg.output_dir) / cfg.name / arm / f"target-{_stage_key(cfg, target_cfg)}"


def run_id(cfg: ExperimentConfig, arm: str) -> str:
    """Identity of one arm's result in the store (stable across schema additions; see identity_dict)."""
    return f"{cfg.name}/{arm}/{config_hash(_result_identity(cfg))}"


def _result_identity(cfg: ExperimentConfig) -> dict:
    """identity_dict without ``evaluation.predict``: prediction files are an output, not part of a result's identity."""
    return identity_dict(dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, predict=False)))


def stage_context(cfg: ExperimentConfig) -> StageContext:
    """The run-level settings every stage of `cfg` shares."""
    return StageContext(
        model=cfg.model, seed=cfg.seed, data_dir=Path(cfg.data_dir), data_source=cfg.data_source,
        mixed_precision=cfg.mixed_precision, logging=cfg.logging,
    )


def run_experiment(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """Run every arm of the experiment and return their result records."""
    apply_thread_policy(announce=True)  # idempotent: the CLI or an executor's worker may have applied it already
    validate_experiment(cfg)
    check_models(cfg)
    ctx = stage_context(cfg)
    arms: list[tuple[str, StageConfig | None]] = []
    if cfg.baseline:
        arms.append((BASELINE, None))
    if cfg.intermediate is not None:
        from intertask.multimodal.stage import arm_name  # multimodal controls get their own arm label

        arms.append((arm_name(cfg.intermediate), cfg.intermediate))
    if int(os.environ.get("RANK", "0")) != 0:  # another process of a data-parallel run: its share of the training only
        return _train_stages_only(cfg, ctx, arms)

    check_output_dir(cfg.output_dir, "output_dir")
    root = Path(cfg.output_dir) / cfg.name
    check_inside(root, cfg.output_dir, "name")
    store = ResultsStore(Path(cfg.output_dir) / STORE_FILE)
    store.check_writable()  # a store that cannot take the result fails now, not after the training
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output_dir: cannot create {root}: {exc.strerror or exc}") from None

    records = []
    for arm, intermediate in arms:
        records.append(run_arm(cfg, arm, intermediate, ctx, root, store))

    Console().print(rich_table(records, title=f"{cfg.name}: zero-shot results ({cfg.evaluation.split})"))  # results: stdout
    write_text_atomic(root / "results.md", markdown_table(records))
    # Written once the run has succeeded, beside its results: it always describes the result.json files next to it.
    write_text_atomic(root / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    log(f"results: {escape(str(root / 'results.md'))}  store: {escape(str(store.path))}")
    return records


def check_inside(path: Path, root: Path | str, key: str) -> None:
    """`path` must stay under `root` (names are checked already; this guards symlinked or odd output dirs)."""

    resolved, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if resolved != base and base not in resolved.parents:
        raise ConfigError(f"{key}: {path} would be written outside output_dir {root}")


def _train_stages_only(cfg: ExperimentConfig, ctx: StageContext, arms: list[tuple[str, StageConfig | None]]) -> list[dict[str, Any]]:
    """The stages of every arm, in the order the main process trains them (it alone locks, evaluates and writes)."""
    for arm, intermediate in arms:
        encoder_from = cfg.target.init_encoder_from
        if intermediate is not None:
            run_intermediate_stage(intermediate, ctx, intermediate_dir(cfg))
            encoder_from = intermediate_dir(cfg)
        run_stage(dataclasses.replace(cfg.target, init_encoder_from=encoder_from), ctx, target_dir(cfg, arm, intermediate), "target")
    return []


def run_intermediate_stage(stage: StageConfig, ctx: StageContext, stage_dir: Path) -> dict[str, Any]:
    """The intermediate stage, of any kind (intertask.training.kinds): the one recipe trains it."""
    return run_stage(stage, ctx, stage_dir, "intermediate")


def run_arm(cfg: ExperimentConfig, arm: str, intermediate: StageConfig | None, ctx: StageContext, root: Path, store: ResultsStore) -> dict[str, Any]:
    started = time.time()
    stages: dict[str, Any] = {}
    encoder_from = cfg.target.init_encoder_from
    if intermediate is not None:
        inter_dir = intermediate_dir(cfg)
        with stage_lock(inter_dir):  # two runs sharing output_dir never train the same checkpoint at once
            stages["intermediate"] = _stage_brief(run_intermediate_stage(intermediate, ctx, inter_dir), inter_dir)
        encoder_from = inter_dir
    target_cfg = dataclasses.replace(cfg.target, init_encoder_from=encoder_from)
    arm_dir = root / arm
    target_dir = arm_dir / f"target-{_stage_key(cfg, target_cfg)}"
    stages["target"] = _stage_brief(run_stage(target_cfg, ctx, target_dir, "target"), target_dir)

    # Zero-shot evaluation, cached next to the checkpoint it evaluates.
    evaluation = identity_dict(dataclasses.replace(cfg.evaluation, predict=False))  # predictions don't change scores
    eval_key = config_hash({"evaluation": evaluation, "data_dir": str(cfg.data_dir), "source": cfg.data_source})
    eval_file = target_dir / f"eval-{eval_key}.json"
    evaluation = _read_eval_cache(eval_file)
    if evaluation is None:
        partial = eval_file.with_suffix(".partial.json")
        evaluation = evaluate_arm(cfg, target_cfg, target_dir, encoder_from, partial)
        save_example_scores(eval_file, evaluation.pop("per_example", {}))  # beside it, for the report's CIs
        write_json_atomic(eval_file, evaluation)
        partial.unlink(missing_ok=True)

    if cfg.evaluation.predict:
        from intertask.evaluation.predictions import write_run_predictions

        write_run_predictions(cfg, target_cfg, target_dir, encoder_from, arm_dir / "predictions")

    record = {
        "run_id": run_id(cfg, arm),
        "experiment": cfg.name,
        "arm": arm,
        "intermediate": intermediate.task if intermediate else None,
        "target": cfg.target.task,
        "seed": cfg.seed,
        "model": cfg.model.name_or_path,
        "config": to_dict(cfg),
        "config_hash": config_hash(_result_identity(cfg)),
        "task_versions": {name: get_task(name).version for name in _tasks_used(cfg)},
        "git_hash": git_hash(),
        "intertask_version": intertask.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stages": stages,
        "scores": evaluation["scores"],
        "samples": evaluation["samples"],
        "eval_file": str(eval_file),
        "seconds": round(time.time() - started, 1),
    }
    write_json_atomic(arm_dir / "result.json", record)
    store.add(record)
    return record


def evaluate_arm(
    cfg: ExperimentConfig, target_cfg: StageConfig, target_dir: Path, encoder_from: Path | None, partial_file: Path | None = None
) -> dict[str, Any]:
    """Zero-shot scores of one arm; each finished task is saved to `partial_file` so a kill never redoes it."""
    ev = cfg.evaluation
    done = _read_eval_cache(partial_file) if partial_file is not None else None
    if done is None:
        done = {"scores": {}, "samples": {}}

    def record(name: str, per_lang: dict[str, dict]) -> None:
        done["scores"][name] = {lang: {k: v for k, v in m.items() if isinstance(v, float)} for lang, m in per_lang.items()}
        done["samples"][name] = {lang: m["examples"] for lang, m in per_lang.items()}
        if any("per_example" in m for m in per_lang.values()):
            done.setdefault("per_example", {})[name] = {lang: m["per_example"] for lang, m in per_lang.items() if "per_example" in m}
        if partial_file is not None:
            write_json_atomic(partial_file, done)

    target = get_task(cfg.target.task)
    if target.name not in done["scores"]:
        fault_point(f"eval:{target.name}")
        langs = pick_languages(target, ev.languages, ev.split, cfg.data_dir, cfg.data_source)
        max_length = target_cfg.max_seq_length or cfg.model.max_seq_length
        record(
            target.name,
            evaluate_target(
                target,
                target_dir / MODEL_DIR,
                langs,
                cfg.data_dir,
                ev.split,
                cfg.data_source,
                ev.max_eval_samples,
                ev.batch_size,
                max_length,
                target_cfg.doc_stride,
                cfg.seed,
            ),
        )
    # Retrieval uses the encoder after the intermediate stage (the pretrained one for the
    # baseline), as X-STILTs does: retrieval tasks have no English training data of their own.
    encoder = encoder_from if encoder_from is not None else cfg.model.name_or_path
    for name in ev.retrieval_tasks:
        if name in done["scores"]:
            continue
        fault_point(f"eval:{name}")
        task = get_task(name)
        split = retrieval_split(task, ev.split)
        rlangs = pick_languages(task, ev.retrieval_languages, split, cfg.data_dir, "local")
        record(name, evaluate_retrieval(task, encoder, rlangs, cfg.data_dir, split, ev.batch_size, cfg.model.max_seq_length))
    return done


def _read_eval_cache(path: Path) -> dict[str, Any] | None:
    """A saved evaluation (or partial one), or None when there is none or it is unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        data = read_json(path, "evaluation cache")
        if not isinstance(data, dict) or not isinstance(data.get("scores"), dict) or not isinstance(data.get("samples"), dict):
            raise ConfigError(f"{path} (evaluation cache): expected an object with 'scores' and 'samples'")
    except IntertaskError as exc:
        log(f"[yellow]{escape(str(exc))}; evaluating again[/yellow]")
        return None
    return data


def _stage_brief(summary: dict[str, Any], directory: Path) -> dict[str, Any]:
    keep = (
        "task", "task_version", "train_task", "best_step", "dev_metrics", "steps", "data", "seconds", "device",
        "mixed_precision", "main_metric", "history",  # history: the report's learning curves
    )
    return {"dir": str(directory), **{k: summary[k] for k in keep if k in summary}}


def _tasks_used(cfg: ExperimentConfig) -> list[str]:
    names = [cfg.target.task, *cfg.evaluation.retrieval_tasks]
    if cfg.intermediate:
        names[:0] = cfg.intermediate.tasks or [cfg.intermediate.task]  # multi-task: every task
    target = get_task(cfg.target.task)
    if target.train_task:
        names.append(target.train_task)
    return sorted(set(names))
