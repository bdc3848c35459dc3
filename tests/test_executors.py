"""Grid executors: local worker processes and submitit (its local backend), on a tiny model."""

from __future__ import annotations

import pytest
from test_grid import grid_data

from intertask.grid import build_grid, run_grid
from intertask.results.store import ResultsStore


@pytest.mark.slow
def test_process_and_submitit_executors(tiny_model, tmp_path):
    pytest.importorskip("submitit")
    from intertask.executors import ProcessExecutor, SubmititExecutor
    from intertask.grid import ExecutorConfig

    data = grid_data(tiny_model, tmp_path / "out")
    data["grid"] = {"intermediate": [None], "target": ["panx"], "seed": [1, 2]}
    g = build_grid(data)
    outcome = run_grid(g, executor=ProcessExecutor(workers=2), show_progress=False)
    assert not outcome.failed and len(outcome.completed) == 2
    assert ResultsStore(tmp_path / "out" / "results.sqlite").run_ids() == {r.run_id for r in g.runs}

    data["grid"]["seed"] = [3]
    g = build_grid(data)
    ex = SubmititExecutor(ExecutorConfig(kind="submitit", cluster="local", poll_seconds=0.5), tmp_path / "out")
    outcome = run_grid(g, executor=ex, show_progress=False)
    assert not outcome.failed, outcome.failed
    assert g.runs[0].run_id in ResultsStore(tmp_path / "out" / "results.sqlite").run_ids()


def test_submitit_slurm_parameters(tmp_path, monkeypatch):
    """The SLURM job script submitit would submit, without a cluster (a stub `srun` on PATH)."""
    pytest.importorskip("submitit")
    from intertask.executors import SubmititExecutor
    from intertask.grid import ExecutorConfig, SlurmConfig

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    slurm = SlurmConfig(
        partition="gpu", account="proj", gpus_per_node=1, cpus_per_task=6, mem_gb=40, timeout_min=90, max_parallel=4, setup=["module load cuda"]
    )
    ex = SubmititExecutor(ExecutorConfig(kind="submitit", cluster="slurm", slurm=slurm), tmp_path / "out")
    script = ex._executor()._executor._make_submission_file_text("python -m job", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=6",
                 "#SBATCH --mem=40GB", "#SBATCH --time=90", "module load cuda"):
        assert line in script, script
    assert str(tmp_path / "out" / "submitit") in script


def test_process_executor_pins_one_gpu_per_worker(monkeypatch):
    from intertask.errors import ConfigError
    from intertask.executors import ProcessExecutor, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    ex = ProcessExecutor()
    assert ex.workers == 2 and "GPUs 2,5" in ex.describe()
    with pytest.raises(ConfigError, match="one worker per GPU"):
        ProcessExecutor(workers=3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert ProcessExecutor().workers == 2 and "CPU" in ProcessExecutor().describe()
