"""The one training loop every stage runs (intermediate or target, any kind): setup -> train -> cleanup.

Plain code on top of `accelerate` (devices, mixed precision, DDP, gradient accumulation). What differs between
stage kinds (single task, multi-task, continued MLM, captioning, VQA) is an objective (intertask/training/objectives;
the kind is chosen in intertask/training/kinds.py). Every kind gets the same machinery: periodic checkpoints and
bit-exact resume, SIGTERM/SIGINT stop, OOM backoff, the throughput meter, the progress bar and learning curves.
The best checkpoint is chosen on English dev only (strict zero-shot).

The step loop never waits on the host: losses and token counts are summed on the device and read at evaluation and
checkpoint points only. Under several processes (``intertask run --processes N``) each batch of the sampler is split
across the processes (the global batch stays ``batch_size``) and only the main process writes files.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from intertask.config import StageConfig, to_dict
from intertask.errors import IntertaskError
from intertask.io import STAGE_FILE, read_json, write_json_atomic  # STAGE_FILE: re-exported
from intertask.models.loading import load_tokenizer
from intertask.progress import log, progress_bar
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
from intertask.training.kinds import objective_for
from intertask.training.objectives.base import Objective, StageContext, configure_model, fit_task_to_data  # noqa: F401 (re-exported)
from intertask.training.packing import batch_examples  # packing
from intertask.training.tracking import StageTracker


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
    """Train the stage `stage` describes and return its summary (also written to stage_dir/stage.json).

    With `auto_batch_backoff`, a CUDA out-of-memory error restarts the stage with half the batch and
    twice the gradient accumulation (the same effective batch), down to batch size 1.
    """
    if (finished := completed_stage(stage_dir, role, stage.task)) is not None:
        return finished
    objective = objective_for(stage, ctx, role)
    while True:
        try:
            return _train_stage(objective, Path(stage_dir))
        except TrainingOutOfMemory:
            stage = objective.stage
            if not stage.auto_batch_backoff or stage.batch_size == 1:
                raise
            smaller = dataclasses.replace(stage, batch_size=stage.batch_size // 2, gradient_accumulation_steps=stage.gradient_accumulation_steps * 2)
            log(
                f"[yellow]{role} stage {stage.task}: out of memory at batch_size={stage.batch_size}; restarting with "
                f"batch_size={smaller.batch_size} x {smaller.gradient_accumulation_steps} accumulation steps[/yellow]"
            )
            remove_checkpoints(stage_dir)  # their data positions belong to the old batch geometry
            (Path(stage_dir) / BEST).unlink(missing_ok=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            override, objective = objective.summary_override, type(objective)(smaller, ctx, role)
            objective.summary_override = override


def _train_stage(objective: Objective, stage_dir: Path) -> dict[str, Any]:
    stage, ctx, role = objective.stage, objective.ctx, objective.role

    # ---------------------------------------------------------------- setup
    started = time.time()
    set_seed(ctx.seed)
    tracker = StageTracker(ctx.logging)  # tracking
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(ctx.mixed_precision),
        gradient_accumulation_steps=stage.gradient_accumulation_steps,
        cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,  # N CPU processes: gloo
        # N processes share each batch (same global batch); pinned batches are copied to the GPU without blocking
        dataloader_config=DataLoaderConfiguration(split_batches=True, non_blocking=torch.cuda.is_available()),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=objective.find_unused_parameters)],
        **tracker.accelerator_kwargs(stage_dir),  # tracking: **kwargs
    )
    main = accelerator.is_main_process
    say = log if main else (lambda message: None)  # one copy of the stage's messages under several processes
    device = accelerator.device
    tokenizer = load_tokenizer(ctx.model.name_or_path)
    objective.stage_dir = stage_dir
    objective.load(tokenizer)

    set_seed(ctx.seed)  # the head's initialisation depends only on the seed
    model = objective.build_model()
    dataset, sampler, collate = objective.train_data()
    sampler.partial_last = accelerator.num_processes > 1  # accelerate splits full batches only: the short one goes last
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=stage.dataloader_workers,
        pin_memory=device.type == "cuda",  # page-locked host batches: asynchronous host->GPU copies
        persistent_workers=stage.dataloader_workers > 0,
    )
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if not objective.no_decay(n)], "weight_decay": stage.weight_decay},
            {"params": [p for n, p in named if objective.no_decay(n)], "weight_decay": 0.0},
        ],
        lr=stage.learning_rate,
        fused=objective.fused_optimizer and device.type in ("cuda", "cpu"),  # one kernel for all parameters
    )
    steps_per_epoch = max(1, math.ceil(len(sampler) / stage.gradient_accumulation_steps))
    total_steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(stage.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    eval_every = stage.eval_every_steps or steps_per_epoch
    checkpoint_every = stage.checkpoint_every_steps or eval_every

    # ---------------------------------------------------------------- train
    say(f"[bold]{role} stage[/bold] {objective.describe()}, {total_steps} steps")
    tracker.start(accelerator, f"{role}-{objective.name}-{stage_dir.name}", to_dict(stage))  # tracking
    progress = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "history": [], "best": {"score": -math.inf, "step": None, "metrics": None},
                "loss_sum": 0.0, "loss_count": 0, "objective": {}}  # fmt: skip
    resumed = load_latest_checkpoint(stage_dir)
    if resumed is not None:
        accelerator.unwrap_model(model).load_state_dict(resumed["model"], strict=False)
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        progress = resumed["progress"]
        objective.load_state(progress["objective"])
        say(f"{role} stage {objective.name}: resuming from step {progress['step']}")

    # Device accumulators (read at evaluation / checkpoint points only): mean training loss, real tokens.
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    loss_sum = torch.tensor(progress["loss_sum"], dtype=acc_dtype, device=device)
    tokens = torch.zeros((), dtype=torch.long, device=device)
    loss = torch.zeros((), device=device)

    def checkpoint() -> None:
        progress["loss_sum"] = float(loss_sum.item())
        progress["objective"] = objective.state()
        if main:
            weights = trainable_state(accelerator.unwrap_model(model))
            state = {"model": weights, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "progress": progress, "rng": rng_state()}
            save_checkpoint(stage_dir, progress["step"], state)

    meter: dict[str, Any] = {"seconds": 0.0, "cpu_seconds": 0.0, "tokens": 0, "examples": 0, "steps": 0, "mean_loss": None}
    excluded = [0.0, 0.0]  # evaluation and checkpoint time, left out of the throughput
    loop_start = (time.perf_counter(), time.process_time())
    model.train()
    with stop_requests() as stop, progress_bar(f"{role}: {objective.name}", total=total_steps, unit="steps") as advance:
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
                progress["loss_count"] += 1
                if "attention_mask" in batch:
                    tokens += batch["attention_mask"].sum()
                meter["examples"] += batch_examples(batch) if "input_ids" in batch else 0  # packing: rows hold several examples
                with accelerator.accumulate(model), oom_guard(batch, stage):
                    loss = objective.loss(model, batch)
                    grad_norm = backward_and_step(accelerator, model, loss, optimizer, scheduler, stage.max_grad_norm)  # tracking: grad_norm =
                tracker.batch(loss, batch)  # tracking
                objective.observe(batch, loss)
                loss_sum += loss.detach().to(acc_dtype)
                if not accelerator.sync_gradients:
                    continue
                progress["step"] += 1
                step = progress["step"]
                tracker.step(step, scheduler.get_last_lr()[0], grad_norm)  # tracking
                paused = (time.perf_counter(), time.process_time())
                if step % eval_every == 0 or step == total_steps:
                    scores = objective.evaluate(accelerator.unwrap_model(model), device)
                    model.train()
                    loss_now = accelerator.reduce(loss.detach().float(), "mean").item()  # the last micro-batch's, over processes
                    entry = {"step": step, "epoch": progress["epoch"], "loss": loss_now, **scores, **objective.history_extras()}
                    progress["history"].append(entry)
                    tracker.evaluation(step, scores)  # tracking
                    advance(0, loss=entry["loss"], dev=scores[objective.main_metric])  # read at evaluation points only
                    if scores[objective.main_metric] > progress["best"]["score"]:
                        progress["best"] = {"score": scores[objective.main_metric], "step": step, "metrics": scores}
                        if main:
                            save_torch_atomic(trainable_state(accelerator.unwrap_model(model)), stage_dir / BEST)
                if step % checkpoint_every == 0 or stop["signal"]:
                    checkpoint()
                excluded[0] += time.perf_counter() - paused[0]
                excluded[1] += time.process_time() - paused[1]
                advance()
                fault_point(f"{role}:step:{step}")
                if stop["signal"]:
                    raise StageInterrupted(f"{role} stage {objective.name} stopped by {stop['signal']} at step {step}; checkpoint saved in {stage_dir}; "
                                           "re-run the same command to resume")  # fmt: skip
                if step >= total_steps:
                    break
            else:
                progress["epoch"] += 1
                progress["batches_in_epoch"] = 0

    tracker.close()  # tracking
    meter["seconds"] = round(time.perf_counter() - loop_start[0] - excluded[0], 3)
    meter["cpu_seconds"] = round(time.process_time() - loop_start[1] - excluded[1], 3)
    meter["tokens"] = int(accelerator.reduce(tokens, "sum").item())  # every process's share
    meter["examples"] = int(accelerator.reduce(torch.tensor(meter["examples"], device=device), "sum").item())
    count = progress["loss_count"]
    meter["mean_loss"] = float(accelerator.reduce(loss_sum, "mean").item()) / count if count else None  # mean training loss per batch (as Trainer's train_loss)
    meter["steps"] = progress["step"]
    meter["tokens_per_second"] = round(meter["tokens"] / meter["seconds"], 1) if meter["seconds"] > 0 else None

    # ---------------------------------------------------------------- cleanup
    best, history, step = progress["best"], progress["history"], progress["step"]
    summary = {
        "role": role,
        **objective.summary(),
        "config": to_dict(stage),
        "best_step": best["step"],
        "dev_metrics": objective.dev_metrics(best["metrics"]),
        "main_metric": objective.main_metric,
        "history": history,
        "steps": step,
        "seconds": round(time.time() - started, 1),
        "mixed_precision": accelerator.mixed_precision,
        "throughput": meter,
        "device": str(device),
        "processes": accelerator.num_processes,
    }
    summary.update(objective.summary_override)  # e.g. a size-matched text control reports as its multimodal stage
    if main:
        final = accelerator.unwrap_model(model)
        final.load_state_dict(torch.load(stage_dir / BEST, map_location="cpu", weights_only=True), strict=False)
        objective.save(final, stage_dir, tokenizer)
        write_json_atomic(stage_dir / STAGE_FILE, summary)
        remove_checkpoints(stage_dir)
        (stage_dir / BEST).unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    say(f"{role} stage {objective.name}: best {objective.main_metric}={best['score']:.4f} at step {best['step']} ({summary['seconds']} s)")
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


def backward_and_step(accelerator: Accelerator, model: torch.nn.Module, loss: torch.Tensor, optimizer, scheduler, max_grad_norm: float) -> torch.Tensor | None:
    """One micro-batch (call inside ``accelerator.accumulate``): gradients are clipped only when they are
    synchronised; accelerate skips the optimiser/scheduler step until then.
    Returns the gradient norm before clipping (a device tensor, not read here) on synchronising micro-batches, else None."""
    accelerator.backward(loss)
    grad_norm = None
    if accelerator.sync_gradients:
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return grad_norm
