"""Multi-task intermediate training: several tasks, one shared encoder, one head per task.

* Each task's head model is built as for a single-task stage (``build_model``); then every model's encoder
  attribute (``model.roberta`` / ``model.bert``: ``base_model_prefix``) is pointed at one shared encoder module.
  A multiple-choice head's encoder (which has a pooler) is preferred as the shared one, so its pooler exists.
* A sampler draws the task of each batch (:func:`task_probabilities`: uniform, proportional, temperature, capped)
  and takes that task's next length-grouped batch; each task reshuffles its own epochs independently.
* Every evaluation scores each task's English dev set; the best checkpoint is the one with the highest mean of
  the tasks' main metrics (``mean_main``). History entries carry per-task mean losses and batch counts.
* Checkpoint format: ``model/`` is the bare shared encoder (``config.json`` + ``model.safetensors`` without a
  prefix) and the tokenizer, so ``build_model(..., init_encoder_from=stage_dir)`` and ``load_encoder`` work
  unchanged; ``heads/<task>.safetensors`` hold each head's own weights (without the encoder) and
  ``heads/<task>.json`` its labels, for anyone who wants the task models back.

The stage runs on one process (CPU or one GPU); multi-process DDP is not supported for multi-task stages.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import save_file
from transformers import get_linear_schedule_with_warmup

from intertask.config import SamplingConfig, StageConfig, to_dict
from intertask.data.batching import length_grouped_batches
from intertask.data.loading import has_data, load_examples
from intertask.errors import ConfigError
from intertask.evaluation.evaluate import evaluate_examples
from intertask.io import write_json_atomic
from intertask.models.loading import MODEL_DIR, build_model, load_tokenizer
from intertask.progress import log, progress_bar
from intertask.tasks import get_task
from intertask.training.recipe import STAGE_FILE, StageContext, _no_decay, backward_and_step, completed_stage, configure_model, fit_task_to_data, resolve_mixed_precision

MULTITASK = "multitask"
HEADS_DIR = "heads"
_NOT_TRAINABLE = ("retrieval", "masked_lm")


def is_multitask(stage: StageConfig | None) -> bool:
    return stage is not None and (bool(stage.tasks) or stage.task == MULTITASK)


# ----------------------------------------------------------------------------- sampling


def task_probabilities(sizes: Mapping[str, int], sampling: SamplingConfig | None) -> dict[str, float]:
    """Probability of drawing each task's batch next, from the tasks' training-set sizes.

    uniform: 1/K; proportional: n_i / sum n; temperature T: n_i^(1/T) normalised; capped: min(n_i, cap) normalised.
    """
    sampling = sampling or SamplingConfig()
    if not sizes:
        raise ConfigError("multi-task sampling: no tasks")
    if any(n <= 0 for n in sizes.values()):
        raise ConfigError(f"multi-task sampling: every task needs training examples, got {dict(sizes)}")
    if sampling.strategy == "uniform":
        weights = {t: 1.0 for t in sizes}
    elif sampling.strategy == "proportional":
        weights = {t: float(n) for t, n in sizes.items()}
    elif sampling.strategy == "temperature":
        if sampling.temperature <= 0:
            raise ConfigError(f"sampling.temperature must be > 0, got {sampling.temperature}")
        weights = {t: float(n) ** (1.0 / sampling.temperature) for t, n in sizes.items()}
    elif sampling.strategy == "capped":
        if sampling.cap is None or sampling.cap <= 0:
            raise ConfigError("sampling.cap: the capped strategy needs a positive cap (examples per task)")
        weights = {t: float(min(n, sampling.cap)) for t, n in sizes.items()}
    else:  # pragma: no cover - the config type forbids it
        raise ConfigError(f"unknown sampling strategy {sampling.strategy!r}")
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class MultiTaskBatches:
    """Endless (task, row indices) batches: the task drawn with `probabilities` (seeded), then that task's next
    length-grouped batch; a task whose batches run out starts a new epoch of its own, reshuffled."""

    def __init__(self, lengths: Mapping[str, list[int]], batch_size: int, probabilities: Mapping[str, float], seed: int):
        self.lengths, self.batch_size, self.seed = dict(lengths), batch_size, seed
        self.tasks = list(probabilities)
        self.weights = [probabilities[t] for t in self.tasks]

    def batches_per_epoch(self) -> int:
        return sum(math.ceil(len(v) / self.batch_size) for v in self.lengths.values())

    def __iter__(self) -> Iterator[tuple[str, list[int]]]:
        rng = random.Random(self.seed)
        epochs = {t: 0 for t in self.tasks}
        queues: dict[str, list[list[int]]] = {t: [] for t in self.tasks}
        while True:
            task = rng.choices(self.tasks, weights=self.weights)[0]
            if not queues[task]:
                queues[task] = length_grouped_batches(self.lengths[task], self.batch_size, self.seed + 1000 * epochs[task] + self.tasks.index(task))
                queues[task].reverse()
                epochs[task] += 1
            yield task, queues[task].pop()


# ----------------------------------------------------------------------------- model


class MultiTaskModel(torch.nn.Module):
    """One head model per task, all sharing the same encoder module."""

    def __init__(self, models: Mapping[str, Any]):
        super().__init__()
        self.models = torch.nn.ModuleDict(dict(models))
        first = next(iter(self.models.values()))
        self.prefix = first.base_model_prefix
        has_pooler = [m for m in self.models.values() if getattr(m.base_model, "pooler", None) is not None]
        self.encoder = (has_pooler[0] if has_pooler else first).base_model
        for model in self.models.values():
            if model.base_model_prefix != self.prefix:
                raise ConfigError("multi-task: every head must be built on the same encoder type")
            setattr(model, model.base_model_prefix, self.encoder)

    def forward(self, task: str, **batch: Any):
        return self.models[task](**batch)

    def head_state(self, task: str) -> dict[str, torch.Tensor]:
        prefix = self.prefix + "."
        return {k: v for k, v in self.models[task].state_dict().items() if not k.startswith(prefix)}

    def snapshot(self) -> dict[str, Any]:
        copy = lambda sd: {k: v.detach().to("cpu", copy=True) for k, v in sd.items()}  # noqa: E731
        return {"encoder": copy(self.encoder.state_dict()), "heads": {t: copy(self.head_state(t)) for t in self.models}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.encoder.load_state_dict(snap["encoder"])
        for t, state in snap["heads"].items():
            self.models[t].load_state_dict(state, strict=False)


# ----------------------------------------------------------------------------- validation


def validate_multitask_stage(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
    if role != "intermediate":
        raise ConfigError(f"{role}: multi-task training is for the intermediate stage only")
    if stage.task not in ("", MULTITASK):
        raise ConfigError(f"{role}.task: with {role}.tasks set, leave task empty or set it to {MULTITASK!r} (got {stage.task!r})")
    if len(stage.tasks) < 2:
        raise ConfigError(f"{role}.tasks: multi-task training needs at least two tasks, got {stage.tasks}")
    if len(set(stage.tasks)) != len(stage.tasks):
        raise ConfigError(f"{role}.tasks: a task is listed twice: {stage.tasks}")
    for name in stage.tasks:
        task = get_task(name)
        if not task.can_play("intermediate"):
            raise ConfigError(f"{role}.tasks: task {name} cannot be used as intermediate task (roles: {', '.join(sorted(task.roles))})")
        from intertask.multimodal.tasks import multimodal_spec

        if task.head.name in _NOT_TRAINABLE or multimodal_spec(name) is not None:
            raise ConfigError(f"{role}.tasks: {name} ({task.head.name}) cannot be part of multi-task training")
        if stage.language not in task.languages:
            raise ConfigError(f"{role}.language: task {name} has no language {stage.language!r}")
        if check_data and data_source == "local":
            train_task = get_task(task.train_task) if task.train_task else task
            for split_task, split in ((train_task, "train"), (task, "dev")):
                if not has_data(split_task, split, stage.language, data_dir):
                    paths = split_task.local.paths(data_dir, split, stage.language) if split_task.local and split in split_task.local.files else ["(no local layout)"]
                    raise ConfigError(f"{role}: {split_task.name} {split} data for {stage.language!r} not found: {', '.join(map(str, paths))}")
    sampling = stage.sampling or SamplingConfig()
    task_probabilities({t: 1 for t in stage.tasks}, sampling)  # checks temperature / cap
    return [f"multi-task intermediate: {', '.join(stage.tasks)} (sampling: {sampling.strategy})"]


# ----------------------------------------------------------------------------- dispatch (used by the pipeline)


def intermediate_runner(stage: StageConfig):
    """The function that runs this intermediate stage: multi-task, continued MLM, or the single-task recipe."""
    if is_multitask(stage):
        return run_multitask_stage
    from intertask.training.mlm import is_mlm, run_mlm_stage

    if is_mlm(stage):
        return run_mlm_stage
    from intertask.training.recipe import run_stage

    return run_stage


def validate_special_stage(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str] | None:
    """Validation of a multi-task or MLM stage (notes), or None for an ordinary single-task stage."""
    from intertask.training.mlm import is_mlm, validate_mlm_stage

    if is_multitask(stage):
        return validate_multitask_stage(stage, role, data_dir, data_source, check_data)
    if is_mlm(stage):
        return validate_mlm_stage(stage, role, data_dir, data_source, check_data)
    return None


# ----------------------------------------------------------------------------- the stage


def run_multitask_stage(stage: StageConfig, ctx: StageContext, stage_dir: Path, role: str) -> dict[str, Any]:
    """Train the shared encoder on every task of `stage.tasks`; writes model/, heads/ and stage.json."""
    stage_dir = Path(stage_dir)
    done = stage_dir / STAGE_FILE
    if (finished := completed_stage(stage_dir, role, MULTITASK)) is not None:
        return finished
    validate_multitask_stage(stage, role, ctx.data_dir, ctx.data_source, check_data=False)

    # ---------------------------------------------------------------- setup
    started = time.time()
    set_seed(ctx.seed)
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(ctx.mixed_precision), gradient_accumulation_steps=stage.gradient_accumulation_steps)
    device = accelerator.device
    tokenizer = load_tokenizer(ctx.model.name_or_path)
    max_length = stage.max_seq_length or ctx.model.max_seq_length

    tasks, data, features = {}, {}, {}
    for name in stage.tasks:
        task = get_task(name)
        train_task = get_task(task.train_task) if task.train_task else task
        train = load_examples(train_task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
        dev = load_examples(task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
        task = fit_task_to_data(task, train, dev)
        feats = task.head.featurize(train.examples, tokenizer, task, max_length, train=True, doc_stride=stage.doc_stride)
        if len(feats) == 0:
            raise ConfigError(f"{role} stage {MULTITASK}: task {name} has no training examples after featurisation")
        tasks[name], data[name], features[name] = task, (train, dev), feats

    sizes = {t: len(data[t][0].examples) for t in tasks}
    probabilities = task_probabilities(sizes, stage.sampling)
    set_seed(ctx.seed)  # head initialisation depends only on the seed
    model = MultiTaskModel({t: build_model(tasks[t], ctx.model.name_or_path, stage.init_encoder_from, ctx.model.freeze_embeddings) for t in tasks})
    for head_model in model.models.values():
        configure_model(head_model, ctx.model)  # attention kernel / torch.compile, as the recipe does
    params = list(model.named_parameters())  # shared encoder parameters once
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in params if p.requires_grad and not _no_decay(n)], "weight_decay": stage.weight_decay},
            {"params": [p for n, p in params if p.requires_grad and _no_decay(n)], "weight_decay": 0.0},
        ],
        lr=stage.learning_rate,
    )
    sampler = MultiTaskBatches({t: features[t].lengths() for t in tasks}, stage.batch_size, probabilities, ctx.seed)
    steps_per_epoch = max(1, math.ceil(sampler.batches_per_epoch() / stage.gradient_accumulation_steps))
    total_steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(stage.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    inner: MultiTaskModel = accelerator.unwrap_model(model)
    eval_every = stage.eval_every_steps or steps_per_epoch

    def evaluate_dev() -> dict[str, dict[str, float]]:
        return {
            t: evaluate_examples(inner.models[t], tokenizer, tasks[t], data[t][1].examples, stage.language, max_length, stage.eval_batch_size, device, stage.doc_stride, f"{t} dev")
            for t in tasks
        }

    # ---------------------------------------------------------------- train
    log(f"[bold]{role} stage[/bold] {MULTITASK}: " + ", ".join(f"{t} {sizes[t]} ({probabilities[t]:.3f})" for t in tasks) + f"; {total_steps} steps")
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf}
    loss_sum = {t: 0.0 for t in tasks}
    loss_n = {t: 0 for t in tasks}
    step = 0
    model.train()
    batches = iter(sampler)
    with progress_bar(f"{role}: {MULTITASK}", total=total_steps) as advance:
        while step < total_steps:
            name, idx = next(batches)
            batch = tasks[name].head.collate([features[name].inputs[i] for i in idx], tokenizer)
            batch = {k: v.to(device) for k, v in batch.items()}
            with accelerator.accumulate(model):
                loss = model(name, **batch).loss
                backward_and_step(accelerator, model, loss, optimizer, scheduler, stage.max_grad_norm)
            loss_sum[name] += loss.item()
            loss_n[name] += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            advance(loss=loss.item())
            if step % eval_every == 0 or step == total_steps:
                dev_scores = evaluate_dev()
                model.train()
                mean_main = sum(dev_scores[t][tasks[t].main_metric] for t in tasks) / len(tasks)
                n = sum(loss_n.values())
                history.append({
                    "step": step,
                    "loss": sum(loss_sum.values()) / max(1, n),
                    "task_losses": {t: loss_sum[t] / loss_n[t] for t in tasks if loss_n[t]},
                    "task_batches": dict(loss_n),
                    "mean_main": mean_main,
                    "dev": dev_scores,
                })  # fmt: skip
                loss_sum = {t: 0.0 for t in tasks}
                loss_n = {t: 0 for t in tasks}
                if mean_main > best["score"]:
                    best = {"score": mean_main, "step": step, "dev": dev_scores, "state": inner.snapshot()}

    # ---------------------------------------------------------------- cleanup
    inner.restore(best.pop("state"))
    inner.encoder.save_pretrained(stage_dir / MODEL_DIR)
    tokenizer.save_pretrained(stage_dir / MODEL_DIR)
    (stage_dir / HEADS_DIR).mkdir(parents=True, exist_ok=True)
    for t in tasks:
        save_file({k: v.contiguous() for k, v in inner.head_state(t).items()}, str(stage_dir / HEADS_DIR / f"{t}.safetensors"))
        write_json_atomic(stage_dir / HEADS_DIR / f"{t}.json", {"task": t, "head": tasks[t].head.name, "labels": list(tasks[t].labels), "model_class": type(inner.models[t]).__name__})
    dev_metrics: dict[str, float] = {"mean_main": best["score"]}
    for t, scores in best["dev"].items():
        dev_metrics.update({f"{t}/{k}": v for k, v in scores.items()})
    summary = {
        "role": role,
        "task": MULTITASK,
        "tasks": list(tasks),
        "task_versions": {t: tasks[t].version for t in tasks},
        "config": to_dict(stage),
        "sampling": {"strategy": (stage.sampling or SamplingConfig()).strategy, "sizes": sizes, "probabilities": probabilities},
        "best_step": best["step"],
        "dev_metrics": dev_metrics,
        "main_metric": "mean_main",
        "main_metrics": {t: tasks[t].main_metric for t in tasks},
        "history": history,
        "steps": step,
        "data": {t: {"train": data[t][0].report(), "dev": data[t][1].report(), "train_rows": len(features[t])} for t in tasks},
        "notes": [
            "model/ holds the bare shared encoder (encoder-only hand-off); heads/<task>.safetensors hold each task's head",
            "best checkpoint by the mean of the tasks' main dev metrics (English dev)",
        ],
        "seconds": round(time.time() - started, 1),
        "mixed_precision": accelerator.mixed_precision,
        "device": str(device),
    }
    write_json_atomic(done, summary)
    accelerator.free_memory()
    log(f"{role} stage {MULTITASK}: best mean main metric {best['score']:.4f} at step {best['step']} ({summary['seconds']} s)")
    return summary
