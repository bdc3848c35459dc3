"""The one fine-tuning recipe every stage runs (intermediate or target): setup -> train -> cleanup.

Plain code on top of `accelerate` (devices, mixed precision, DDP, gradient accumulation).
The best checkpoint is chosen on the task's English dev set only (strict zero-shot).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from intertask.config import ModelConfig, StageConfig, to_dict
from intertask.data.batching import length_grouped_batches
from intertask.data.loading import load_examples
from intertask.errors import ConfigError
from intertask.evaluation.evaluate import evaluate_examples
from intertask.io import read_json, write_json_atomic
from intertask.models.loading import MODEL_DIR, build_model, load_tokenizer
from intertask.progress import log, progress_bar
from intertask.tasks import get_task

STAGE_FILE = "stage.json"  # written last: its presence means the stage is complete


@dataclass
class StageContext:
    """Run-level settings a stage needs besides its own hyperparameters."""

    model: ModelConfig
    seed: int
    data_dir: Path
    data_source: str = "local"
    mixed_precision: str = "auto"


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


def run_stage(stage: StageConfig, ctx: StageContext, stage_dir: Path, role: str) -> dict[str, Any]:
    """Fine-tune `stage.task` and return the stage summary (also written to stage_dir/stage.json)."""
    stage_dir = Path(stage_dir)
    done = stage_dir / STAGE_FILE
    if done.is_file():
        log(f"[dim]{role} stage {stage.task}: complete in {stage_dir}, reusing it[/dim]")
        return read_json(done)

    # ---------------------------------------------------------------- setup
    started = time.time()
    task = get_task(stage.task)
    if not task.can_play(role):
        raise ConfigError(f"task {task.name} cannot be used as {role} task (roles: {', '.join(sorted(task.roles))})")
    set_seed(ctx.seed)
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(ctx.mixed_precision), gradient_accumulation_steps=stage.gradient_accumulation_steps)
    tokenizer = load_tokenizer(ctx.model.name_or_path)
    max_length = stage.max_seq_length or ctx.model.max_seq_length

    train_task = get_task(task.train_task) if task.train_task else task
    train = load_examples(train_task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
    dev = load_examples(task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
    train_features = task.head.featurize(train.examples, tokenizer, task, max_length, train=True, doc_stride=stage.doc_stride)
    if len(train_features) == 0:
        raise ConfigError(f"{role} stage {task.name}: no training examples after featurisation")

    set_seed(ctx.seed)  # the head's initialisation depends only on the seed
    model = build_model(task, ctx.model.name_or_path, stage.init_encoder_from, ctx.model.freeze_embeddings)
    sampler = EpochBatches(train_features.lengths(), stage.batch_size, ctx.seed)
    loader = DataLoader(train_features.inputs, batch_sampler=sampler, collate_fn=lambda rows: task.head.collate(rows, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not _no_decay(n)]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and _no_decay(n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": stage.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=stage.learning_rate,
        fused=accelerator.device.type == "cuda",
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
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf}
    step, epoch, running_loss = 0, 0, 0.0
    model.train()
    with progress_bar(f"{role}: {task.name}", total=total_steps) as advance:
        while step < total_steps:
            sampler.set_epoch(epoch)
            for batch in loader:
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), stage.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                running_loss += loss.item()
                if not accelerator.sync_gradients:
                    continue
                step += 1
                advance(loss=running_loss / stage.gradient_accumulation_steps)
                running_loss = 0.0
                if step % eval_every == 0 or step == total_steps:
                    scores = evaluate_dev()
                    model.train()
                    history.append({"step": step, "epoch": epoch, "loss": loss.item(), **scores})
                    if scores[task.main_metric] > best["score"]:
                        best = {"score": scores[task.main_metric], "step": step, "metrics": scores}
                        best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in accelerator.unwrap_model(model).state_dict().items()}
                if step >= total_steps:
                    break
            epoch += 1

    # ---------------------------------------------------------------- cleanup
    final = accelerator.unwrap_model(model)
    final.load_state_dict(best.pop("state"))
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
        "device": str(accelerator.device),
    }
    write_json_atomic(done, summary)
    accelerator.free_memory()
    log(f"{role} stage {task.name}: best {task.main_metric}={best['score']:.4f} at step {best['step']} ({summary['seconds']} s)")
    return summary


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name
