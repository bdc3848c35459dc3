"""Training batches with little or no padding at a few fixed shapes (issue 14): length buckets and packing.

Both are collate functions over the featurised rows of a head (``Features.inputs``); the batch sampler is unchanged,
so the examples per batch, per optimiser step and per epoch stay what the config says.

* :class:`BucketedCollator` (``StageConfig.bucket_lengths``): the head's usual dynamic padding, then the sequence
  dimension is padded up to the smallest bucket that holds the longest row. The batch then takes at most
  ``len(buckets)`` sequence lengths (times two batch sizes: full batches and the epoch's last, partial one), so
  ``torch.compile`` / CUDA graphs compile a handful of shapes instead of one per padded length.
* :class:`PackedCollator` (``StageConfig.packing``): the batch's sequences (one per example; one per choice for
  multiple choice) are packed first-fit-decreasing into rows of at most ``capacity`` tokens. Each sequence keeps its
  own position ids (restarted at every sequence start) and attends only within itself (block-diagonal mask, built
  by :func:`intertask.models.packing.packed_forward` from ``packed_segments``). The keys:

  - ``input_ids`` (rows, L), ``attention_mask`` (rows, L): 1 on real tokens (what the recipe counts as real tokens);
  - ``packed_segments`` (rows, L): 0 on padding, k = 1, 2, ... for the k-th sequence of the row;
  - ``packed_positions`` (rows, L): 0-based position of each token inside its sequence (0 on padding);
  - ``packed_starts`` (n, 2): (row, column) of each sequence's first token (``<s>``), in the batch's order;
  - ``packed_lengths`` (n,): tokens of each sequence;
  - targets: sequence classification and multiple choice ``labels`` per example, tagging ``labels`` (rows, L) in
    place (-100 elsewhere), span QA ``start_positions`` / ``end_positions`` relative to each sequence's start;
  - multiple choice: ``packed_choices`` (a 0-d tensor: choices per example; sequences are example-major).

Only the collate function lives here (data layer); the model side is :mod:`intertask.models.packing`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

IGNORE_INDEX = -100
PACKED_KEYS = ("packed_segments", "packed_positions", "packed_starts", "packed_lengths", "packed_choices")
PACKABLE_HEADS = ("sequence_classification", "token_classification", "span_qa", "span_qa_with_null", "multiple_choice")


# ----------------------------------------------------------------------------- buckets


def normalise_buckets(buckets: Sequence[int], max_length: int) -> list[int]:
    """Sorted, de-duplicated bucket lengths, capped at and always including ``max_length`` (no row is longer)."""
    if any(int(b) < 1 for b in buckets):
        raise ValueError(f"bucket_lengths must be positive, got {list(buckets)}")
    return sorted({min(int(b), max_length) for b in buckets} | {max_length})


def bucket_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket >= length (``buckets`` sorted); a length beyond the last bucket is kept as is."""
    for b in buckets:
        if b >= length:
            return b
    return length


