"""Learning curves: TensorBoard event files per stage through accelerate's trackers, and a missing package."""

from __future__ import annotations

import json
import sys

import pytest

from intertask.config import (
    ExperimentConfig,
    LoggingConfig,
    ModelConfig,
    StageConfig,
    config_hash,
    from_dict,
    identity_dict,
)
from intertask.errors import ConfigError
from intertask.training import tracking
from intertask.training.recipe import StageContext, run_stage


def _stage() -> StageConfig:
    return StageConfig(
        task="panx",
        max_steps=6,
        eval_every_steps=3,
        max_train_samples=48,
        max_eval_samples=8,
        batch_size=8,
        gradient_accumulation_steps=2,
        learning_rate=1e-3,
    )


def test_tensorboard_event_files_have_the_curves(tmp_path, tiny_model, sample_data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ctx = StageContext(
        model=ModelConfig(name_or_path=str(tiny_model)),
        seed=1,
        data_dir=sample_data,
        logging=LoggingConfig(tensorboard=True, every_steps=2),
    )
    summary = run_stage(_stage(), ctx, tmp_path / "stage", "target")
    run_dir = tmp_path / "stage" / tracking.TENSORBOARD_DIR / "intertask"
    assert list(run_dir.glob("events.out.tfevents.*")), list(tmp_path.rglob("*"))
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {
        "train/loss",
        "train/learning_rate",
        "train/grad_norm",
        "train/tokens_per_second",
        "train/examples_per_second",
        "dev/f1",
    }
    assert expected <= tags, tags
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6]  # every_steps=2 optimiser steps
    assert [e.step for e in acc.Scalars("dev/f1")] == [3, 6]  # every dev evaluation
    dev = {e.step: e.value for e in acc.Scalars("dev/f1")}
    assert dev == {
        h["step"]: pytest.approx(h["f1"], abs=1e-6) for h in summary["history"]
    }  # the same numbers as stage.json
    lrs = [e.value for e in acc.Scalars("train/learning_rate")]
    assert lrs[0] > lrs[-1] >= 0  # linear decay
    assert all(e.value > 0 for e in acc.Scalars("train/grad_norm")) and all(
        e.value > 0 for e in acc.Scalars("train/tokens_per_second")
    )


def test_missing_package_means_a_message_and_training_goes_on(tmp_path, tiny_model, sample_data, monkeypatch, capsys):
    for name in ("tensorboard", "tensorboardX", "wandb"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.setattr(tracking, "_warned", set())
    ctx = StageContext(
        model=ModelConfig(name_or_path=str(tiny_model)),
        seed=1,
        data_dir=sample_data,
        logging=LoggingConfig(tensorboard=True, wandb=True),
    )
    summary = run_stage(_stage(), ctx, tmp_path / "stage", "target")
    assert summary["steps"] == 6 and (tmp_path / "stage" / "stage.json").is_file()
    assert not (tmp_path / "stage" / tracking.TENSORBOARD_DIR).exists()
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert "logging.tensorboard: the tensorboard package is not installed" in text and "training goes on" in text
    assert "logging.wandb: the wandb package is not installed" in text


def test_logging_is_not_part_of_a_runs_identity():
    plain = from_dict(ExperimentConfig, {"target": {"task": "panx"}})
    logged = from_dict(
        ExperimentConfig, {"target": {"task": "panx"}, "logging": {"tensorboard": True, "every_steps": 5}}
    )
    assert config_hash(identity_dict(plain)) == config_hash(identity_dict(logged))
    with pytest.raises(ConfigError, match="logging.tensorbord"):
        from_dict(ExperimentConfig, {"logging": {"tensorbord": True}})
    with pytest.raises(ConfigError, match="every_steps"):
        tracking.StageTracker(LoggingConfig(every_steps=0))


def test_off_tracker_is_a_no_op():
    t = tracking.StageTracker(None)
    assert not t.active and t.accelerator_kwargs("x") == {}
    t.start(None, "x")
    t.batch(None, {})  # type: ignore[arg-type]
    t.step(1, 0.1, None)
    t.evaluation(1, {"f1": 0.5})
    t.close()
    assert json.dumps(tracking._scalars({"a": {"b": 1, "c": None, "d": [1]}})) == '{"a.b": 1, "a.d": "[1]"}'
