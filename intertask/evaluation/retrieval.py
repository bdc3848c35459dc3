"""Exact cosine search over sentence embeddings with faiss, and LASER-style margin bitext mining.

Cosine k-NN and margin mining L2-normalise float32 copies of the inputs and use ``faiss.IndexFlatIP``
(exact inner product = cosine), as XTREME's ``knnCPU`` does for BUCC. Tatoeba ranks as XTREME's
``similarity_search`` does: ``faiss.normalize_L2`` then an exact L2 index (``IndexFlatL2``), see
:func:`tatoeba_search`; on float32 near-ties and zero vectors the two orders differ.
Queries go through the index in batches so the (batch x corpus) score block stays bounded. faiss runs
on CPU with its own OpenMP threads; nothing here changes global settings.
Mirrors XTREME's third_party/utils_retrieve.py (itself adapted from LASER's mine_bitexts.py).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from intertask.threads import apply_thread_policy

Margin = Literal["ratio", "distance", "absolute"]


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2-normalised float32, C-contiguous copy of `x` (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (n, dim) array of embeddings, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, np.finfo(np.float32).tiny)
    return x


def _search(queries: np.ndarray, corpus: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """k-NN by inner product on already-normalised float32 arrays; k is clipped to the corpus size."""
    import faiss  # imported lazily: importing metrics must not pay for faiss

    apply_thread_policy()  # faiss's own OpenMP pool: as many threads as torch's

    if corpus.shape[0] == 0:
        raise ValueError("cannot search an empty corpus")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"query dim {queries.shape[1]} != corpus dim {corpus.shape[1]}")
    k = min(k, corpus.shape[0])  # faiss pads missing neighbours with -1 otherwise
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)
    sims = np.empty((queries.shape[0], k), dtype=np.float32)
    ids = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], batch_size):
        stop = start + batch_size
        sims[start:stop], ids[start:stop] = index.search(queries[start:stop], k)
    return sims, ids


def nearest_neighbours(
    queries: np.ndarray, corpus: np.ndarray, k: int, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-NN: (similarities, corpus row indices), each (n_queries, min(k, n_corpus)),
    best first."""
    return _search(normalize(queries), normalize(corpus), k, batch_size)


def knn_mean_similarity(queries: np.ndarray, corpus: np.ndarray, k: int = 4, batch_size: int = 4096) -> np.ndarray:
    """Mean cosine similarity of each query to its k nearest corpus rows (the margin denominator)."""
    sims, _ = nearest_neighbours(queries, corpus, k, batch_size)
    return sims.mean(axis=1)


def _margin(sim: np.ndarray, mean: np.ndarray, margin: Margin) -> np.ndarray:
    if margin == "ratio":
        return sim / mean
    if margin == "distance":
        return sim - mean
    if margin == "absolute":
        return sim
    raise ValueError(f"unknown margin {margin!r}; expected 'ratio', 'distance' or 'absolute'")


def mine_bitext(
    src_emb: np.ndarray,
    tgt_emb: np.ndarray,
    src_ids: Sequence[str],
    tgt_ids: Sequence[str],
    k: int = 4,
    margin: Margin = "ratio",
    min_score: float | None = 0.0,
    batch_size: int = 4096,
) -> list[tuple[str, str, float]]:
    """Margin-based bitext candidates, LASER/XTREME ``mine_bitext(mode="mine", retrieval="max")``.

    score(x, y) = margin(cos(x, y), (mean_k(x -> tgt) + mean_k(y -> src)) / 2), where mean_k is the
    mean cosine to the k nearest neighbours on the other side (ratio margin: cos / that mean).
    Each source takes its best-scoring target among its k nearest (forward), each target its best
    source among its k nearest (backward); the union is sorted by score, descending, and taken
    greedily so that every source and every target appears in at most one pair. A pair skipped
    for low score still uses up its source and target, and only scores > `min_score` (LASER's
    threshold=0; None keeps all) are returned. Returns (src_id, tgt_id, score), best first; pick
    the cut-off with `metrics.bucc_optimal_threshold`.

    XTREME first de-duplicates identical sentences (and drops ids of repeated sentences when
    mapping back); do that before calling, so each id here has one embedding.
    """
    if len(src_ids) != len(src_emb) or len(tgt_ids) != len(tgt_emb):
        raise ValueError("each embedding row needs exactly one id")
    x, y = normalize(src_emb), normalize(tgt_emb)
    fwd_sim, fwd_ind = _search(x, y, k, batch_size)
    bwd_sim, bwd_ind = _search(y, x, k, batch_size)
    fwd_mean, bwd_mean = fwd_sim.mean(axis=1), bwd_sim.mean(axis=1)
    # The cosine of each candidate pair is the k-NN similarity itself, so scoring is vectorised.
    fwd_scores = _margin(fwd_sim, (fwd_mean[:, None] + bwd_mean[fwd_ind]) / 2, margin)
    bwd_scores = _margin(bwd_sim, (bwd_mean[:, None] + fwd_mean[bwd_ind]) / 2, margin)
    fwd_best = fwd_ind[np.arange(len(x)), fwd_scores.argmax(axis=1)]
    bwd_best = bwd_ind[np.arange(len(y)), bwd_scores.argmax(axis=1)]

    src = np.concatenate([np.arange(len(x)), bwd_best])
    tgt = np.concatenate([fwd_best, np.arange(len(y))])
    scores = np.concatenate([fwd_scores.max(axis=1), bwd_scores.max(axis=1)])
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    mined: list[tuple[str, str, float]] = []
    for i in np.argsort(-scores, kind="stable"):
        s, t = int(src[i]), int(tgt[i])
        if s in seen_src or t in seen_tgt:
            continue
        seen_src.add(s)
        seen_tgt.add(t)
        if min_score is None or scores[i] > min_score:
            mined.append((src_ids[s], tgt_ids[t], float(scores[i])))
    return mined


