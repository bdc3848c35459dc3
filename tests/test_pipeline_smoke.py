"""Smoke tier: the whole CLI pipeline on the tiny random model and the bundled sample data, in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.models.loading import build_model, encoder_state_dict
from intertask.results.store import ResultsStore
from intertask.tasks import get_task

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

SMALL = [
    "intermediate.max_steps=3", "intermediate.max_train_samples=40", "intermediate.max_eval_samples=10",
    "target.max_steps=4", "target.eval_every_steps=2", "target.max_train_samples=64", "target.max_eval_samples=20",
    "evaluation.max_eval_samples=30", "evaluation.retrieval_languages=[ru]", "intermediate.batch_size=4", "target.batch_size=8",
]  # fmt: skip


def stage_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir())  # (lock files live beside them)


def run_cli(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def quickstart_run(tiny_model, sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_cli("run", str(REPO / "configs/quickstart.yaml"), f"model.name_or_path={tiny_model}", f"output_dir={out}", f"data_dir={sample_data}", *SMALL)
    return out


def test_quickstart_pipeline_end_to_end(quickstart_run):
    out = quickstart_run
    records = ResultsStore(out / "results.sqlite").records("quickstart")
    assert [r["arm"] for r in records] == ["baseline", "squad_v1"]
    for r in records:
        assert set(r["scores"]) == {"panx", "tatoeba"}
        assert set(r["scores"]["panx"]) == {"en", "ru"} and 0.0 <= r["scores"]["panx"]["ru"]["f1"] <= 1.0
        assert r["samples"]["panx"]["ru"] == 30 and r["samples"]["tatoeba"]["ru"] == 1000
        assert r["task_versions"] == {"panx": 1, "squad_v1": 1, "tatoeba": 1}
        assert r["git_hash"] and r["config"]["target"]["task"] == "panx" and r["config_hash"]
        assert r["stages"]["target"]["dev_metrics"]["f1"] >= 0.0
    assert "dev_metrics" in records[1]["stages"]["intermediate"]
    table = (out / "quickstart" / "results.md").read_text()
    assert "| squad_v1 |" in table and "panx ru" in table
    saved = json.loads((out / "quickstart" / "squad_v1" / "result.json").read_text())
    assert saved["run_id"] == records[1]["run_id"]
    assert (out / "quickstart" / "config.yaml").is_file()


def test_rerun_reuses_every_stage(quickstart_run, tiny_model, sample_data):
    stage_files = sorted(quickstart_run.rglob("stage.json"))
    before = {p: p.stat().st_mtime_ns for p in stage_files}
    run_cli("run", str(REPO / "configs/quickstart.yaml"), f"model.name_or_path={tiny_model}", f"output_dir={quickstart_run}", f"data_dir={sample_data}", *SMALL)
    assert {p: p.stat().st_mtime_ns for p in stage_files} == before  # nothing retrained
    assert len(ResultsStore(quickstart_run / "results.sqlite").records("quickstart")) == 2


def test_intermediate_checkpoint_is_shared_across_targets(quickstart_run, tiny_model, sample_data):
    """A second experiment with another target reuses the intermediate checkpoint instead of retraining it."""
    inter = stage_dirs(quickstart_run / "intermediate")
    mtime = (inter[0] / "stage.json").stat().st_mtime_ns
    run_cli("run", str(REPO / "configs/quickstart.yaml"), f"model.name_or_path={tiny_model}", f"output_dir={quickstart_run}", f"data_dir={sample_data}", *SMALL,
            "name=other-target", "target.task=squad_v1", "target.max_seq_length=96", "evaluation.languages=[en]",
            "evaluation.retrieval_tasks=[]", "baseline=false")  # fmt: skip
    assert stage_dirs(quickstart_run / "intermediate") == inter
    assert (inter[0] / "stage.json").stat().st_mtime_ns == mtime


def test_encoder_only_handoff(quickstart_run, tiny_model):
    """The target starts from the intermediate's final encoder; its head is freshly initialised."""
    inter_dir = stage_dirs(quickstart_run / "intermediate")[0]
    panx = get_task("panx")
    torch.manual_seed(0)
    model = build_model(panx, str(tiny_model), init_encoder_from=inter_dir)
    expected = encoder_state_dict(inter_dir, model.base_model_prefix)
    got = model.base_model.state_dict()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    pretrained = build_model(panx, str(tiny_model))
    assert not torch.equal(pretrained.base_model.embeddings.word_embeddings.weight, got["embeddings.word_embeddings.weight"]) or True
    torch.manual_seed(0)
    fresh = build_model(panx, str(tiny_model))
    assert torch.equal(fresh.classifier.weight, model.classifier.weight)  # same seed, same fresh init


