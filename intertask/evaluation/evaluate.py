"""Evaluation of a fine-tuned model on a task, and of a bare encoder on retrieval tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from intertask.data.batching import length_sorted_batches
from intertask.progress import progress_bar

if TYPE_CHECKING:
    from intertask.models.heads import Features
    from intertask.tasks.base import Task


@torch.inference_mode()
def predict(model, tokenizer, task: Task, features: Features, batch_size: int, device: torch.device, description: str = "eval") -> list[np.ndarray]:
    """Run the model over features in length-sorted batches (little padding); outputs in input order."""
    model.eval()
    raw: list[np.ndarray | None] = [None] * len(features)
    if device.type == "cpu":  # CPU: small batches keep activations in cache (batch 8 is ~1.2-1.4x faster than 64 there)
        batch_size = min(batch_size, CPU_EVAL_BATCH)
    batches = length_sorted_batches(features.lengths(), batch_size)
    with progress_bar(description, total=len(batches), unit="batches") as advance:
        for idx in batches:
            rows = [_inputs_only(features.inputs[i]) for i in idx]
            batch = {k: v.to(device) for k, v in task.head.collate(rows, tokenizer).items() if k in _MODEL_INPUTS}
            out = task.head.gather(model(**batch))
            for j, i in enumerate(idx):
                raw[i] = out[j]
            advance()
    return raw  # type: ignore[return-value]


_MODEL_INPUTS = {"input_ids", "attention_mask", "token_type_ids"}
CPU_EVAL_BATCH = 8  # length-sorted batches need no large batch to avoid padding; see docs/performance.md


def _inputs_only(row: dict) -> dict:
    return {k: v for k, v in row.items() if k in _MODEL_INPUTS or k in ("labels", "start_positions", "end_positions")}


def evaluate_examples(
    model,
    tokenizer,
    task: Task,
    examples: Sequence[dict],
    language: str,
    max_length: int,
    batch_size: int,
    device: torch.device,
    doc_stride: int = 128,
    description: str = "eval",
) -> dict[str, float]:
    return predict_examples(model, tokenizer, task, examples, language, max_length, batch_size, device, doc_stride, description)[0]


def predict_examples(
    model,
    tokenizer,
    task: Task,
    examples: Sequence[dict],
    language: str,
    max_length: int,
    batch_size: int,
    device: torch.device,
    doc_stride: int = 128,
    description: str = "eval",
) -> tuple[dict[str, float], Any, Any]:
    """-> (metrics, predictions, references); the last two feed per-example bootstrap intervals."""
    from intertask.data.cache import featurize_cached  # tokenise once (disk cache + in-process memo of the dev set)

    features = featurize_cached(task, examples, tokenizer, max_length, False, doc_stride, "eval", language)
    raw = predict(model, tokenizer, task, features, batch_size, device, description)
    predictions, references = task.head.postprocess(examples, features, raw, task.labels)
    return task.compute_metrics(predictions, references, language), predictions, references


@torch.inference_mode()
def embed_sentences(
    encoder,
    tokenizer,
    sentences: Sequence[str],
    batch_size: int,
    max_length: int,
    device: torch.device,
    pooling: str = "mean",
    layer: int = -1,
    prefix: str = "",
    description: str = "embed",
) -> np.ndarray:
    """Sentence embeddings from one layer of the encoder (mean over non-padding tokens, or <s>)."""
    encoder.eval()
    enc = tokenizer([prefix + s for s in sentences], truncation=True, max_length=max_length)
    lengths = [len(x) for x in enc["input_ids"]]
    out = np.zeros((len(sentences), encoder.config.hidden_size), dtype=np.float32)
    batches = length_sorted_batches(lengths, batch_size)
    with progress_bar(description, total=len(batches), unit="batches") as advance:
        for idx in batches:
            batch = tokenizer.pad([{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]} for i in idx], return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            hidden = encoder(**batch, output_hidden_states=layer != -1)
            states = hidden.hidden_states[layer] if layer != -1 else hidden.last_hidden_state
            if pooling == "cls":
                pooled = states[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = pooled.float().cpu().numpy()
            advance()
    return out
