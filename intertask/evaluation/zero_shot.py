"""Zero-shot evaluation of a target checkpoint on every language, and of encoders on retrieval tasks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from intertask.data.loading import available_languages, load_examples
from intertask.errors import ConfigError
from intertask.evaluation.evaluate import embed_sentences, evaluate_examples
from intertask.evaluation.retrieval import tatoeba_accuracy
from intertask.models.loading import checkpoint_dir, load_encoder, load_tokenizer

if TYPE_CHECKING:
    from intertask.tasks.base import Task


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_languages(task: "Task", requested: Sequence[str], split: str, data_dir: Path, source: str) -> list[str]:
    """The requested languages (validated), or every language with data for this split."""
    if requested:
        for lang in requested:
            if lang not in task.languages:
                from intertask.errors import unknown_name_message

                raise ConfigError(unknown_name_message(f"language for task {task.name}", lang, task.languages))
        return list(requested)
    if source == "hub":
        return list(task.languages)
    langs = available_languages(task, split, data_dir)
    if not langs:
        raise ConfigError(f"task {task.name}: no {split} files for any language under {data_dir}")
    return langs


def retrieval_split(task: "Task", split: str) -> str:
    """Retrieval benchmarks such as Tatoeba ship only one split; use it whatever was asked."""
    splits = task.splits()
    return split if split in splits else splits[0]


def evaluate_target(
    task: "Task",
    model_path: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str = "dev",
    source: str = "local",
    max_samples: int | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    doc_stride: int = 128,
    seed: int = 0,
) -> dict[str, dict]:
    """Metrics per language of a fine-tuned checkpoint (a stage or model directory)."""
    device = default_device()
    directory = checkpoint_dir(model_path)
    model = task.head.model_class.from_pretrained(str(directory)).to(device)
    _check_labels(task, model, directory)
    tokenizer = load_tokenizer(directory)
    results: dict[str, dict] = {}
    for lang in languages:
        data = load_examples(task, split, lang, data_dir, source, max_samples=max_samples, seed=seed)
        scores = evaluate_examples(model, tokenizer, task, data.examples, lang, max_length, batch_size, device, doc_stride, f"{task.name} {split} {lang}")
        results[lang] = {**scores, "examples": len(data.examples), "files": data.files}
    return results


def _check_labels(task: "Task", model, directory: Path) -> None:
    if task.labels:
        got = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if got != list(task.labels):
            raise ConfigError(f"{directory}: model labels {got} do not match task {task.name} labels {list(task.labels)}")


def evaluate_retrieval(
    task: "Task",
    encoder_path: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str = "test",
    batch_size: int = 64,
    max_length: int = 128,
    pooling: str = "mean",
    layer: int = -1,
    prefix: str = "",
) -> dict[str, dict]:
    """Tatoeba-style accuracy in both directions (xx->en is the number XTREME reports)."""
    device = default_device()
    encoder = load_encoder(encoder_path).to(device)
    tokenizer = load_tokenizer(encoder_path)
    split = retrieval_split(task, split)
    results: dict[str, dict] = {}
    for lang in languages:
        data = load_examples(task, split, lang, data_dir)
        source_sentences, target_sentences = data.examples
        embed = lambda sents, side: embed_sentences(encoder, tokenizer, sents, batch_size, max_length, device, pooling, layer, prefix, f"{task.name} {lang} {side}")  # noqa: E731
        scores = tatoeba_accuracy(embed(source_sentences, lang), embed(target_sentences, "en"))
        results[lang] = {**scores, "examples": len(source_sentences), "split": split, "pooling": pooling, "layer": layer}
    return results
