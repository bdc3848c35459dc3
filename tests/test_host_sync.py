"""Issue 14 item 2: the step loop never waits on the host (no per-step .item() / .cpu() / .tolist()).

Counts the calls of Tensor.item / .cpu / .tolist from the first training micro-batch up to the first dev evaluation
of a tiny single-task stage; losses and token counts are read at evaluation / checkpoint points only.
"""

from __future__ import annotations

import torch

from intertask.config import ModelConfig, StageConfig
from intertask.training.objectives.single import SingleTask
from intertask.training.recipe import StageContext, run_stage

STEPS = 8


def test_no_host_synchronisation_per_step(tiny_model, sample_data, tmp_path, monkeypatch):
    state = {"training": False, "calls": []}
    for name in ("item", "cpu", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            if state["training"]:
                state["calls"].append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    loss, evaluate = SingleTask.loss, SingleTask.evaluate

    def training_loss(self, model, batch):
        state["training"] = True
        return loss(self, model, batch)

    def evaluation(self, model, device):
        state["training"] = False
        return evaluate(self, model, device)

    monkeypatch.setattr(SingleTask, "loss", training_loss)
    monkeypatch.setattr(SingleTask, "evaluate", evaluation)
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model), max_seq_length=64), seed=1, data_dir=sample_data)
    stage = StageConfig(
        task="panx", max_steps=STEPS, eval_every_steps=STEPS, checkpoint_every_steps=STEPS, batch_size=4, max_train_samples=48, max_eval_samples=8
    )
    summary = run_stage(stage, ctx, tmp_path / "stage", "target")
    assert summary["steps"] == STEPS
    assert len(state["calls"]) < STEPS, f"{len(state['calls'])} host reads in {STEPS} steps: {state['calls'][:10]}"
    assert state["calls"] == [], state["calls"]  # none at all before the first evaluation
