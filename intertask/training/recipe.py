"""The one fine-tuning recipe every stage runs (intermediate or target): setup -> train -> cleanup.

Plain code on top of `accelerate` (devices, mixed precision, DDP, gradient accumulation).
The best checkpoint is chosen on the task's English dev set only (strict zero-shot).
"""

from __future__ import annotations

import functools
import dataclasses
import itertools
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from intertask.config import LoggingConfig, ModelConfig, StageConfig, to_dict
from intertask.data.batching import length_grouped_batches
from intertask.data.cache import featurize_cached
from intertask.data.loading import load_examples
from intertask.errors import ConfigError, IntertaskError
from intertask.evaluation.evaluate import evaluate_examples
from intertask.io import STAGE_FILE, read_json, write_json_atomic  # STAGE_FILE: re-exported
from intertask.models.loading import MODEL_DIR, build_model, load_tokenizer
from intertask.progress import log, progress_bar
from intertask.tasks import get_task
from intertask.training.checkpoint import (
    BEST,
    StageInterrupted,
    fault_point,
    load_latest_checkpoint,
    remove_checkpoints,
    rng_state,
    save_checkpoint,
    save_torch_atomic,
    set_rng_state,
    stop_requests,
    trainable_state,
)
from intertask.training.packing import batch_examples, training_collate  # packing
from intertask.training.tracking import StageTracker


@dataclass
class StageContext:
    """Run-level settings a stage needs besides its own hyperparameters."""

    model: ModelConfig
    seed: int
    data_dir: Path
    data_source: str = "local"
    mixed_precision: str = "auto"
    logging: LoggingConfig | None = None  # learning curves (intertask/training/tracking.py)


