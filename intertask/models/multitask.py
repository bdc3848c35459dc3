"""One head model per task, all sharing one encoder module (multi-task intermediate training).

Each task's head model is built as for a single-task stage (``build_model``); then every model's encoder attribute
(``model.roberta`` / ``model.bert``: ``base_model_prefix``) is pointed at one shared encoder module. A
multiple-choice head's encoder (which has a pooler) is preferred as the shared one, so its pooler exists.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from intertask.errors import ConfigError


class MultiTaskModel(torch.nn.Module):
    """One head model per task, all sharing the same encoder module."""

    def __init__(self, models: Mapping[str, Any]):
        super().__init__()
        self.models = torch.nn.ModuleDict(dict(models))
        first = next(iter(self.models.values()))
        self.prefix = first.base_model_prefix
        has_pooler = [m for m in self.models.values() if getattr(m.base_model, "pooler", None) is not None]
        self.encoder = (has_pooler[0] if has_pooler else first).base_model
        for model in self.models.values():
            if model.base_model_prefix != self.prefix:
                raise ConfigError("multi-task: every head must be built on the same encoder type")
            setattr(model, model.base_model_prefix, self.encoder)

    def forward(self, task: str, **batch: Any):
        return self.models[task](**batch)

    def head_state(self, task: str) -> dict[str, torch.Tensor]:
        prefix = self.prefix + "."
        return {k: v for k, v in self.models[task].state_dict().items() if not k.startswith(prefix)}

    def snapshot(self) -> dict[str, Any]:
        copy = lambda sd: {k: v.detach().to("cpu", copy=True) for k, v in sd.items()}  # noqa: E731
        return {"encoder": copy(self.encoder.state_dict()), "heads": {t: copy(self.head_state(t)) for t in self.models}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.encoder.load_state_dict(snap["encoder"])
        for t, state in snap["heads"].items():
            self.models[t].load_state_dict(state, strict=False)