def nearest_neighbour_accuracy(
    queries: np.ndarray, corpus: np.ndarray, gold_index: Sequence[int] | None = None, batch_size: int = 4096
) -> float:
    """Share of query rows whose cosine nearest corpus row is `gold_index[i]` (default: row i)."""
    if len(queries) == 0:
        raise ValueError("no queries to score")
    gold = np.arange(len(queries)) if gold_index is None else np.asarray(gold_index)
    if len(gold) != len(queries):
        raise ValueError(f"{len(gold)} gold indices for {len(queries)} queries")
    _, ids = nearest_neighbours(queries, corpus, 1, batch_size)
    return float(np.mean(ids[:, 0] == gold))


def tatoeba_search(queries: np.ndarray, corpus: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Row index of the nearest corpus row for every query, ranked as XTREME's ``similarity_search``
    (third_party/utils_retrieve.py, ``dist == "cosine"``): float32 copies of both sides go through
    ``faiss.normalize_L2`` (zero rows stay zero) and an exact ``faiss.IndexFlatL2`` over the corpus is
    searched with k=1. On unit vectors this is the cosine order, but a zero corpus row lies at squared
    distance 1 from every unit query (it beats rows with cosine < 0.5, not < 0 as under inner product),
    and float32 near-ties are broken by faiss's L2 arithmetic, as in XTREME's runs."""
    import faiss

    apply_thread_policy()
    x = np.array(corpus, dtype=np.float32, order="C", copy=True)
    y = np.array(queries, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected 2-D (n, dim) arrays of embeddings, got shapes {y.shape} and {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("cannot search an empty corpus")
    if y.shape[1] != x.shape[1]:
        raise ValueError(f"query dim {y.shape[1]} != corpus dim {x.shape[1]}")
    faiss.normalize_L2(x)
    faiss.normalize_L2(y)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    out = np.empty(y.shape[0], dtype=np.int64)
    for start in range(0, y.shape[0], batch_size):
        out[start : start + batch_size] = index.search(y[start : start + batch_size], 1)[1][:, 0]
    return out


def tatoeba_accuracy(src_emb: np.ndarray, tgt_emb: np.ndarray, batch_size: int = 4096) -> dict[str, float]:
    """Tatoeba accuracy in both directions for line-aligned `src_emb` (xx) and `tgt_emb` (English).

    ``accuracy`` is XTREME's reported direction: run_retrieval.py indexes the xx sentences and
    searches them with the English ones, i.e. tgt -> src. ``accuracy_src2tgt`` is the reverse
    (LASER's xx -> en); ``accuracy_tgt2src`` equals ``accuracy``. Both rank with
    :func:`tatoeba_search` (XTREME's normalize_L2 + IndexFlatL2).
    """
    if len(src_emb) != len(tgt_emb):
        raise ValueError(f"{len(src_emb)} source vs {len(tgt_emb)} target sentences; Tatoeba is line-aligned")
    if len(src_emb) == 0:
        raise ValueError("no queries to score")
    gold = np.arange(len(src_emb))
    tgt2src = float(np.mean(tatoeba_search(tgt_emb, src_emb, batch_size) == gold))
    src2tgt = float(np.mean(tatoeba_search(src_emb, tgt_emb, batch_size) == gold))
    return {"accuracy": tgt2src, "accuracy_src2tgt": src2tgt, "accuracy_tgt2src": tgt2src}
