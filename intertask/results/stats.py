"""Paired bootstrap confidence intervals for the difference between an intermediate-task arm and the
no-intermediate baseline.

Two levels of resampling, depending on what the store holds:

* **seeds** (always available): the unit is a seed; arm and baseline runs with the same seed are a
  pair (same target data order, same head initialisation). Each resample draws seeds with
  replacement and averages the per-seed differences. With few seeds the interval is coarse (with
  2 seeds there are only 3 distinct resample means) -- it says how much the seeds alone move it.
* **seeds x examples** (when per-example scores were saved, see :func:`save_example_scores`): a
  hierarchical paired bootstrap. Each resample draws seeds with replacement, then, within each
  drawn seed, evaluation examples with replacement -- the *same* example indices for arm and
  baseline, since both are evaluated on the same examples -- and recomputes the mean score
  difference. This is only valid for metrics that are means over examples (accuracy, exact match,
  SQuAD F1); corpus-level metrics such as span F1 (PAN-X) need the counts per example instead,
  which is what `save_example_scores` stores for them (``tp``, ``fp``, ``fn`` per example).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from intertask.io import read_json, write_json_atomic

EXAMPLES_SUFFIX = ".examples.json"


@dataclass
class Interval:
    delta: float  # the observed mean difference (arm - baseline)
    low: float
    high: float
    n: int  # pairs (seeds) it rests on
    p_le_zero: float  # fraction of resamples with difference <= 0 (one-sided bootstrap p-value)
    level: str = "seeds"  # what was resampled: "seeds" or "seeds x examples"

    def as_dict(self) -> dict[str, Any]:
        return {"delta": self.delta, "low": self.low, "high": self.high, "n": self.n, "p_le_zero": self.p_le_zero, "level": self.level}


def paired_bootstrap(arm: Sequence[float], baseline: Sequence[float], n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile CI of mean(arm - baseline), resampling pairs (seeds) with replacement."""
    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired_bootstrap: need two equal-length non-empty 1-d sequences, got {a.shape} and {b.shape}")
    diff = a - b
    observed = float(diff.mean())
    if len(diff) == 1:
        return Interval(observed, observed, observed, 1, float(observed <= 0))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(observed, float(low), float(high), len(diff), float((means <= 0).mean()))


def _score(rows: np.ndarray, kind: str) -> np.ndarray:
    """rows: (..., n_examples, k) -> metric over the example axis."""
    if kind == "mean":
        return rows[..., 0].mean(axis=-1)
    # "f1": rows are (tp, fp, fn) counts per example; micro F1 = 2tp / (2tp + fp + fn)
    tp, fp, fn = rows[..., 0].sum(-1), rows[..., 1].sum(-1), rows[..., 2].sum(-1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)


