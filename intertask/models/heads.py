"""Heads: how a task type turns examples into model inputs and model outputs back into predictions.

A head knows the transformers model class, the featurisation (tokenise once, keep what is needed to
map outputs back to examples), and the post-processing. It is shared by every task of that type;
the task record points at its head and its metrics.

Heads never see the task record: what they need of it is its label names (``task.labels``; empty for
span QA and multiple choice), passed as ``labels``. Callers normally go through
:func:`intertask.models.loading.build_model` and :func:`intertask.data.cache.featurize_cached`,
which take the task.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from transformers import (
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedTokenizerBase,
)

from intertask.errors import ConfigError

IGNORE_INDEX = -100
Labels = Sequence[str]


def label_names(labels: Any) -> tuple[str, ...]:
    """The label names as a tuple. Callers written before heads took labels pass the task record
    itself; anything with a ``labels`` attribute is accepted for them (no import of the record)."""
    return tuple(labels.labels) if hasattr(labels, "labels") else tuple(labels)


@dataclass
class Features:
    """Tokenised model inputs for a list of examples, plus the bookkeeping to map outputs back."""

    inputs: list[dict[str, list[int]]]  # one dict per model input row
    example_index: list[int]  # row -> index of the example it came from
    extra: dict[str, list[Any]]  # head-specific per-row data (offsets, word ids, ...)

    def __len__(self) -> int:
        return len(self.inputs)

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) if isinstance(f["input_ids"][0], int) else max(map(len, f["input_ids"])) for f in self.inputs]


class Head:
    name: str
    model_class: Any = None

    def build_model(self, name_or_path: str, labels: Labels = ()):
        kwargs = self.model_kwargs(labels)
        return self.model_class.from_pretrained(name_or_path, **kwargs)

    def model_kwargs(self, labels: Labels) -> dict:
        return {}

    def featurize(
        self, examples: Sequence[dict], tokenizer: PreTrainedTokenizerBase, labels: Labels, max_length: int, train: bool, doc_stride: int = 128
    ) -> Features:
        raise NotImplementedError

    def collate(self, rows: list[dict], tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
        labels = [r["labels"] for r in rows] if "labels" in rows[0] else None
        batch = tokenizer.pad([{k: v for k, v in r.items() if k != "labels"} for r in rows], return_tensors="pt")
        if labels is not None:
            batch["labels"] = self._pad_labels(labels, batch["input_ids"].shape[-1])
        return dict(batch)

    def _pad_labels(self, labels: list, length: int) -> torch.Tensor:
        return torch.tensor(labels)

    def gather(self, outputs) -> np.ndarray:
        """What to keep from a forward pass during evaluation (numpy, per row)."""
        return outputs.logits.float().cpu().numpy()

    def postprocess(self, examples: Sequence[dict], features: Features, raw: list[np.ndarray], labels: Labels) -> tuple[Any, Any]:
        """-> (predictions, references) in the shape the task's metrics take."""
        raise NotImplementedError


def _label_kwargs(labels: Labels) -> dict:
    labels = label_names(labels)
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {lab: i for i, lab in enumerate(labels)},
    }


class SequenceClassificationHead(Head):
    name = "sequence_classification"
    model_class = AutoModelForSequenceClassification

    def model_kwargs(self, labels):
        return _label_kwargs(labels)

    def featurize(self, examples, tokenizer, labels, max_length, train, doc_stride=128):
        text_b = [e["text_b"] for e in examples]
        enc = tokenizer(
            [e["text_a"] for e in examples],
            text_b if any(t is not None for t in text_b) else None,
            truncation=True,
            max_length=max_length,
        )
        label2id = {lab: i for i, lab in enumerate(label_names(labels))}
        inputs = []
        for i, ex in enumerate(examples):
            row = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]}
            row["labels"] = label2id[ex["label"]]
            inputs.append(row)
        return Features(inputs, list(range(len(examples))), {})

    def postprocess(self, examples, features, raw, labels):
        labels = label_names(labels)
        predictions = [labels[int(np.argmax(r))] for r in raw]
        return predictions, [e["label"] for e in examples]


