"""Evaluation metrics, each a re-implementation of the official script the benchmarks use.

Every metric is a `Metric`: a frozen object with a stable ``name`` (the Python name it is bound to,
independent of ``__name__``), a ``primary`` score key (the headline number), and
``__call__(predictions, references, lang=None, **kw) -> dict[str, float]``. ``lang`` is accepted by
every metric so callers can pass it uniformly; only language-aware metrics (MLQA) use it.

All scores are fractions in [0, 1] (the official scripts print them x100).

Which script each metric mirrors:
  accuracy            XTREME evaluate.py `accuracy` (XNLI, PAWS-X, XCOPA, multiple choice)
  seqeval_f1          XTREME run_tag.py / evaluate.py `f1`: seqeval, default (conlleval) mode
  pos_f1              the same seqeval call on bare UD POS tags (what XTREME reports for UDPOS)
  squad_scores        SQuAD evaluate-v1.1.py (XQuAD, TyDiQA-GoldP in XTREME)
  mlqa_scores         MLQA mlqa_evaluation_v1.py (language-aware normalisation)
  squad_v2_scores     SQuAD evaluate-v2.0.py (+ `best_null_threshold`)
  bucc_f1             XTREME evaluate.py `bucc_f1` (+ `bucc_optimal_threshold`, utils_retrieve.py)
  map_at_k            XTREME-R utils_lareqa.py `average_precision_at_k` (LAReQA, Mewsli-X)
  retrieval_accuracy  XTREME run_retrieval.py Tatoeba nearest-neighbour accuracy
"""

from __future__ import annotations

import re
import string
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from intertask.errors import ConfigError, unknown_name_message

Scores = dict[str, float]


@dataclass(frozen=True)
class Metric:
    """A named metric: ``metric(predictions, references, lang=None, **kw) -> {score name: value}``."""

    name: str
    primary: str  # key of the headline score in the returned dict
    fn: Callable[..., Scores] = field(repr=False, compare=False)
    takes_lang: bool = False

    def __call__(self, predictions: Any, references: Any, lang: str | None = None, **kw: Any) -> Scores:
        if self.takes_lang:
            kw["lang"] = lang
        return self.fn(predictions, references, **kw)

    @property
    def doc(self) -> str | None:
        return self.fn.__doc__


def _metric(name: str, primary: str, takes_lang: bool = False) -> Callable[[Callable[..., Scores]], Metric]:
    def wrap(fn: Callable[..., Scores]) -> Metric:
        return Metric(name=name, primary=primary, fn=fn, takes_lang=takes_lang)

    return wrap


def _check_same_length(predictions: Sequence, references: Sequence, what: str = "examples") -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references ({what})")
    if len(references) == 0:
        raise ValueError(f"no {what} to score")


def _prf(n_correct: int, n_predicted: int, n_gold: int) -> Scores:
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if n_correct else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --------------------------------------------------------------------------- classification


