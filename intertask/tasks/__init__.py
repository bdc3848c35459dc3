"""Task registry. Each task is one declarative `Task` record, registered explicitly by its module."""

from __future__ import annotations

from intertask.registry import Registry
from intertask.tasks.base import HubDataset, LocalFiles, Task

TASKS: Registry[Task] = Registry("task")


def register(task: Task) -> Task:
    return TASKS.register(task.name, task)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def all_tasks() -> list[Task]:
    return TASKS.values()


# Explicit registration: importing a module registers its records.
from intertask.tasks import sentence_pair, tagging, span_qa, retrieval, multiple_choice, intermediate  # noqa: E402,F401
from intertask.multimodal import tasks as _multimodal_tasks  # noqa: E402,F401  (captioning, VQA)

__all__ = ["Task", "LocalFiles", "HubDataset", "TASKS", "register", "get_task", "all_tasks"]