class TokenClassificationHead(Head):
    """Word-level tagging: the first sub-token of each word carries the word's label (XTREME's choice).

    A sentence longer than the window is split at word boundaries into segments of at most ``max_length``
    sub-tokens with the special tokens, one model row each, as XTREME's ``utils_preprocess.py``
    (``panx_tokenize_preprocess`` / ``udpos_tokenize_preprocess``) does; so every word gets a model prediction.
    A word with no sub-token, or longer than a whole window, is replaced by the unknown token (XTREME too).
    Unlabeled examples (``tags`` None: XTREME's test files) get no training labels, only predictions.
    """

    name = "token_classification"
    model_class = AutoModelForTokenClassification

    def model_kwargs(self, labels):
        return _label_kwargs(labels)

    def featurize(self, examples, tokenizer, labels, max_length, train, doc_stride=128):
        label2id = {lab: i for i, lab in enumerate(label_names(labels))}
        budget = max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))
        words = [list(e["tokens"]) for e in examples]
        full = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False) if words else {"input_ids": []}
        # the single-sequence special-token template (XLM-R: <s> ... </s>; BERT: [CLS] ... [SEP])
        probe = tokenizer(["x"], is_split_into_words=True)
        inside = [k for k, w in enumerate(probe.word_ids(0)) if w is not None]
        prefix, suffix = list(probe["input_ids"][: inside[0]]), list(probe["input_ids"][inside[-1] + 1 :])
        # (example, first word, words) per row: whole sentences that fit, else XTREME-style segments
        segments: list[tuple[int, int, list[str]]] = []
        whole: dict[int, tuple[list[int], list[int | None]]] = {}  # example -> (input_ids, word_ids), no re-tokenising
        for i, tokens in enumerate(words):
            word_ids = full.word_ids(i)
            counts = [0] * len(tokens)
            for w in word_ids:
                if w is not None:
                    counts[w] += 1
            if sum(counts) <= budget and all(counts):
                ids = prefix + list(full["input_ids"][i]) + suffix
                whole[i] = (ids, [None] * len(prefix) + list(word_ids) + [None] * len(suffix))
                segments.append((i, 0, tokens))
                continue
            unk = tokenizer.unk_token
            tokens = [unk if (c == 0 or c > budget) else t for t, c in zip(tokens, counts)]
            counts = [1 if (c == 0 or c > budget) else c for c in counts]
            first, used = 0, 0
            for w, c in enumerate(counts):
                if used + c > budget and w > first:
                    segments.append((i, first, tokens[first:w]))
                    first, used = w, 0
                used += c
            segments.append((i, first, tokens[first:]))
        split_rows = [r for r, (i, _, _) in enumerate(segments) if i not in whole]
        enc = tokenizer([segments[r][2] for r in split_rows], is_split_into_words=True, truncation=True, max_length=max_length) if split_rows else None
        enc_row = {r: k for k, r in enumerate(split_rows)}
        inputs, word_ids_all, example_index = [], [], []
        for r, (i, first, _) in enumerate(segments):
            tags = examples[i]["tags"]
            if i in whole:
                ids, word_ids = whole[i]
            else:
                ids = enc["input_ids"][enc_row[r]]
                word_ids = [None if w is None else w + first for w in enc.word_ids(enc_row[r])]
            labels, previous = [], None
            for w in word_ids:
                labels.append(label2id[tags[w]] if tags is not None and w is not None and w != previous else IGNORE_INDEX)
                previous = w
            inputs.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
            word_ids_all.append(word_ids)
            example_index.append(i)
        return Features(inputs, example_index, {"word_ids": word_ids_all})

    def _pad_labels(self, labels, length):
        return torch.tensor([lab + [IGNORE_INDEX] * (length - len(lab)) for lab in labels])

    def gather(self, outputs):
        return outputs.logits.argmax(-1).cpu().numpy()

    def postprocess(self, examples, features, raw, labels):
        labels = label_names(labels)
        # Every word gets the prediction at its first sub-token in its segment. A word with no row position
        # (possible only for an empty-string token) keeps the outside tag "O" (UD-POS: the first label).
        default = "O" if "O" in labels else labels[0]
        predictions = [[default] * len(ex["tokens"]) for ex in examples]
        for ex_idx, word_ids, row in zip(features.example_index, features.extra["word_ids"], raw):
            tags, seen = predictions[ex_idx], set()
            for pos, w in enumerate(word_ids):
                if w is not None and w not in seen:
                    seen.add(w)
                    tags[w] = labels[int(row[pos])]
        return predictions, [e["tags"] for e in examples]