def pad_sequence_dim(batch: dict[str, torch.Tensor], length: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad every per-token tensor of a collated batch (last dimension = the input length) to ``length``:
    input ids with the pad id, masks and token types with 0, per-token labels with -100. Per-example tensors
    (sequence labels, span positions) are left alone."""
    current = batch["input_ids"].shape[-1]
    if length <= current:
        return batch
    fill = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}
    shape = batch["input_ids"].shape
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.shape == shape:
            extra = value.new_full((*shape[:-1], length - current), fill.get(key, 0))
            value = torch.cat([value, extra], dim=-1)
        out[key] = value
    return out


class BucketedCollator:
    """The head's collate, then the sequence dimension padded to the smallest bucket (picklable for workers)."""

    def __init__(self, head: Any, tokenizer: Any, buckets: Sequence[int], max_length: int):
        self.head, self.tokenizer = head, tokenizer
        self.buckets = normalise_buckets(buckets, max_length)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.head.collate(rows, self.tokenizer)
        return pad_sequence_dim(batch, bucket_length(batch["input_ids"].shape[-1], self.buckets), self.tokenizer.pad_token_id)


# ----------------------------------------------------------------------------- packing


def pack_sequences(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: sequence indices per row, each row holding at most ``capacity`` tokens (a sequence
    longer than ``capacity`` gets a row of its own). Deterministic: ties keep the input order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def padding_ratio(lengths: Sequence[int], batches: Sequence[Sequence[int]], capacity: int | None = None) -> float:
    """Padded tokens computed / real tokens for batches of ``lengths`` (indices per batch): padded to each batch's
    longest row (dynamic padding), or, with ``capacity``, packed into rows of that many tokens and padded to the
    longest packed row. 1.0 = no padding at all."""
    real = computed = 0
    for batch in batches:
        ls = [lengths[i] for i in batch]
        real += sum(ls)
        if capacity is None:
            computed += len(ls) * max(ls)
        else:
            rows = pack_sequences(ls, capacity)
            computed += len(rows) * max(sum(ls[i] for i in row) for row in rows)
    return computed / real if real else 1.0


class PackedCollator:
    """Pack a batch of featurised rows into rows of at most ``capacity`` tokens (see the module docstring)."""

    def __init__(self, head: Any, tokenizer: Any, capacity: int, buckets: Sequence[int] = ()):
        if head.name not in PACKABLE_HEADS:
            raise ValueError(f"packing: head {head.name!r} is not supported (supported: {', '.join(PACKABLE_HEADS)})")
        self.head, self.pad_token_id, self.capacity = head.name, tokenizer.pad_token_id, capacity
        self.buckets = normalise_buckets(buckets, capacity) if buckets else []

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if self.head == "multiple_choice":
            n_choices = len(rows[0]["input_ids"])
            if any(len(r["input_ids"]) != n_choices for r in rows):
                raise ValueError("multiple-choice batch mixes different numbers of choices")
            sequences = [ids for r in rows for ids in r["input_ids"]]
        else:
            sequences = [r["input_ids"] for r in rows]
        lengths = [len(s) for s in sequences]
        plan = pack_sequences(lengths, self.capacity)
        width = max(sum(lengths[i] for i in row) for row in plan)
        width = bucket_length(width, self.buckets) if self.buckets else width
        n_rows = len(plan)
        input_ids = torch.full((n_rows, width), self.pad_token_id, dtype=torch.long)
        segments = torch.zeros((n_rows, width), dtype=torch.long)
        positions = torch.zeros((n_rows, width), dtype=torch.long)
        starts = torch.zeros((len(sequences), 2), dtype=torch.long)
        token_labels = torch.full((n_rows, width), IGNORE_INDEX, dtype=torch.long) if self.head == "token_classification" else None
        for r, row in enumerate(plan):
            col = 0
            for k, i in enumerate(row, start=1):
                n = lengths[i]
                input_ids[r, col : col + n] = torch.tensor(sequences[i], dtype=torch.long)
                segments[r, col : col + n] = k
                positions[r, col : col + n] = torch.arange(n)
                starts[i, 0], starts[i, 1] = r, col
                if token_labels is not None and "labels" in rows[i]:
                    token_labels[r, col : col + n] = torch.tensor(rows[i]["labels"], dtype=torch.long)
                col += n
        batch = {
            "input_ids": input_ids,
            "attention_mask": (segments > 0).long(),
            "packed_segments": segments,
            "packed_positions": positions,
            "packed_starts": starts,
            "packed_lengths": torch.tensor(lengths, dtype=torch.long),
        }
        if self.head == "token_classification":
            if "labels" in rows[0]:
                batch["labels"] = token_labels
        elif self.head in ("span_qa", "span_qa_with_null"):
            if "start_positions" in rows[0]:
                batch["start_positions"] = torch.tensor([r["start_positions"] for r in rows])
                batch["end_positions"] = torch.tensor([r["end_positions"] for r in rows])
        else:  # sequence classification, multiple choice: one label per example
            if "labels" in rows[0]:
                batch["labels"] = torch.tensor([r["labels"] for r in rows])
            if self.head == "multiple_choice":
                batch["packed_choices"] = torch.tensor(n_choices)
        return batch
