"""Fault suite (issue 8): kill -9 at every phase and resume, full disk, signals, bad input, determinism.

Runs the real CLI on the tiny random model and the bundled sample data. Kills are injected with the
INTERTASK_FAULT hook (the process SIGKILLs itself at a named point, like a pre-empted job).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.errors import IntertaskError
from intertask.results.store import ResultsStore
from intertask.training import checkpoint as ckpt
from intertask.training.recipe import STAGE_FILE

pytestmark = pytest.mark.slow

CONFIG = """# fault-suite experiment (tests only). Command: intertask run CONFIG
name: faults
seed: 3
model: {{name_or_path: "{model}", max_seq_length: 64}}
data_dir: "{data}"
intermediate: {{task: panx, max_steps: 6, eval_every_steps: 3, checkpoint_every_steps: 2, batch_size: 8, max_train_samples: 96, max_eval_samples: 16, learning_rate: 1.0e-3}}
target: {{task: panx, max_steps: 6, eval_every_steps: 3, checkpoint_every_steps: 2, batch_size: 8, max_train_samples: 96, max_eval_samples: 16, learning_rate: 1.0e-3}}
evaluation: {{languages: [en, ru], max_eval_samples: 24, retrieval_tasks: [tatoeba], retrieval_languages: [ru]}}
"""


@pytest.fixture(scope="module")
def config(tiny_model, sample_data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "faults.yaml"
    path.write_text(CONFIG.format(model=tiny_model, data=sample_data))
    return path


def run_inprocess(config: Path, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["run", str(config), f"output_dir={out}", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return scores(out)


def run_subprocess(config: Path, out: Path, fault: str | None = None, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERTASK_PROGRESS": "0"}
    if fault:
        env["INTERTASK_FAULT"] = fault
    cmd = [sys.executable, "-m", "intertask.cli.main", "run", str(config), f"output_dir={out}", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def scores(out: Path) -> dict:
    return {r["arm"]: r["scores"] for r in ResultsStore(out / "results.sqlite").records("faults")}


def assert_same_scores(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for arm in a:
        for task in a[arm]:
            for lang, metrics in a[arm][task].items():
                for metric, value in metrics.items():
                    assert b[arm][task][lang][metric] == pytest.approx(value, abs=1e-6), (arm, task, lang, metric)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory) -> dict:
    return run_inprocess(config, tmp_path_factory.mktemp("reference"))


def test_same_seed_same_metrics(config, reference, tmp_path):
    assert_same_scores(reference, run_inprocess(config, tmp_path))


@pytest.mark.parametrize("fault", ["intermediate:step:3", "target:step:5", "eval:panx", "eval:tatoeba"])
def test_kill_minus_9_then_resume_gives_the_uninterrupted_result(fault, config, reference, tmp_path):
    killed = run_subprocess(config, tmp_path, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    completed = {p: p.stat().st_mtime_ns for p in tmp_path.rglob(STAGE_FILE)}
    if fault.startswith(("intermediate", "target")):
        assert list(tmp_path.rglob(ckpt.LATEST)), "a checkpoint was written before the kill"
    resumed = run_inprocess(config, tmp_path)
    assert_same_scores(reference, resumed)
    # No completed stage was trained again.
    assert {p: p.stat().st_mtime_ns for p in completed} == completed
    if fault.startswith("eval:tatoeba"):
        assert list(tmp_path.rglob("eval-*.json"))


def test_resume_starts_from_the_checkpoint_step(config, tmp_path):
    killed = run_subprocess(config, tmp_path, "intermediate:step:5")
    assert killed.returncode == -signal.SIGKILL
    stage_dir = next(p for p in (tmp_path / "intermediate").iterdir() if p.is_dir())
    state = ckpt.load_latest_checkpoint(stage_dir)
    assert state["progress"]["step"] == 4  # checkpoints every 2 steps: the kill at step 5 loses one step
    assert not (stage_dir / STAGE_FILE).exists()
    run_inprocess(config, tmp_path)
    summary = json.loads((stage_dir / STAGE_FILE).read_text())
    assert summary["steps"] == 6 and [h["step"] for h in summary["history"]] == [3, 6]
    assert not (stage_dir / ckpt.CHECKPOINTS).exists(), "checkpoints are removed once the stage is complete"


def test_sigterm_writes_a_checkpoint_and_exits_130(config, tmp_path):
    env = {**os.environ, "INTERTASK_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "intertask.cli.main", "run", str(config), f"output_dir={tmp_path}", "intermediate.max_steps=100000", "intermediate.checkpoint_every_steps=100000", "intermediate.eval_every_steps=100000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = threading.Event()
    lines: list[str] = []

    def watch() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "intermediate stage" in line:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(300), "".join(lines)
    time.sleep(3)  # let it take some steps
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 130, "".join(lines)
    stage_dir = next(p for p in (tmp_path / "intermediate").iterdir() if p.is_dir())
    state = ckpt.load_latest_checkpoint(stage_dir)
    assert state is not None and state["progress"]["step"] >= 1
    assert "re-run the same command to resume" in "".join(lines)


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path, 2, {"progress": {"step": 2}, "w": torch.ones(3)})
    real_save = torch.save

    def full_disk(obj, path, *a, **kw):
        Path(path).write_bytes(b"partial")  # some bytes land, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(IntertaskError, match="No space left on device.*previous checkpoint is kept"):
        ckpt.save_checkpoint(tmp_path, 4, {"progress": {"step": 4}, "w": torch.zeros(3)})
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    state = ckpt.load_latest_checkpoint(tmp_path)
    assert state["progress"]["step"] == 2 and torch.equal(state["w"], torch.ones(3))
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_bad_training_line_names_file_and_line(config, sample_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    train = data / "panx" / "train-en.tsv"
    lines = train.read_text(encoding="utf-8").split("\n")
    lines[4] = lines[4].replace("\t", " ")  # line 5: the tag column is gone
    train.write_text("\n".join(lines), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(config), f"output_dir={tmp_path / 'out'}", f"data_dir={data}"])
    assert result.exit_code == 2
    assert "train-en.tsv, line 5" in result.output

    # With on_bad_example=skip the run completes and reports what it skipped, never silently.
    run_inprocess(config, tmp_path / "out2", f"data_dir={data}", "intermediate.on_bad_example=skip", "target.on_bad_example=skip", "baseline=false", "intermediate.max_train_samples=null")
    summary = json.loads(next((tmp_path / "out2" / "intermediate").glob("*/stage.json")).read_text())
    assert summary["data"]["train"]["skipped"] == 1
    assert "line 5" in summary["data"]["train"]["first_skipped"][0]


def test_cuda_out_of_memory_message_names_the_batch(monkeypatch):
    from intertask.config import StageConfig
    from intertask.training.recipe import TrainingOutOfMemory, oom_guard

    batch = {"input_ids": torch.zeros(16, 256, dtype=torch.long)}
    with pytest.raises(TrainingOutOfMemory, match=r"batch_size=16 \(input shape \(16, 256\).*batch_size=8 gradient_accumulation_steps=2"):
        with oom_guard(batch, StageConfig(task="panx", batch_size=16)):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_auto_batch_backoff_keeps_the_effective_batch(tiny_model, sample_data, tmp_path, monkeypatch):
    """A (simulated) CUDA OOM on batches over 4 rows: the stage restarts at 4 x 2 accumulation and completes."""
    from transformers import XLMRobertaForTokenClassification

    from intertask.config import ModelConfig, StageConfig
    from intertask.training.recipe import StageContext, run_stage

    forward = XLMRobertaForTokenClassification.forward

    def small_memory(self, *args, **kwargs):
        if self.training and kwargs["input_ids"].shape[0] > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(XLMRobertaForTokenClassification, "forward", small_memory)
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=1, data_dir=sample_data)
    stage = StageConfig(task="panx", max_steps=3, max_train_samples=48, max_eval_samples=8, batch_size=8, auto_batch_backoff=True)
    summary = run_stage(stage, ctx, tmp_path / "stage", "target")
    assert summary["steps"] == 3
    assert (summary["config"]["batch_size"], summary["config"]["gradient_accumulation_steps"]) == (4, 2)


# ----------------------------------------------------------------------------- every stage kind (issue 13)

STAGE_SCRIPT = Path(__file__).resolve().parent / "stage_kinds.py"


def run_kind(kind: str, root: Path, stage_dir: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERTASK_PROGRESS": "0", "INTERTASK_FEATURE_CACHE": "off", "OMP_NUM_THREADS": "1"}
    env.pop("INTERTASK_FAULT", None)
    if fault:
        env["INTERTASK_FAULT"] = fault
    return subprocess.run([sys.executable, str(STAGE_SCRIPT), kind, str(root), str(stage_dir)], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def kinds_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kinds")
    sys.path.insert(0, str(STAGE_SCRIPT.parent))
    from stage_kinds import fixtures

    fixtures(root)
    return root


@pytest.mark.parametrize("kind", ["single", "multitask", "mlm", "captioning", "vqa"])
def test_every_stage_kind_resumes_bit_exactly_after_kill_minus_9(kind, kinds_root, tmp_path):
    from safetensors.torch import load_file

    reference = run_kind(kind, kinds_root, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = run_kind(kind, kinds_root, tmp_path / "resumed", fault="intermediate:step:5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state = ckpt.load_latest_checkpoint(tmp_path / "resumed")  # data only: torch.load(weights_only=True)
    assert state["progress"]["step"] == 4
    resumed = run_kind(kind, kinds_root, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 4" in resumed.stderr
    a, b = (json.loads((tmp_path / d / STAGE_FILE).read_text()) for d in ("reference", "resumed"))
    assert a["history"] == b["history"] and a["dev_metrics"] == b["dev_metrics"] and a["steps"] == b["steps"] == 6
    assert a["throughput"]["mean_loss"] == b["throughput"]["mean_loss"]
    weights = [load_file(tmp_path / d / "model" / "model.safetensors") for d in ("reference", "resumed")]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
