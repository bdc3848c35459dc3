"""The paper's baselines besides no-intermediate: continued multilingual MLM and translate-train (pipeline level)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from intermediate_fixtures import write_intermediate_data
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.config import ExperimentConfig, MLMConfig, ModelConfig, StageConfig, from_dict
from intertask.data.mlm import featurize_lines, mask_batch
from intertask.errors import ConfigError
from intertask.models.loading import build_model, encoder_state_dict, load_tokenizer
from intertask.pipeline import validate_experiment
from intertask.tasks import get_task
from intertask.training.recipe import StageContext, run_stage

REPO = Path(__file__).resolve().parent.parent
LINES = ["the cat sat on the mat while the dogs ran in the park", "people walked home after work and the cat slept"] * 50


@pytest.fixture(scope="module")
def tok(tiny_model):
    return load_tokenizer(str(tiny_model))


def test_token_masking_rate_and_replacement(tok):
    rows = featurize_lines(LINES, tok, 64, "en")
    batch = mask_batch(rows, tok, MLMConfig(mask_probability=0.15), torch.Generator().manual_seed(0))
    maskable = torch.tensor([[w is not None for w in r["word_ids"]] + [False] * (batch["input_ids"].shape[1] - len(r["word_ids"])) for r in rows])
    picked = batch["labels"] != -100
    assert not (picked & ~maskable).any()  # specials and padding are never picked
    assert picked.sum() / maskable.sum() == pytest.approx(0.15, abs=0.03)
    original = torch.where(picked, batch["labels"], batch["input_ids"])
    as_mask = (batch["input_ids"] == tok.mask_token_id) & picked
    kept = (batch["input_ids"] == original) & picked
    assert as_mask.sum() / picked.sum() == pytest.approx(0.8, abs=0.08)
    assert kept.sum() / picked.sum() == pytest.approx(0.1, abs=0.07)


def test_whole_word_masking_masks_every_piece(tok):
    rows = featurize_lines(LINES, tok, 64, "en")
    assert any(len(r["word_ids"]) > len(set(w for w in r["word_ids"] if w is not None)) + 2 for r in rows)  # multi-piece words exist
    batch = mask_batch(rows, tok, MLMConfig(masking="whole_word", mask_probability=0.3), torch.Generator().manual_seed(1))
    for b, row in enumerate(rows):
        picked = {k for k in range(len(row["word_ids"])) if batch["labels"][b, k] != -100}
        words = {row["word_ids"][k] for k in picked}
        assert picked == {k for k, w in enumerate(row["word_ids"]) if w in words}


def test_mlm_config_validation():
    ok = from_dict(ExperimentConfig, {"intermediate": {"task": "mlm", "mlm": {"languages": ["en", "ru"], "masking": "whole_word"}}, "target": {"task": "panx"}})
    validate_experiment(ok, check_data=False)
    with pytest.raises(ConfigError, match="did you mean 'whole_word'"):
        from_dict(ExperimentConfig, {"intermediate": {"task": "mlm", "mlm": {"masking": "whole-word"}}})
    with pytest.raises(ConfigError, match="task mlm has no language 'xx'"):
        validate_experiment(
            from_dict(ExperimentConfig, {"intermediate": {"task": "mlm", "mlm": {"languages": ["xx"]}}, "target": {"task": "panx"}}), check_data=False
        )
    with pytest.raises(ConfigError, match="intermediate stage only"):
        validate_experiment(from_dict(ExperimentConfig, {"target": {"task": "mlm"}}), check_data=False)


def test_mlm_stage_runs_records_head_init_and_hands_off(tiny_model, tmp_path):
    data = write_intermediate_data(tmp_path / "data")
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=2, data_dir=data)
    stage = StageConfig(task="mlm", mlm=MLMConfig(languages=["en", "ru"], masking="whole_word", dev_lines=5), max_steps=4, eval_every_steps=2,
                        batch_size=8, eval_batch_size=8, learning_rate=1e-3, max_seq_length=32)  # fmt: skip
    summary = run_stage(stage, ctx, tmp_path / "mlm", "intermediate")
    dm = summary["dev_metrics"]
    assert summary["steps"] == 4 and len(summary["history"]) == 2
    assert 0.0 <= dm["accuracy"] <= 1.0 and dm["perplexity"] == pytest.approx(torch.tensor(dm["loss"]).exp().item(), rel=1e-4)
    assert {"en/accuracy", "ru/accuracy"} <= set(dm)
    assert summary["data"]["en"]["dev_lines"] == 4 and summary["data"]["en"]["train_lines"] == 36  # 40 lines, 4 held out
    # The tiny model, like the embedded default, is a bare encoder: the MLM head except the tied decoder is fresh.
    head = summary["mlm_head"]
    assert head["decoder_tied_to_word_embeddings"] and {"lm_head.dense.weight", "lm_head.layer_norm.weight", "lm_head.bias"} <= set(head["fresh"])
    assert "freshly initialised" in summary["notes"][0]
    assert json.loads((tmp_path / "mlm" / "stage.json").read_text())["dev_metrics"] == dm
    model = build_model(get_task("panx"), str(tiny_model), init_encoder_from=tmp_path / "mlm")
    expected = encoder_state_dict(tmp_path / "mlm", model.base_model_prefix)
    assert all(torch.equal(v, expected[k]) for k, v in model.base_model.state_dict().items())


def _run(tiny_model, data, out, *overrides):
    args = ["run", str(REPO / "configs/quickstart.yaml"), f"model.name_or_path={tiny_model}", f"output_dir={out}", f"data_dir={data}",
            "target.max_steps=2", "target.max_train_samples=16", "target.max_eval_samples=8", "target.batch_size=8",
            "evaluation.max_eval_samples=8", "evaluation.retrieval_tasks=[]", "evaluation.languages=[ru]", "baseline=false", *overrides]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_mlm_and_translate_train_arms_in_the_pipeline(tiny_model, sample_data, tmp_path):
    data = write_intermediate_data(tmp_path / "data")
    (data / "panx").symlink_to(sample_data / "panx")
    out = tmp_path / "runs"
    _run(tiny_model, data, out, "name=mlm", "intermediate.task=mlm", "intermediate.mlm.languages=[en,ru]", "intermediate.max_steps=2",
         "intermediate.batch_size=8", "intermediate.max_seq_length=32", "intermediate.max_eval_samples=8")  # fmt: skip
    record = json.loads((out / "mlm" / "mlm" / "result.json").read_text())
    assert record["intermediate"] == "mlm" and "accuracy" in record["stages"]["intermediate"]["dev_metrics"]
    _run(tiny_model, data, out, "name=tt", "intermediate.task=hellaswag", "intermediate.language=ru", "intermediate.max_steps=2",
         "intermediate.batch_size=4", "intermediate.max_seq_length=64", "intermediate.max_train_samples=8", "intermediate.max_eval_samples=4")  # fmt: skip
    record = json.loads((out / "tt" / "hellaswag" / "result.json").read_text())
    assert record["stages"]["intermediate"]["data"]["train"]["files"][0].endswith("hellaswag_train_ru.jsonl")
    assert record["config"]["intermediate"]["language"] == "ru"
