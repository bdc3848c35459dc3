"""XTREME / XTREME-R / XTREME-RU aggregation on a fixed hand-computed table."""

from __future__ import annotations

import pytest

from intertask.errors import ConfigError
from intertask.evaluation.benchmark_scores import PROFILES, benchmark_score, format_benchmark, language_score
from intertask.tasks import get_task

approx = pytest.approx

# One value per task (every language), except XNLI (en 0.8, others 0.5) and BUCC (de .8, fr .6, ru .4, zh .2).
# QA tasks store exact match and F1: XQuAD (.4, .6) -> .5, MLQA (.3, .5) -> .4, TyDiQA (.2, .4) -> .3.
CONSTANT = {
    "pawsx": {"accuracy": 0.9}, "udpos": {"f1": 0.7, "accuracy": 0.99}, "panx": {"f1": 0.6},
    "xquad": {"exact_match": 0.4, "f1": 0.6}, "mlqa": {"exact_match": 0.3, "f1": 0.5},
    "tydiqa": {"exact_match": 0.2, "f1": 0.4}, "tatoeba": {"accuracy": 0.3, "accuracy_src2tgt": 0.9},
    "xcopa": {"accuracy": 0.6}, "lareqa": {"map@20": 0.2}, "mewslix": {"map@20": 0.1},
}  # fmt: skip
BUCC = {"de": 0.8, "fr": 0.6, "ru": 0.4, "zh": 0.2}


def full_table() -> dict:
    """Scores for every language of every task record (the union of both benchmarks), as result records store them."""
    table: dict = {}
    for task, metrics in CONSTANT.items():
        table[task] = {lang: {**metrics, "examples": 10, "layer": 8} for lang in get_task(task).languages}
    table["xnli"] = {lang: {"accuracy": 0.8 if lang == "en" else 0.5} for lang in get_task("xnli").languages}
    table["bucc"] = {lang: {"f1": v, "precision": 1.0, "threshold": 1.1} for lang, v in BUCC.items()}
    return table


def test_language_score_qa_is_mean_of_em_and_f1():
    assert language_score("xquad", {"exact_match": 0.4, "f1": 0.6}) == approx(0.5)
    assert language_score("bucc", {"f1": 0.3, "precision": 0.9}) == approx(0.3)
    with pytest.raises(ConfigError, match="exact_match"):
        language_score("mlqa", {"f1": 0.5})
    with pytest.raises(ConfigError, match="unknown benchmark task"):
        language_score("squad_v1", {"f1": 0.5})


def test_xtreme_score():
    r = benchmark_score(full_table(), "xtreme")
    assert r["complete"] and r["missing"] == {"tasks": [], "languages": {}}
    # XNLI: (0.8 + 14 * 0.5) / 15 = 0.52; BUCC: (.8 + .6 + .4 + .2) / 4 = 0.5
    assert r["tasks"]["xnli"]["score"] == approx(0.52)
    assert r["tasks"]["bucc"]["score"] == approx(0.5)
    assert len(r["tasks"]["udpos"]["languages"]) == 33 and len(r["tasks"]["panx"]["languages"]) == 40
    assert len(r["tasks"]["tatoeba"]["languages"]) == 36 and "uk" not in r["tasks"]["tatoeba"]["languages"]
    assert r["groups"] == approx(
        {"classification": (0.9 + 0.52) / 2, "structured_prediction": 0.65, "qa": 0.4, "retrieval": (0.5 + 0.3) / 2}
    )
    # (0.9 + 0.52 + 0.7 + 0.6 + 0.5 + 0.4 + 0.3 + 0.5 + 0.3) / 9 = 4.72 / 9
    assert r["score"] == approx(4.72 / 9)
    assert r["group_mean"] == approx((0.71 + 0.65 + 0.4 + 0.4) / 4)


def test_xtreme_r_score():
    r = benchmark_score(full_table(), "xtreme-r")
    assert r["complete"]
    assert set(r["tasks"]) == {"xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba", "mewslix", "lareqa"}
    assert len(r["tasks"]["udpos"]["languages"]) == 38 and len(r["tasks"]["panx"]["languages"]) == 48
    assert len(r["tasks"]["tatoeba"]["languages"]) == 41 and len(r["tasks"]["xquad"]["languages"]) == 12
    assert "en" not in r["tasks"]["xcopa"]["languages"]
    assert r["groups"] == approx(
        {"classification": (0.52 + 0.6) / 2, "structured_prediction": 0.65, "qa": 0.4, "retrieval": (0.3 + 0.1 + 0.2) / 3}
    )
    # (.52 + .6 + .7 + .6 + .5 + .4 + .3 + .3 + .1 + .2) / 10
    assert r["score"] == approx(4.22 / 10)


def test_xtreme_ru_profile_with_english_reference():
    r = benchmark_score(full_table(), "xtreme-ru")
    assert set(r["tasks"]) == {"xnli", "udpos", "panx", "xquad", "tydiqa", "bucc", "tatoeba", "lareqa"}
    assert all(list(t["languages"]) == ["ru"] for t in r["tasks"].values())
    # ru: .5 .7 .6 .5 .3 .4 .3 .2 -> 3.5 / 8
    assert r["score"] == approx(3.5 / 8)
    assert r["tasks"]["xnli"]["reference"] == {"en": approx(0.8)}
    assert "reference" not in r["tasks"]["bucc"] and "reference" not in r["tasks"]["tatoeba"]
    # en reference over xnli .8, udpos .7, panx .6, xquad .5, tydiqa .3, lareqa .2
    assert r["reference_score"] == approx(3.1 / 6)
    assert format_benchmark(r).startswith("xtreme-ru: 43.7")  # 43.749999... (float sum)


def test_incomplete_input_is_scored_and_flagged():
    table = full_table()
    del table["bucc"]
    del table["xnli"]["ru"]
    r = benchmark_score(table, "xtreme")
    assert not r["complete"]
    assert r["missing"] == {"tasks": ["bucc"], "languages": {"xnli": ["ru"]}}
    assert "retrieval" not in r["groups"] and r["group_mean"] is None  # a group needs all of its tasks
    assert r["tasks"]["xnli"]["score"] == approx((0.8 + 13 * 0.5) / 14)
    assert set(PROFILES) == {"xtreme", "xtreme-r", "xtreme-ru"}
    with pytest.raises(ConfigError, match="unknown benchmark profile"):
        benchmark_score(table, "xtreme-x")
