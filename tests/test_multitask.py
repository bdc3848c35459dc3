"""Multi-task intermediate training: samplers, the shared-encoder stage, hand-off, and the pipeline arm."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from intermediate_fixtures import write_intermediate_data
from safetensors.torch import load_file
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.config import ExperimentConfig, ModelConfig, SamplingConfig, StageConfig, from_dict
from intertask.data.samplers import MultiTaskBatches, task_probabilities
from intertask.errors import ConfigError
from intertask.models.loading import build_model, encoder_state_dict
from intertask.pipeline import validate_experiment
from intertask.tasks import get_task
from intertask.training.recipe import StageContext, run_stage

SIZES = {"a": 100, "b": 400, "c": 1600}


def endless(sampler):
    """(task, that task's row indices) batches, epoch after epoch."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from sampler.tagged()
        epoch += 1


@pytest.mark.parametrize(
    "sampling, expected",
    [
        (SamplingConfig(strategy="uniform"), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
        (SamplingConfig(strategy="proportional"), {"a": 100 / 2100, "b": 400 / 2100, "c": 1600 / 2100}),
        (SamplingConfig(strategy="temperature", temperature=2.0), {"a": 1 / 7, "b": 2 / 7, "c": 4 / 7}),  # sqrt: 10, 20, 40
        (SamplingConfig(strategy="temperature", temperature=1.0), {"a": 100 / 2100, "b": 400 / 2100, "c": 1600 / 2100}),
        (SamplingConfig(strategy="capped", cap=400), {"a": 1 / 9, "b": 4 / 9, "c": 4 / 9}),
    ],
)
def test_task_probabilities(sampling, expected):
    got = task_probabilities(SIZES, sampling)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("strategy", ["uniform", "proportional", "temperature", "capped"])
def test_sampler_proportions_match(strategy):
    sampling = SamplingConfig(strategy=strategy, temperature=3.0, cap=300)
    probs = task_probabilities(SIZES, sampling)
    sampler = MultiTaskBatches({t: [10] * n for t, n in SIZES.items()}, 4, probs, seed=0)
    draws = 20000
    it = endless(sampler)
    counts = Counter(next(it)[0] for _ in range(draws))
    for t, p in probs.items():
        assert counts[t] / draws == pytest.approx(p, abs=0.015), (t, counts)


def test_each_task_sees_every_example_once_per_epoch():
    sampler = MultiTaskBatches({"a": [5] * 10, "b": list(range(1, 8))}, 3, {"a": 0.5, "b": 0.5}, seed=1)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    it = endless(sampler)
    while len(seen["a"]) < 10 or len(seen["b"]) < 7:
        task, idx = next(it)
        seen[task] += idx
    assert sorted(seen["a"][:10]) == list(range(10)) and sorted(seen["b"][:7]) == list(range(7))


def test_sampling_errors():
    with pytest.raises(ConfigError, match="needs a positive cap"):
        task_probabilities(SIZES, SamplingConfig(strategy="capped"))
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        task_probabilities(SIZES, SamplingConfig(strategy="temperature", temperature=0.0))
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        from_dict(SamplingConfig, {"strategy": "temprature"})


def test_config_keys_and_validation():
    cfg = from_dict(ExperimentConfig, {"intermediate": {"tasks": ["mnli", "squad_v1", "hellaswag"], "sampling": {"strategy": "temperature", "temperature": 2.0}}, "target": {"task": "xnli"}})
    assert cfg.intermediate.task == "multitask" and cfg.intermediate.sampling.temperature == 2.0
    validate_experiment(cfg, check_data=False)
    for bad, message in [
        ({"tasks": ["mnli"]}, "at least two tasks"),
        ({"tasks": ["mnli", "tatoeba"]}, "tatoeba cannot be used as intermediate"),
        ({"tasks": ["mnli", "squad_v1"], "task": "mnli"}, "leave task empty"),
        ({"tasks": ["mnli", "squad_v1"], "sampling": {"strategy": "capped"}}, "positive cap"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate_experiment(from_dict(ExperimentConfig, {"intermediate": bad, "target": {"task": "xnli"}}), check_data=False)
    with pytest.raises(ConfigError, match="intermediate stage only"):
        validate_experiment(from_dict(ExperimentConfig, {"target": {"tasks": ["mnli", "squad_v1"]}}), check_data=False)


@pytest.fixture(scope="module")
def multitask_run(tiny_model, tmp_path_factory):
    data = write_intermediate_data(tmp_path_factory.mktemp("mt-data"))
    stage = StageConfig(tasks=["hellaswag", "squad_v2", "ccg", "qqp"], sampling=SamplingConfig(strategy="uniform"), max_steps=8,
                        eval_every_steps=4, batch_size=4, eval_batch_size=8, max_train_samples=12, max_eval_samples=6, max_seq_length=64, learning_rate=1e-3)  # fmt: skip
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=5, data_dir=data)
    out = tmp_path_factory.mktemp("mt") / "stage"
    return run_stage(stage, ctx, out, "intermediate"), out


def test_multitask_stage_writes_everything(multitask_run):
    summary, out = multitask_run
    assert summary["task"] == "multitask" and summary["steps"] == 8 and summary["tasks"] == ["hellaswag", "squad_v2", "ccg", "qqp"]
    assert [h["step"] for h in summary["history"]] == [4, 8]
    for h in summary["history"]:
        assert sum(h["task_batches"].values()) == 4 and set(h["task_losses"]) <= set(summary["tasks"])
        assert set(h["dev"]) == set(summary["tasks"])
    dm = summary["dev_metrics"]
    mains = [dm["hellaswag/accuracy"], dm["squad_v2/best_f1"], dm["ccg/accuracy"], dm["qqp/accuracy"]]
    assert dm["mean_main"] == pytest.approx(sum(mains) / 4)
    assert json.loads((out / "stage.json").read_text())["dev_metrics"] == dm
    assert summary["sampling"]["probabilities"] == pytest.approx({t: 0.25 for t in summary["tasks"]})
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["architectures"] == ["XLMRobertaModel"]  # the bare shared encoder
    heads = load_file(out / "heads" / "squad_v2.safetensors")
    assert "qa_outputs.weight" in heads and not any(k.startswith("roberta.") for k in heads)
    assert "<unk>" in json.loads((out / "heads" / "ccg.json").read_text())["labels"]


def test_multitask_encoder_hands_off_to_any_head(multitask_run, tiny_model):
    _, out = multitask_run
    expected = encoder_state_dict(out, "roberta")
    for target in ("panx", "xnli", "copa", "squad_v1"):
        model = build_model(get_task(target), str(tiny_model), init_encoder_from=out)
        got = model.base_model.state_dict()
        for key, value in expected.items():
            if key in got:
                assert torch.equal(got[key], value), (target, key)


def test_shared_encoder_is_one_module(tiny_model):
    from intertask.models.multitask import MultiTaskModel

    tasks = [get_task("qqp"), get_task("hellaswag"), get_task("squad_v2")]
    model = MultiTaskModel({t.name: build_model(t, str(tiny_model)) for t in tasks})
    encoders = {id(m.base_model) for m in model.models.values()}
    assert len(encoders) == 1 and model.encoder.pooler is not None  # the multiple-choice encoder (with pooler) is shared
    n_params = sum(p.numel() for p in model.parameters())
    n_encoder = sum(p.numel() for p in model.encoder.parameters())
    n_heads = sum(sum(v.numel() for v in model.head_state(t).values()) for t in model.models)
    assert n_params == n_encoder + n_heads


def test_multitask_arm_in_the_pipeline(tiny_model, sample_data, tmp_path):
    data = write_intermediate_data(tmp_path / "data")
    (data / "panx").symlink_to(sample_data / "panx")
    out = tmp_path / "runs"
    args = ["run", str(Path(__file__).resolve().parent.parent / "configs/quickstart.yaml"), f"model.name_or_path={tiny_model}", f"output_dir={out}", f"data_dir={data}",
            "intermediate.task=multitask", "intermediate.tasks=[qqp,hellaswag]", "intermediate.sampling.strategy=proportional", "intermediate.max_steps=4",
            "intermediate.max_train_samples=12", "intermediate.max_eval_samples=6", "intermediate.batch_size=4", "intermediate.max_seq_length=64",
            "target.max_steps=2", "target.max_train_samples=16", "target.max_eval_samples=8", "target.batch_size=8",
            "evaluation.max_eval_samples=8", "evaluation.retrieval_tasks=[]", "evaluation.languages=[ru]", "baseline=false"]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "quickstart" / "multitask" / "result.json").read_text())
    assert saved["intermediate"] == "multitask" and saved["task_versions"].keys() >= {"qqp", "hellaswag", "panx"}
    assert "mean_main" in saved["stages"]["intermediate"]["dev_metrics"]
    assert [d for d in (out / "intermediate").glob("multitask-*") if d.is_dir()]  # (lock files start with ".")
