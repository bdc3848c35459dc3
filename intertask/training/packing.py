"""How training batches are collated when packing or length buckets are on (issue 14; see docs/performance.md "GPU").

The one hook the training loop needs: :func:`training_collate` picks the collate function (and, for packing, lets
the model take packed batches); :func:`batch_examples` counts examples in a batch of either layout.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from intertask.config import ModelConfig, StageConfig
from intertask.data.packing import PACKABLE_HEADS, BucketedCollator, PackedCollator
from intertask.errors import ConfigError
from intertask.models.packing import PACKING_ATTENTION, enable_packing
from intertask.tasks import get_task


def validate_switches(stage: StageConfig, role: str, model: ModelConfig) -> None:
    """Before any compute: packing / bucket_lengths are for single-task text stages (the recipe's batches), packing
    needs an attention kernel that takes a 4D mask and a head with a packed forward."""
    if not (stage.packing or stage.bucket_lengths):
        return
    if any(b < 1 for b in stage.bucket_lengths):
        raise ConfigError(f"{role}.bucket_lengths: lengths must be positive, got {stage.bucket_lengths}")
    if stage.tasks or stage.mlm is not None or stage.multimodal is not None or stage.task in ("multitask", "mlm"):
        raise ConfigError(f"{role}: packing / bucket_lengths apply to single-task text stages only (not multi-task, MLM or multimodal stages)")
    if stage.packing:
        if model.attn_implementation not in PACKING_ATTENTION:
            raise ConfigError(f"{role}.packing needs model.attn_implementation sdpa or eager (a 4D block mask), got {model.attn_implementation!r}")
        head = get_task(stage.task).head.name
        if head not in PACKABLE_HEADS:
            raise ConfigError(f"{role}.packing: task {stage.task} has head {head}; packing supports {', '.join(PACKABLE_HEADS)}")


def training_collate(head: Any, tokenizer: Any, stage: StageConfig, max_length: int, model: Any, default: Callable) -> Callable:
    """The training collate function for `stage`: packed rows (``packing``), bucketed lengths (``bucket_lengths``),
    else `default` (the head's dynamic padding). With packing, `model` is switched in place to accept packed batches
    (call after configure_model, before accelerator.prepare)."""
    if stage.packing:
        enable_packing(model)
        return PackedCollator(head, tokenizer, max_length, stage.bucket_lengths)
    if stage.bucket_lengths:
        return BucketedCollator(head, tokenizer, stage.bucket_lengths, max_length)
    return default


def batch_examples(batch: dict[str, torch.Tensor]) -> int:
    """Examples in a collated training batch (packed rows hold several; multiple choice: one per choice group)."""
    starts = batch.get("packed_starts")
    if starts is None:
        return int(batch["input_ids"].shape[0])
    choices = batch.get("packed_choices")
    return int(starts.shape[0]) // (int(choices) if choices is not None else 1)
