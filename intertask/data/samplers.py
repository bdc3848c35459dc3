"""Batch samplers of the training loop: each yields the row indices of one batch, epoch by epoch.

Every sampler is a deterministic function of (seed, epoch): the loop resumes mid-epoch by re-creating the epoch and
skipping the batches already trained on (``accelerate.skip_first_batches``), so a sampler must never keep state
across epochs. ``DataLoader(dataset, batch_sampler=sampler, collate_fn=...)`` turns the indices into batches.
"""

from __future__ import annotations

import math
import random
from typing import Iterator, Mapping, Sequence

from intertask.config import SamplingConfig
from intertask.data.batching import length_grouped_batches
from intertask.errors import ConfigError


class EpochBatches:
    """Length-grouped batches, reshuffled per epoch (accelerate shards them under DDP).

    ``partial_last``: the short batch goes last (set by the loop under several processes, where accelerate splits
    only full batches and completes the last one; one process keeps the batch order of earlier versions)."""

    partial_last = False

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        batches = length_grouped_batches(self.lengths, self.batch_size, self.seed + self.epoch)
        if self.partial_last:
            batches.sort(key=lambda b: len(b) < self.batch_size)  # stable: full batches keep their order
        return iter(batches)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def task_probabilities(sizes: Mapping[str, int], sampling: SamplingConfig | None) -> dict[str, float]:
    """Probability of drawing each task's batch next, from the tasks' training-set sizes.

    uniform: 1/K; proportional: n_i / sum n; temperature T: n_i^(1/T) normalised; capped: min(n_i, cap) normalised.
    """
    sampling = sampling or SamplingConfig()
    if not sizes:
        raise ConfigError("multi-task sampling: no tasks")
    if any(n <= 0 for n in sizes.values()):
        raise ConfigError(f"multi-task sampling: every task needs training examples, got {dict(sizes)}")
    if sampling.strategy == "uniform":
        weights = {t: 1.0 for t in sizes}
    elif sampling.strategy == "proportional":
        weights = {t: float(n) for t, n in sizes.items()}
    elif sampling.strategy == "temperature":
        if sampling.temperature <= 0:
            raise ConfigError(f"sampling.temperature must be > 0, got {sampling.temperature}")
        weights = {t: float(n) ** (1.0 / sampling.temperature) for t, n in sizes.items()}
    elif sampling.strategy == "capped":
        if sampling.cap is None or sampling.cap <= 0:
            raise ConfigError("sampling.cap: the capped strategy needs a positive cap (examples per task)")
        weights = {t: float(min(n, sampling.cap)) for t, n in sizes.items()}
    else:  # pragma: no cover - the config type forbids it
        raise ConfigError(f"unknown sampling strategy {sampling.strategy!r}")
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class MultiTaskBatches:
    """Batches of several tasks: the task of each batch drawn with `probabilities` (seeded per epoch), then that
    task's next length-grouped batch (a task whose batches run out is reshuffled). An epoch is as many batches as
    all tasks have together. Indices are global: task k's rows are offset by the sizes of the tasks before it."""

    def __init__(self, lengths: Mapping[str, Sequence[int]], batch_size: int, probabilities: Mapping[str, float], seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = {t: list(v) for t, v in lengths.items()}, batch_size, seed, 0
        self.tasks = list(probabilities)
        self.weights = [probabilities[t] for t in self.tasks]
        self.offsets, total = {}, 0
        for t in self.tasks:
            self.offsets[t], total = total, total + len(self.lengths[t])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches_per_epoch(self) -> int:
        return sum(math.ceil(len(v) / self.batch_size) for v in self.lengths.values())

    __len__ = batches_per_epoch

    def tagged(self) -> Iterator[tuple[str, list[int]]]:
        """(task, that task's row indices) batches of the current epoch."""
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        refills = {t: 0 for t in self.tasks}
        queues: dict[str, list[list[int]]] = {t: [] for t in self.tasks}
        for _ in range(len(self)):
            task = rng.choices(self.tasks, weights=self.weights)[0]
            if not queues[task]:
                k = self.tasks.index(task)
                queues[task] = length_grouped_batches(self.lengths[task], self.batch_size, self.seed + 1000 * (self.epoch * 1000 + refills[task]) + k)
                queues[task].reverse()
                refills[task] += 1
            yield task, queues[task].pop()

    def __iter__(self) -> Iterator[list[int]]:
        for task, idx in self.tagged():
            yield [self.offsets[task] + i for i in idx]