@_metric("accuracy", "accuracy")
def accuracy(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> Scores:
    """Fraction of predictions equal to their reference (labels, choice indices, ...)."""
    _check_same_length(predictions, references)
    correct = sum(int(p == r) for p, r in zip(predictions, references))
    return {"accuracy": correct / len(references)}


# --------------------------------------------------------------------------- sequence labelling


def _seqeval_prf(predictions: list[list[str]], references: list[list[str]]) -> Scores:
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    _check_same_length(predictions, references, "sentences")
    for i, (p, r) in enumerate(zip(predictions, references)):
        if len(p) != len(r):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags but {len(r)} gold tags")
    # Micro-averaged P/R/F over (type, start, end) chunks of the concatenated sentences; exactly what
    # seqeval's f1_score/precision_score/recall_score compute with their defaults (mode=None), in one
    # pass. zero_division=0 is the numeric value of the default "warn", without the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1.2.2 warns "X seems not to be NE tag" for bare tags
        p, r, f, _ = precision_recall_fscore_support(
            references, predictions, average="micro", zero_division=0
        )
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


@_metric("seqeval_f1", "f1")
def seqeval_f1(predictions: list[list[str]], references: list[list[str]]) -> Scores:
    """Entity-level micro P/R/F1 of seqeval in its default, conlleval-compatible mode (PAN-X).

    As XTREME's run_tag.py, no tagging scheme is enforced, so ill-formed BIO is repaired the
    conlleval way: an ``I-PER`` that does not continue a PER chunk (after ``O``, after another type,
    or at sentence start) *starts* a new PER entity, and a type change inside a chunk
    (``B-PER I-LOC``) splits it in two. ``mode="strict"`` with IOB2 would instead drop such chunks.
    Sentences are concatenated with an ``O`` between them, so entities never cross sentences.
    """
    return _seqeval_prf(predictions, references)


@_metric("pos_f1", "f1")
def pos_f1(predictions: list[list[str]], references: list[list[str]]) -> Scores:
    """UDPOS as XTREME scores it: seqeval's *chunk* F1 on bare POS tags, plus token accuracy.

    XTREME's evaluate.py maps udpos to the same seqeval ``f1`` as PAN-X. With bare tags, seqeval
    1.2.2's ``get_entities`` reads the first character as the chunk tag and the rest as the type
    (``"NOUN"`` -> tag ``N``, type ``OUN``). Tags outside {B, I, E, S, O} just continue a chunk of
    the same type, so what is scored is maximal *runs* of identical POS tags: gold ``NOUN NOUN``
    is one chunk, and predicting ``NOUN VERB`` there gets no credit for the first token. Quirks:
      * SCONJ and SYM start with ``S`` (singleton): every such token is its own chunk; INTJ
        (``I``) continues a run like other tags.
      * CCONJ and SCONJ share the type ``CONJ``: a CCONJ directly followed by SCONJ is never
        emitted (the run is not closed before the singleton restarts it).
      * ``X`` has the empty type, read as ``_`` like ``O``: an X run at sentence end is dropped,
        and an X at the start of a later sentence reuses a stale start offset.
    Pre-1.0 seqeval (which XTREME installed unpinned in 2020) used the whole tag as type, so it
    differs from 1.2.2 only in the CONJ and X cases. We call the installed seqeval, as XTREME did;
    ``accuracy`` (plain token accuracy) is the interpretable number alongside.
    """
    scores = _seqeval_prf(predictions, references)
    n_tokens = sum(len(r) for r in references)
    if n_tokens == 0:
        raise ValueError("no tokens to score")
    correct = sum(p == g for ps, rs in zip(predictions, references) for p, g in zip(ps, rs))
    scores["accuracy"] = correct / n_tokens
    return scores


# --------------------------------------------------------------------------- extractive QA


def _squad_normalize(text: str) -> str:
    """evaluate-v1.1.py normalize_answer: lower, drop ASCII punctuation, articles, extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_ASCII_PUNCT = frozenset(string.punctuation)


def _token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """evaluate-v1.1.py f1_score on already-normalised tokens (bag-of-tokens overlap)."""
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _qa_scores(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    normalize: Callable[[str], str],
    tokenize: Callable[[str], list[str]] = str.split,
) -> Scores:
    # Per question: max over gold answers, then mean over *all* reference questions; a question
    # with no prediction scores 0 (official scripts: "Unanswered question ... will receive score 0").
    # Predictions for unknown ids are ignored, as in the official scripts.
    if not references:
        raise ValueError("no questions to score")
    em = f1 = 0.0
    for qid, golds in references.items():
        if qid not in predictions:
            continue
        if not golds:
            raise ValueError(f"question {qid!r} has no gold answer (use squad_v2_scores)")
        pred = normalize(predictions[qid])
        normed = [normalize(g) for g in golds]
        em += max(float(pred == g) for g in normed)
        pred_tokens = tokenize(pred)
        f1 += max(_token_f1(pred_tokens, tokenize(g)) for g in normed)
    return {"exact_match": em / len(references), "f1": f1 / len(references)}


@_metric("squad_scores", "f1")
def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> Scores:
    """SQuAD v1.1 exact match and token F1 (evaluate-v1.1.py); XTREME uses it for XQuAD and TyDiQA.

    `predictions`: question id -> answer text; `references`: question id -> gold answer texts.
    """
    return _qa_scores(predictions, references, _squad_normalize)


# MLQA ------------------------------------------------------------------------------------------

_MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    # The official pattern '\sال^|ال': its first branch can never match, so every "ال" is replaced,
    # even inside a word.
    "ar": r"ال",
    "hi": None,  # no formal articles
    "zh": None,
}
MLQA_LANGUAGES = tuple(_MLQA_ARTICLES)


def _is_mlqa_punct(ch: str) -> bool:
    # The official PUNCT set: every code point whose Unicode category starts with "P" (so "«", "»",
    # "—", "。", "،" ...) plus string.punctuation (which adds ASCII symbols like "$", "+", "^").
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


_CJK = re.compile(r"[\u4e00-\u9fa5]")  # the official script's CJK range


def _mixed_segmentation(text: str) -> list[str]:
    """mlqa_evaluation_v1.py mixed_segmentation: each CJK char (or punctuation) is its own token,
    runs of other characters are whitespace-tokenised."""
    tokens: list[str] = []
    run = ""
    for ch in text:
        if _CJK.match(ch) or _is_mlqa_punct(ch):
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def _mlqa_normalize(text: str, lang: str) -> str:
    text = "".join(ch for ch in text.lower() if not _is_mlqa_punct(ch))
    pattern = _MLQA_ARTICLES[lang]
    if pattern is not None:
        text = re.sub(pattern, " ", text)
    tokens = _mixed_segmentation(text) if lang == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


@_metric("mlqa_scores", "f1", takes_lang=True)
def mlqa_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], lang: str | None
) -> Scores:
    """MLQA exact match and F1 (mlqa_evaluation_v1.py) with `lang` the *answer* (context) language.

    Differences from SQuAD: Unicode punctuation is removed, articles are language-specific (es
    el/la/..., de der/die/das/..., vi, ar "ال"; none for hi and zh), and zh is segmented so that
    each CJK character is a token (F1 over characters). Only MLQA's 7 languages are defined.
    """
    if lang not in _MLQA_ARTICLES:
        raise ConfigError(unknown_name_message("MLQA answer language", str(lang), MLQA_LANGUAGES))
    return _qa_scores(predictions, references, lambda s: _mlqa_normalize(s, lang))


# SQuAD v2.0 ------------------------------------------------------------------------------------


def _v2_raw_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> tuple[dict[str, float], dict[str, float], dict[str, bool]]:
    """Per-question EM/F1 as evaluate-v2.0.py get_raw_scores (golds normalising to "" are dropped;
    none left means unanswerable, gold ""); missing predictions score 0 instead of being skipped."""
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    has_ans: dict[str, bool] = {}
    for qid, golds in references.items():
        normed = [n for n in (_squad_normalize(g) for g in golds) if n]
        has_ans[qid] = bool(normed)
        if qid not in predictions:
            exact[qid] = f1[qid] = 0.0
            continue
        pred = _squad_normalize(predictions[qid])
        normed = normed or [""]
        exact[qid] = max(float(pred == g) for g in normed)
        # compute_f1: if either side is empty, F1 is 1 when both are, else 0.
        f1[qid] = max(
            _token_f1(pred.split(), g.split()) if pred and g else float(pred == g) for g in normed
        )
    return exact, f1, has_ans


@_metric("squad_v2_scores", "f1")
def squad_v2_scores(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    null_odds: Mapping[str, float] | None = None,
    null_threshold: float = 1.0,
) -> Scores:
    """SQuAD v2.0 (evaluate-v2.0.py): an unanswerable question (empty gold list) scores 1 iff the
    prediction is ""; returns overall and ``has_ans_*`` / ``no_ans_*`` breakdowns (a breakdown is
    omitted when that subset is empty, as in the official script).

    With `null_odds` (qid -> null score, higher = more likely unanswerable), a question whose odds
    exceed `null_threshold` is treated as predicted "" (apply_no_ans_threshold).
    """
    if not references:
        raise ValueError("no questions to score")
    exact, f1, has_ans = _v2_raw_scores(predictions, references)
    if null_odds is not None:
        for qid in references:
            if null_odds.get(qid, float("-inf")) > null_threshold:
                exact[qid] = f1[qid] = float(not has_ans[qid])
    out: Scores = {}
    for prefix, qids in (
        ("", list(references)),
        ("has_ans_", [q for q in references if has_ans[q]]),
        ("no_ans_", [q for q in references if not has_ans[q]]),
    ):
        if qids:
            out[prefix + "exact_match"] = sum(exact[q] for q in qids) / len(qids)
            out[prefix + "f1"] = sum(f1[q] for q in qids) / len(qids)
    return out


def best_null_threshold(
    null_odds: Mapping[str, float], predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> Scores:
    """The null-odds threshold maximising EM and F1 (evaluate-v2.0.py find_all_best_thresh).

    Start from "every question predicted unanswerable" (score = #unanswerable); walk questions by
    increasing null odds, switching each to its span prediction (+its score if answerable, -1 if
    unanswerable and the prediction is non-empty); keep the first strict maximum. As officially,
    the threshold is 0.0 when abstaining everywhere is best, and questions without null odds are
    never switched. Returns best_exact_match, best_exact_match_threshold, best_f1, best_f1_threshold.
    """
    exact, f1, has_ans = _v2_raw_scores(predictions, references)
    order = sorted((q for q in null_odds if q in references), key=lambda q: null_odds[q])
    out: Scores = {}
    for key, raw in (("exact_match", exact), ("f1", f1)):
        cur = best = float(sum(not a for a in has_ans.values()))
        thresh = 0.0
        for qid in order:
            if has_ans[qid]:
                cur += raw[qid]
            elif predictions.get(qid):
                cur -= 1
            if cur > best:
                best, thresh = cur, float(null_odds[qid])
        out[f"best_{key}"] = best / len(references)
        out[f"best_{key}_threshold"] = thresh
    return out


# --------------------------------------------------------------------------- retrieval

Pair = tuple[str, str]


@_metric("bucc_f1", "f1")
def bucc_f1(predicted_pairs: Iterable[Pair], gold_pairs: Iterable[Pair]) -> Scores:
    """BUCC bitext-mining P/R/F1 over sets of (source id, target id) pairs (XTREME bucc_f1)."""
    pred, gold = set(predicted_pairs), set(gold_pairs)
    return _prf(len(pred & gold), len(pred), len(gold))


def _best_scores(candidates: Iterable[tuple[str, str, float]]) -> dict[Pair, float]:
    # A pair mined in both directions keeps its highest score (utils_retrieve.read_candidate2score).
    best: dict[Pair, float] = {}
    for src, tgt, score in candidates:
        key = (src, tgt)
        best[key] = max(float(score), best.get(key, float("-inf")))
    return best


def bucc_optimal_threshold(candidates: Iterable[tuple[str, str, float]], gold_pairs: Iterable[Pair]) -> float:
    """Score threshold maximising F1 on `gold_pairs` (utils_retrieve.bucc_optimize).

    Candidates are ranked by score; after each, P/R/F1 of "keep everything so far" is computed and
    at a new strict F1 maximum the threshold becomes the midpoint between this score and the next
    (the last score itself when it is the last candidate; the official code indexes past the end
    there). Use it on the dev (BUCC "sample") split, then `bucc_select` on test with that threshold.
    Returns 0.0 when no candidate is correct, as officially.
    """
    items = sorted(_best_scores(candidates).items(), key=lambda kv: -kv[1])
    gold = set(gold_pairs)
    n_correct = 0
    best_f1, threshold = 0.0, 0.0
    for i, (pair, score) in enumerate(items):
        n_correct += pair in gold
        if n_correct:
            f1 = _prf(n_correct, i + 1, len(gold))["f1"]
            if f1 > best_f1:
                best_f1 = f1
                threshold = (score + items[i + 1][1]) / 2 if i + 1 < len(items) else score
    return threshold


def bucc_select(candidates: Iterable[tuple[str, str, float]], threshold: float) -> set[Pair]:
    """Candidate pairs scoring at least `threshold` (utils_retrieve.bucc_extract)."""
    return {pair for pair, score in _best_scores(candidates).items() if score >= threshold}


@_metric("map_at_k", "map@20")
def map_at_k(ranked_ids: Sequence[Sequence[Hashable]], relevant: Sequence[set], k: int = 20) -> Scores:
    """Mean average precision at k (XTREME-R utils_lareqa.average_precision_at_k, k=20).

    AP@k = (sum of precision@i over ranks i <= k holding a relevant item not seen earlier in the
    ranking) / min(k, |relevant|), so a query whose relevant items all sit in the top k scores 1.
    With one relevant item (Mewsli-X) this is reciprocal rank, i.e. XTREME-R's MRR@20.
    The key is ``f"map@{k}"``; ``primary`` assumes the default k=20.
    """
    _check_same_length(ranked_ids, relevant, "queries")
    total = 0.0
    for i, (ranking, rel) in enumerate(zip(ranked_ids, relevant)):
        if not rel:
            raise ValueError(f"query {i} has no relevant item")
        hits, ap, seen = 0, 0.0, set()
        for rank, item in enumerate(list(ranking)[:k], start=1):
            if item in rel and item not in seen:
                hits += 1
                ap += hits / rank
            seen.add(item)
        total += ap / min(k, len(rel))
    return {f"map@{k}": total / len(relevant)}


@_metric("retrieval_accuracy", "accuracy")
def retrieval_accuracy(
    src_emb: np.ndarray, tgt_emb: np.ndarray, gold_index: Sequence[int] | None = None
) -> Scores:
    """Tatoeba: share of `src_emb` rows whose cosine nearest neighbour in `tgt_emb` is the aligned
    row (`gold_index[i]`, default row i). XTREME's direction is English queries against the other
    language; see `intertask.evaluation.retrieval.tatoeba_accuracy` for both directions."""
    from intertask.evaluation.retrieval import tatoeba_search  # XTREME's normalize_L2 + IndexFlatL2

    if len(src_emb) == 0:
        raise ValueError("no queries to score")
    gold = np.arange(len(src_emb)) if gold_index is None else np.asarray(gold_index)
    if len(gold) != len(src_emb):
        raise ValueError(f"{len(gold)} gold indices for {len(src_emb)} queries")
    return {"accuracy": float(np.mean(tatoeba_search(src_emb, tgt_emb) == gold))}


# --------------------------------------------------------------------------- registry

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        accuracy, seqeval_f1, pos_f1, squad_scores, mlqa_scores, squad_v2_scores,
        bucc_f1, map_at_k, retrieval_accuracy,
    )
}


def get_metric(name: str) -> Metric:
    """The metric called `name` (e.g. in a config file)."""
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(unknown_name_message("metric", name, METRICS)) from None