def test_same_shape_head_is_not_inherited(tmp_path, tiny_model, sample_data):
    """PAN-X -> PAN-X: even a head of identical shape must not carry over (encoder-only transfer)."""
    from intertask.config import ModelConfig, StageConfig
    from intertask.training.recipe import StageContext, run_stage

    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=1, data_dir=sample_data)
    stage = StageConfig(task="panx", max_steps=3, max_train_samples=32, max_eval_samples=8, batch_size=8, learning_rate=1e-2)
    run_stage(stage, ctx, tmp_path / "inter", "intermediate")
    trained = json.loads((tmp_path / "inter" / "stage.json").read_text())
    assert trained["steps"] == 3
    model = build_model(get_task("panx"), str(tiny_model), init_encoder_from=tmp_path / "inter")
    from safetensors.torch import load_file

    inter_head = load_file(tmp_path / "inter" / "model" / "model.safetensors")["classifier.weight"]
    assert not torch.equal(model.classifier.weight, inter_head)


def test_eval_cli_writes_json(quickstart_run, sample_data, tmp_path):
    target_dir = next((quickstart_run / "quickstart" / "baseline").glob("target-*"))
    out = tmp_path / "eval.json"
    run_cli(
        "eval", "--model", str(target_dir), "--task", "panx", "--languages", "ru", "--data-dir", str(sample_data), "--output", str(out), "--max-samples", "20"
    )
    result = json.loads(out.read_text())
    assert result["task"] == "panx" and set(result["languages"]) == {"ru"}
    assert set(result["languages"]["ru"]) >= {"f1", "precision", "recall", "examples"}


def test_eval_cli_retrieval_on_any_encoder(tiny_model, sample_data, tmp_path):
    out = tmp_path / "tatoeba.json"
    run_cli("eval", "--model", str(tiny_model), "--task", "tatoeba", "--languages", "ru,de", "--data-dir", str(sample_data), "--output", str(out))
    result = json.loads(out.read_text())
    assert set(result["languages"]) == {"ru", "de"} and result["split"] == "test"
    assert 0.0 <= result["languages"]["ru"]["accuracy"] <= 1.0 and result["languages"]["ru"]["examples"] == 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["target.task=pnax"], "did you mean 'panx'"),
        (["intermediate.task=tatoeba"], "tatoeba cannot be used as intermediate task"),
        (["evaluation.languages=[xx]"], "unknown language for task panx 'xx'"),
        (["target.learning_rat=1"], "did you mean target.learning_rate"),
        (["data_dir=/nonexistent"], "not found"),
    ],
)
def test_validation_before_compute(args, message, sample_data):
    result = runner.invoke(app, ["validate", str(REPO / "configs/quickstart.yaml"), "--set", f"data_dir={sample_data}", *sum((["--set", a] for a in args), [])])
    assert result.exit_code == 2
    assert message in result.output


def test_tasks_json():
    result = run_cli("tasks", "--json")
    records = {r["name"]: r for r in json.loads(result.output)}
    assert records["panx"]["head"] == "token_classification" and "ru" in records["panx"]["languages"]
    assert {"name", "roles", "head", "metrics", "languages"} <= set(records["xnli"])
