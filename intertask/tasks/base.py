"""The task record: everything the framework needs to know about a task, in one declarative place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from intertask.evaluation.metrics import Metric
    from intertask.models.heads import Head

@dataclass(frozen=True)
class LocalFiles:
    """Files in the official format under `data_dir` (laid out like ``../shared/data``).

    `files` maps a split ("train", "dev", "test") to a path pattern, or a tuple of patterns for
    readers that take several files; ``{lang}`` is replaced by the language's file code, and
    ``"a|b"`` lists alternative names of one file (the first that exists is read).
    """

    files: Mapping[str, str | tuple[str, ...]]
    reader: Callable[..., Any]
    # ISO 639-1 code -> the code used in file names, where they differ (Tatoeba: ru -> rus).
    file_codes: Mapping[str, str] = field(default_factory=dict)

    def paths(self, data_dir: Path, split: str, language: str) -> tuple[Path, ...]:
        pattern = self.files[split]
        patterns = pattern if isinstance(pattern, tuple) else (pattern,)
        code = self.file_codes.get(language, language)
        return tuple(_first_existing(Path(data_dir), p.format(lang=code)) for p in patterns)


def _first_existing(data_dir: Path, pattern: str) -> Path:
    """"a.json|b.json": alternative names for one file, the first that exists wins."""
    candidates = [data_dir / c.strip() for c in pattern.split("|")]
    return next((c for c in candidates if c.is_file()), candidates[0])


@dataclass(frozen=True)
class HubDataset:
    """The same data on the Hugging Face Hub, loaded with ``datasets.load_dataset``."""

    path: str  # e.g. "google/xtreme"
    name: str | None  # config name; may contain {lang}, e.g. "PAN-X.{lang}"
    splits: Mapping[str, str]  # our split -> hub split, e.g. {"dev": "validation"}
    to_example: Callable[[dict], dict]  # hub row -> canonical example dict
    file_codes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    head: Head
    metrics: tuple[Metric, ...]
    main_metric: str  # key in the metrics' output used for checkpoint selection and tables
    languages: tuple[str, ...]
    roles: frozenset[str]
    local: LocalFiles | None = None
    hub: HubDataset | None = None
    labels: tuple[str, ...] = ()
    train_language: str = "en"
    # English training data as the benchmark defines it (XNLI <- MNLI); None: the task's own train split.
    train_task: str | None = None
    version: int = 1
    source: str = ""
    license: str = ""
    # The task's folder in XTREME / XTREME-R's official evaluate.py (prediction files, ``bucc2018`` for BUCC);
    # None: no official prediction file (intermediate tasks).
    official_name: str | None = None

    def training_task(self) -> Task:
        """The record whose train split trains this task: the benchmark's English training task
        (``train_task``, e.g. XNLI -> MNLI), else the task itself."""
        if self.train_task is None:
            return self
        from intertask.tasks import get_task  # the registry imports this module; look up at call time

        return get_task(self.train_task)

    def can_play(self, role: str) -> bool:
        return role in self.roles

    def splits(self) -> tuple[str, ...]:
        return tuple(self.local.files) if self.local else tuple(self.hub.splits) if self.hub else ()

    def compute_metrics(self, predictions: Any, references: Any, language: str, **options: Any) -> dict[str, float]:
        """Run every metric of the record (language-aware ones, like MLQA's, use `language`); `options` go to
        each metric (e.g. ``k`` of mAP@k)."""
        scores: dict[str, float] = {}
        for metric in self.metrics:
            scores.update(metric(predictions, references, lang=language, **options))
        return scores

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "roles": sorted(self.roles),
            "head": self.head.name,
            "metrics": [m.name for m in self.metrics],
            "main_metric": self.main_metric,
            "languages": list(self.languages),
            "labels": list(self.labels),
            "train_task": self.train_task,
            "version": self.version,
            "source": self.source,
            "license": self.license,
        }
