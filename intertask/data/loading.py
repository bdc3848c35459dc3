"""Loading a task's examples for a split and language, from local files or the Hugging Face Hub."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intertask.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from intertask.tasks.base import Task


@dataclass
class LoadedData:
    examples: Any  # list of example dicts (or a retrieval structure)
    files: list[str]
    skipped: list[DataFormatError] = field(default_factory=list)

    def report(self) -> dict:
        """What went into the run: files, counts and any skipped records (never silent)."""
        n = len(self.examples) if hasattr(self.examples, "__len__") else None
        return {
            "files": self.files,
            "examples": n,
            "skipped": len(self.skipped),
            "first_skipped": [str(e) for e in self.skipped[:5]],
        }


def has_data(task: "Task", split: str, language: str, data_dir: Path) -> bool:
    if task.local is None or split not in task.local.files:
        return False
    return all(p.is_file() for p in task.local.paths(data_dir, split, language))


def available_languages(task: "Task", split: str, data_dir: Path) -> list[str]:
    return [lang for lang in task.languages if has_data(task, split, lang, data_dir)]


def hub_falls_back(task: "Task", split: str) -> bool:
    """With data_source=hub, this task's split is read from local files: the task has no hub copy of it."""
    return task.hub is None or split not in task.hub.splits


def load_examples(
    task: "Task",
    split: str,
    language: str,
    data_dir: Path,
    source: str = "local",
    on_bad_example: str = "error",
    max_samples: int | None = None,
    seed: int = 0,
) -> LoadedData:
    if language not in task.languages:
        from intertask.errors import unknown_name_message

        raise ConfigError(unknown_name_message(f"language for task {task.name}", language, task.languages))
    if source == "hub" and hub_falls_back(task, split):
        # No hub copy of this task / split (ANLI+, CCG, XQuAD's English dev): its local files, as retrieval tasks do.
        from intertask.progress import log

        log(f"[dim]{task.name} {split}: no Hugging Face Hub copy; reading the local files under {data_dir}[/dim]")
        source = "local"
    if source == "hub":
        data = _load_hub(task, split, language)
    else:
        data = _load_local(task, split, language, Path(data_dir), on_bad_example)
    if max_samples is not None and isinstance(data.examples, list) and len(data.examples) > max_samples:
        # A seeded random subset, not the head of the file: files are often sorted by topic.
        rng = random.Random(seed)
        keep = sorted(rng.sample(range(len(data.examples)), max_samples))
        data.examples = [data.examples[i] for i in keep]
    return data


def _load_local(task: "Task", split: str, language: str, data_dir: Path, on_bad_example: str) -> LoadedData:
    if task.local is None:
        raise ConfigError(f"task {task.name} has no local file layout; use data_source=hub")
    if split not in task.local.files:
        raise ConfigError(f"task {task.name} has no {split!r} split in local files (has: {', '.join(task.local.files)})")
    paths = task.local.paths(data_dir, split, language)
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"task {task.name}, {split} {language}: data file not found: {p} (data_dir={data_dir})")
    result = task.local.reader(*paths, on_bad_example=on_bad_example)
    examples, skipped = (result.examples, result.skipped) if hasattr(result, "skipped") else (result, [])
    return LoadedData(examples, [str(p) for p in paths], list(skipped))


def _load_hub(task: "Task", split: str, language: str) -> LoadedData:
    if task.hub is None:
        raise ConfigError(f"task {task.name} has no Hugging Face Hub source; use data_source=local")
    import datasets

    hub = task.hub
    if split not in hub.splits:
        raise ConfigError(f"task {task.name} has no {split!r} split on the hub (has: {', '.join(hub.splits)})")
    code = hub.file_codes.get(language, language)
    name = hub.name.format(lang=code) if hub.name else None
    dataset = datasets.load_dataset(hub.path, name, split=hub.splits[split])
    examples = [hub.to_example(row) for row in dataset]
    return LoadedData(examples, [f"hub:{hub.path}" + (f"/{name}" if name else "") + f":{hub.splits[split]}"])
