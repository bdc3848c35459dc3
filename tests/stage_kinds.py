"""One tiny stage of each kind (single, multitask, mlm, captioning, vqa), as a script for the fault and
data-parallel tests: ``python tests/stage_kinds.py KIND ROOT STAGE_DIR [key=int ...]`` (or under torchrun).

ROOT holds the shared fixtures (built on first use): a tiny random XLM-R and the data of every kind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from intermediate_fixtures import write_intermediate_data  # noqa: E402

from intertask.config import MLMConfig, ModelConfig, MultimodalConfig, SamplingConfig, StageConfig  # noqa: E402
from intertask.multimodal.images import make_shapes_dataset, synthetic_texts  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
KINDS = ("single", "multitask", "mlm", "captioning", "vqa")
COMMON = {"max_steps": 6, "eval_every_steps": 3, "checkpoint_every_steps": 2, "learning_rate": 1e-3, "max_eval_samples": 8, "eval_batch_size": 8}


def fixtures(root: Path) -> dict[str, Path]:
    from intertask.models.tiny import build_tiny_model

    root.mkdir(parents=True, exist_ok=True)
    paths = {"text": root / "text", "shapes": root / "shapes", "model": root / "tiny"}
    if not paths["text"].is_dir():
        write_intermediate_data(paths["text"])
        (paths["text"] / "panx").symlink_to(SAMPLE / "panx")
    if not paths["shapes"].is_dir():
        make_shapes_dataset(paths["shapes"], n_train=48)
    if not paths["model"].is_dir():
        texts = (SAMPLE / "xnli" / "dev-en.tsv").read_text(encoding="utf-8").splitlines() + synthetic_texts(paths["shapes"])
        build_tiny_model(paths["model"], texts, vocab_size=300)
    return paths


def _without_dropout(model: Path) -> Path:
    import json
    import shutil

    copy = model.parent / (model.name + "-nodropout")
    if not copy.is_dir():
        shutil.copytree(model, copy)
        config = json.loads((copy / "config.json").read_text())
        config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
        (copy / "config.json").write_text(json.dumps(config))
    return copy


def stage_of(kind: str) -> tuple[StageConfig, str]:
    """The stage config and its data folder ("text" or "shapes")."""
    if kind == "single":
        return StageConfig(task="panx", batch_size=8, max_train_samples=48, **COMMON), "text"
    if kind == "multitask":
        return StageConfig(
            tasks=["qqp", "hellaswag"], sampling=SamplingConfig(strategy="uniform"), batch_size=4, max_train_samples=12, max_seq_length=64, **COMMON
        ), "text"
    if kind == "mlm":
        return StageConfig(task="mlm", mlm=MLMConfig(languages=["en", "ru"], dev_lines=5), batch_size=8, max_seq_length=32, **COMMON), "text"
    task = "synthetic_captioning" if kind == "captioning" else "synthetic_vqa"
    return StageConfig(task=task, batch_size=8, multimodal=MultimodalConfig(vision_model="pixels", projection_dim=16), **COMMON), "shapes"


def main(kind: str, root: Path, stage_dir: Path, *overrides: str) -> None:
    """Overrides: ``key=integer`` stage fields (e.g. max_train_samples=32)."""
    import dataclasses

    from intertask.training.recipe import StageContext, run_stage

    torch.set_num_threads(1)
    paths = fixtures(root)
    stage, data = stage_of(kind)
    fields = {k: int(v) for k, v in (o.split("=", 1) for o in overrides)}
    if fields.pop("dropout", None) == 0:  # the model without dropout (data-parallel comparisons)
        paths["model"] = _without_dropout(paths["model"])
    stage = dataclasses.replace(stage, **fields)
    ctx = StageContext(model=ModelConfig(name_or_path=str(paths["model"]), max_seq_length=32 if data == "shapes" else 64), seed=7, data_dir=paths[data])
    run_stage(stage, ctx, stage_dir, "intermediate")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:])
