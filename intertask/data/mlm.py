"""Masked-LM data: plain lines -> token rows -> masked batches (BERT's 80/10/10 replacement).

``mask_batch`` picks tokens (``token``) or whole words (``whole_word``: every piece of a picked word) with
``mask_probability``; every line contributes at least one masked token. Randomness comes only from the
``generator`` passed in, so a batch is a function of its rows and the generator's seed.
"""

from __future__ import annotations

from typing import Any

import torch

from intertask.config import MLMConfig


def plain_lines(examples: list) -> list[str]:
    """Plain lines (hub corpora give documents: split on newlines)."""
    out: list[str] = []
    for e in examples:
        out.extend(s.strip() for s in str(e).split("\n") if s.strip())
    return out


def featurize_lines(lines: list[str], tokenizer, max_length: int, lang: str) -> list[dict[str, Any]]:
    enc = tokenizer(lines, truncation=True, max_length=max_length)
    rows = []
    for i in range(len(lines)):
        word_ids = enc.word_ids(i)
        rows.append({"input_ids": enc["input_ids"][i], "word_ids": word_ids, "lang": lang})
    return rows


def mask_batch(rows: list[dict[str, Any]], tokenizer, cfg: MLMConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Pad, pick tokens (or whole words) with cfg.mask_probability, apply 80/10/10; labels -100 elsewhere."""
    length = max(len(r["input_ids"]) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    picked = torch.zeros((len(rows), length), dtype=torch.bool)
    for b, row in enumerate(rows):
        ids, words = row["input_ids"], row["word_ids"]
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention[b, : len(ids)] = 1
        maskable = [k for k, w in enumerate(words) if w is not None]
        if not maskable:
            continue
        if cfg.masking == "whole_word":
            unique = sorted({words[k] for k in maskable})
            draw = torch.rand(len(unique), generator=generator) < cfg.mask_probability
            chosen = {w for w, d in zip(unique, draw.tolist()) if d}
            if not chosen:  # every line contributes at least one masked word
                chosen = {unique[int(torch.randint(len(unique), (1,), generator=generator))]}
            for k in maskable:
                if words[k] in chosen:
                    picked[b, k] = True
        else:
            draw = torch.rand(len(maskable), generator=generator) < cfg.mask_probability
            chosen = [k for k, d in zip(maskable, draw.tolist()) if d] or [maskable[int(torch.randint(len(maskable), (1,), generator=generator))]]
            picked[b, chosen] = True
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[picked & (roll < 0.8)] = tokenizer.mask_token_id
    random_slots = picked & (roll >= 0.8) & (roll < 0.9)
    masked[random_slots] = torch.randint(len(tokenizer), (int(random_slots.sum()),), generator=generator)
    return {"input_ids": masked, "attention_mask": attention, "labels": labels}
