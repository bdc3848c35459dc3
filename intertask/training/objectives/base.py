"""The objective protocol: what the one training loop (intertask.training.recipe) asks of a stage kind.

The loop calls, top to bottom: ``load(tokenizer)`` (data, featurisation), ``build_model()`` (seeded), ``train_data()``
(a dataset, a resumable batch sampler -- a function of (seed, epoch) with ``set_epoch`` and ``len`` -- and a collate
function), then per micro-batch ``loss(model, batch)`` and ``observe(batch, loss)``, at evaluation points
``evaluate(model, device)`` (English dev; ``main_metric`` picks the best checkpoint) and ``history_extras()``, and at the
end ``save(model, stage_dir, tokenizer)`` (the hand-off) and ``summary()``. ``validate`` checks the configuration
before any compute. Objectives keep no per-step host state: what they accumulate stays on the device and is
checkpointed through ``state()`` / ``load_state()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from intertask.config import LoggingConfig, ModelConfig, StageConfig
from intertask.models.loading import MODEL_DIR


@dataclass
class StageContext:
    """Run-level settings a stage needs besides its own hyperparameters."""

    model: ModelConfig
    seed: int
    data_dir: Path
    data_source: str = "local"
    mixed_precision: str = "auto"
    logging: LoggingConfig | None = None  # learning curves (intertask/training/tracking.py)
    vision_encoder: Any = None  # multimodal stages: a frozen vision encoder to use instead of building one (tests)


class Objective:
    """Base class of the stage kinds (see the module docstring for the order of calls)."""

    name: str  # the stage's display name (the task, or the kind)
    main_metric: str
    fused_optimizer = True  # fused AdamW (one kernel for all parameters) on CUDA / CPU
    find_unused_parameters = False  # DDP: parameters without a gradient in some steps (multi-task heads)
    stage_dir: Path | None = None  # set by the loop before load()
    summary_override: dict[str, Any] = {}  # keys that replace the summary's (a size-matched control names its stage)

    def __init__(self, stage: StageConfig, ctx: StageContext, role: str):
        self.stage, self.ctx, self.role = stage, ctx, role
        self.max_length = stage.max_seq_length or ctx.model.max_seq_length

    @staticmethod
    def validate(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
        raise NotImplementedError

    def load(self, tokenizer: Any) -> None:
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def train_data(self) -> tuple[Any, Any, Any]:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return model(**batch).loss

    def observe(self, batch: dict[str, Any], loss: torch.Tensor) -> None:
        """Every micro-batch (no host synchronisation)."""

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        raise NotImplementedError

    def history_extras(self) -> dict[str, Any]:
        """Extra keys of a history entry (read at evaluation points only)."""
        return {}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def describe(self) -> str:
        raise NotImplementedError

    def save(self, model: torch.nn.Module, stage_dir: Path, tokenizer: Any) -> None:
        model.save_pretrained(stage_dir / MODEL_DIR)
        tokenizer.save_pretrained(stage_dir / MODEL_DIR)

    def summary(self) -> dict[str, Any]:
        raise NotImplementedError

    def dev_metrics(self, best: dict[str, Any] | None) -> dict[str, Any] | None:
        return best

    @staticmethod
    def no_decay(name: str) -> bool:
        return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name


def configure_model(model: torch.nn.Module, cfg: ModelConfig) -> torch.nn.Module:
    """Attention kernel and optional torch.compile (in place: parameter names stay unchanged for checkpoints)."""
    if cfg.attn_implementation and getattr(model.config, "_attn_implementation", None) != cfg.attn_implementation:
        model.set_attn_implementation(cfg.attn_implementation)
    if cfg.torch_compile:
        model.compile()  # nn.Module.compile: compiles forward, keeps the state_dict keys
    return model


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
