"""Data-parallel training (issue 13): 2 CPU processes (gloo, through torchrun + accelerate) vs 1 process.

The sampler's batches are split across the processes, so the global batch stays ``batch_size``; the stage below has
only full batches (32 rows, batch 8) and no dropout, so both runs see the same rows in the same optimiser steps and
differ only by how the loss is averaged (the mean of the two half-batch means vs the batch mean over tokens) and by
summation order: the tolerances are stated below.
Only the main process writes stage files and checkpoints; a killed 2-process stage resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from intertask.cli.main import launch_command

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parent / "stage_kinds.py"
ARGS = ["max_train_samples=32", "dropout=0"]
LOSS_TOLERANCE = 0.05  # absolute, on the dev-point training losses (cross-entropy ~1.8)
MEAN_LOSS_TOLERANCE = 0.02  # absolute, on the mean training loss of the stage
WEIGHT_TOLERANCE = 2e-2  # relative L2 distance of the trained weights (Adam's sign-like first steps amplify tiny gradient differences)


def _run(root: Path, out: Path, processes: int, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERTASK_PROGRESS": "0", "INTERTASK_FEATURE_CACHE": "off", "OMP_NUM_THREADS": "1"}
    env.pop("INTERTASK_FAULT", None)
    if fault:
        env["INTERTASK_FAULT"] = fault
    args = [str(SCRIPT), "single", str(root), str(out), *ARGS]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else [sys.executable]
    return subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp")
    one, two = root / "one", root / "two"
    for out, n in ((one, 1), (two, 2)):
        result = _run(root / "fixtures", out, n)
        assert result.returncode == 0, result.stderr[-3000:]
    return root, one, two


def test_two_processes_match_one_within_tolerance(runs):
    _, one, two = runs
    a, b = (json.loads((d / "stage.json").read_text()) for d in (one, two))
    assert (a["processes"], b["processes"]) == (1, 2)
    assert a["steps"] == b["steps"] == 6 and a["config"]["batch_size"] == b["config"]["batch_size"] == 8
    assert a["throughput"]["tokens"] == b["throughput"]["tokens"]  # the same rows were trained on
    for x, y in zip(a["history"], b["history"]):
        assert x["step"] == y["step"] and abs(x["loss"] - y["loss"]) < LOSS_TOLERANCE, (x, y)
    assert abs(a["throughput"]["mean_loss"] - b["throughput"]["mean_loss"]) < MEAN_LOSS_TOLERANCE
    wa, wb = (load_file(d / "model" / "model.safetensors") for d in (one, two))
    distance = sum(((wa[k] - wb[k]) ** 2).sum() for k in wa).sqrt() / sum((wa[k] ** 2).sum() for k in wa).sqrt()
    assert distance.item() < WEIGHT_TOLERANCE, distance.item()


def test_only_the_main_process_writes(runs):
    _, _, two = runs
    assert sorted(p.name for p in two.iterdir()) == ["model", "stage.json"]


def test_two_processes_resume_after_kill(runs):
    root, _, two = runs
    out = root / "resumed"
    killed = _run(root / "fixtures", out, 2, fault="intermediate:step:5")
    assert killed.returncode != 0
    assert (out / "checkpoints" / "LATEST").is_file() and not (out / "stage.json").exists()
    resumed = _run(root / "fixtures", out, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 4" in resumed.stderr
    a, b = (json.loads((d / "stage.json").read_text()) for d in (two, out))
    assert b["steps"] == 6 and [h["step"] for h in b["history"]] == [h["step"] for h in a["history"]]
    for x, y in zip(a["history"], b["history"]):
        assert abs(x["loss"] - y["loss"]) < LOSS_TOLERANCE


def test_processes_option_relaunches_through_torchrun():
    cmd = launch_command(2, ["configs/quickstart.yaml", "target.max_steps=2"])
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    assert cmd[6:] == ["intertask.cli.main", "run", "configs/quickstart.yaml", "target.max_steps=2"]
    assert torch.distributed.is_available()
    assert signal.SIGKILL  # (the kill above is the fault hook's SIGKILL in each process)