class EpochBatches:
    """Length-grouped batch sampler, reshuffled per epoch (accelerate shards it under DDP)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(length_grouped_batches(self.lengths, self.batch_size, self.seed + self.epoch))

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def resolve_mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"  # CPU autocast is slower than fp32 for these models on most CPUs


def completed_stage(stage_dir: Path, role: str, name: str) -> dict[str, Any] | None:
    """The summary of a stage that already finished (stage.json is written last), else None."""
    from rich.markup import escape

    from intertask.io import stage_summary

    summary, problem = stage_summary(stage_dir)
    if summary is None:
        if problem:  # a stage.json of the wrong shape is not a finished stage: train it again (resuming any checkpoint)
            log(f"[yellow]{escape(role)} stage {escape(name)}: {escape(problem)}; not complete, training it again[/yellow]")
        return None
    log(f"[dim]{escape(role)} stage {escape(name)}: complete in {escape(str(stage_dir))}, reusing it[/dim]")
    return read_json(Path(stage_dir) / STAGE_FILE)  # the file stage_summary checked


def run_stage(stage: StageConfig, ctx: StageContext, stage_dir: Path, role: str) -> dict[str, Any]:
    """Fine-tune `stage.task` and return the stage summary (also written to stage_dir/stage.json).

    With `auto_batch_backoff`, a CUDA out-of-memory error restarts the stage with half the batch and
    twice the gradient accumulation (the same effective batch), down to batch size 1.
    """
    while True:
        try:
            return _train_stage(stage, ctx, stage_dir, role)
        except TrainingOutOfMemory:
            if not stage.auto_batch_backoff or stage.batch_size == 1:
                raise
            smaller = dataclasses.replace(stage, batch_size=stage.batch_size // 2, gradient_accumulation_steps=stage.gradient_accumulation_steps * 2)
            log(f"[yellow]{role} stage {stage.task}: out of memory at batch_size={stage.batch_size}; restarting with batch_size={smaller.batch_size} x {smaller.gradient_accumulation_steps} accumulation steps[/yellow]")
            remove_checkpoints(stage_dir)  # their data positions belong to the old batch geometry
            (Path(stage_dir) / BEST).unlink(missing_ok=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            stage = smaller


def _train_stage(stage: StageConfig, ctx: StageContext, stage_dir: Path, role: str) -> dict[str, Any]:
    stage_dir = Path(stage_dir)
    done = stage_dir / STAGE_FILE
    if (finished := completed_stage(stage_dir, role, stage.task)) is not None:
        return finished

    # ---------------------------------------------------------------- setup
    started = time.time()
    task = get_task(stage.task)
    if not task.can_play(role):
        raise ConfigError(f"task {task.name} cannot be used as {role} task (roles: {', '.join(sorted(task.roles))})")
    set_seed(ctx.seed)
    tracker = StageTracker(ctx.logging)  # tracking
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(ctx.mixed_precision), gradient_accumulation_steps=stage.gradient_accumulation_steps, **tracker.accelerator_kwargs(stage_dir))  # tracking: **kwargs
    tokenizer = load_tokenizer(ctx.model.name_or_path)
    max_length = stage.max_seq_length or ctx.model.max_seq_length

    train_task = get_task(task.train_task) if task.train_task else task
    train = load_examples(train_task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
    dev = load_examples(task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
    task = fit_task_to_data(task, train, dev)  # CCG: supertag set from the training data
    # Tokenise once: cached on disk by (tokenizer, task, split, language, lengths, examples) -- see intertask/data/cache.py
    train_features = featurize_cached(task, train.examples, tokenizer, max_length, True, stage.doc_stride, "train", stage.language, train.files)
    if len(train_features) == 0:
        raise ConfigError(f"{role} stage {task.name}: no training examples after featurisation")

    set_seed(ctx.seed)  # the head's initialisation depends only on the seed
    model = build_model(task, ctx.model.name_or_path, stage.init_encoder_from, ctx.model.freeze_embeddings)
    configure_model(model, ctx.model)
    sampler = EpochBatches(train_features.lengths(), stage.batch_size, ctx.seed)
    collate = training_collate(task.head, tokenizer, stage, max_length, model, functools.partial(_collate, task.head, tokenizer))  # packing / buckets
    loader = DataLoader(
        train_features.inputs,
        batch_sampler=sampler,
        collate_fn=collate,  # packing / buckets
        num_workers=stage.dataloader_workers,
        pin_memory=accelerator.device.type == "cuda",  # async host->GPU copies
        persistent_workers=stage.dataloader_workers > 0,
    )
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not _no_decay(n)]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and _no_decay(n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": stage.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=stage.learning_rate,
        fused=accelerator.device.type in ("cuda", "cpu"),  # one kernel for all parameters (Trainer's default too)
    )
    steps_per_epoch = math.ceil(len(sampler) / stage.gradient_accumulation_steps)
    total_steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(stage.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    eval_every = stage.eval_every_steps or steps_per_epoch

    def evaluate_dev() -> dict[str, float]:
        unwrapped = accelerator.unwrap_model(model)
        return evaluate_examples(unwrapped, tokenizer, task, dev.examples, stage.language, max_length, stage.eval_batch_size, accelerator.device, stage.doc_stride, f"{task.name} dev")

    # ---------------------------------------------------------------- train
    log(f"[bold]{role} stage[/bold] {task.name}: {len(train.examples)} train examples ({len(train_features)} rows), {len(dev.examples)} dev, {total_steps} steps")
    checkpoint_every = stage.checkpoint_every_steps or eval_every
    tracker.start(accelerator, f"{role}-{task.name}-{stage_dir.name}", to_dict(stage))  # tracking
    progress = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "history": [], "best": {"score": -math.inf, "step": None, "metrics": None}}
    resumed = load_latest_checkpoint(stage_dir)
    if resumed is not None:
        accelerator.unwrap_model(model).load_state_dict(resumed["model"], strict=False)
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        progress = resumed["progress"]
        log(f"{role} stage {task.name}: resuming from step {progress['step']}")

    def checkpoint() -> None:
        state = {"model": trainable_state(accelerator.unwrap_model(model)), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "progress": progress, "rng": rng_state()}
        save_checkpoint(stage_dir, progress["step"], state)

    running_loss = 0.0
    # Throughput of the training loop itself (evaluation and checkpoint writing excluded): real (non-padding) tokens.
    meter = {"seconds": 0.0, "cpu_seconds": 0.0, "tokens": 0, "examples": 0, "steps": 0, "mean_loss": None}
    loss_sum, loss_count = 0.0, 0
    tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    excluded = [0.0, 0.0]
    loop_start = (time.perf_counter(), time.process_time())
    model.train()
    with stop_requests() as stop, progress_bar(f"{role}: {task.name}", total=total_steps) as advance:
        advance(progress["step"])
        while progress["step"] < total_steps:
            sampler.set_epoch(progress["epoch"])
            skip = progress["batches_in_epoch"]
            batches = iter(accelerator.skip_first_batches(loader, skip) if skip else loader)
            first = next(batches, None)  # iterator set-up may draw random numbers: restore RNG after it
            if resumed is not None:
                set_rng_state(resumed.pop("rng"))
                resumed = None
            for batch in itertools.chain([first], batches) if first is not None else ():
                progress["batches_in_epoch"] += 1
                tokens += batch["attention_mask"].sum()
                meter["examples"] += batch_examples(batch)  # packing: rows hold several examples
                with accelerator.accumulate(model), oom_guard(batch, stage):
                    loss = model(**batch).loss
                    grad_norm = backward_and_step(accelerator, model, loss, optimizer, scheduler, stage.max_grad_norm)  # tracking: grad_norm =
                tracker.batch(loss, batch)  # tracking
                loss_value = loss.item()
                running_loss += loss_value
                loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
                if not accelerator.sync_gradients:
                    continue
                progress["step"] += 1
                step = progress["step"]
                tracker.step(step, scheduler.get_last_lr()[0], grad_norm)  # tracking
                advance(loss=running_loss / stage.gradient_accumulation_steps)
                running_loss = 0.0
                paused = (time.perf_counter(), time.process_time())
                if step % eval_every == 0 or step == total_steps:
                    scores = evaluate_dev()
                    model.train()
                    progress["history"].append({"step": step, "epoch": progress["epoch"], "loss": loss.item(), **scores})
                    tracker.evaluation(step, scores)  # tracking
                    if scores[task.main_metric] > progress["best"]["score"]:
                        progress["best"] = {"score": scores[task.main_metric], "step": step, "metrics": scores}
                        save_torch_atomic(trainable_state(accelerator.unwrap_model(model)), stage_dir / BEST)
                if step % checkpoint_every == 0 or stop["signal"]:
                    checkpoint()
                excluded[0] += time.perf_counter() - paused[0]
                excluded[1] += time.process_time() - paused[1]
                fault_point(f"{role}:step:{step}")
                if stop["signal"]:
                    raise StageInterrupted(f"{role} stage {task.name} stopped by {stop['signal']} at step {step}; checkpoint saved in {stage_dir}; re-run the same command to resume")
                if step >= total_steps:
                    break
            else:
                progress["epoch"] += 1
                progress["batches_in_epoch"] = 0

    tracker.close()  # tracking
    meter["seconds"] = round(time.perf_counter() - loop_start[0] - excluded[0], 3)
    meter["cpu_seconds"] = round(time.process_time() - loop_start[1] - excluded[1], 3)
    meter["tokens"] = int(tokens.item())
    meter["mean_loss"] = loss_sum / loss_count if loss_count else None  # mean training loss per batch (as Trainer's train_loss)
    meter["steps"] = progress["step"]
    meter["tokens_per_second"] = round(meter["tokens"] / meter["seconds"], 1) if meter["seconds"] > 0 else None

    # ---------------------------------------------------------------- cleanup
    best, history, step = progress["best"], progress["history"], progress["step"]
    final = accelerator.unwrap_model(model)
    final.load_state_dict(torch.load(stage_dir / BEST, map_location="cpu"), strict=False)
    final.save_pretrained(stage_dir / MODEL_DIR)
    tokenizer.save_pretrained(stage_dir / MODEL_DIR)
    summary = {
        "role": role,
        "task": task.name,
        "task_version": task.version,
        "train_task": train_task.name,
        "config": to_dict(stage),
        "best_step": best["step"],
        "dev_metrics": best["metrics"],
        "main_metric": task.main_metric,
        "history": history,
        "steps": step,
        "data": {"train": train.report(), "dev": dev.report(), "train_rows": len(train_features)},
        "seconds": round(time.time() - started, 1),
        "mixed_precision": accelerator.mixed_precision,
        "throughput": meter,
        "device": str(accelerator.device),
    }
    write_json_atomic(done, summary)
    remove_checkpoints(stage_dir)
    (stage_dir / BEST).unlink(missing_ok=True)
    accelerator.free_memory()
    log(f"{role} stage {task.name}: best {task.main_metric}={best['score']:.4f} at step {best['step']} ({summary['seconds']} s)")
    return summary


@contextmanager
def oom_guard(batch: dict, stage: StageConfig) -> Iterator[None]:
    """Turn a CUDA out-of-memory error into a message naming the batch geometry that caused it."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        ids = batch.get("input_ids")
        shape = tuple(ids.shape) if ids is not None else "?"
        raise TrainingOutOfMemory(
            f"CUDA out of memory at batch_size={stage.batch_size} (input shape {shape}, max_seq_length={stage.max_seq_length}); "
            f"lower batch_size and raise gradient_accumulation_steps to keep the effective batch "
            f"(e.g. batch_size={max(1, stage.batch_size // 2)} gradient_accumulation_steps={stage.gradient_accumulation_steps * 2})"
        ) from exc


