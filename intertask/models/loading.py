"""Loading encoders and heads: the embedded default, any hub id or local directory, and stage hand-off."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from intertask.errors import ConfigError
from intertask.models.source import check_model_dir, check_model_source, model_errors

if TYPE_CHECKING:
    from intertask.tasks.base import Task

MODEL_DIR = "model"  # inside a stage directory: the best checkpoint (encoder + head)


def resolve_model(name_or_path: str | Path) -> str:
    """"default" -> the embedded model directory (converted on first use); else unchanged."""
    from intertask.models.embedded import resolve_model_path

    return resolve_model_path(str(name_or_path))


def model_source(name_or_path: str | Path) -> str:
    """Where to load from: a stage directory's model, a local directory, a hub id, or the default."""
    check_model_source(name_or_path)
    path = Path(str(name_or_path))
    if (path / MODEL_DIR / "config.json").is_file():
        return str(path / MODEL_DIR)
    with model_errors(name_or_path):
        return str(path) if path.exists() else resolve_model(name_or_path)


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    return _load_tokenizer(model_source(name_or_path))


@functools.lru_cache(maxsize=8)
def _load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    # Cached: XLM-R's 250k-piece tokenizer takes seconds to load, and every stage and evaluation needs it.
    with model_errors(source, "model (tokenizer)"):
        tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.is_fast:
        raise ConfigError(f"{source}: a fast tokenizer is required (offsets and word ids)")
    return tokenizer


def checkpoint_dir(path: str | Path, what: str = "model") -> Path:
    """A stage directory or a model directory -> the model directory holding the weights (checked complete).

    `what` names the setting in messages ("--model", "init_encoder_from", ...)."""
    path = Path(path)
    if path.is_file():
        raise ConfigError(f"{what} {path}: is a file, expected a model or stage directory")
    if not path.exists():
        raise ConfigError(f"{what} {path}: no such directory (expected a model or stage directory)")
    if (path / MODEL_DIR / "config.json").is_file():
        path = path / MODEL_DIR
    check_model_dir(path, what)
    return path


def encoder_state_dict(path: str | Path, base_model_prefix: str) -> dict[str, torch.Tensor]:
    """Encoder weights of a checkpoint, with any head's weights dropped and the prefix removed."""
    directory = checkpoint_dir(path, "init_encoder_from")
    index = directory / "model.safetensors.index.json"
    state: dict[str, torch.Tensor] = {}
    with model_errors(directory, "init_encoder_from"):
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
        for name in files:
            state.update(load_file(directory / name))
    prefix = base_model_prefix + "."
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state  # a bare encoder checkpoint (e.g. the embedded default model)


def build_model(task: Task, model_name: str | Path, init_encoder_from: Path | None = None, freeze_embeddings: bool = False) -> PreTrainedModel:
    """A fresh head for `task` on the pretrained encoder, or on the encoder of an earlier stage.

    Encoder-only hand-off: the head is always newly initialised, even when the previous stage had a
    head of the same shape (MNLI -> XNLI), so nothing but the encoder carries over.
    """
    check_model_source(model_name, "model.name_or_path")
    with model_errors(model_name, "model.name_or_path"):
        model = task.head.build_model(resolve_model(model_name), task.labels)
    if init_encoder_from is not None:
        state = encoder_state_dict(init_encoder_from, model.base_model_prefix)
        result = model.base_model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
        # A pooler (multiple-choice heads have one) is not part of the hand-off when the next head has none.
        unexpected = [k for k in result.unexpected_keys if not k.startswith("pooler.")]
        if missing or unexpected:
            raise ConfigError(
                f"init_encoder_from {init_encoder_from}: encoder does not match {model_name} "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
    if freeze_embeddings:
        for p in model.base_model.embeddings.word_embeddings.parameters():
            p.requires_grad_(False)
    return model


def load_encoder(name_or_path: str | Path) -> PreTrainedModel:
    """The bare encoder of a pretrained model, a model directory or a stage directory."""
    source = model_source(name_or_path)
    # Loading a head checkpoint with AutoModel keeps the encoder and drops the head.
    with model_errors(source):
        try:  # retrieval never uses the pooler; don't create an untrained one
            return AutoModel.from_pretrained(source, add_pooling_layer=False)
        except TypeError:
            return AutoModel.from_pretrained(source)