class SpanQAHead(Head):
    """Extractive QA with sliding windows over long contexts (doc stride), SQuAD v1.1 and v2.0."""

    model_class = AutoModelForQuestionAnswering
    n_best = 20
    max_answer_length = 30
    max_query_length = 64

    def __init__(self, allow_null: bool = False):
        # SQuAD v2.0 style: "no answer" (the <s> span) is a legal prediction.
        self.allow_null = allow_null
        self.name = "span_qa_with_null" if allow_null else "span_qa"

    def featurize(self, examples, tokenizer, labels, max_length, train, doc_stride=128):
        questions = self._cut_questions([e["question"].lstrip() for e in examples], tokenizer)
        longest = max(len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]) if questions else 0
        # The tokenizer needs stride < the room left for the context in each window.
        room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
        if room < 8:
            raise ConfigError(f"max_seq_length={max_length} leaves no room for the context after a {longest}-token question")
        enc = tokenizer(
            questions,
            [e["context"] for e in examples],
            truncation="only_second",
            max_length=max_length,
            stride=min(doc_stride, room // 2),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        inputs, offsets_all, example_index = [], [], []
        for i in range(len(enc["input_ids"])):
            ex_idx = enc["overflow_to_sample_mapping"][i]
            ex = examples[ex_idx]
            seq_ids = enc.sequence_ids(i)
            offsets = enc["offset_mapping"][i]
            row = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]}
            start_pos = end_pos = 0  # index of <s>: "no answer in this window"
            answers = ex["answers"]
            if answers["text"] and not ex.get("is_impossible", False):
                a_start = answers["answer_start"][0]
                a_end = a_start + len(answers["text"][0])
                ctx = [k for k, s in enumerate(seq_ids) if s == 1]
                if ctx and offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                    start_pos = next(k for k in ctx if offsets[k][1] > a_start)
                    end_pos = next(k for k in reversed(ctx) if offsets[k][0] < a_end)
            if train and start_pos == 0 and answers["text"] and not ex.get("is_impossible", False):
                # Windows without the answer teach "no answer", which v1.1 never asks for.
                if not self.allow_null:
                    continue
            row["start_positions"], row["end_positions"] = start_pos, end_pos
            inputs.append(row)
            example_index.append(ex_idx)
            offsets_all.append([o if s == 1 else None for o, s in zip(offsets, seq_ids)])
        return Features(inputs, example_index, {"offsets": offsets_all})

    def _cut_questions(self, questions: list[str], tokenizer) -> list[str]:
        """Questions longer than max_query_length tokens are cut (64, as in the XTREME/SQuAD scripts)."""
        enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
        return [q if len(off) <= self.max_query_length else q[: off[self.max_query_length - 1][1]] for q, off in zip(questions, enc["offset_mapping"])]

    def collate(self, rows, tokenizer):
        starts = [r["start_positions"] for r in rows]
        ends = [r["end_positions"] for r in rows]
        batch = dict(tokenizer.pad([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows], return_tensors="pt"))
        batch["start_positions"], batch["end_positions"] = torch.tensor(starts), torch.tensor(ends)
        return batch

    def gather(self, outputs):
        return np.stack([outputs.start_logits.float().cpu().numpy(), outputs.end_logits.float().cpu().numpy()], axis=1)

    def best_spans(self, examples, features, raw) -> list[tuple[str, float, float]]:
        """Per example: (text of the best non-null span over all its windows, that span's score, the null score:
        the lowest <s> start+end score over the windows). No valid span: ("", -inf, ...)."""
        by_example: dict[int, list[int]] = collections.defaultdict(list)
        for row, ex_idx in enumerate(features.example_index):
            by_example[ex_idx].append(row)
        best = []
        for ex_idx, ex in enumerate(examples):
            best_text, best_score, null_score = "", -np.inf, np.inf
            for row in by_example.get(ex_idx, []):
                start_logits, end_logits = raw[row][0], raw[row][1]
                offsets = features.extra["offsets"][row]
                null_score = min(null_score, start_logits[0] + end_logits[0])
                starts = np.argsort(start_logits)[::-1][: self.n_best]
                ends = np.argsort(end_logits)[::-1][: self.n_best]
                for s in starts:
                    if s >= len(offsets) or offsets[s] is None:
                        continue
                    for e in ends:
                        if e >= len(offsets) or offsets[e] is None or e < s or e - s + 1 > self.max_answer_length:
                            continue
                        score = start_logits[s] + end_logits[e]
                        if score > best_score:
                            best_score = score
                            best_text = ex["context"][offsets[s][0] : offsets[e][1]]
            best.append((best_text, float(best_score), float(null_score)))
        return best

    def postprocess(self, examples, features, raw, labels):
        predictions, references = {}, {}
        for ex, (text, score, null_score) in zip(examples, self.best_spans(examples, features, raw)):
            predictions[ex["id"]] = "" if self.allow_null and null_score > score else text
            references[ex["id"]] = list(ex["answers"]["text"]) if not ex.get("is_impossible") else []
        return predictions, references


