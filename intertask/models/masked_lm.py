"""The masked-LM head of an encoder: logits at masked positions only, head initialisation notes, dev metrics.

Only the loss at masked positions is computed (the vocabulary projection of unmasked positions is skipped), which
matters with a 250k-piece vocabulary on CPU. Dev metrics: masked-token accuracy (main), loss (mean NLL) and
perplexity = exp(loss), overall and per language.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open

from intertask.errors import ConfigError
from intertask.models.loading import checkpoint_dir, resolve_model


def _lm_head(model) -> torch.nn.Module:
    for name in ("lm_head", "cls", "pred_layer"):
        if hasattr(model, name):
            return getattr(model, name)
    raise ConfigError(f"{type(model).__name__}: no masked-LM head found")


def masked_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Vocabulary logits at the masked positions only, and their gold ids."""
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    selected = batch["labels"] != -100
    return _lm_head(model)(hidden[selected]), batch["labels"][selected]


def _checkpoint_keys(name_or_path: str) -> set[str]:
    directory = checkpoint_dir(resolve_model(name_or_path))
    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    keys: set[str] = set()
    for name in files:
        with safe_open(str(directory / name), "pt") as f:
            keys.update(f.keys())
    return keys


def head_init_notes(model, name_or_path: str) -> dict[str, Any]:
    """Which MLM-head weights the pretrained checkpoint did not have (initialised fresh), and the decoder tying."""
    prefix = model.base_model_prefix + "."
    ckpt = _checkpoint_keys(name_or_path)
    state = model.state_dict()
    encoder_ptrs = {v.data_ptr() for k, v in state.items() if k.startswith(prefix)}
    head_keys = [k for k in state if not k.startswith(prefix)]
    tied_keys = sorted(k for k in head_keys if state[k].data_ptr() in encoder_ptrs)  # the decoder = word embeddings
    fresh = sorted(k for k in head_keys if k not in ckpt and k not in tied_keys)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return {
        "fresh": fresh,
        "tied_to_encoder": tied_keys,
        "pretrained": sorted(set(head_keys) - set(fresh) - set(tied_keys)),
        "decoder_tied_to_word_embeddings": bool(tied),
    }


@torch.inference_mode()
def evaluate_mlm(model, dev_batches: list[dict[str, torch.Tensor]], dev_langs: list[list[str]], device) -> dict[str, float]:
    model.eval()
    nll: dict[str, float] = {}
    correct: dict[str, int] = {}
    count: dict[str, int] = {}
    for batch, langs in zip(dev_batches, dev_langs):
        batch = {k: v.to(device) for k, v in batch.items()}
        logits, gold = masked_logits(model, batch)
        losses = F.cross_entropy(logits.float(), gold, reduction="none")
        hits = logits.argmax(-1) == gold
        row_of = (batch["labels"] != -100).nonzero()[:, 0].tolist()
        for j, b in enumerate(row_of):
            lang = langs[b]
            nll[lang] = nll.get(lang, 0.0) + float(losses[j])
            correct[lang] = correct.get(lang, 0) + int(hits[j])
            count[lang] = count.get(lang, 0) + 1
    total = sum(count.values())
    loss = sum(nll.values()) / max(1, total)
    scores = {"accuracy": sum(correct.values()) / max(1, total), "loss": loss, "perplexity": math.exp(min(loss, 50.0)), "masked_tokens": float(total)}
    for lang in sorted(count):
        scores[f"{lang}/accuracy"] = correct[lang] / count[lang]
        scores[f"{lang}/perplexity"] = math.exp(min(nll[lang] / count[lang], 50.0))
    return scores
