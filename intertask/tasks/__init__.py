"""Tasks: one declarative `Task` record per task (:mod:`intertask.tasks.base`), kept in the one registry
(:mod:`intertask.tasks.registry`). Importing this package imports every task module, which registers its
records explicitly (the multimodal ones, captioning and VQA, in :mod:`intertask.tasks.multimodal`)."""

from __future__ import annotations

# Explicit registration: importing a module registers its records.
from intertask.tasks import intermediate, multimodal, multiple_choice, retrieval, sentence_pair, span_qa, tagging  # noqa: E402,F401,I001
from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.registry import TASKS, all_tasks, get_task, register

__all__ = ["Task", "LocalFiles", "HubDataset", "TASKS", "register", "get_task", "all_tasks"]
