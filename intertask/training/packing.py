"""How training batches are collated when packing or length buckets are on (issue 14; see docs/performance.md "GPU").

The one hook the training loop needs: :func:`training_collate` picks the collate function (and, for packing, lets
the model take packed batches); :func:`batch_examples` counts examples in a batch of either layout.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from intertask.config import StageConfig
from intertask.data.packing import BucketedCollator, PackedCollator
from intertask.models.packing import enable_packing


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
