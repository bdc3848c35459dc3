"""Batching that wastes little compute on padding."""

from __future__ import annotations

import random
from typing import Sequence


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches of similar length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, mega: int = 50) -> list[list[int]]:
    """Training batches: shuffle, sort within mega-batches of `mega` batches by length, shuffle batches.

    Keeps the randomness of SGD while making each batch's examples of similar length
    (the same idea as transformers' LengthGroupedSampler).
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    span = batch_size * mega
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
