"""Training and dev data of the multimodal stages (captioning, VQA): units, resumable batch samplers, collation,
dev retrieval / VQA scoring. All randomness of the training batches (caption picks, order) lives in the samplers,
seeded by (seed, epoch), so a stage resumes mid-epoch exactly (intertask.training.objectives.multimodal trains them).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Iterator

import numpy as np
import torch

from intertask.config import MultimodalConfig
from intertask.multimodal.metrics import normalize_answer, retrieval_recall, vqa_accuracy
from intertask.multimodal.models import ContrastiveCaptioning, ImageTextMatching, VQAClassifier


def _rows(feats: Any, keys: list[str]) -> np.ndarray:
    if feats is None:
        return np.zeros(len(keys), dtype=np.int64)
    index = feats.index()
    return np.array([index[k] for k in keys], dtype=np.int64)


class _Sampler:
    """Batches of one epoch from `draw(rng)`, with rng seeded by (seed, epoch): resumable mid-epoch."""

    def __init__(self, draw: Any, n_batches: int, batch_size: int, seed: int):
        self.draw, self.n_batches, self.batch_size, self.seed, self.epoch = draw, n_batches, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.draw(np.random.default_rng([self.seed, self.epoch])))


class _Data:
    def __init__(self, feats: Any, mm: MultimodalConfig, seed: int, text_only: bool, tokenizer: Any, max_length: int):
        self.feats, self.mm, self.seed, self.text_only, self.tokenizer, self.max_length = feats, mm, seed, text_only, tokenizer, max_length
        self.pooled = None if feats is None else torch.from_numpy(feats.pooled)
        self.rng = np.random.default_rng(seed)  # the shuffle_images control's permutation, drawn once

    def tok(self, texts: list[str], device: Any = None) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


class CaptionData(_Data):
    """Training unit = one image with its captions; each epoch draws one caption per image (two for text_only), so a
    batch never holds the same image twice. shuffle_images: every caption is paired, once and for all, with the image
    of a random other caption."""

    def __init__(self, train, dev, feats, mm, seed, text_only, patches, tokenizer, max_length):
        super().__init__(feats, mm, seed, text_only, tokenizer, max_length)
        self.captions = [e["caption"] for e in train]
        rows = _rows(feats, [e["image"] for e in train])
        self.rows = rows[self.rng.permutation(len(rows))] if mm.control == "shuffle_images" else rows
        by_image: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(train):
            by_image[e["image"]].append(i)
        self.units = [g for g in by_image.values() if len(g) >= 2] if text_only else list(by_image.values())
        self.dev_captions: dict[str, list[str]] = defaultdict(list)
        for e in dev:
            self.dev_captions[e["image"]].append(e["caption"])
        self.dev_images = list(self.dev_captions)

    def build_model(self, encoder):
        dim = 0 if self.feats is None else self.feats.pooled.shape[1]
        if self.mm.formulation == "matching" and not self.text_only:
            return ImageTextMatching(encoder, dim, self.mm.projection_dim, self.mm.negatives)
        return ContrastiveCaptioning(encoder, dim, self.mm.projection_dim, self.mm.temperature, text_only=self.text_only)

    def dataset(self) -> range:
        return range(len(self.captions))

    def sampler(self, batch_size: int) -> _Sampler:
        def draw(rng):  # caption indices (text_only: pairs of captions of one image, flattened)
            order = rng.permutation(len(self.units))
            for start in range(0, len(order), batch_size):
                chosen = [self.units[u] for u in order[start : start + batch_size]]
                if len(chosen) < 2:
                    continue  # in-batch negatives need at least two units
                if self.text_only:
                    yield [int(c) for g in chosen for c in rng.choice(g, size=2, replace=False)]
                else:
                    yield [int(rng.choice(g)) for g in chosen]

        n = len(self.units)
        return _Sampler(draw, n // batch_size + (1 if n % batch_size >= 2 else 0), batch_size * (2 if self.text_only else 1), self.seed)

    def collate(self, ids: list[int]) -> dict[str, torch.Tensor]:
        if self.text_only:
            batch = self.tok([self.captions[a] for a in ids[0::2]])
            second = self.tok([self.captions[b] for b in ids[1::2]])
            return {**batch, "input_ids_b": second["input_ids"], "attention_mask_b": second["attention_mask"]}
        rows = torch.as_tensor(self.rows[ids])
        return {**self.tok([self.captions[i] for i in ids]), "image": self.pooled[rows], "groups": rows}  # type: ignore[index]

    def _embed_texts(self, model, texts, batch_size, device) -> torch.Tensor:
        return torch.cat([model.text_embed(**self.tok(texts[i : i + batch_size], device)).float() for i in range(0, len(texts), batch_size)])

    def evaluate(self, model, batch_size, device) -> dict[str, float]:
        if self.text_only:  # caption -> caption of the same image (first vs second caption)
            images = [img for img in self.dev_images if len(self.dev_captions[img]) >= 2]
            queries = self._embed_texts(model, [self.dev_captions[i][0] for i in images], batch_size, device)
            keys = self._embed_texts(model, [self.dev_captions[i][1] for i in images], batch_size, device)
            return retrieval_recall(model.score(queries, keys).cpu().numpy(), {"text_image": list(range(len(images)))})
        texts, text_image = [], []
        for j, img in enumerate(self.dev_images):
            texts += self.dev_captions[img]
            text_image += [j] * len(self.dev_captions[img])
        t = self._embed_texts(model, texts, batch_size, device)
        rows = torch.as_tensor(_rows(self.feats, self.dev_images))
        i = torch.cat([model.image_embed(self.pooled[rows[s : s + batch_size]].to(device)).float() for s in range(0, len(rows), batch_size)])  # type: ignore[index]
        scores = torch.cat([model.score(t[s : s + batch_size], i).float() for s in range(0, len(t), batch_size)])
        return retrieval_recall(scores.cpu().numpy(), {"text_image": text_image})


class VQAData(_Data):
    """Answer classification over the top-K training answers (by multiple_choice_answer frequency), soft targets
    min(#humans / 3, 1). Questions whose answers are all outside the top K are kept out of training (standard) but
    stay in dev (they score 0). shuffle_images: the image column is permuted across questions once."""

    def __init__(self, train, dev, feats, mm, seed, text_only, patches, tokenizer, max_length):
        super().__init__(feats, mm, seed, text_only, tokenizer, max_length)
        self.patches = patches
        counts = Counter(normalize_answer(e["answer"] or "") for e in train if e.get("answer"))
        self.answers = [a for a, _ in counts.most_common(mm.num_answers)]
        index = {a: i for i, a in enumerate(self.answers)}
        self.targets = []
        for e in train:
            t = Counter(normalize_answer(a) for a in e["answers"])
            self.targets.append({index[a]: min(c / 3.0, 1.0) for a, c in t.items() if a in index})
        self.units = [i for i, t in enumerate(self.targets) if t]
        self.questions = [e["question"] for e in train]
        rows = _rows(feats, [e["image"] for e in train])
        self.rows = rows[self.rng.permutation(len(rows))] if mm.control == "shuffle_images" else rows
        self.dev, self.dev_rows = dev, _rows(feats, [e["image"] for e in dev])
        self.patch_tensor = None if feats is None or feats.patches is None else torch.from_numpy(feats.patches)

    def build_model(self, encoder):
        dim = 0 if self.feats is None else self.feats.pooled.shape[1]
        patch_dim = None if self.patch_tensor is None else self.patch_tensor.shape[-1]
        return VQAClassifier(encoder, dim, patch_dim, len(self.answers), self.mm.projection_dim, self.mm.fusion, self.text_only)

    def _image_inputs(self, batch: dict, rows: np.ndarray, device: Any = None) -> dict:
        if not self.text_only:
            r = torch.as_tensor(rows)
            batch["patches" if self.patches else "image"] = (self.patch_tensor if self.patches else self.pooled)[r].to(device)  # type: ignore[index]
        return batch

    def dataset(self) -> range:
        return range(len(self.questions))

    def sampler(self, batch_size: int) -> _Sampler:
        def draw(rng):
            order = rng.permutation(len(self.units))
            for start in range(0, len(order), batch_size):
                yield [self.units[i] for i in order[start : start + batch_size]]

        return _Sampler(draw, math.ceil(len(self.units) / batch_size), batch_size, self.seed)

    def collate(self, ids: list[int]) -> dict[str, torch.Tensor]:
        batch = self._image_inputs(self.tok([self.questions[i] for i in ids]), self.rows[ids])
        targets = torch.zeros(len(ids), len(self.answers))
        for j, i in enumerate(ids):
            for a, s in self.targets[i].items():
                targets[j, a] = s
        return {**batch, "targets": targets}

    def evaluate(self, model, batch_size, device) -> dict[str, float]:
        predictions = []
        for s in range(0, len(self.dev), batch_size):
            chunk = self.dev[s : s + batch_size]
            batch = self._image_inputs(self.tok([e["question"] for e in chunk], device), self.dev_rows[s : s + batch_size], device)
            predictions += [self.answers[i] for i in model(batch).argmax(-1).tolist()]
        return vqa_accuracy(predictions, [e["answers"] for e in self.dev])