def hierarchical_bootstrap(
    arm: Sequence[np.ndarray], baseline: Sequence[np.ndarray], kind: str = "mean", n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Paired bootstrap over seeds, then examples within seeds (same example indices for both arms).

    `arm[s]` and `baseline[s]` are per-example arrays for seed s: shape (n,) of scores for
    kind="mean", or (n, 3) of (tp, fp, fn) counts for kind="f1".
    """
    if len(arm) != len(baseline) or not arm:
        raise ValueError("hierarchical_bootstrap: need the same non-zero number of seeds for both arms")
    A = [np.asarray(x, dtype=float).reshape(len(x), -1) for x in arm]
    B = [np.asarray(x, dtype=float).reshape(len(x), -1) for x in baseline]
    for a, b in zip(A, B):
        if a.shape != b.shape:
            raise ValueError(f"hierarchical_bootstrap: arm and baseline were scored on different examples ({a.shape} vs {b.shape})")
    observed = float(np.mean([_score(a, kind) - _score(b, kind) for a, b in zip(A, B)]))
    rng = np.random.default_rng(seed)
    S = len(A)
    means = np.empty(n_boot)
    for i in range(n_boot):
        seeds = rng.integers(0, S, size=S)
        diffs = []
        for s in seeds:
            idx = rng.integers(0, len(A[s]), size=len(A[s]))
            diffs.append(_score(A[s][idx], kind) - _score(B[s][idx], kind))
        means[i] = np.mean(diffs)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(observed, float(low), float(high), S, float((means <= 0).mean()), "seeds x examples")


# ----------------------------------------------------------------------------- per-example scores (hook)


def example_scores_path(eval_file: str | Path) -> Path:
    """Where the per-example scores of an evaluation file live: ``eval-<key>.examples.json`` next to it."""
    eval_file = Path(eval_file)
    return eval_file.with_name(eval_file.name.removesuffix(".json") + EXAMPLES_SUFFIX)


def save_example_scores(eval_file: str | Path, per_example: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Path:
    """Store per-example scores next to an evaluation file, for example-level bootstrap CIs.

    `per_example` is ``{task: {lang: {"kind": "mean" | "f1", "metric": name, "values": [...]}}}``:
    for kind "mean" one score per example (e.g. 0/1 correctness, SQuAD F1 of the example); for
    kind "f1" one ``[tp, fp, fn]`` per example. The examples must be in the same order for every
    arm (the evaluation order of the fixed dev/test set).
    """
    path = example_scores_path(eval_file)
    write_json_atomic(path, {t: {lang: dict(v) for lang, v in langs.items()} for t, langs in per_example.items()})
    return path


def load_example_scores(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The per-example scores saved for a record's target evaluation, or None."""
    if record.get("eval_file"):  # the pipeline may name its evaluation file exactly
        path = example_scores_path(record["eval_file"])
        return read_json(path) if path.is_file() else None
    target_dir = ((record.get("stages") or {}).get("target") or {}).get("dir")
    if not target_dir or not Path(target_dir).is_dir():
        return None
    files = sorted(Path(target_dir).glob("eval-*" + EXAMPLES_SUFFIX))
    if not files:
        return None
    return read_json(files[-1])


def example_scores(task: Any, predictions: Any, references: Any, language: str) -> dict[str, Any]:
    """Per-example scores of one evaluation, in the form `save_example_scores` stores.

    `predictions` / `references` are what ``task.head.postprocess`` returns. Tagging tasks give
    ``(tp, fp, fn)`` per sentence (kind "f1"): entity chunks for span F1 (seqeval's chunking, so
    the summed counts reproduce the corpus F1 exactly), tokens for POS (tp = correct tags, fp = fn =
    wrong ones, so 2tp/(2tp+fp+fn) is the token accuracy). Other tasks give the main metric of
    each example on its own (kind "mean"; accuracy, exact match, SQuAD/MLQA F1 are means of these).
    """
    from intertask.evaluation.metrics import seqeval_f1
    from intertask.models.heads import TokenClassificationHead

    metric = task.main_metric
    if isinstance(task.head, TokenClassificationHead):
        if seqeval_f1 in task.metrics:
            from seqeval.metrics.sequence_labeling import get_entities

            values = []
            for p, r in zip(predictions, references):
                pred, gold = set(get_entities(list(p))), set(get_entities(list(r)))
                values.append([len(pred & gold), len(pred - gold), len(gold - pred)])
        else:
            values = []
            for p, r in zip(predictions, references):
                correct = sum(int(a == b) for a, b in zip(p, r))
                values.append([correct, len(r) - correct, len(r) - correct])
        return {"kind": "f1", "metric": metric, "values": values}
    if isinstance(predictions, Mapping):
        keys = list(references)
        values = [task.compute_metrics({k: predictions.get(k, "")}, {k: references[k]}, language)[metric] for k in keys]
    else:
        values = [task.compute_metrics([p], [r], language)[metric] for p, r in zip(predictions, references)]
    return {"kind": "mean", "metric": metric, "values": [float(v) for v in values]}