class TrainingOutOfMemory(IntertaskError):
    pass


def configure_model(model: torch.nn.Module, cfg: ModelConfig) -> torch.nn.Module:
    """Attention kernel and optional torch.compile (in place: parameter names stay unchanged for checkpoints)."""
    if cfg.attn_implementation and getattr(model.config, "_attn_implementation", None) != cfg.attn_implementation:
        model.set_attn_implementation(cfg.attn_implementation)
    if cfg.torch_compile:
        model.compile()  # nn.Module.compile: compiles forward, keeps the state_dict keys
    return model


def _collate(head: Any, tokenizer: Any, rows: list[dict]) -> dict:
    return head.collate(rows, tokenizer)  # a module-level function: picklable for data-loader workers


def backward_and_step(accelerator: Accelerator, model: torch.nn.Module, loss: torch.Tensor, optimizer, scheduler, max_grad_norm: float) -> torch.Tensor | None:
    """One micro-batch of every stage runner (call inside ``accelerator.accumulate``): gradients are
    clipped only when they are synchronised; accelerate skips the optimiser/scheduler step until then.
    Returns the gradient norm before clipping (a device tensor, not read here) on synchronising micro-batches, else None."""
    accelerator.backward(loss)
    grad_norm = None
    if accelerator.sync_gradients:
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return grad_norm


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name


def fit_task_to_data(task: Any, train: Any, *others: Any) -> Any:
    """Tasks whose label set comes from their training data (``fit_labels``, e.g. CCG supertags): fit it on the
    train examples and map labels unseen in train to the task's unknown label in every split. Others: unchanged."""
    fit = getattr(task, "fit_labels", None)
    if fit is None:
        return task
    fitted = fit(train.examples)
    for data in (train, *others):
        data.examples = fitted.map_unknown_labels(data.examples)
    return fitted
