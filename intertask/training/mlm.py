"""Continued masked-language modelling as an intermediate stage (the paper's MLM baseline; task ``mlm``).

Text: task ``mlm`` (one plain-text file per language, ``mlm/{lang}.train.txt`` / ``mlm/{lang}.txt``, or the hub
corpus), for every language of ``intermediate.mlm.languages``, concatenated. Dev: ``mlm/{lang}.dev.txt`` where it
exists, else ``mlm.dev_lines`` lines held out from the training file (seeded), per language.

Masking (``mlm.masking``): ``token`` picks each non-special token with ``mask_probability``; ``whole_word`` picks
words (the tokenizer's pre-tokenised words) and masks every piece of a picked word. Picked tokens are replaced
BERT-style: 80% ``<mask>``, 10% a random token, 10% unchanged. Training masks are drawn anew for every batch; dev
masks are drawn once with a fixed seed, so dev metrics are comparable across evaluations.

The head: the embedded default model (and any bare encoder) has no pretrained MLM head. The decoder is tied to
the input word embeddings (so it is "pretrained"); the rest (dense + layer norm + output bias) is initialised
fresh. ``stage.json`` lists the freshly initialised weights under ``notes`` / ``mlm_head``.

Only the loss at masked positions is computed (the vocabulary projection of unmasked positions is skipped),
which matters with a 250k-piece vocabulary on CPU. Dev metrics: masked-token accuracy (main), loss (mean NLL)
and perplexity = exp(loss), overall and per language.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors import safe_open
from transformers import get_linear_schedule_with_warmup

from intertask.config import MLMConfig, StageConfig, to_dict
from intertask.data.batching import length_sorted_batches
from intertask.data.loading import has_data, load_examples
from intertask.errors import ConfigError
from intertask.io import write_json_atomic
from intertask.models.loading import MODEL_DIR, build_model, checkpoint_dir, load_tokenizer, resolve_model
from intertask.progress import log, progress_bar
from intertask.tasks import get_task
from intertask.training.recipe import STAGE_FILE, EpochBatches, StageContext, _no_decay, backward_and_step, completed_stage, configure_model, resolve_mixed_precision

MLM = "mlm"


def is_mlm(stage: StageConfig | None) -> bool:
    return stage is not None and stage.task == MLM


def mlm_languages(stage: StageConfig) -> list[str]:
    cfg = stage.mlm or MLMConfig()
    return list(cfg.languages) or [stage.language]


def validate_mlm_stage(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
    if role != "intermediate":
        raise ConfigError(f"{role}: continued MLM (task mlm) is an intermediate stage only")
    cfg = stage.mlm or MLMConfig()
    if not 0.0 < cfg.mask_probability < 1.0:
        raise ConfigError(f"{role}.mlm.mask_probability must be in (0, 1), got {cfg.mask_probability}")
    task = get_task(MLM)
    langs = mlm_languages(stage)
    for lang in langs:
        if lang not in task.languages:
            raise ConfigError(f"{role}.mlm.languages: task mlm has no language {lang!r}")
        if check_data and data_source == "local" and not has_data(task, "train", lang, data_dir):
            raise ConfigError(f"{role}: mlm text for {lang!r} not found: {', '.join(map(str, task.local.paths(data_dir, 'train', lang)))}")
    return [f"continued MLM ({cfg.masking} masking, p={cfg.mask_probability}) on {', '.join(langs)}"]


# ----------------------------------------------------------------------------- data


def _lines(examples: list) -> list[str]:
    """Plain lines (hub corpora give documents: split on newlines)."""
    out: list[str] = []
    for e in examples:
        out.extend(s.strip() for s in str(e).split("\n") if s.strip())
    return out


def load_mlm_text(stage: StageConfig, ctx: StageContext, lang: str) -> tuple[list[str], list[str], dict[str, Any]]:
    """(train lines, dev lines, report) of one language."""
    cfg = stage.mlm or MLMConfig()
    task = get_task(MLM)
    train = load_examples(task, "train", lang, ctx.data_dir, ctx.data_source, stage.on_bad_example, None, ctx.seed)
    lines = _lines(train.examples)
    rng = random.Random(ctx.seed)
    if ctx.data_source == "local" and has_data(task, "dev", lang, ctx.data_dir):
        dev_data = load_examples(task, "dev", lang, ctx.data_dir, ctx.data_source, stage.on_bad_example, None, ctx.seed)
        dev, dev_source = _lines(dev_data.examples), dev_data.files
    else:
        n_dev = min(cfg.dev_lines, max(1, len(lines) // 10))
        order = list(range(len(lines)))
        rng.shuffle(order)
        held = set(order[:n_dev])
        dev = [lines[i] for i in sorted(held)]
        lines = [line for i, line in enumerate(lines) if i not in held]
        dev_source = [f"{n_dev} lines held out from {', '.join(train.files)}"]
    cap = cfg.max_lines_per_language or stage.max_train_samples
    if cap is not None and len(lines) > cap:
        lines = [lines[i] for i in sorted(rng.sample(range(len(lines)), cap))]
    if stage.max_eval_samples is not None and len(dev) > stage.max_eval_samples:
        dev = [dev[i] for i in sorted(rng.sample(range(len(dev)), stage.max_eval_samples))]
    if not lines or not dev:
        raise ConfigError(f"mlm {lang}: not enough text ({len(lines)} train lines, {len(dev)} dev lines)")
    report = {"train_files": train.files, "dev": dev_source, "train_lines": len(lines), "dev_lines": len(dev), "skipped": len(train.skipped)}
    return lines, dev, report


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


# ----------------------------------------------------------------------------- model


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
    return {"fresh": fresh, "tied_to_encoder": tied_keys, "pretrained": sorted(set(head_keys) - set(fresh) - set(tied_keys)), "decoder_tied_to_word_embeddings": bool(tied)}


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


# ----------------------------------------------------------------------------- the stage


def run_mlm_stage(stage: StageConfig, ctx: StageContext, stage_dir: Path, role: str) -> dict[str, Any]:
    """Continue MLM training of the encoder; writes model/ (encoder + MLM head) and stage.json."""
    stage_dir = Path(stage_dir)
    done = stage_dir / STAGE_FILE
    if (finished := completed_stage(stage_dir, role, MLM)) is not None:
        return finished
    validate_mlm_stage(stage, role, ctx.data_dir, ctx.data_source, check_data=False)
    started = time.time()
    cfg = stage.mlm or MLMConfig()
    set_seed(ctx.seed)
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(ctx.mixed_precision), gradient_accumulation_steps=stage.gradient_accumulation_steps)
    device = accelerator.device
    tokenizer = load_tokenizer(ctx.model.name_or_path)
    if tokenizer.mask_token_id is None:
        raise ConfigError(f"{ctx.model.name_or_path}: the tokenizer has no mask token")
    max_length = stage.max_seq_length or ctx.model.max_seq_length

    train_rows: list[dict[str, Any]] = []
    dev_rows: list[dict[str, Any]] = []
    reports = {}
    for lang in mlm_languages(stage):
        train_lines, dev_lines, reports[lang] = load_mlm_text(stage, ctx, lang)
        train_rows += featurize_lines(train_lines, tokenizer, max_length, lang)
        dev_rows += featurize_lines(dev_lines, tokenizer, max_length, lang)
    # Fixed dev masks.
    dev_gen = torch.Generator().manual_seed(ctx.seed + 1)
    dev_order = length_sorted_batches([len(r["input_ids"]) for r in dev_rows], stage.eval_batch_size)
    dev_batches = [mask_batch([dev_rows[i] for i in idx], tokenizer, cfg, dev_gen) for idx in dev_order]
    dev_langs = [[dev_rows[i]["lang"] for i in idx] for idx in dev_order]

    set_seed(ctx.seed)
    model = build_model(get_task(MLM), ctx.model.name_or_path, stage.init_encoder_from, ctx.model.freeze_embeddings)
    head_notes = head_init_notes(model, ctx.model.name_or_path)
    configure_model(model, ctx.model)  # attention kernel (the MLM loss calls the encoder directly, so no compile)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not _no_decay(n)], "weight_decay": stage.weight_decay}, {"params": [p for n, p in named if _no_decay(n)], "weight_decay": 0.0}],
        lr=stage.learning_rate,
    )
    sampler = EpochBatches([len(r["input_ids"]) for r in train_rows], stage.batch_size, ctx.seed)
    steps_per_epoch = max(1, math.ceil(len(sampler) / stage.gradient_accumulation_steps))
    total_steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(stage.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    inner = accelerator.unwrap_model(model)
    eval_every = stage.eval_every_steps or steps_per_epoch
    gen = torch.Generator().manual_seed(ctx.seed)

    log(f"[bold]{role} stage[/bold] {MLM}: {len(train_rows)} lines ({', '.join(reports)}), {len(dev_rows)} dev, {cfg.masking} masking, {total_steps} steps")
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf}
    step, epoch, running = 0, 0, 0.0
    model.train()
    with progress_bar(f"{role}: {MLM}", total=total_steps) as advance:
        while step < total_steps:
            sampler.set_epoch(epoch)
            for idx in sampler:
                batch = {k: v.to(device) for k, v in mask_batch([train_rows[i] for i in idx], tokenizer, cfg, gen).items()}
                with accelerator.accumulate(model):
                    logits, gold = masked_logits(inner, batch)
                    loss = F.cross_entropy(logits.float(), gold)
                    backward_and_step(accelerator, model, loss, optimizer, scheduler, stage.max_grad_norm)
                running += loss.item()
                if not accelerator.sync_gradients:
                    continue
                step += 1
                advance(loss=running / stage.gradient_accumulation_steps)
                running = 0.0
                if step % eval_every == 0 or step == total_steps:
                    scores = evaluate_mlm(inner, dev_batches, dev_langs, device)
                    model.train()
                    history.append({"step": step, "epoch": epoch, "loss": loss.item(), **scores})
                    if scores["accuracy"] > best["score"]:
                        best = {"score": scores["accuracy"], "step": step, "metrics": scores, "state": {k: v.detach().to("cpu", copy=True) for k, v in inner.state_dict().items()}}
                if step >= total_steps:
                    break
            epoch += 1

    inner.load_state_dict(best.pop("state"))
    inner.save_pretrained(stage_dir / MODEL_DIR)
    tokenizer.save_pretrained(stage_dir / MODEL_DIR)
    notes = [
        f"MLM head: freshly initialised {', '.join(head_notes['fresh']) or 'nothing'} (not in the pretrained checkpoint); "
        + ("decoder weight tied to the input word embeddings" if head_notes["decoder_tied_to_word_embeddings"] else "decoder not tied"),
        f"masking: {cfg.masking}, p={cfg.mask_probability}, 80/10/10 replacement; dev masks fixed (seed {ctx.seed + 1})",
        "only the encoder is handed to the next stage",
    ]
    summary = {
        "role": role,
        "task": MLM,
        "task_version": get_task(MLM).version,
        "train_task": MLM,
        "config": to_dict(stage),
        "languages": mlm_languages(stage),
        "best_step": best["step"],
        "dev_metrics": best["metrics"],
        "main_metric": "accuracy",
        "history": history,
        "steps": step,
        "data": reports,
        "mlm_head": head_notes,
        "notes": notes,
        "seconds": round(time.time() - started, 1),
        "mixed_precision": accelerator.mixed_precision,
        "device": str(device),
    }
    write_json_atomic(done, summary)
    accelerator.free_memory()
    log(f"{role} stage {MLM}: best masked-token accuracy {best['score']:.4f} at step {best['step']} ({summary['seconds']} s)")
    return summary
