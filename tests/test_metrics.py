"""Metrics against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from intertask.errors import ConfigError
from intertask.evaluation.metrics import (
    Metric,
    accuracy,
    best_null_threshold,
    bucc_f1,
    bucc_optimal_threshold,
    bucc_select,
    map_at_k,
    mlqa_scores,
    pos_f1,
    seqeval_f1,
    squad_scores,
    squad_v2_scores,
    tatoeba_accuracy,
)

approx = pytest.approx


# --------------------------------------------------------------------------- API


def test_metrics_have_stable_names_and_primary_keys():
    assert accuracy.name == "accuracy" and accuracy.primary == "accuracy"
    assert seqeval_f1.name == "seqeval_f1" and seqeval_f1.primary == "f1"
    assert mlqa_scores.takes_lang and not squad_scores.takes_lang
    assert map_at_k.name == "map_at_k" and map_at_k.primary == "map@20"


def test_task_records_declare_metrics_with_distinct_names():
    from intertask.tasks import all_tasks

    by_name: dict[str, Metric] = {}
    for task in all_tasks():
        for metric in task.metrics:
            assert isinstance(metric, Metric), task.name
            assert by_name.setdefault(metric.name, metric) is metric, f"two different metrics named {metric.name}"
        assert any(m.primary == task.main_metric for m in task.metrics) or task.head.name in ("masked_lm",), task.name


def test_lang_can_be_passed_to_every_metric():
    # Task.compute_metrics passes lang= to any metric whose __call__ names it; the ones that do
    # not use it must ignore it.
    assert accuracy([1], [1], lang="de") == {"accuracy": 1.0}
    assert mlqa_scores({"q": "x"}, {"q": ["x"]}, lang="de")["exact_match"] == 1.0


# --------------------------------------------------------------------------- classification


def test_accuracy():
    # 3 of 4 equal.
    assert accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == {"accuracy": 0.75}
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        accuracy([0, 1, 2], [0, 1])


# --------------------------------------------------------------------------- tagging


def test_seqeval_f1_repairs_bio_and_handles_sentence_without_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "O", "O"]]  # sentence 2 has no entity
    pred = [["I-PER", "I-PER", "O", "O"], ["O", "B-ORG", "O"]]
    # Gold entities: PER[0,1], LOC[3]. Predicted: "I-PER I-PER" after sentence start is repaired
    # into PER[0,1] (correct); ORG in sentence 2 is a false positive. 1 correct / 2 predicted /
    # 2 gold: P = R = F1 = 1/2.
    assert seqeval_f1(pred, gold) == approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_seqeval_f1_type_change_splits_chunk():
    # "B-PER I-LOC" is PER[0] + LOC[1] (the I-LOC starts a LOC chunk), so it matches that gold.
    assert seqeval_f1([["B-PER", "I-LOC"]], [["B-PER", "B-LOC"]])["f1"] == 1.0
    # No entities anywhere: everything is 0, no exception.
    assert seqeval_f1([["O", "O"]], [["O", "O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_seqeval_f1_checks_lengths():
    with pytest.raises(ValueError, match="sentence 0"):
        seqeval_f1([["O"]], [["O", "O"]])


def test_pos_f1_scores_runs_of_bare_tags():
    gold = [["NOUN", "NOUN", "VERB", "PUNCT"], ["SYM", "SYM"]]
    pred = [["NOUN", "ADJ", "VERB", "PUNCT"], ["SYM", "SYM"]]
    # seqeval chunks of bare tags are runs of equal tags, except S-initial tags (SYM) which are
    # singletons. Gold: NOUN[0,1] VERB[2] PUNCT[3] SYM[4] SYM[5] = 5 (sentence separator shifts
    # offsets but not the count). Pred: NOUN[0] ADJ[1] VERB[2] PUNCT[3] SYM SYM = 6.
    # Correct: VERB, PUNCT, SYM, SYM = 4 (NOUN[0] != NOUN[0,1]).
    # P = 4/6, R = 4/5, F1 = 2PR/(P+R) = (16/15)/(22/15) = 8/11. Token accuracy: 5 of 6.
    assert pos_f1(pred, gold) == approx({"precision": 4 / 6, "recall": 4 / 5, "f1": 8 / 11, "accuracy": 5 / 6})


def test_pos_f1_drops_trailing_x():
    # "X" has seqeval type "_", the same as the padding "O", so an X run at sentence end never
    # closes and is not a chunk: only NOUN[0] is scored, and it is right -> F1 1 despite X.
    assert pos_f1([["NOUN", "X"]], [["NOUN", "X"]])["f1"] == 1.0
    # Gold chunks {NOUN[0]}, predicted {NOUN[0,1]}: no overlap -> F1 0, token accuracy 1/2.
    assert pos_f1([["NOUN", "NOUN"]], [["NOUN", "X"]]) == approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.5}
    )


# --------------------------------------------------------------------------- SQuAD v1.1


def test_squad_scores_max_over_golds_normalisation_and_missing():
    refs = {"q1": ["Denver Broncos", "The Broncos"], "q2": ["Santa Clara, California"], "q3": ["a cat"]}
    preds = {"q1": "the Broncos!", "q2": "Santa Clara", "extra": "ignored"}
    # q1: "the Broncos!" -> "broncos" (lowercase, "!" and article removed) == 2nd gold "broncos":
    #     EM 1, F1 1 (against the 1st gold alone F1 would be 2*1*(1/2)/(3/2) = 2/3).
    # q2: "santa clara" vs "santa clara california": EM 0; P = 2/2, R = 2/3, F1 = (4/3)/(5/3) = 0.8.
    # q3: no prediction -> 0.  Means over 3 questions: EM 1/3, F1 1.8/3 = 0.6.
    assert squad_scores(preds, refs) == approx({"exact_match": 1 / 3, "f1": 0.6})


def test_squad_articles_only_as_whole_words():
    # "an" inside "Anaheim" stays; "The" is dropped: "the anaheim angels" -> "anaheim angels".
    assert squad_scores({"q": "Anaheim Angels"}, {"q": ["The Anaheim Angels"]})["exact_match"] == 1.0


# --------------------------------------------------------------------------- MLQA


def test_mlqa_language_specific_articles():
    # es: "el" is an article -> "real madrid" == "real madrid".
    assert mlqa_scores({"q": "Real Madrid"}, {"q": ["el Real Madrid"]}, lang="es")["exact_match"] == 1.0
    # en keeps "el": "el real madrid" vs "real madrid": EM 0, P = 1, R = 2/3, F1 = 0.8.
    assert mlqa_scores({"q": "Real Madrid"}, {"q": ["el Real Madrid"]}, lang="en") == approx(
        {"exact_match": 0.0, "f1": 0.8}
    )
    # de: "der" and "den" are articles.
    assert mlqa_scores({"q": "den Rhein"}, {"q": ["der Rhein"]}, lang="de")["exact_match"] == 1.0
    # ar: every "ال" is removed: "القاهرة" -> "قاهرة".
    assert mlqa_scores({"q": "قاهرة"}, {"q": ["القاهرة"]}, lang="ar")["exact_match"] == 1.0


def test_mlqa_unicode_punctuation():
    refs, preds = {"q": ["«Guerra y paz»"]}, {"q": "Guerra y paz —"}
    # « » — are Unicode punctuation (categories Pi, Pf, Pd): both sides -> "guerra y paz".
    assert mlqa_scores(preds, refs, lang="es") == {"exact_match": 1.0, "f1": 1.0}
    # SQuAD only strips ASCII punctuation: tokens «guerra y paz» vs guerra y paz — share only "y":
    # P = 1/4, R = 1/3, F1 = 2*(1/12)/(7/12) = 2/7.
    assert squad_scores(preds, refs) == approx({"exact_match": 0.0, "f1": 2 / 7})


def test_mlqa_chinese_character_segmentation():
    # zh: each CJK char is a token, other runs split on whitespace; "。" is punctuation.
    # gold "2008年奥运会" -> [2008, 年, 奥, 运, 会]; pred "2008年。" -> [2008, 年]
    # common 2: P = 2/2, R = 2/5, F1 = 2*0.4/1.4 = 4/7.
    assert mlqa_scores({"q": "2008年。"}, {"q": ["2008年奥运会"]}, lang="zh") == approx(
        {"exact_match": 0.0, "f1": 4 / 7}
    )
    # Whitespace tokenisation would see one token each and give F1 0.
    assert mlqa_scores({"q": "北京"}, {"q": ["北京大学"]}, lang="zh")["f1"] == approx(2 / 3)  # P 1, R 1/2


def test_mlqa_unknown_language():
    with pytest.raises(ConfigError, match="MLQA answer language"):
        mlqa_scores({"q": "x"}, {"q": ["x"]}, lang="fr")


# --------------------------------------------------------------------------- SQuAD v2.0

V2_REFS = {"a": ["Paris"], "b": [], "c": [], "d": ["the Seine river"]}
V2_PREDS = {"a": "Paris", "b": "", "c": "London", "d": "Seine"}


def test_squad_v2_scores_with_breakdowns():
    # a: exact, 1/1.  b: unanswerable and "" predicted, 1/1.  c: unanswerable but "London", 0/0.
    # d: "seine" vs "seine river": EM 0, P 1, R 1/2, F1 2/3.
    # All: EM 2/4, F1 (1+1+0+2/3)/4 = 2/3. HasAns (a, d): EM 1/2, F1 5/6. NoAns (b, c): 1/2, 1/2.
    assert squad_v2_scores(V2_PREDS, V2_REFS) == approx(
        {
            "exact_match": 0.5, "f1": 2 / 3,
            "has_ans_exact_match": 0.5, "has_ans_f1": 5 / 6,
            "no_ans_exact_match": 0.5, "no_ans_f1": 0.5,
        }
    )


def test_best_null_threshold():
    odds = {"a": -2.0, "b": 3.0, "c": 1.0, "d": 0.5}
    # Start: all abstain -> 2 (b, c right). By increasing odds, answer a (-2), d (0.5), c (1), b (3):
    #   EM: +1 -> 3 (best, thr -2), +0 -> 3, -1 ("London") -> 2, +0 -> 2.  best 3/4 at -2.
    #   F1: +1 -> 3 (thr -2), +2/3 -> 11/3 (best, thr 0.5), -1 -> 8/3, +0.  best 11/12 at 0.5.
    assert best_null_threshold(odds, V2_PREDS, V2_REFS) == approx(
        {"best_exact_match": 0.75, "best_exact_match_threshold": -2.0, "best_f1": 11 / 12, "best_f1_threshold": 0.5}
    )
    # Applying the F1 threshold: odds > 0.5 (b, c) become "", so c is now right:
    # F1 (1 + 1 + 1 + 2/3)/4 = 11/12, EM (1 + 1 + 1 + 0)/4 = 3/4.
    scores = squad_v2_scores(V2_PREDS, V2_REFS, null_odds=odds, null_threshold=0.5)
    assert (scores["exact_match"], scores["f1"]) == approx((0.75, 11 / 12))


# --------------------------------------------------------------------------- BUCC

DEV_CANDIDATES = [
    ("s1", "t1", 1.30), ("s2", "t2", 1.20), ("s3", "t9", 1.10), ("s4", "t4", 1.00), ("s5", "t5", 0.90),
    ("s1", "t1", 0.50),  # the same pair mined again: its best score (1.30) counts
]
DEV_GOLD = {("s1", "t1"), ("s2", "t2"), ("s4", "t4"), ("s6", "t6")}  # s6-t6 never mined


def test_bucc_threshold_on_dev_applied_to_test():
    # Walking dev by score (4 gold pairs), F1 of "keep the top n":
    #   n=1: P 1,   R 1/4 -> 0.4    (thr (1.30+1.20)/2 = 1.25)
    #   n=2: P 1,   R 2/4 -> 2/3    (thr 1.15)
    #   n=3: P 2/3, R 2/4 -> 4/7
    #   n=4: P 3/4, R 3/4 -> 0.75   (best; thr (1.00+0.90)/2 = 0.95)
    #   n=5: P 3/5, R 3/4 -> 2/3
    threshold = bucc_optimal_threshold(DEV_CANDIDATES, DEV_GOLD)
    assert threshold == approx(0.95)
    test_candidates = [("a", "x", 1.5), ("b", "y", 0.97), ("c", "z", 0.93), ("d", "w", 0.2)]
    test_gold = {("a", "x"), ("c", "z"), ("e", "v")}
    # On test, scores >= 0.95 keep a-x (right) and b-y (wrong): P 1/2, R 1/3, F1 (1/3)/(5/6) = 0.4.
    predicted = bucc_select(test_candidates, threshold)
    assert predicted == {("a", "x"), ("b", "y")}
    assert bucc_f1(predicted, test_gold) == approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4})


def test_bucc_threshold_edge_cases():
    # Best F1 at the last candidate: the threshold is that score, so everything is kept.
    assert bucc_optimal_threshold([("a", "b", 2.0), ("c", "d", 1.0)], {("a", "b"), ("c", "d")}) == 1.0
    # Nothing correct: 0.0, as the official script.
    assert bucc_optimal_threshold([("a", "b", 2.0)], {("x", "y")}) == 0.0
    assert bucc_f1(set(), {("x", "y")}) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


# --------------------------------------------------------------------------- mAP@k


def test_map_at_20():
    ranked = [["c1", "x", "c2", "y"], ["z", "q1"]]
    relevant = [{"c1", "c2"}, {"q1", "q2", "q3"}]
    # Query 1: hits at ranks 1 and 3: (1/1 + 2/3) / min(20, 2) = 5/6.
    # Query 2: hit at rank 2: (1/2) / min(20, 3) = 1/6.   mAP = (5/6 + 1/6) / 2 = 1/2.
    assert map_at_k(ranked, relevant) == approx({"map@20": 0.5})
    # k=2 cuts query 1 after rank 2: 1 / min(2, 2) = 1/2; query 2: (1/2)/min(2, 3) = 1/4.
    assert map_at_k(ranked, relevant, k=2) == approx({"map@2": 0.375})
    # A repeated item counts once: ranks 1 (c1), 2 (c1 again, skipped), 3 (c2): (1 + 2/3)/2.
    assert map_at_k([["c1", "c1", "c2"]], [{"c1", "c2"}]) == approx({"map@20": 5 / 6})


# --------------------------------------------------------------------------- Tatoeba


def test_tatoeba_accuracy_metric_is_what_the_record_declares():
    from intertask.tasks import get_task

    def unit(deg: float) -> list[float]:
        return [float(np.cos(np.radians(deg))), float(np.sin(np.radians(deg)))]

    src = np.array([unit(0), unit(90), unit(10)])  # xx sentences
    tgt = np.array([unit(2), unit(88), unit(40)])  # their English translations, line-aligned
    # src -> tgt: 10° -> 2° is wrong (2/3); tgt -> src (XTREME's direction, the headline): all right.
    scores = tatoeba_accuracy(src, tgt)
    assert scores == approx({"accuracy": 1.0, "accuracy_src2tgt": 2 / 3, "accuracy_tgt2src": 1.0})
    tatoeba = get_task("tatoeba")
    assert tatoeba.metrics == (tatoeba_accuracy,) and tatoeba.compute_metrics(src, tgt, "ru") == scores
