"""Tasks: one declarative `Task` record per task (:mod:`intertask.tasks.base`), kept in the one registry
(:mod:`intertask.tasks.registry`). Importing this package imports every task module, which registers its
records explicitly (the multimodal ones, captioning and VQA, in :mod:`intertask.tasks.multimodal`)."""

from __future__ import annotations

from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.registry import TASKS, all_tasks, get_task, register

# Explicit registration: importing a module registers its records.
from intertask.tasks import sentence_pair, tagging, span_qa, retrieval, multiple_choice, intermediate, multimodal  # noqa: E402,F401,I001

__all__ = ["Task", "LocalFiles", "HubDataset", "TASKS", "register", "get_task", "all_tasks"]
