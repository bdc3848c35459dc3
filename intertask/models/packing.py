"""The model side of padding-free packing (issue 14): a forward pass over rows that hold several sequences.

:func:`packed_forward` runs the encoder once over the packed rows of :class:`intertask.data.packing.PackedCollator`
with

* a block-diagonal attention mask (4D, (rows, 1, L, L)): a token attends only to tokens of its own sequence
  (padding attends to padding, so no softmax row is empty); transformers passes a 4D mask to the attention kernel
  as is, as a boolean mask for SDPA or an additive one for eager attention;
* restarted position ids: XLM-R / RoBERTa number positions from ``padding_idx + 1`` (the embeddings'
  ``create_position_ids_from_input_ids``), so the k-th token of every sequence gets ``padding_idx + 1 + k`` and
  padding ``padding_idx``, exactly what the unpacked model computes; models without that convention (BERT) get k;

then applies the head per sequence: sequence classification and multiple choice pool each sequence at its own
first token (``<s>``), tagging scores every token in place, span QA scores start/end over each sequence's own
tokens only. The loss is the head's usual loss: cross-entropy mean over examples (classification, multiple
choice), over labelled tokens (tagging), or (start + end) / 2 per example (span QA). For span QA this excludes
padding positions from each example's softmax; the unpacked transformers head includes the padded tail of its batch
there, so the packed loss equals the unpacked loss of each example alone (batch of one), not of a padded batch.

:func:`enable_packing` makes ``model(**packed_batch)`` take this path (and every other call the usual one), so the
training loop, accelerate's wrappers (autocast, DDP) and checkpoints (parameter names) are unchanged.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from intertask.errors import ConfigError

PACKING_ATTENTION = ("sdpa", "eager")


@dataclass
class PackedOutput(ModelOutput):
    """logits: (examples, labels) for classification, (examples, choices) for multiple choice, (rows, L, labels)
    in packed layout for tagging (see :func:`unpack_tokens`); span QA: start/end logits (sequences, row width),
    the most negative float beyond each sequence's length."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None


def head_kind(model: Any) -> str:
    name = type(model).__name__
    for suffix, kind in (
        ("ForSequenceClassification", "sequence_classification"),
        ("ForTokenClassification", "token_classification"),
        ("ForQuestionAnswering", "span_qa"),
        ("ForMultipleChoice", "multiple_choice"),
    ):
        if name.endswith(suffix):
            return kind
    raise ConfigError(f"packing: no packed forward for {name} (sequence classification, tagging, span QA, multiple choice)")


def check_packing_supported(model: Any) -> None:
    head_kind(model)
    attn = getattr(model.config, "_attn_implementation", None)
    if attn not in PACKING_ATTENTION:
        raise ConfigError(f"packing needs model.attn_implementation sdpa or eager (a 4D block mask), got {attn!r}")


def position_ids(model: Any, positions: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The position ids the unpacked model would give each token (see the module docstring)."""
    embeddings = getattr(model.base_model, "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if padding_idx is not None and hasattr(embeddings, "create_position_ids_from_input_ids"):
        return torch.where(attention_mask.bool(), positions + padding_idx + 1, torch.full_like(positions, padding_idx))
    return positions


def block_mask(segments: torch.Tensor, attn_implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """(rows, 1, L, L): True / 0.0 where query and key belong to the same sequence (or are both padding)."""
    same = (segments[:, :, None] == segments[:, None, :]).unsqueeze(1)
    if attn_implementation == "sdpa":
        return same
    return torch.zeros(same.shape, dtype=dtype, device=segments.device).masked_fill(~same, torch.finfo(dtype).min)


def packed_forward(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    packed_segments: torch.Tensor,
    packed_positions: torch.Tensor,
    packed_starts: torch.Tensor,
    packed_lengths: torch.Tensor,
    labels: torch.Tensor | None = None,
    start_positions: torch.Tensor | None = None,
    end_positions: torch.Tensor | None = None,
    packed_choices: torch.Tensor | None = None,
    **ignored: Any,
) -> PackedOutput:
    kind = head_kind(model)
    attn = model.config._attn_implementation
    dtype = next(model.parameters()).dtype
    base = model.base_model
    hidden = base(
        input_ids=input_ids,
        attention_mask=block_mask(packed_segments, attn, dtype),
        position_ids=position_ids(model, packed_positions, attention_mask),
    ).last_hidden_state
    firsts = hidden[packed_starts[:, 0], packed_starts[:, 1]]  # (sequences, hidden): each sequence's <s>

    if kind == "token_classification":
        logits = model.classifier(model.dropout(hidden))
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.view(-1)) if labels is not None else None
        return PackedOutput(loss=loss, logits=logits)

    if kind == "span_qa":
        scores = model.qa_outputs(hidden).float()  # (rows, L, 2)
        longest = hidden.shape[1]  # the row width: a static shape (no host sync, no recompiling per batch)
        offsets = torch.arange(longest, device=hidden.device)
        valid = offsets[None, :] < packed_lengths[:, None]
        cols = (packed_starts[:, 1:2] + offsets[None, :]).clamp(max=hidden.shape[1] - 1)
        per_sequence = scores[packed_starts[:, :1].expand_as(cols), cols]  # (sequences, longest, 2)
        per_sequence = per_sequence.masked_fill(~valid[..., None], torch.finfo(per_sequence.dtype).min)
        start_logits, end_logits = per_sequence[..., 0], per_sequence[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored_index = longest  # as transformers: positions outside the sequence are ignored
            s, e = start_positions.clamp(0, ignored_index), end_positions.clamp(0, ignored_index)
            loss = (F.cross_entropy(start_logits, s, ignore_index=ignored_index) + F.cross_entropy(end_logits, e, ignore_index=ignored_index)) / 2
        return PackedOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)

    if kind == "multiple_choice":
        pooled = base.pooler(firsts[:, None, :])
        logits = model.classifier(model.dropout(pooled)).view(-1, int(packed_choices))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return PackedOutput(loss=loss, logits=logits)

    # sequence classification: XLM-R's head pools features[:, 0] itself; BERT-style heads use the pooler first
    if isinstance(model.classifier, torch.nn.Linear):
        logits = model.classifier(model.dropout(base.pooler(firsts[:, None, :])))
    else:
        logits = model.classifier(firsts[:, None, :])
    loss = None
    if labels is not None:
        if model.config.num_labels == 1:
            loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
        else:
            loss = F.cross_entropy(logits.float(), labels)
    return PackedOutput(loss=loss, logits=logits)


def unpack_tokens(values: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    """Per-sequence slices of a packed (rows, L, ...) tensor (tagging logits, hidden states)."""
    return [values[int(r), int(c) : int(c) + int(n)] for (r, c), n in zip(starts.tolist(), lengths.tolist())]


def _dispatching_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    if "packed_segments" in kwargs:
        return packed_forward(self, **kwargs)
    return type(self).forward(self, *args, **kwargs)


def enable_packing(model: Any) -> Any:
    """Let ``model(**batch)`` take packed batches (those with ``packed_segments``); other calls are unchanged.
    In place (parameter names and checkpoints stay the same); call before ``accelerator.prepare``."""
    check_packing_supported(model)
    if not getattr(model, "_intertask_packing", False):
        model.forward = types.MethodType(_dispatching_forward, model)
        model._intertask_packing = True
    return model
