"""Evaluating a predicted ranking of intermediate tasks against measured transfer results
(Poth et al., EMNLP 2021, "What to Pre-Train on? Efficient Intermediate Task Selection").

* NDCG@k: DCG@k / IDCG@k with DCG@k = sum_{i=1..k} rel(i) / log2(i + 1), where rel(i) is the
  measured target score of the candidate ranked i-th (the relevance is the measured performance, as
  in Poth et al.); IDCG@k is the DCG@k of the ranking by measured score.
* Regret@k: (best measured score - best measured score among the top-k predicted) / best measured
  score -- the relative performance lost by only trying the top k predictions (0 = the best task
  is among them).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def dcg(relevances: Sequence[float]) -> float:
    return sum(rel / math.log2(i + 2) for i, rel in enumerate(relevances))


def ndcg_at_k(predicted: Sequence[str], measured: Mapping[str, float], k: int | None = None) -> float:
    """NDCG@k of `predicted` (best first) against measured scores; candidates without a measurement are ignored."""
    ranked = [c for c in predicted if c in measured]
    if not ranked:
        raise ValueError("ndcg_at_k: no predicted candidate has a measured score")
    k = len(ranked) if k is None else k
    ideal = sorted((measured[c] for c in ranked), reverse=True)
    idcg = dcg(ideal[:k])
    return dcg([measured[c] for c in ranked[:k]]) / idcg if idcg > 0 else 0.0


def regret_at_k(predicted: Sequence[str], measured: Mapping[str, float], k: int = 1) -> float:
    """Relative regret of trying only the top-k predicted candidates."""
    ranked = [c for c in predicted if c in measured]
    if not ranked:
        raise ValueError("regret_at_k: no predicted candidate has a measured score")
    best = max(measured[c] for c in ranked)
    got = max(measured[c] for c in ranked[:k])
    return (best - got) / best if best != 0 else 0.0