class MultipleChoiceHead(Head):
    """One score per (context, question + choice) pair, softmax over the choices."""

    name = "multiple_choice"
    model_class = AutoModelForMultipleChoice

    def featurize(self, examples, tokenizer, labels, max_length, train, doc_stride=128):
        firsts, seconds = [], []
        for ex in examples:
            for choice in ex["choices"]:
                firsts.append(ex["context"])
                seconds.append(f"{ex['question']} {choice}".strip())
        # longest_first: the (usually longer) context is cut first, and a choice longer than the window is cut too
        # instead of failing (HellaSwag / CosmosQA have long endings and contexts).
        enc = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
        inputs, k = [], 0
        for ex in examples:
            n = len(ex["choices"])
            inputs.append(
                {
                    "input_ids": enc["input_ids"][k : k + n],
                    "attention_mask": enc["attention_mask"][k : k + n],
                    "labels": int(ex["label"]),
                }
            )
            k += n
        return Features(inputs, list(range(len(examples))), {})

    def collate(self, rows, tokenizer):
        n_choices = max(len(r["input_ids"]) for r in rows)
        if any(len(r["input_ids"]) != n_choices for r in rows):
            raise ValueError("multiple-choice batch mixes different numbers of choices")
        flat = [{"input_ids": ids, "attention_mask": m} for r in rows for ids, m in zip(r["input_ids"], r["attention_mask"])]
        batch = tokenizer.pad(flat, return_tensors="pt")
        out = {k: v.view(len(rows), n_choices, -1) for k, v in batch.items()}
        out["labels"] = torch.tensor([r["labels"] for r in rows])
        return out

    def postprocess(self, examples, features, raw, labels):
        return [int(np.argmax(r)) for r in raw], [int(e["label"]) for e in examples]


class RetrievalHead(Head):
    """No fine-tuning: sentences are embedded by the encoder and matched by cosine similarity."""

    name = "retrieval"


SEQUENCE_CLASSIFICATION = SequenceClassificationHead()
TOKEN_CLASSIFICATION = TokenClassificationHead()
SPAN_QA = SpanQAHead()
SPAN_QA_WITH_NULL = SpanQAHead(allow_null=True)
MULTIPLE_CHOICE = MultipleChoiceHead()
RETRIEVAL = RetrievalHead()
