"""Dev metrics of the multimodal intermediate tasks: retrieval recall@K and VQA accuracy."""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from intertask.evaluation.metrics import Metric

RECALL_KS = (1, 5, 10)


def recall_at_k(scores: np.ndarray, gold: Sequence[int], ks: Sequence[int] = RECALL_KS) -> dict[int, float]:
    """scores (queries x candidates); gold[q] = the index of the right candidate -> {k: recall@k}.

    Rank of the gold candidate = number of candidates scoring strictly higher (ties count in the
    query's favour only when exactly tied, as in the usual `argsort` evaluation with stable order).
    """
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold)
    gold_scores = scores[np.arange(len(gold)), gold]
    rank = (scores > gold_scores[:, None]).sum(axis=1)
    return {k: float((rank < k).mean()) for k in ks}


def _retrieval_recall(predictions: np.ndarray, references: dict) -> dict[str, float]:
    """Recall@1/5/10 text->image (t2i) and image->text (i2t) from a (texts x images) score matrix.

    references: ``{"text_image": [image index of each text]}``. Image->text counts a hit when any
    of the image's captions is within the top K (the standard COCO/Flickr protocol).
    `mean_recall` averages the six numbers (the main metric, "RSUM / 6")."""
    text_image = np.asarray(references["text_image"])
    scores = np.asarray(predictions, dtype=np.float64)
    out = {f"t2i_r{k}": v for k, v in recall_at_k(scores, text_image).items()}
    # image -> text: best rank over the image's captions
    ranks = []
    image_scores = scores.T  # (images x texts)
    for img in range(image_scores.shape[0]):
        own = np.flatnonzero(text_image == img)
        if len(own) == 0:
            continue
        best = image_scores[img, own].max()
        ranks.append(int((image_scores[img] > best).sum()))
    ranks_arr = np.asarray(ranks)
    for k in RECALL_KS:
        out[f"i2t_r{k}"] = float((ranks_arr < k).mean())
    out["mean_recall"] = float(np.mean([out[f"{d}_r{k}"] for d in ("t2i", "i2t") for k in RECALL_KS]))
    return out


retrieval_recall = Metric(name="retrieval_recall", primary="mean_recall", fn=_retrieval_recall)

_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$]")
_ARTICLES = {"a", "an", "the"}
_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}


def normalize_answer(answer: str) -> str:
    """A light version of the official VQA normalisation: lowercase, punctuation removed (a period
    only when not between digits), number words -> digits, articles dropped, whitespace collapsed."""
    text = _PUNCT.sub(" ", answer.lower().replace("\n", " ").replace("\t", " "))
    text = re.sub(r"(?<!\d)\.(?!\d)", " ", text)
    words = [_NUMBERS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(words)


def vqa_soft_score(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction: the mean over the 10 leave-one-out subsets of 9 human
    answers of min(#matches in the subset / 3, 1). (The common simplification min(#matches / 3, 1)
    over all 10 answers differs only when exactly 3 humans gave the answer: 0.9 vs 1.0.)"""
    pred = normalize_answer(prediction)
    norm = [normalize_answer(a) for a in answers]
    if not norm:
        return 0.0
    if len(norm) < 2:
        return float(pred == norm[0])
    matches = sum(a == pred for a in norm)
    # leaving out a matching answer removes one match; leaving out another does not
    total = sum(min((matches - (a == pred)) / 3.0, 1.0) for a in norm)
    return total / len(norm)


def simple_soft_score(prediction: str, answers: Sequence[str]) -> float:
    """The simplified VQA score min(#humans that gave the answer / 3, 1) (also the training target)."""
    pred = normalize_answer(prediction)
    return min(sum(normalize_answer(a) == pred for a in answers) / 3.0, 1.0)


def _vqa_accuracy(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """VQA accuracy (official leave-one-out average), its simplified form, and exact match against
    the most common human answer."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"{len(predictions)} predictions for {len(references)} questions")
    official = [vqa_soft_score(p, r) for p, r in zip(predictions, references)]
    simple = [simple_soft_score(p, r) for p, r in zip(predictions, references)]
    exact = [normalize_answer(p) == Counter(normalize_answer(a) for a in r).most_common(1)[0][0] if r else 0.0 for p, r in zip(predictions, references)]
    return {"vqa_accuracy": float(np.mean(official)), "vqa_accuracy_simple": float(np.mean(simple)), "exact_accuracy": float(np.mean(exact))}


vqa_accuracy = Metric(name="vqa_accuracy", primary="vqa_accuracy", fn=_vqa_accuracy)
