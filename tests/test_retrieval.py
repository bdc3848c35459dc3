"""faiss-based search and margin mining on tiny hand-checked embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intertask.evaluation.retrieval import (
    knn_mean_similarity,
    mine_bitext,
    nearest_neighbours,
    normalize,
    tatoeba_accuracy,
)

approx = pytest.approx


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_normalize_copies_to_float32_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    y = normalize(x)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert np.allclose(y, [[0.6, 0.8], [0.0, 0.0]])
    assert x[0, 0] == 3.0  # input untouched


def test_nearest_neighbours_exact_cosine_clipped_k_and_batching():
    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # Query (2, 0.1): cos with (1,0) = 2/sqrt(4.01) = 0.99875, with (1,1) = 2.1/(sqrt(4.01)*sqrt(2))
    # = 0.74153, with (0,1) = 0.1/sqrt(4.01) = 0.04994. k=5 is clipped to the 3 corpus rows.
    sims, ids = nearest_neighbours(np.array([[2.0, 0.1]]), corpus, k=5)
    assert ids.tolist() == [[0, 2, 1]]
    assert sims[0].tolist() == approx([2 / math.sqrt(4.01), 2.1 / math.sqrt(8.02), 0.1 / math.sqrt(4.01)], rel=1e-5)
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(7, 8)), rng.normal(size=(11, 8))
    full = nearest_neighbours(q, c, k=3)
    batched = nearest_neighbours(q, c, k=3, batch_size=2)  # 4 batches, last one partial
    assert np.array_equal(full[1], batched[1]) and np.allclose(full[0], batched[0])


# Unit vectors with easy cosines: S[src][tgt] =
#          t0   t1   t2
#   s0    .8   0    .6
#   s1    .6   .6   0
SRC = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
TGT = np.array([[0.8, 0.6, 0.0], [0.0, 0.6, 0.8], [0.6, 0.0, 0.8]])


def test_knn_mean_similarity():
    # k=2: s0 -> {.8, .6} = .7; s1 -> {.6, .6} = .6; t0 -> {.8, .6} = .7; t1 -> {.6, 0} = .3; t2 -> .3.
    assert knn_mean_similarity(SRC, TGT, k=2).tolist() == approx([0.7, 0.6], rel=1e-6)
    assert knn_mean_similarity(TGT, SRC, k=2).tolist() == approx([0.7, 0.3, 0.3], rel=1e-6)


def test_mine_bitext_ratio_margin_max_strategy():
    # ratio margin(x, y) = cos / ((mean_x + mean_y) / 2), means from test_knn_mean_similarity:
    #   forward  s0: t0 .8/.7 = 8/7,  t2 .6/((.7+.3)/2) = 1.2     -> s0-t2 (1.2; raw cosine says t0)
    #            s1: t0 .6/.65 = .923, t1 .6/((.6+.3)/2) = 4/3    -> s1-t1 (4/3)
    #   backward t0: s0 8/7, s1 .923 -> s0-t0 (8/7);  t1: s1 4/3, s0 0 -> s1-t1;  t2: s0 1.2 -> s0-t2
    # Union by score: s1-t1 4/3 (twice), s0-t2 1.2 (twice), s0-t0 8/7. Greedy one-to-one keeps
    # s1-t1 and s0-t2; s0-t0 is dropped because s0 is taken.
    mined = mine_bitext(SRC, TGT, ["s0", "s1"], ["t0", "t1", "t2"], k=2)
    assert [(s, t) for s, t, _ in mined] == [("s1", "t1"), ("s0", "t2")]
    assert [score for _, _, score in mined] == approx([4 / 3, 1.2], rel=1e-5)
    # Only scores > min_score are returned, but the one-to-one bookkeeping is unchanged.
    assert [(s, t) for s, t, _ in mine_bitext(SRC, TGT, ["s0", "s1"], ["t0", "t1", "t2"], k=2, min_score=1.25)] == [
        ("s1", "t1")
    ]
    with pytest.raises(ValueError, match="unknown margin"):
        mine_bitext(SRC, TGT, ["s0", "s1"], ["t0", "t1", "t2"], margin="cosine")  # type: ignore[arg-type]


def test_tatoeba_accuracy_both_directions():
    src = np.array([unit(0), unit(90), unit(10)])  # xx sentences
    tgt = np.array([unit(2), unit(88), unit(40)])  # their English translations, line-aligned
    # src -> tgt: 0° -> 2° ok, 90° -> 88° ok, 10° -> 2° (8° away; 40° is 30° away) wrong: 2/3.
    # tgt -> src (XTREME's direction): 2° -> 0° ok, 88° -> 90° ok, 40° -> 10° (30°; 0° is 40°) ok: 1.
    assert tatoeba_accuracy(src, tgt) == approx({"accuracy": 1.0, "accuracy_src2tgt": 2 / 3, "accuracy_tgt2src": 1.0})


def _xtreme_similarity_search(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """XTREME's third_party/utils_retrieve.similarity_search(x, y, dim, normalize=True), re-written from its
    published definition: normalize_L2 both sides, IndexFlatL2 over x, k=1 search with y."""
    import faiss

    x, y = np.ascontiguousarray(x, dtype=np.float32).copy(), np.ascontiguousarray(y, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    faiss.normalize_L2(y)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    return index.search(y, 1)[1][:, 0]


def test_tatoeba_search_zero_vectors_rank_as_xtreme_l2_not_inner_product():
    from intertask.evaluation.retrieval import tatoeba_search

    # A zero corpus row is at squared L2 distance 1 from any unit query; a unit row at cosine c is at 2 - 2c.
    corpus = np.array([[0.0, 0.0], unit(72.5)], dtype=np.float32)  # cos(72.5°) = 0.30 < 0.5
    query = np.array([unit(0)], dtype=np.float32)
    assert tatoeba_search(query, corpus).tolist() == [0]  # XTREME: the zero row wins
    assert nearest_neighbours(query, corpus, 1)[1][0, 0] == 1  # inner product would pick the unit row
    corpus2 = np.array([[0.0, 0.0], unit(45)], dtype=np.float32)  # cos 0.71 > 0.5: the unit row wins both ways
    assert tatoeba_search(query, corpus2).tolist() == [1]
    # A zero query is equidistant (1) from all unit rows: faiss keeps the first.
    assert tatoeba_search(np.zeros((1, 2), np.float32), np.array([unit(30), unit(10)])).tolist() == [0]
    # accuracy with a zero English sentence: it retrieves whatever is first, as in XTREME
    src = np.array([unit(0), unit(90)], dtype=np.float32)
    tgt = np.array([[0.0, 0.0], unit(91)], dtype=np.float32)
    assert tatoeba_accuracy(src, tgt)["accuracy"] == 1.0


def test_tatoeba_search_near_ties_equal_xtreme_formula():
    from intertask.evaluation.retrieval import tatoeba_search

    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    # near-duplicates: every corpus row has a twin differing by float32 rounding-level noise
    corpus = np.concatenate([base, base + rng.normal(scale=1e-7, size=base.shape).astype(np.float32)])
    corpus[7] = 0.0  # and one zero row
    queries = np.concatenate([base + rng.normal(scale=1e-6, size=base.shape).astype(np.float32), np.zeros((1, 16), np.float32)])
    got = tatoeba_search(queries, corpus, batch_size=7)
    assert got.tolist() == _xtreme_similarity_search(corpus, queries).tolist()
    # inputs are not modified in place (faiss.normalize_L2 works in place on its copy only)
    assert np.abs(corpus[0]).sum() > 0 and not np.allclose(np.linalg.norm(corpus[:5], axis=1), 1)
