"""Several grid jobs side by side on one device (ExecutorConfig.jobs_per_device; issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from side_by_side_jobs import sleepy_job

from intertask.config import ExecutorConfig
from intertask.errors import ConfigError
from intertask.executors import DeviceMemoryError, Job, ProcessExecutor, make_executor, wait_for_device_memory


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}/{key}").items()}
    return {prefix: tree}


class SleepyExecutor(ProcessExecutor):
    job_function = staticmethod(sleepy_job)


def test_slots_round_robin_over_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    ex = ProcessExecutor(jobs_per_device=3)
    assert ex.workers == 6 and ex.slots == ["2", "5", "2", "5", "2", "5"]
    assert "GPUs 2,5, up to 3 jobs per GPU" in ex.describe()
    assert ProcessExecutor(workers=3, jobs_per_device=2).slots[:3] == ["2", "5", "2"]
    with pytest.raises(ConfigError, match="jobs_per_device=1; one worker per GPU slot"):
        ProcessExecutor(workers=3)
    with pytest.raises(ConfigError, match="jobs_per_device must be >= 1"):
        ProcessExecutor(jobs_per_device=0)
    ex = make_executor(ExecutorConfig(kind="processes", jobs_per_device=4, min_free_memory_gb=10.0), Path("out"))
    assert ex.workers == 8 and ex.memory_check == (10.0, 300.0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert ProcessExecutor(jobs_per_device=4).workers == 4 and ProcessExecutor().workers == 2


def test_wait_for_device_memory():
    readings = iter([(1.0, 80.0), (3.0, 80.0), (12.0, 80.0)])
    slept = []
    wait_for_device_memory(10.0, 60.0, probe=lambda: next(readings), sleep=slept.append)
    assert slept == [5.0, 5.0]  # waited until another job released memory
    wait_for_device_memory(10.0, 0.0, probe=lambda: None)  # no CUDA: nothing to check
    with pytest.raises(DeviceMemoryError, match=r"1\.5 GiB free of 80\.0 GiB .*min_free_memory_gb=10; .*Lower executor.jobs_per_device"):
        wait_for_device_memory(10.0, 10.0, probe=lambda: (1.5, 80.0), sleep=lambda s: None)


def test_jobs_run_side_by_side_and_match_serial(tmp_path):
    """4 jobs with jobs_per_device=4 on the CPU 'device': all four run at once (their intervals overlap), in four
    processes, and return what a one-at-a-time run returns."""
    jobs = [Job("run", f"j{i}", {"sleep": 1.5, "x": i, "log": str(tmp_path)}) for i in range(4)]
    ex = SleepyExecutor(jobs_per_device=4)
    assert ex.workers == 4
    started = []
    side_by_side = {job.label: result for job, result, error in ex.run(jobs, on_start=lambda j: started.append(j.label)) if error is None}
    logs = [json.loads((tmp_path / f"{j.label}.json").read_text()) for j in jobs]
    assert max(s for s, _, _, _ in logs) < min(e for _, e, _, _ in logs)  # every job was running at the same moment
    assert len({pid for _, _, pid, _ in logs}) == 4  # one process each
    serial = {job.label: result for job, result, error in SleepyExecutor(workers=1).run(jobs)}
    assert side_by_side == serial and sorted(started) == ["j0", "j1", "j2", "j3"]


@pytest.mark.slow
def test_grid_side_by_side_equals_serial(tiny_model, tmp_path):
    """Real grid runs (tiny model): two jobs side by side in the processes executor give the scores of the serial run."""
    from test_grid import grid_data

    from intertask.executors import LocalExecutor
    from intertask.grid import build_grid, run_grid
    from intertask.results.store import ResultsStore

    scores = {}
    for name, executor in (("serial", LocalExecutor()), ("side", ProcessExecutor(jobs_per_device=2))):
        data = grid_data(tiny_model, tmp_path / name)
        data["grid"] = {"intermediate": [None], "target": ["panx"], "seed": [1, 2]}
        outcome = run_grid(build_grid(data), executor=executor, show_progress=False)
        assert not outcome.failed and len(outcome.completed) == 2
        scores[name] = {r["run_id"].rsplit("/", 1)[0]: r["scores"] for r in ResultsStore(tmp_path / name / "results.sqlite").records()}
    assert scores["side"].keys() == scores["serial"].keys()
    for run, s in scores["serial"].items():
        assert _flat(scores["side"][run]) == pytest.approx(_flat(s), abs=1e-6)  # threads per process differ: float noise at most
