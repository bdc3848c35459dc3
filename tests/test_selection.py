"""Intermediate-task selection: LogME, ranking metrics (NDCG, Regret@k), and `intertask select`."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.selection import cosine, example_texts, select, vocab_overlap
from intertask.selection.logme import logme
from intertask.selection.ranking import dcg, ndcg_at_k, regret_at_k

approx = pytest.approx
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


# ----------------------------------------------------------------------------- LogME


def _direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y; 0, I/beta + F F^T/alpha) / n, computed the slow way."""
    n = len(y)
    cov = np.eye(n) / beta + f @ f.T / alpha
    sign, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * (y @ np.linalg.solve(cov, y) + logdet + n * math.log(2 * math.pi))) / n


def test_logme_matches_the_maximised_marginal_likelihood():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 3))
    labels = (f[:, 0] + 0.3 * rng.normal(size=40) > 0).astype(int)
    # LogME = mean over the one-vs-rest classes of max_{alpha,beta} log p(y_c | F, alpha, beta) / n.
    grid = np.exp(np.linspace(-6, 6, 121))
    best = []
    for c in (0, 1):
        y = (labels == c).astype(float)
        best.append(max(_direct_log_evidence(f, y, a, b) for a in grid[::4] for b in grid[::4]))
    value = logme(f, labels)
    assert value >= np.mean(best) - 1e-6  # the fixed point finds at least the grid optimum
    assert value == approx(np.mean(best), abs=0.02)


def test_logme_ranks_separable_labels_above_random_labels():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    centers = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    informative = centers[labels] + rng.normal(size=(300, 4))
    noise = rng.normal(size=(300, 4))
    assert logme(informative, labels) > logme(noise, labels) + 0.1
    # Wider features than examples (D > n) work too (the rank-deficient directions count as log alpha).
    wide = np.concatenate([informative[:20], rng.normal(size=(20, 50))], axis=1)
    assert np.isfinite(logme(wide, labels[:20]))
    with pytest.raises(ValueError, match="two classes"):
        logme(noise, np.zeros(300, dtype=int))
    with pytest.raises(ValueError):
        logme(noise, labels[:10])


# ----------------------------------------------------------------------------- ranking metrics


def test_ndcg_and_regret_hand_computed():
    measured = {"a": 3.0, "b": 2.0, "c": 1.0}
    assert dcg([3, 2, 1]) == approx(3 + 2 / math.log2(3) + 1 / 2)
    # Reversed ranking: DCG = 1 + 2/log2(3) + 3/2 = 3.76186, IDCG = 3 + 2/log2(3) + 1/2 = 4.76186.
    assert ndcg_at_k(["c", "b", "a"], measured) == approx(3.761859 / 4.761859, rel=1e-6)
    assert ndcg_at_k(["a", "b", "c"], measured) == approx(1.0)
    assert ndcg_at_k(["c", "b", "a"], measured, k=1) == approx(1 / 3)
    assert ndcg_at_k(["b", "a", "c"], measured, k=2) == approx((2 + 3 / math.log2(3)) / (3 + 2 / math.log2(3)))
    assert regret_at_k(["c", "b", "a"], measured, k=1) == approx(2 / 3)
    assert regret_at_k(["c", "b", "a"], measured, k=2) == approx(1 / 3)
    assert regret_at_k(["c", "b", "a"], measured, k=3) == 0.0
    assert regret_at_k(["x", "a"], measured, k=1) == 0.0  # unmeasured candidates are ignored
    with pytest.raises(ValueError):
        ndcg_at_k(["x"], measured)


def test_similarity_helpers():
    assert cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == approx(1 / math.sqrt(2))
    w, j = vocab_overlap(Counter({1: 2, 2: 2}), Counter({2: 1, 3: 3}))
    assert w == approx(0.25) and j == approx(1 / 3)  # min(0.5, 0.25) ; |{2}| / |{1,2,3}|
    assert example_texts({"question": "q?", "context": "c.", "id": "x"}) == ["q?", "c."]
    assert example_texts({"tokens": ["a", "b"], "tags": ["O", "O"]}) == ["a b"]


# ----------------------------------------------------------------------------- end to end (tiny model)


@pytest.fixture(scope="module")
def tiny(tiny_model) -> Path:  # the session-wide tiny XLM-R of conftest.py
    return tiny_model


def _fake_store(path: Path) -> Path:
    from intertask.results.store import ResultsStore

    s = ResultsStore(path / "results.sqlite")
    for arm, f1 in (("squad_v1", 0.4), ("panx", 0.6), ("baseline", 0.5)):
        s.add({"run_id": arm, "experiment": "e", "arm": arm, "target": "panx", "seed": 1, "config": {}, "config_hash": "h", "created": "t",
               "scores": {"panx": {"en": {"f1": f1}, "ru": {"f1": f1}}}})  # fmt: skip
    return path / "results.sqlite"


def test_select_ranks_and_scores_against_the_store(tiny, tmp_path):
    store = _fake_store(tmp_path)
    res = select("panx", ["squad_v1", "panx"], model=tiny, data_dir=SAMPLE, max_samples=20, encoders={"panx": tiny}, store=store, k=1)
    methods = {m.method: m for m in res.methods}
    assert set(methods) == {"logme", "embedding", "vocab"}
    # Only panx has a "trained" encoder: LogME scores it, squad_v1 falls back to embedding similarity, after it.
    assert methods["logme"].ranking[0] == "panx" and methods["logme"].details["fallback"] == ["squad_v1"]
    assert np.isfinite(methods["logme"].details["pretrained"])
    # A dataset is most similar to itself.
    assert methods["embedding"].ranking[0] == "panx" and methods["embedding"].scores["panx"] == approx(1.0, abs=1e-5)
    assert methods["vocab"].ranking[0] == "panx" and methods["vocab"].scores["panx"] == approx(1.0)
    assert res.measured == {"squad_v1": approx(0.4), "panx": approx(0.6)}
    for ev in res.evaluation.values():
        assert ev["regret@1"] == 0.0 and ev["ndcg"] == approx(1.0)
    assert all(m.seconds >= 0 for m in res.methods)


def test_select_command(tiny, tmp_path):
    runner = CliRunner()
    args = [
        "select",
        "--target",
        "panx",
        "--candidates",
        "squad_v1,panx",
        "--model",
        str(tiny),
        "--data-dir",
        str(SAMPLE),
        "--max-samples",
        "10",
        "--methods",
        "vocab,embedding",
    ]
    res = runner.invoke(app, args + ["--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert [m["method"] for m in out["methods"]] == ["embedding", "vocab"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "ranking for target panx" in res.output
    res = runner.invoke(app, args[:-1] + ["vocabb"])
    assert res.exit_code == 2 and "did you mean 'vocab'" in res.output
    res = runner.invoke(app, ["select", "--target", "panx", "--candidates", "xnli", "--model", str(tiny), "--data-dir", str(SAMPLE)])
    assert res.exit_code == 2 and "cannot be used as an intermediate task" in res.output
