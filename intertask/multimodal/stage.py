"""The multimodal intermediate stage: captioning or VQA -> a stage directory the text recipe can hand off from.

The stage directory has the same layout as :func:`intertask.training.recipe.run_stage`'s:
``model/`` is the trained *text encoder* alone (a bare Hugging Face encoder checkpoint + tokenizer,
so ``init_encoder_from`` of the target stage loads it like any other), ``stage.json`` the summary
with the same keys, plus ``multimodal_heads.safetensors`` (projections / fusion / classifier) and,
for VQA, ``answers.json`` (the answer vocabulary). The vision tower is frozen; its features live in
the feature cache (``<stage dir>/../feature_cache`` unless ``multimodal.feature_cache`` says otherwise).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter, defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoModel, get_linear_schedule_with_warmup

from intertask.config import MultimodalConfig, StageConfig, to_dict
from intertask.data.loading import load_examples
from intertask.errors import ConfigError
from intertask.io import STAGE_FILE, read_json, write_json_atomic
from intertask.models.loading import MODEL_DIR, encoder_state_dict, load_tokenizer, resolve_model
from intertask.multimodal.images import ImageFolder
from intertask.multimodal.metrics import normalize_answer
from intertask.multimodal.models import ContrastiveCaptioning, ImageTextMatching, MultimodalModel, VQAClassifier
from intertask.multimodal.tasks import load_extra_captions, multimodal_spec, text_task_for
from intertask.multimodal.vision import FeatureCache, ImageFeatures, VisionEncoder, build_vision_encoder, load_feature_file
from intertask.progress import log, progress_bar
from intertask.tasks import get_task

HEADS_FILE = "multimodal_heads.safetensors"
ANSWERS_FILE = "answers.json"


def is_multimodal(stage: StageConfig | None) -> bool:
    return stage is not None and multimodal_spec(stage.task) is not None


def arm_name(stage: StageConfig) -> str:
    """The arm label of an intermediate stage: the task, plus what sets a multimodal variant apart
    (``multi30k_captioning+text_only``, ``vqa_v2+prefix``), so controls never share a label."""
    if not is_multimodal(stage) or stage.multimodal is None:
        return stage.task
    mm, default = stage.multimodal, MultimodalConfig()
    parts = [mm.control] if mm.control != "none" else []
    parts += [mm.formulation] if mm.formulation != default.formulation else []
    parts += [mm.fusion] if mm.fusion != default.fusion else []
    parts += ["+".join(["ml", *mm.caption_languages])] if mm.caption_languages else []
    return "+".join([stage.task, *parts])


def validate_multimodal_stage(stage: StageConfig, role: str, data_dir: Path, check_data: bool = True) -> list[str]:
    """Checks beyond the schema; raises ConfigError, returns notes."""
    spec = multimodal_spec(stage.task)
    if spec is None:
        if stage.multimodal is not None:
            raise ConfigError(f"{role}.multimodal is set but task {stage.task} is not multimodal (captioning / VQA tasks only)")
        return []
    if role != "intermediate":
        raise ConfigError(f"{role}.task: {stage.task} is a multimodal task; it can only be an intermediate task")
    mm = stage.multimodal or MultimodalConfig()
    if spec.kind == "captioning" and mm.fusion != "late":
        raise ConfigError(f"{role}.multimodal.fusion applies to VQA; captioning uses multimodal.formulation")
    if spec.kind == "vqa" and (mm.formulation != "contrastive" or mm.caption_languages):
        raise ConfigError(f"{role}.multimodal.formulation / caption_languages apply to captioning; VQA uses multimodal.fusion")
    if mm.control == "text_matched":
        text_task_for(stage.task, mm.text_task)
    elif mm.text_task:
        raise ConfigError(f"{role}.multimodal.text_task is only used with control=text_matched")
    if mm.caption_languages:
        if not (spec.extra_caption_files and all(lang in spec.extra_caption_files for lang in mm.caption_languages)):
            raise ConfigError(f"{role}.multimodal.caption_languages: {stage.task} has captions in {', '.join(spec.extra_caption_files or []) or 'no other language'}")
    if mm.temperature <= 0 or mm.projection_dim <= 0 or mm.num_answers <= 0:
        raise ConfigError(f"{role}.multimodal: temperature, projection_dim and num_answers must be positive")
    if mm.control in ("text_only", "text_matched"):
        where = "none (control without images)"
    elif mm.features is not None:
        where = f"precomputed features {_resolve(mm.features, data_dir)}"
    else:
        folder = _resolve(mm.image_dir or Path(spec.image_dir), data_dir)
        where = f"{mm.vision_model} on images in {folder}" + ("" if folder.is_dir() or not check_data else " (folder missing: add the images before running)")
    return [f"{stage.task}: {spec.kind}, control={mm.control}, vision: {where}"]


def _resolve(path: Path, data_dir: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(data_dir) / path


def _device_and_autocast(mixed_precision: str):
    from intertask.training.recipe import resolve_mixed_precision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = resolve_mixed_precision(mixed_precision) if device.type == "cuda" else "no"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    ctx = (lambda: torch.autocast("cuda", dtype=dtype)) if dtype is not None else nullcontext
    return device, mode, ctx


def load_text_encoder(model_name: str, init_encoder_from: Path | None = None, freeze_embeddings: bool = False):
    source = resolve_model(model_name)
    try:
        encoder = AutoModel.from_pretrained(source, add_pooling_layer=False)
    except TypeError:
        encoder = AutoModel.from_pretrained(source)
    if init_encoder_from is not None:
        result = encoder.load_state_dict(encoder_state_dict(init_encoder_from, encoder.base_model_prefix), strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
        if missing or result.unexpected_keys:
            raise ConfigError(f"init_encoder_from {init_encoder_from}: encoder does not match {model_name} (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})")
    if freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    return encoder


def image_features(mm: MultimodalConfig, task_name: str, data_dir: Path, cache_root: Path, keys: list[str], patches: bool, encoder: VisionEncoder | None = None, device: str | torch.device = "cpu") -> ImageFeatures:
    """Features for the images `keys`: precomputed, or from the (cached) frozen vision encoder."""
    spec = multimodal_spec(task_name)
    assert spec is not None
    if mm.features is not None:
        return load_feature_file(_resolve(mm.features, data_dir), keys, patches)
    folder = ImageFolder(_resolve(mm.image_dir or Path(spec.image_dir), data_dir))
    missing = folder.missing(list(dict.fromkeys(keys)))
    if missing:
        raise ConfigError(f"{len(missing)} images not found in {folder.directory}, e.g. {', '.join(missing[:5])}")
    encoder = encoder or build_vision_encoder(mm.vision_model, device)
    return FeatureCache(mm.feature_cache or cache_root).features(encoder, keys, folder.load, patches, mm.vision_batch_size)


# ----------------------------------------------------------------------------- the stage


def run_multimodal_stage(stage: StageConfig, ctx: Any, stage_dir: Path, role: str = "intermediate", vision_encoder: VisionEncoder | None = None) -> dict[str, Any]:
    """Train `stage.task` (captioning or VQA) and write `stage_dir` (see the module docstring)."""
    stage_dir = Path(stage_dir)
    done = stage_dir / STAGE_FILE
    if done.is_file():
        log(f"[dim]{role} stage {stage.task}: complete in {stage_dir}, reusing it[/dim]")
        return read_json(done)
    validate_multimodal_stage(stage, role, ctx.data_dir, check_data=False)
    mm = stage.multimodal or MultimodalConfig()
    if mm.control == "text_matched":
        return _run_text_matched(stage, ctx, stage_dir, role)

    started = time.time()
    task = get_task(stage.task)
    spec = multimodal_spec(stage.task)
    assert spec is not None
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    device, precision, autocast = _device_and_autocast(ctx.mixed_precision)
    max_length = stage.max_seq_length or ctx.model.max_seq_length

    train = load_examples(task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
    dev = load_examples(task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
    train_examples = list(train.examples)
    extra, extra_files = load_extra_captions(stage.task, mm.caption_languages, ctx.data_dir, stage.on_bad_example)
    train_images = {e["image"] for e in train_examples}
    train_examples += [e for e in extra if e["image"] in train_images]
    if not train_examples or not dev.examples:
        raise ConfigError(f"{role} stage {task.name}: no training or dev examples")

    text_only = mm.control == "text_only"
    patches = spec.kind == "vqa" and mm.fusion == "prefix" and not text_only
    feats = None
    if not text_only:
        keys = list(dict.fromkeys([e["image"] for e in train_examples] + [e["image"] for e in dev.examples]))
        feats = image_features(mm, stage.task, ctx.data_dir, stage_dir.parent / "feature_cache", keys, patches, vision_encoder, device)

    tokenizer = load_tokenizer(ctx.model.name_or_path)
    torch.manual_seed(ctx.seed)  # head initialisation depends only on the seed
    encoder = load_text_encoder(ctx.model.name_or_path, stage.init_encoder_from, ctx.model.freeze_embeddings)
    if spec.kind == "captioning":
        data: _Data = _CaptionData(train_examples, dev.examples, feats, mm, rng, text_only)
    else:
        data = _VQAData(train_examples, dev.examples, feats, mm, rng, text_only, patches)
    model = data.build_model(encoder).to(device)
    sanity = data.units()
    if len(sanity) < 2:
        raise ConfigError(f"{role} stage {task.name}: fewer than 2 usable training units (captioning: images; text_only needs >= 2 captions per image)")

    def tok(texts: list[str]) -> dict[str, torch.Tensor]:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    decay = [p for n, p in model.named_parameters() if p.requires_grad and not _no_decay(n)]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and _no_decay(n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": stage.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=stage.learning_rate)
    steps_per_epoch = math.ceil(math.ceil(len(sanity) / stage.batch_size) / stage.gradient_accumulation_steps)
    total_steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(stage.warmup_ratio * total_steps), total_steps)
    eval_every = stage.eval_every_steps or steps_per_epoch

    def evaluate_dev() -> dict[str, float]:
        model.eval()
        with torch.inference_mode(), autocast():
            scores = data.evaluate(model, tok, stage.eval_batch_size, device)
        model.train()
        return scores

    log(f"[bold]{role} stage[/bold] {task.name} ({spec.kind}, control={mm.control}): {len(train_examples)} train examples ({len(sanity)} units), {len(dev.examples)} dev, {total_steps} steps")
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf}
    main_metric = task.main_metric
    step, epoch, micro = 0, 0, 0
    model.train()
    with progress_bar(f"{role}: {task.name}", total=total_steps) as advance:
        while step < total_steps:
            for batch in data.batches(stage.batch_size, tok, device):
                with autocast():
                    loss = model.loss(batch) / stage.gradient_accumulation_steps
                loss.backward()
                micro += 1
                if micro % stage.gradient_accumulation_steps:
                    continue
                torch.nn.utils.clip_grad_norm_(model.parameters(), stage.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                advance(loss=loss.item() * stage.gradient_accumulation_steps)
                if step % eval_every == 0 or step == total_steps:
                    scores = evaluate_dev()
                    history.append({"step": step, "epoch": epoch, "loss": loss.item() * stage.gradient_accumulation_steps, **scores})
                    if scores[main_metric] > best["score"]:
                        best = {"score": scores[main_metric], "step": step, "metrics": scores}
                        best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                if step >= total_steps:
                    break
            epoch += 1

    # ---------------------------------------------------------------- save: text encoder (hand-off) + heads
    model.load_state_dict(best.pop("state"))
    model.text_encoder.save_pretrained(stage_dir / MODEL_DIR)
    tokenizer.save_pretrained(stage_dir / MODEL_DIR)
    save_file(model.head_state_dict(), str(stage_dir / HEADS_FILE), metadata={"task": task.name, "kind": spec.kind, "control": mm.control})
    if isinstance(data, _VQAData):
        write_json_atomic(stage_dir / ANSWERS_FILE, data.answers)
    summary = {
        "role": role,
        "task": task.name,
        "task_version": task.version,
        "train_task": task.name,
        "config": to_dict(stage),
        "best_step": best["step"],
        "dev_metrics": best["metrics"],
        "main_metric": main_metric,
        "history": history,
        "steps": step,
        "data": {"train": {**train.report(), "files": train.files + extra_files, "examples": len(train_examples)}, "dev": dev.report(), "train_rows": len(sanity),
                 "images": None if feats is None else len(feats.keys), "vision": _vision_note(mm, vision_encoder)},  # fmt: skip
        "multimodal": {"kind": spec.kind, "control": mm.control, "formulation": mm.formulation, "fusion": mm.fusion},
        "seconds": round(time.time() - started, 1),
        "mixed_precision": precision,
        "device": str(device),
    }
    write_json_atomic(done, summary)
    log(f"{role} stage {task.name}: best {main_metric}={best['score']:.4f} at step {best['step']} ({summary['seconds']} s)")
    return summary


def _vision_note(mm: MultimodalConfig, encoder: VisionEncoder | None) -> str | None:
    if mm.control == "text_only":
        return None
    if mm.features is not None:
        return f"features:{mm.features}"
    return encoder.encoder_id if encoder is not None else mm.vision_model


def _run_text_matched(stage: StageConfig, ctx: Any, stage_dir: Path, role: str) -> dict[str, Any]:
    """Size-matched text control: a text task with the same number of training examples and steps."""
    from intertask.training.recipe import run_stage

    mm = stage.multimodal or MultimodalConfig()
    text_task = text_task_for(stage.task, mm.text_task)
    task = get_task(stage.task)
    train = load_examples(task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
    n_examples = len(train.examples)
    units = len({e["image"] for e in train.examples}) if multimodal_spec(stage.task).kind == "captioning" else n_examples  # type: ignore[union-attr]
    steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * math.ceil(math.ceil(units / stage.batch_size) / stage.gradient_accumulation_steps)))
    text_stage = dataclasses.replace(stage, task=text_task.name, multimodal=None, max_train_samples=n_examples, max_steps=steps)
    log(f"{role} stage {stage.task}: control=text_matched -> {text_task.name} with {n_examples} examples, {steps} steps")
    summary = run_stage(text_stage, ctx, stage_dir, role)
    summary = {**summary, "config": to_dict(stage), "multimodal": {"kind": "text", "control": "text_matched", "matched_to": stage.task, "text_task": text_task.name, "train_examples": n_examples, "steps": steps}}
    write_json_atomic(stage_dir / STAGE_FILE, summary)
    return summary


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name or "logit_scale" in name


# ----------------------------------------------------------------------------- data


class _Data:
    def units(self) -> list:
        raise NotImplementedError

    def build_model(self, encoder) -> MultimodalModel:
        raise NotImplementedError

    def batches(self, batch_size: int, tok, device):
        raise NotImplementedError

    def evaluate(self, model, tok, batch_size: int, device) -> dict[str, float]:
        raise NotImplementedError


def _rows(feats: ImageFeatures | None, keys: list[str]) -> np.ndarray:
    if feats is None:
        return np.zeros(len(keys), dtype=np.int64)
    index = feats.index()
    return np.array([index[k] for k in keys], dtype=np.int64)


class _CaptionData(_Data):
    """Training unit = one image with its captions; each epoch draws one caption per image (two for
    text_only), so a batch never holds the same image twice. shuffle_images: every caption is paired,
    once and for all, with the image of a random other caption."""

    def __init__(self, train: list[dict], dev: list[dict], feats: ImageFeatures | None, mm: MultimodalConfig, rng: np.random.Generator, text_only: bool):
        self.mm, self.rng, self.text_only, self.feats = mm, rng, text_only, feats
        self.captions = [e["caption"] for e in train]
        rows = _rows(feats, [e["image"] for e in train])
        self.true_rows = rows
        self.rows = rows[rng.permutation(len(rows))] if mm.control == "shuffle_images" else rows
        by_image: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(train):
            by_image[e["image"]].append(i)
        groups = list(by_image.values())
        self._units = [g for g in groups if len(g) >= 2] if text_only else groups
        dev_by_image: dict[str, list[str]] = defaultdict(list)
        for e in dev:
            dev_by_image[e["image"]].append(e["caption"])
        self.dev_images = list(dev_by_image)
        self.dev_captions = dev_by_image
        self.feature_tensor = None if feats is None else torch.from_numpy(feats.pooled)

    def units(self) -> list:
        return self._units

    def build_model(self, encoder) -> MultimodalModel:
        dim = 0 if self.feats is None else self.feats.pooled.shape[1]
        if self.mm.formulation == "matching" and not self.text_only:
            return ImageTextMatching(encoder, dim, self.mm.projection_dim, self.mm.negatives)
        return ContrastiveCaptioning(encoder, dim, self.mm.projection_dim, self.mm.temperature, text_only=self.text_only)

    def batches(self, batch_size, tok, device):
        order = self.rng.permutation(len(self._units))
        for start in range(0, len(order), batch_size):
            chosen = [self._units[u] for u in order[start : start + batch_size]]
            if len(chosen) < 2:
                continue  # in-batch negatives need at least two units
            if self.text_only:
                pairs = [self.rng.choice(g, size=2, replace=False) for g in chosen]
                batch = tok([self.captions[a] for a, _ in pairs])
                second = tok([self.captions[b] for _, b in pairs])
                batch.update({"input_ids_b": second["input_ids"], "attention_mask_b": second["attention_mask"]})  # one unit = one image
                yield batch
                continue
            picks = [int(self.rng.choice(g)) for g in chosen]
            batch = tok([self.captions[i] for i in picks])
            rows = torch.as_tensor(self.rows[picks])
            batch["image"] = self.feature_tensor[rows].to(device)
            batch["groups"] = rows.to(device)
            yield batch

    def _embed_texts(self, model, texts, tok, batch_size) -> torch.Tensor:
        return torch.cat([model.text_embed(**tok(texts[i : i + batch_size])).float() for i in range(0, len(texts), batch_size)])

    def evaluate(self, model, tok, batch_size, device) -> dict[str, float]:
        from intertask.multimodal.metrics import retrieval_recall

        if self.text_only:  # caption -> caption of the same image (first vs second caption)
            images = [img for img in self.dev_images if len(self.dev_captions[img]) >= 2]
            queries = self._embed_texts(model, [self.dev_captions[i][0] for i in images], tok, batch_size)
            keys = self._embed_texts(model, [self.dev_captions[i][1] for i in images], tok, batch_size)
            return retrieval_recall(model.score(queries, keys).cpu().numpy(), {"text_image": list(range(len(images)))})
        texts, text_image = [], []
        for j, img in enumerate(self.dev_images):
            texts += self.dev_captions[img]
            text_image += [j] * len(self.dev_captions[img])
        t = self._embed_texts(model, texts, tok, batch_size)
        assert self.feats is not None
        rows = torch.as_tensor(_rows(self.feats, self.dev_images))
        i = torch.cat([model.image_embed(self.feature_tensor[rows[s : s + batch_size]].to(device)).float() for s in range(0, len(rows), batch_size)])
        scores = torch.cat([model.score(t[s : s + batch_size], i).float() for s in range(0, len(t), batch_size)])
        return retrieval_recall(scores.cpu().numpy(), {"text_image": text_image})


class _VQAData(_Data):
    """Answer classification over the top-K training answers (by multiple_choice_answer frequency),
    soft targets min(#humans / 3, 1). Questions whose answers are all outside the top K are kept out
    of training (standard) but stay in dev (they score 0). shuffle_images: the image column is
    permuted across questions once."""

    def __init__(self, train: list[dict], dev: list[dict], feats: ImageFeatures | None, mm: MultimodalConfig, rng: np.random.Generator, text_only: bool, patches: bool):
        self.mm, self.rng, self.text_only, self.feats, self.patches = mm, rng, text_only, feats, patches
        counts = Counter(normalize_answer(e["answer"] or "") for e in train if e.get("answer"))
        self.answers = [a for a, _ in counts.most_common(mm.num_answers)]
        index = {a: i for i, a in enumerate(self.answers)}
        self.targets = []
        for e in train:
            t = Counter(normalize_answer(a) for a in e["answers"])
            self.targets.append({index[a]: min(c / 3.0, 1.0) for a, c in t.items() if a in index})
        self.train = [i for i, t in enumerate(self.targets) if t]
        self.questions = [e["question"] for e in train]
        rows = _rows(feats, [e["image"] for e in train])
        self.rows = rows[rng.permutation(len(rows))] if mm.control == "shuffle_images" else rows
        self.dev = dev
        self.dev_rows = _rows(feats, [e["image"] for e in dev])
        self.pooled = None if feats is None else torch.from_numpy(feats.pooled)
        self.patch_tensor = None if feats is None or feats.patches is None else torch.from_numpy(feats.patches)

    def units(self) -> list:
        return self.train

    def build_model(self, encoder) -> MultimodalModel:
        dim = 0 if self.feats is None else self.feats.pooled.shape[1]
        patch_dim = None if self.patch_tensor is None else self.patch_tensor.shape[-1]
        return VQAClassifier(encoder, dim, patch_dim, len(self.answers), self.mm.projection_dim, self.mm.fusion, self.text_only)

    def _image_inputs(self, batch: dict, rows: np.ndarray, device) -> None:
        if self.text_only:
            return
        r = torch.as_tensor(rows)
        if self.patches:
            batch["patches"] = self.patch_tensor[r].to(device)  # type: ignore[index]
        else:
            batch["image"] = self.pooled[r].to(device)  # type: ignore[index]

    def batches(self, batch_size, tok, device):
        order = self.rng.permutation(len(self.train))
        for start in range(0, len(order), batch_size):
            idx = [self.train[i] for i in order[start : start + batch_size]]
            batch = tok([self.questions[i] for i in idx])
            self._image_inputs(batch, self.rows[idx], device)
            targets = torch.zeros(len(idx), len(self.answers))
            for j, i in enumerate(idx):
                for a, s in self.targets[i].items():
                    targets[j, a] = s
            batch["targets"] = targets.to(device)
            yield batch

    def evaluate(self, model, tok, batch_size, device) -> dict[str, float]:
        from intertask.multimodal.metrics import vqa_accuracy

        predictions = []
        for s in range(0, len(self.dev), batch_size):
            chunk = self.dev[s : s + batch_size]
            batch = tok([e["question"] for e in chunk])
            self._image_inputs(batch, self.dev_rows[s : s + batch_size], device)
            predictions += [self.answers[i] for i in model(batch).argmax(-1).tolist()]
        return vqa_accuracy(predictions, [e["answers"] for e in self.dev])


__all__ = ["run_multimodal_stage", "arm_name", "is_multimodal", "validate_multimodal_stage", "image_features", "load_text_encoder"]
