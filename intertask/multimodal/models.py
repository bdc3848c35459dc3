"""Captioning and VQA models around a trainable multilingual text encoder and frozen image features.

Only ``text_encoder`` (a bare Hugging Face encoder, e.g. ``XLMRobertaModel``) is handed to the next
stage; projections, fusion and classifiers stay behind (saved as ``multimodal_heads.safetensors``).

* :class:`ContrastiveCaptioning`: mean-pooled text and image features projected to a shared space,
  L2-normalised, symmetric InfoNCE with in-batch negatives and a learned temperature. Text-only
  control: caption-caption InfoNCE (two captions of the same image are the positive pair).
* :class:`ImageTextMatching`: binary classifier on the fused [t; i; t*i; |t-i|] with one hard (or
  random) negative text per image and negative image per text.
* :class:`VQAClassifier`: answer classification over the top-K answers with soft targets
  (min(#humans / 3, 1), binary cross-entropy); fusion "late" (pooled text + pooled image -> MLP) or
  "prefix" (projected patch features prepended to the token embeddings via ``inputs_embeds``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _mlp(d_in: int, d_hidden: int, d_out: int, dropout: float = 0.1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out))


def _position_offset(encoder: nn.Module) -> int:
    """RoBERTa-style encoders number positions from pad_token_id + 1; BERT-style from 0."""
    cfg = encoder.config
    return cfg.pad_token_id + 1 if cfg.model_type in ("xlm-roberta", "roberta", "camembert", "xlm-roberta-xl") else 0


class MultimodalModel(nn.Module):
    def __init__(self, text_encoder: nn.Module):
        super().__init__()
        self.text_encoder = text_encoder
        self.hidden = text_encoder.config.hidden_size

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("text_encoder.")}


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between rows of a and b (normalised); row i of a matches row i of b.

    `groups`: rows with the same group id (e.g. the same image twice in a batch) are not used as
    negatives of each other.
    """
    logits = logit_scale * a @ b.T
    if groups is not None:
        same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool, device=groups.device)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class ContrastiveCaptioning(MultimodalModel):
    def __init__(self, text_encoder: nn.Module, image_dim: int, projection_dim: int = 256, temperature: float = 0.07, text_only: bool = False):
        super().__init__(text_encoder)
        self.text_only = text_only
        self.text_proj = nn.Linear(self.hidden, projection_dim)
        if not text_only:
            self.image_proj = _mlp(image_dim, max(projection_dim, 2 * self.hidden), projection_dim, dropout=0.0)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    def text_embed(self, input_ids, attention_mask) -> torch.Tensor:
        return F.normalize(self.text_proj(self.encode_text(input_ids, attention_mask)), dim=-1)

    def image_embed(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(image), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def loss(self, batch: dict) -> torch.Tensor:
        t = self.text_embed(batch["input_ids"], batch["attention_mask"])
        if self.text_only:  # caption-caption alignment: the other caption of the same image
            t2 = self.text_embed(batch["input_ids_b"], batch["attention_mask_b"])
            return info_nce(t, t2, self.scale(), batch.get("groups"))
        return info_nce(t, self.image_embed(batch["image"]), self.scale(), batch.get("groups"))

    def score(self, text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
        return text_emb @ image_emb.T


class ImageTextMatching(MultimodalModel):
    def __init__(self, text_encoder: nn.Module, image_dim: int, projection_dim: int = 256, negatives: str = "hard"):
        super().__init__(text_encoder)
        self.negatives = negatives
        self.text_proj = nn.Linear(self.hidden, projection_dim)
        self.image_proj = _mlp(image_dim, max(projection_dim, 2 * self.hidden), projection_dim, dropout=0.0)
        self.classifier = _mlp(4 * projection_dim, projection_dim, 1)

    def text_embed(self, input_ids, attention_mask) -> torch.Tensor:
        return self.text_proj(self.encode_text(input_ids, attention_mask))

    def image_embed(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_proj(image)

    def fuse(self, t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat([t, i, t * i, (t - i).abs()], dim=-1)).squeeze(-1)

    def _negative_index(self, emb: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Per row, another row with a different group: the most similar one (hard) or a random one."""
        n = len(emb)
        invalid = groups[:, None] == groups[None, :]
        if self.negatives == "hard":
            e = F.normalize(emb.detach(), dim=-1)
            sim = (e @ e.T).masked_fill(invalid, float("-inf"))
        else:
            sim = torch.rand(n, n, device=emb.device).masked_fill(invalid, float("-inf"))
        return sim.argmax(dim=1)

    def loss(self, batch: dict) -> torch.Tensor:
        t = self.text_embed(batch["input_ids"], batch["attention_mask"])
        i = self.image_embed(batch["image"])
        groups = batch["groups"]
        if len(set(groups.tolist())) < 2:
            return F.binary_cross_entropy_with_logits(self.fuse(t, i), torch.ones(len(t), device=t.device))
        neg_text = self._negative_index(t, groups)  # most similar wrong caption for each image
        neg_image = self._negative_index(i, groups)  # most similar wrong image for each caption
        logits = torch.cat([self.fuse(t, i), self.fuse(t[neg_text], i), self.fuse(t, i[neg_image])])
        labels = torch.cat([torch.ones(len(t)), torch.zeros(2 * len(t))]).to(t.device)
        weights = torch.cat([torch.full((len(t),), 2.0), torch.ones(2 * len(t))]).to(t.device)  # balance 1:2
        return F.binary_cross_entropy_with_logits(logits, labels, weight=weights)

    def score(self, text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
        """ITM logits for every (text, image) pair (texts x images)."""
        nt, ni = len(text_emb), len(image_emb)
        t = text_emb[:, None, :].expand(nt, ni, -1).reshape(nt * ni, -1)
        i = image_emb[None, :, :].expand(nt, ni, -1).reshape(nt * ni, -1)
        return self.fuse(t, i).reshape(nt, ni)


class VQAClassifier(MultimodalModel):
    def __init__(self, text_encoder: nn.Module, image_dim: int, patch_dim: int | None, num_answers: int, projection_dim: int = 256, fusion: str = "late", text_only: bool = False):
        super().__init__(text_encoder)
        self.fusion, self.text_only = fusion, text_only
        self.text_proj = nn.Linear(self.hidden, projection_dim)
        if text_only:
            fused = projection_dim
        elif fusion == "late":
            self.image_proj = _mlp(image_dim, max(projection_dim, 2 * self.hidden), projection_dim, dropout=0.0)
            fused = 3 * projection_dim
        else:  # prefix
            assert patch_dim is not None
            self.prefix_proj = nn.Sequential(nn.Linear(patch_dim, self.hidden), nn.LayerNorm(self.hidden))
            fused = projection_dim
        self.classifier = _mlp(fused, 2 * projection_dim, num_answers)

    def _prefix_encode(self, input_ids, attention_mask, patches) -> torch.Tensor:
        """Single stream: [projected patches; token embeddings] through the text encoder."""
        words = self.text_encoder.get_input_embeddings()(input_ids)
        prefix = self.prefix_proj(patches.to(words.dtype))
        embeds = torch.cat([prefix, words], dim=1)
        mask = torch.cat([torch.ones(prefix.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device), attention_mask], dim=1)
        # right padding: positions are consecutive over prefix + text (padding positions are masked)
        positions = torch.arange(embeds.shape[1], device=embeds.device)[None].expand(embeds.shape[0], -1) + _position_offset(self.text_encoder)
        out = self.text_encoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
        return mean_pool(out.last_hidden_state, mask)

    def forward(self, batch: dict) -> torch.Tensor:
        if self.fusion == "prefix" and not self.text_only:
            return self.classifier(self.text_proj(self._prefix_encode(batch["input_ids"], batch["attention_mask"], batch["patches"])))
        t = self.text_proj(self.encode_text(batch["input_ids"], batch["attention_mask"]))
        if self.text_only:
            return self.classifier(t)
        i = self.image_proj(batch["image"])
        return self.classifier(torch.cat([t, i, t * i], dim=-1))

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self(batch)
        return F.binary_cross_entropy_with_logits(logits, batch["targets"], reduction="sum") / len(logits)
