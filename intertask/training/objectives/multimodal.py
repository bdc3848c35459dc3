"""Multimodal intermediate stages: captioning (contrastive or matching) and VQA (late fusion or visual prefix).

Only the trained *text encoder* is handed off (``model/``: a bare encoder + tokenizer, so ``init_encoder_from`` of the
target stage loads it like any other); ``multimodal_heads.safetensors`` holds projections / fusion / classifier and,
for VQA, ``answers.json`` the answer vocabulary. The vision tower is frozen; its features come from the feature cache
(``<stage dir>/../feature_cache`` unless ``multimodal.feature_cache`` says otherwise) or a precomputed file.
All randomness of the batches (caption picks, order) lives in the samplers, seeded by (seed, epoch): resumable.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from intertask.config import MultimodalConfig, StageConfig, to_dict
from intertask.data.loading import load_examples
from intertask.errors import ConfigError
from intertask.io import write_json_atomic
from intertask.models.loading import MODEL_DIR
from intertask.multimodal.data import CaptionData, VQAData
from intertask.multimodal.stage import ANSWERS_FILE, HEADS_FILE, image_features, load_text_encoder, resolve_path, vision_note
from intertask.progress import log
from intertask.tasks import get_task
from intertask.tasks.multimodal import load_extra_captions, multimodal_spec, text_task_for
from intertask.training.objectives.base import Objective
from intertask.training.objectives.single import SingleTask, check_task_stage


class Multimodal(Objective):
    @staticmethod
    def validate(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
        spec = multimodal_spec(stage.task)
        if spec is None:
            raise ConfigError(f"{role}.multimodal is set but task {stage.task} is not multimodal (captioning / VQA tasks only)")
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
        if mm.caption_languages and not (spec.extra_caption_files and all(lang in spec.extra_caption_files for lang in mm.caption_languages)):
            raise ConfigError(
                f"{role}.multimodal.caption_languages: {stage.task} has captions in {', '.join(spec.extra_caption_files or []) or 'no other language'}"
            )
        if mm.temperature <= 0 or mm.projection_dim <= 0 or mm.num_answers <= 0:
            raise ConfigError(f"{role}.multimodal: temperature, projection_dim and num_answers must be positive")
        check_task_stage(dataclasses.replace(stage, multimodal=None), role, data_dir, data_source, check_data)
        if mm.control in ("text_only", "text_matched"):
            where = "none (control without images)"
        elif mm.features is not None:
            where = f"precomputed features {resolve_path(mm.features, data_dir)}"
        else:
            folder = resolve_path(mm.image_dir or Path(spec.image_dir), data_dir)
            where = f"{mm.vision_model} on images in {folder}" + (
                "" if folder.is_dir() or not check_data else " (folder missing: add the images before running)"
            )
        return [f"{stage.task}: {spec.kind}, control={mm.control}, vision: {where}"]

    @classmethod
    def make(cls, stage: StageConfig, ctx: Any, role: str) -> Objective:
        """The objective; for control=text_matched, a text task with the same number of training examples and steps."""
        mm = stage.multimodal or MultimodalConfig()
        if mm.control != "text_matched":
            return cls(stage, ctx, role)
        text_task, task = text_task_for(stage.task, mm.text_task), get_task(stage.task)
        train = load_examples(task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
        n = len(train.examples)
        units = len({e["image"] for e in train.examples}) if multimodal_spec(stage.task).kind == "captioning" else n  # type: ignore[union-attr]
        steps = stage.max_steps or max(1, math.ceil(stage.num_epochs * math.ceil(math.ceil(units / stage.batch_size) / stage.gradient_accumulation_steps)))
        text_stage = dataclasses.replace(stage, task=text_task.name, multimodal=None, max_train_samples=n, max_steps=steps)
        log(f"{role} stage {stage.task}: control=text_matched -> {text_task.name} with {n} examples, {steps} steps")
        matched = {"kind": "text", "control": "text_matched", "matched_to": stage.task, "text_task": text_task.name, "train_examples": n, "steps": steps}
        return SingleTask(text_stage, ctx, role, summary_override={"config": to_dict(stage), "multimodal": matched})

    def __init__(self, stage: StageConfig, ctx: Any, role: str):
        super().__init__(stage, ctx, role)
        self.task, self.spec = get_task(stage.task), multimodal_spec(stage.task)
        self.name, self.main_metric = self.task.name, self.task.main_metric
        self.mm = stage.multimodal or MultimodalConfig()

    @staticmethod
    def no_decay(name: str) -> bool:
        return Objective.no_decay(name) or "logit_scale" in name

    def load(self, tokenizer: Any) -> None:
        stage, ctx, mm = self.stage, self.ctx, self.mm
        self.train = load_examples(self.task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed)
        self.dev = load_examples(self.task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
        examples = list(self.train.examples)
        extra, self.extra_files = load_extra_captions(stage.task, mm.caption_languages, ctx.data_dir, stage.on_bad_example)
        images = {e["image"] for e in examples}
        self.examples = examples + [e for e in extra if e["image"] in images]
        if not self.examples or not self.dev.examples:
            raise ConfigError(f"{self.role} stage {self.name}: no training or dev examples")
        text_only = mm.control == "text_only"
        patches = self.spec.kind == "vqa" and mm.fusion == "prefix" and not text_only
        self.feats = None
        if not text_only:
            keys = list(dict.fromkeys([e["image"] for e in self.examples] + [e["image"] for e in self.dev.examples]))
            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.feats = image_features(mm, stage.task, ctx.data_dir, Path(self.stage_dir).parent / "feature_cache", keys, patches, ctx.vision_encoder, device)
        kind = CaptionData if self.spec.kind == "captioning" else VQAData
        self.data = kind(self.examples, self.dev.examples, self.feats, mm, ctx.seed, text_only, patches, tokenizer, self.max_length)
        if len(self.data.units) < 2:
            raise ConfigError(
                f"{self.role} stage {self.name}: fewer than 2 usable training units (captioning: images; text_only needs >= 2 captions per image)"
            )

    def build_model(self):
        return self.data.build_model(load_text_encoder(self.ctx.model.name_or_path, self.stage.init_encoder_from, self.ctx.model.freeze_embeddings))

    def train_data(self):
        return self.data.dataset(), self.data.sampler(self.stage.batch_size), self.data.collate

    def loss(self, model, batch):
        return getattr(model, "module", model).loss(batch)

    def evaluate(self, model, device) -> dict[str, Any]:
        model.eval()
        with torch.inference_mode():
            return self.data.evaluate(model, self.stage.eval_batch_size, device)

    def describe(self) -> str:
        units = f"{len(self.examples)} train examples ({len(self.data.units)} units), {len(self.dev.examples)} dev"
        return f"{self.name} ({self.spec.kind}, control={self.mm.control}): {units}"

    def save(self, model, stage_dir, tokenizer) -> None:
        model.text_encoder.save_pretrained(stage_dir / MODEL_DIR)
        tokenizer.save_pretrained(stage_dir / MODEL_DIR)
        save_file(model.head_state_dict(), str(stage_dir / HEADS_FILE), metadata={"task": self.name, "kind": self.spec.kind, "control": self.mm.control})
        if isinstance(self.data, VQAData):
            write_json_atomic(stage_dir / ANSWERS_FILE, self.data.answers)

    def summary(self) -> dict[str, Any]:
        mm = self.mm
        return {
            "task": self.name,
            "task_version": self.task.version,
            "train_task": self.name,
            "data": {
                "train": {**self.train.report(), "files": self.train.files + self.extra_files, "examples": len(self.examples)},
                "dev": self.dev.report(),
                "train_rows": len(self.data.units),
                "images": None if self.feats is None else len(self.feats.keys),
                "vision": vision_note(mm, self.ctx.vision_encoder),
            },  # fmt: skip
            "multimodal": {"kind": self.spec.kind, "control": mm.control, "formulation": mm.formulation, "fusion": mm.fusion},
        }
