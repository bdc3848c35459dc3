"""Multimodal intermediate tasks (captioning, VQA) offline: synthetic shapes, tiny text and vision models."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from intertask.config import ExperimentConfig, ModelConfig, MultimodalConfig, StageConfig, load_config
from intertask.data.loading import load_examples
from intertask.errors import ConfigError
from intertask.models.loading import build_model
from intertask.models.tiny import build_tiny_model
from intertask.multimodal.images import COLORS, ImageFolder, draw_shapes, make_shapes_dataset, synthetic_texts
from intertask.multimodal.metrics import normalize_answer, recall_at_k, retrieval_recall, simple_soft_score, vqa_accuracy, vqa_soft_score
from intertask.multimodal.stage import HEADS_FILE, arm_name, image_features
from intertask.multimodal.tasks import caption_pairs
from intertask.multimodal.vision import FeatureCache, HFVisionEncoder, PixelEncoder, build_tiny_vision_model, load_feature_file
from intertask.pipeline import validate_experiment
from intertask.tasks import get_task
from intertask.training.recipe import StageContext, run_stage

ROOT = Path(__file__).resolve().parents[1]
RUN_STAGE_KEYS = {"role", "task", "task_version", "config", "best_step", "dev_metrics", "main_metric", "history", "steps", "data", "seconds", "device", "mixed_precision"}
CHANCE_R1 = 1 / 36  # the synthetic dev set has 36 distinct images


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models on 2 shared cores: inter-op threading costs 10x more than it saves.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mm")
    data = root / "data"
    make_shapes_dataset(data, n_train=240)
    model = build_tiny_model(root / "tiny", synthetic_texts(data), vocab_size=200)
    ctx = StageContext(model=ModelConfig(name_or_path=str(model), max_seq_length=32), seed=0, data_dir=data)
    return {"root": root, "data": data, "model": model, "ctx": ctx}


class CountingEncoder(PixelEncoder):
    def __init__(self):
        super().__init__()
        self.images = 0

    def embed(self, images, patches):
        self.images += len(images)
        return super().embed(images, patches)


def stage(task: str, steps: int, lr: float = 1e-3, **mm) -> StageConfig:
    mm.setdefault("vision_model", "pixels")
    mm.setdefault("projection_dim", 64)
    return StageConfig(task=task, learning_rate=lr, batch_size=32, max_steps=steps, eval_every_steps=steps, warmup_ratio=0.1, multimodal=MultimodalConfig(**mm))


# ----------------------------------------------------------------------------- data and metrics


def test_synthetic_dataset_in_official_formats(world):
    cap = load_examples(get_task("synthetic_captioning"), "dev", "en", world["data"])
    vqa = load_examples(get_task("synthetic_vqa"), "train", "en", world["data"])
    assert len(cap.examples) == 36 * 3 and {"image", "caption"} <= set(cap.examples[0])
    assert len(vqa.examples) == 240 * 3 and len(vqa.examples[0]["answers"]) == 10
    folder = ImageFolder(world["data"] / "synthetic_shapes" / "images")
    img = folder.load(cap.examples[0]["image"])
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert folder.path(vqa.examples[0]["image"]) == folder.path(f"COCO_train2014_{int(vqa.examples[0]['image']):012d}.jpg")
    red = draw_shapes("red", "square", 2)
    assert (np.abs(red.astype(int) - COLORS["red"]).sum(-1) < 40).sum() > 2 * 20  # two red squares drawn


def test_vqa_accuracy_official_and_simplified():
    answers = ["two"] * 3 + ["three"] * 7
    # official: leave-one-out over 10 subsets: 3 subsets drop a "two" (2/3), 7 keep all three (1.0)
    assert vqa_soft_score("two", answers) == pytest.approx((3 * 2 / 3 + 7) / 10)
    assert simple_soft_score("two", answers) == 1.0
    assert vqa_soft_score("2", answers) == vqa_soft_score("two", answers)  # number words normalised
    assert vqa_soft_score("Three.", answers) == 1.0 and vqa_soft_score("red", answers) == 0.0
    assert normalize_answer("A Red, circle!") == "red circle"
    scores = vqa_accuracy(["three", "red"], [answers, ["red"] * 10])
    assert scores["vqa_accuracy"] == 1.0 and scores["exact_accuracy"] == 1.0


def test_recall_at_k_hand_checked():
    # 3 texts x 3 images; text 0 -> image 0 ranked 1st, text 1 -> image 1 ranked 3rd, text 2 -> image 2 ranked 2nd
    s = np.array([[0.9, 0.1, 0.0], [0.5, 0.1, 0.3], [0.2, 0.8, 0.7]])
    assert recall_at_k(s, [0, 1, 2], ks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}
    r = retrieval_recall(s, {"text_image": [0, 1, 2]})
    assert r["t2i_r1"] == pytest.approx(1 / 3) and r["t2i_r10"] == 1.0
    # image -> text: image 0 best text 0 (1st); image 1: text 2 scores 0.8 > 0.1 (2nd); image 2: text 2 (0.7) beats 0.3, 0.0 (1st)
    assert r["i2t_r1"] == pytest.approx(2 / 3)


def test_caption_pairs_one_per_caption_balanced():
    examples = [{"image": f"i{i}", "caption": f"c{i}-{k}"} for i in range(4) for k in range(5)]
    pairs = caption_pairs(examples)
    assert len(pairs) == 20 and sum(p["label"] == "1" for p in pairs) == 12  # k = 0, 2, 4 positive
    for p in pairs:
        same = p["text_a"].split("-")[0] == p["text_b"].split("-")[0]
        assert same == (p["label"] == "1") and p["text_a"] != p["text_b"]


SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "multimodal").is_dir(), reason="needs ../shared/data/multimodal")
def test_real_text_sides_load():
    from intertask.multimodal.tasks import load_extra_captions

    for name, lang, n in (("flickr8k_captioning", "en", 5000), ("multi30k_captioning", "en", 5070), ("multi30k_captioning", "de", 5070), ("vqa_v2", "en", 8977)):
        examples = load_examples(get_task(name), "dev", lang, SHARED).examples
        assert len(examples) == n and examples[0]["image"], name
    vqa = load_examples(get_task("vqa_v2"), "dev", "en", SHARED).examples
    assert len(vqa[0]["answers"]) == 10 and vqa[0]["image"].isdigit()
    extra, files = load_extra_captions("multi30k_captioning", ["de", "fr", "cs"], SHARED)
    assert len(extra) == 3 * 29000 and len(files) == 3 and extra[0]["image"].endswith(".jpg")
    pairs = load_examples(get_task("multi30k_captioning_paraphrase"), "dev", "en", SHARED).examples
    assert len(pairs) == 5070 and {p["label"] for p in pairs} == {"0", "1"}


# ----------------------------------------------------------------------------- vision and the cache


def test_feature_cache_second_run_does_not_call_the_vision_model(world, tmp_path):
    folder = ImageFolder(world["data"] / "synthetic_shapes" / "images")
    keys = [f"{i:06d}.png" for i in range(1, 41)]
    encoder = CountingEncoder()
    cache = FeatureCache(tmp_path / "cache")
    first = cache.features(encoder, keys, folder.load, patches=True, batch_size=16)
    assert encoder.calls == 3 and encoder.images == 40
    second = cache.features(encoder, keys, folder.load, patches=True)
    assert encoder.calls == 3  # all from disk
    assert np.allclose(first.pooled, second.pooled) and np.allclose(first.patches, second.patches, atol=1e-2)
    cache.features(encoder, keys + ["000041.png"], folder.load)
    assert encoder.images == 41  # only the new image is computed
    damaged = tmp_path / "cache" / encoder.encoder_id / "pooled" / "000002.png.npy"
    damaged.write_bytes(damaged.read_bytes()[:-4])  # as a crash without fsync can leave it
    again = cache.features(encoder, keys, folder.load)
    assert encoder.images == 42 and np.allclose(again.pooled, first.pooled, atol=1e-5)  # recomputed, not read half


def test_tiny_hf_vision_model_cached_by_encoder_id(world, tmp_path):
    directory = build_tiny_vision_model(tmp_path / "vit")
    encoder = HFVisionEncoder(str(directory))
    folder = ImageFolder(world["data"] / "synthetic_shapes" / "images")
    keys = ["000001.png", "000002.png", "000003.png"]
    feats = FeatureCache(tmp_path / "cache").features(encoder, keys, folder.load, patches=True)
    assert feats.pooled.shape == (3, 32) and feats.patches.shape == (3, 17, 32)  # CLS + 4x4 patches
    again = HFVisionEncoder(str(directory))
    assert again.encoder_id == encoder.encoder_id
    FeatureCache(tmp_path / "cache").features(again, keys, folder.load, patches=True)
    assert again.calls == 0
    other = build_tiny_vision_model(tmp_path / "vit2", seed=1)
    assert HFVisionEncoder(str(other)).encoder_id != encoder.encoder_id  # other weights: other cache entry


def test_precomputed_feature_files(tmp_path):
    ids = ["COCO_train2014_000000000009.jpg", "COCO_train2014_000000000025.jpg"]
    pooled, patches = np.arange(8, dtype=np.float32).reshape(2, 4), np.ones((2, 3, 4), dtype=np.float32)
    np.savez(tmp_path / "f.npz", ids=np.array(ids), pooled=pooled, patches=patches)
    save_file({"pooled": pooled}, str(tmp_path / "f.safetensors"), metadata={"ids": json.dumps(ids)})
    (tmp_path / "npy").mkdir()
    for i, name in enumerate(ids):
        np.save(tmp_path / "npy" / name.replace(".jpg", ".npy"), patches[i] * (i + 1))
    for path in ("f.npz", "f.safetensors"):
        f = load_feature_file(tmp_path / path, ["25", "9"])  # VQA keys: numeric image ids
        assert np.array_equal(f.pooled, pooled[[1, 0]])
    f = load_feature_file(tmp_path / "f.npz", ["9"], patches=True)
    assert f.patches.shape == (1, 3, 4)
    f = load_feature_file(tmp_path / "npy", ["25"], patches=True)
    assert np.allclose(f.pooled, [2, 2, 2, 2]) and f.patches.shape == (1, 3, 4)
    with pytest.raises(ConfigError, match="no features"):
        load_feature_file(tmp_path / "f.npz", ["7"])


# ----------------------------------------------------------------------------- learnability and controls


def test_contrastive_captioning_learns_and_hands_off_text_encoder(world):
    out = world["root"] / "cap"
    summary = run_stage(stage("synthetic_captioning", 150), world["ctx"], out, "intermediate")
    print("captioning dev:", summary["dev_metrics"])
    assert summary["dev_metrics"]["t2i_r1"] > 10 * CHANCE_R1 and summary["dev_metrics"]["i2t_r1"] > 10 * CHANCE_R1
    assert RUN_STAGE_KEYS <= set(summary) and (out / "stage.json").is_file() and (out / HEADS_FILE).is_file()
    # Hand-off: a target stage's encoder at step 0 equals the multimodal stage's final text encoder.
    from transformers import AutoModel

    saved = AutoModel.from_pretrained(out / "model", add_pooling_layer=False).state_dict()
    initial = AutoModel.from_pretrained(world["model"], add_pooling_layer=False).state_dict()
    target = build_model(get_task("panx"), str(world["model"]), init_encoder_from=out)
    target_state = target.base_model.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(target_state[name], tensor), name
    assert not torch.equal(saved["embeddings.word_embeddings.weight"], initial["embeddings.word_embeddings.weight"])
    # the stage is reused, not retrained
    assert run_stage(stage("synthetic_captioning", 150), world["ctx"], out, "intermediate")["seconds"] == summary["seconds"]


def test_vqa_late_fusion_learns_and_text_only_control_does_not(world):
    full = run_stage(stage("synthetic_vqa", 160, lr=5e-3), world["ctx"], world["root"] / "vqa", "intermediate")
    text = run_stage(stage("synthetic_vqa", 160, lr=5e-3, control="text_only"), world["ctx"], world["root"] / "vqa-text", "intermediate")
    acc, text_acc = full["dev_metrics"]["vqa_accuracy"], text["dev_metrics"]["vqa_accuracy"]
    print(f"vqa accuracy: late fusion {acc:.3f}, question only {text_acc:.3f}")
    assert acc > 0.6 and acc > text_acc + 0.2
    assert json.loads((world["root"] / "vqa" / "answers.json").read_text())[:1]


def test_shuffle_images_breaks_grounding(world):
    summary = run_stage(stage("synthetic_captioning", 100, control="shuffle_images"), world["ctx"], world["root"] / "shuffled", "intermediate")
    print("shuffled dev:", summary["dev_metrics"])
    assert summary["dev_metrics"]["t2i_r1"] < 5 * CHANCE_R1


def test_text_only_captioning_never_touches_images(world):
    encoder = CountingEncoder()
    summary = run_stage(stage("synthetic_captioning", 20, control="text_only"), dataclasses.replace(world["ctx"], vision_encoder=encoder), world["root"] / "text-only", "intermediate")
    assert encoder.calls == 0 and summary["data"]["images"] is None and summary["multimodal"]["control"] == "text_only"


def test_matching_formulation_and_visual_prefix_run(world, tmp_path):
    itm = run_stage(stage("synthetic_captioning", 30, formulation="matching"), world["ctx"], tmp_path / "itm", "intermediate")
    assert set(itm["dev_metrics"]) >= {"t2i_r1", "i2t_r5", "mean_recall"}
    encoder = HFVisionEncoder(str(build_tiny_vision_model(tmp_path / "vit")))
    prefix = run_stage(stage("synthetic_vqa", 30, fusion="prefix", vision_model="unused"), dataclasses.replace(world["ctx"], vision_encoder=encoder), tmp_path / "prefix", "intermediate")
    assert 0.0 <= prefix["dev_metrics"]["vqa_accuracy"] <= 1.0 and prefix["data"]["vision"] == encoder.encoder_id


def test_text_matched_control_is_size_matched(world, tmp_path):
    summary = run_stage(stage("synthetic_captioning", 12, control="text_matched"), world["ctx"], tmp_path / "matched", "intermediate")
    assert summary["task"] == "synthetic_captioning_paraphrase" and summary["steps"] == 12
    assert summary["data"]["train"]["examples"] == summary["multimodal"]["train_examples"] == 720
    assert RUN_STAGE_KEYS <= set(summary)


def test_image_features_errors_are_clear(world, tmp_path):
    mm = MultimodalConfig(image_dir=tmp_path)
    with pytest.raises(ConfigError, match="images not found"):
        image_features(mm, "synthetic_captioning", world["data"], tmp_path / "c", ["000001.png"], False, PixelEncoder())


# ----------------------------------------------------------------------------- pipeline and presets


def test_pipeline_runs_a_multimodal_arm(world, tmp_path):
    from intertask.pipeline import run_experiment

    data = world["data"]
    for name in ("panx", "tatoeba"):
        if not (data / name).exists():
            (data / name).symlink_to(ROOT / "data" / "sample" / name)
    cfg = ExperimentConfig(
        name="mm", seed=0, data_dir=data, output_dir=tmp_path, baseline=False,
        model=ModelConfig(name_or_path=str(world["model"]), max_seq_length=32),
        intermediate=stage("synthetic_captioning", 10, control="text_only"),
        target=StageConfig(task="panx", max_steps=2, batch_size=8, max_train_samples=32, max_eval_samples=16),
    )  # fmt: skip
    cfg.evaluation.languages, cfg.evaluation.max_eval_samples = ["en", "ru"], 16
    cfg.evaluation.retrieval_tasks, cfg.evaluation.retrieval_languages = ["tatoeba"], ["ru"]  # on the handed-off encoder
    (record,) = run_experiment(cfg)
    assert record["stages"]["intermediate"]["task"] == "synthetic_captioning"
    assert record["arm"] == "synthetic_captioning+text_only" and record["intermediate"] == "synthetic_captioning"
    assert set(record["scores"]["panx"]) == {"en", "ru"} and "ru" in record["scores"]["tatoeba"]


def test_presets_validate():
    presets = sorted((ROOT / "configs" / "multimodal").glob("*.yaml")) + [ROOT / "configs" / "multimodal_xtreme_ru.yaml"]
    assert len(presets) >= 8
    for path in presets:
        cfg = load_config(path)
        notes = validate_experiment(cfg, check_data=False)
        assert notes, path
    listed = (ROOT / "docs" / "multimodal.md").read_text()
    for path in presets:
        assert str(path.relative_to(ROOT)) in listed, f"{path} not listed in docs/multimodal.md"


def test_arm_names_tell_variants_apart():
    assert arm_name(StageConfig(task="mnli")) == "mnli"
    assert arm_name(stage("vqa_v2", 1)) == "vqa_v2"
    assert arm_name(stage("vqa_v2", 1, fusion="prefix", control="shuffle_images")) == "vqa_v2+shuffle_images+prefix"
    assert arm_name(stage("multi30k_captioning", 1, caption_languages=["de", "fr"])) == "multi30k_captioning+ml+de+fr"


def test_config_errors():
    bad = StageConfig(task="synthetic_captioning", multimodal=MultimodalConfig(text_task="mnli"))
    with pytest.raises(ConfigError, match="text_matched"):
        validate_experiment(ExperimentConfig(intermediate=bad, target=StageConfig(task="panx")), check_data=False)
    with pytest.raises(ConfigError, match="not multimodal"):
        validate_experiment(ExperimentConfig(intermediate=StageConfig(task="mnli", multimodal=MultimodalConfig()), target=StageConfig(task="panx")), check_data=False)
    with pytest.raises(ConfigError, match="control"):
        from intertask.config import from_dict

        from_dict(StageConfig, {"task": "vqa_v2", "multimodal": {"control": "shuffle"}})
    assert math.isclose(MultimodalConfig().temperature, 0.07)
