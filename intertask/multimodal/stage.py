"""Helpers of the multimodal intermediate stages (trained by intertask.training.objectives.multimodal through the one
training loop): the arm label of a variant, the text encoder, and image features (frozen vision tower + cache).

A multimodal stage directory: ``model/`` is the trained *text encoder* alone (a bare Hugging Face encoder checkpoint +
tokenizer), ``stage.json`` the summary, ``multimodal_heads.safetensors`` (projections / fusion / classifier) and, for
VQA, ``answers.json`` (the answer vocabulary).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel

from intertask.config import MultimodalConfig, StageConfig
from intertask.errors import ConfigError
from intertask.models.loading import encoder_state_dict, resolve_model
from intertask.multimodal.images import ImageFolder
from intertask.multimodal.vision import FeatureCache, ImageFeatures, VisionEncoder, build_vision_encoder, load_feature_file
from intertask.tasks.multimodal import multimodal_spec

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


def resolve_path(path: Path, data_dir: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(data_dir) / path


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
            raise ConfigError(
                f"init_encoder_from {init_encoder_from}: encoder does not match {model_name} (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
            )
    if freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    return encoder


def image_features(
    mm: MultimodalConfig,
    task_name: str,
    data_dir: Path,
    cache_root: Path,
    keys: list[str],
    patches: bool,
    encoder: VisionEncoder | None = None,
    device: str | torch.device = "cpu",
) -> ImageFeatures:
    """Features for the images `keys`: precomputed, or from the (cached) frozen vision encoder."""
    spec = multimodal_spec(task_name)
    assert spec is not None
    if mm.features is not None:
        return load_feature_file(resolve_path(mm.features, data_dir), keys, patches)
    folder = ImageFolder(resolve_path(mm.image_dir or Path(spec.image_dir), data_dir))
    missing = folder.missing(list(dict.fromkeys(keys)))
    if missing:
        raise ConfigError(f"{len(missing)} images not found in {folder.directory}, e.g. {', '.join(missing[:5])}")
    encoder = encoder or build_vision_encoder(mm.vision_model, device)
    return FeatureCache(mm.feature_cache or cache_root).features(encoder, keys, folder.load, patches, mm.vision_batch_size)


def vision_note(mm: MultimodalConfig, encoder: VisionEncoder | None) -> str | None:
    if mm.control == "text_only":
        return None
    if mm.features is not None:
        return f"features:{mm.features}"
    return encoder.encoder_id if encoder is not None else mm.vision_model
