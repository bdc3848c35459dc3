"""Over-long sentences in tagging: split at word boundaries into segments (XTREME's utils_preprocess.py
*_tokenize_preprocess), so that every word gets a model prediction."""

from __future__ import annotations

import numpy as np

from intertask.models.heads import IGNORE_INDEX, TOKEN_CLASSIFICATION
from intertask.tasks import get_task


def _tokenizer(path):
    from intertask.models.loading import load_tokenizer

    return load_tokenizer(path)


def test_long_sentence_is_segmented_and_every_word_predicted(tiny_model):
    tok = _tokenizer(tiny_model)
    task = get_task("panx")
    words = [f"word{i}" for i in range(60)] + ["\u200b"]  # 60 words of several sub-tokens, and one with none
    tags = ["B-PER" if i % 7 == 0 else "O" for i in range(len(words))]
    short = {"tokens": ["Paris", "is", "nice"], "tags": ["B-LOC", "O", "O"]}
    examples = [{"tokens": words, "tags": tags}, short]
    max_length = 16
    feats = TOKEN_CLASSIFICATION.featurize(examples, tok, task, max_length, train=True)
    rows = [r for r, e in enumerate(feats.example_index) if e == 0]
    assert len(rows) > 3 and feats.example_index[-1] == 1 and feats.example_index.count(1) == 1
    covered = []
    for r in rows:
        row = feats.inputs[r]
        assert len(row["input_ids"]) <= max_length
        firsts = [
            w
            for k, w in enumerate(feats.extra["word_ids"][r])
            if w is not None and (k == 0 or feats.extra["word_ids"][r][k - 1] != w)
        ]
        covered += firsts
        # the training label of a word's first sub-token is its own tag, in every segment
        for k, w in enumerate(feats.extra["word_ids"][r]):
            if row["labels"][k] != IGNORE_INDEX:
                assert task.labels[row["labels"][k]] == tags[w]
    assert covered == list(range(len(words)))  # every word once, in order, the sub-token-less one too (as <unk>)
    # postprocess: a fake model that predicts B-PER on every 7th word gets every word right, beyond the window too
    raw = []
    for r, word_ids in enumerate(feats.extra["word_ids"]):
        ex = examples[feats.example_index[r]]
        raw.append(np.array([task.labels.index(ex["tags"][w]) if w is not None else 0 for w in word_ids]))
    predictions, references = TOKEN_CLASSIFICATION.postprocess(examples, feats, raw, task)
    assert predictions == references == [tags, short["tags"]]


def test_unlabeled_sentences_featurize_without_labels(tiny_model):
    tok = _tokenizer(tiny_model)
    task = get_task("udpos")
    feats = TOKEN_CLASSIFICATION.featurize([{"tokens": ["a", "b"], "tags": None}], tok, task, 32, train=False)
    assert set(feats.inputs[0]["labels"]) == {IGNORE_INDEX}
    preds, refs = TOKEN_CLASSIFICATION.postprocess(
        [{"tokens": ["a", "b"], "tags": None}], feats, [np.zeros(len(feats.inputs[0]["input_ids"]), int)], task
    )
    assert preds == [["ADJ", "ADJ"]] and refs == [None]
