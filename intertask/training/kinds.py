"""The kind of a stage, decided in one place from its configuration, and the objective that trains it.

* ``multitask``: ``tasks`` lists several tasks (one shared encoder, one head per task);
* ``mlm``: an ``mlm`` section, or a task whose head is the masked-LM head (continued MLM);
* ``captioning`` / ``vqa``: a ``multimodal`` section, or a multimodal task record (its kind);
* ``single``: anything else (one task, one head).

Each objective validates its own configuration (:func:`validate_stage`, called by the pipeline before compute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intertask.config import StageConfig
from intertask.errors import ConfigError
from intertask.tasks import get_task
from intertask.tasks.multimodal import multimodal_spec
from intertask.training.objectives.base import Objective
from intertask.training.objectives.mlm import MaskedLM
from intertask.training.objectives.multimodal import Multimodal
from intertask.training.objectives.multitask import MultiTask
from intertask.training.objectives.single import SingleTask

KINDS = {"single": SingleTask, "multitask": MultiTask, "mlm": MaskedLM, "captioning": Multimodal, "vqa": Multimodal}


def stage_kind(stage: StageConfig) -> str:
    if stage.tasks:
        return "multitask"
    if stage.mlm is not None or get_task(stage.task).head.name == "masked_lm":
        return "mlm"
    spec = multimodal_spec(stage.task)
    if spec is not None:
        return spec.kind
    return "single"


def validate_stage(stage: StageConfig, role: str, data_dir: Path, data_source: str = "local", check_data: bool = True) -> list[str]:
    """Checks of one stage beyond the schema, by its kind; raises ConfigError, returns notes."""
    if not stage.task and not stage.tasks:
        raise ConfigError(f"{role}.task is required")
    return KINDS[stage_kind(stage)].validate(stage, role, Path(data_dir), data_source, check_data)


def objective_for(stage: StageConfig, ctx: Any, role: str) -> Objective:
    """The objective that trains `stage` (validated without touching data: the pipeline checked the files)."""
    cls = KINDS[stage_kind(stage)]
    cls.validate(stage, role, Path(ctx.data_dir), ctx.data_source, False)
    return cls.make(stage, ctx, role) if hasattr(cls, "make") else cls(stage, ctx, role)
