"""Tasks: one declarative `Task` record per task (:mod:`intertask.tasks.base`), kept in the one registry
(:mod:`intertask.tasks.registry`). Importing this package imports every task module, which registers its
records explicitly; the multimodal records (captioning, VQA) live in :mod:`intertask.multimodal.tasks`."""

from __future__ import annotations

from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.registry import TASKS, all_tasks, get_task, register

# Explicit registration: importing a module registers its records.
from intertask.tasks import sentence_pair, tagging, span_qa, retrieval, multiple_choice, intermediate  # noqa: E402,F401,I001
from intertask.multimodal import tasks as _multimodal_tasks  # noqa: E402,F401  (captioning, VQA)

__all__ = ["Task", "LocalFiles", "HubDataset", "TASKS", "register", "get_task", "all_tasks"]
