"""The one task registry: every task record (text, retrieval, multimodal ...) is registered here, once.

Registering a name twice is an error (no silent re-registration). Task modules register their
records when imported; importing :mod:`intertask.tasks` imports all of them.
"""

from __future__ import annotations

from intertask.registry import Registry
from intertask.tasks.base import Task

TASKS: Registry[Task] = Registry("task")


def register(task: Task) -> Task:
    return TASKS.register(task.name, task)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def all_tasks() -> list[Task]:
    return TASKS.values()
