"""The thread policy: CPU limits (affinity, cgroup v1/v2 quotas from fake files), overrides, idempotence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from intertask import threads
from intertask.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for key in ("INTERTASK_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    saved = dict(threads._state)
    threads.reset_for_tests()
    yield
    threads._state.clear()
    threads._state.update(saved)


def _v2(root: Path, levels: dict[str, str]) -> Path:
    (root / "cgroup.controllers").parent.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for rel, text in levels.items():
        d = root / rel if rel else root
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.max").write_text(text + "\n")
    return root


def test_cgroup_v2_quota_smallest_along_the_hierarchy(tmp_path):
    root = _v2(tmp_path, {"": "max 100000", "slurm": "400000 100000", "slurm/job_7": "150000 100000", "slurm/job_7/step_0": "max 100000"})
    assert threads.cgroup_quota(root, "0::/slurm/job_7/step_0\n") == pytest.approx(1.5)
    assert threads.cgroup_quota(root, "0::/slurm\n") == pytest.approx(4.0)


def test_cgroup_v2_unlimited_and_unmounted_path(tmp_path):
    root = _v2(tmp_path, {"": "max 100000"})
    assert threads.cgroup_quota(root, "0::/docker/abc\n") is None  # the path is not mounted here: the root is ours
    root2 = _v2(tmp_path / "c", {"": "250000 100000"})
    assert threads.cgroup_quota(root2, "0::/\n") == pytest.approx(2.5)


def test_cgroup_v2_garbage_is_ignored(tmp_path):
    root = _v2(tmp_path, {"": "max 100000", "a": "lots 100000", "a/b": ""})
    assert threads.cgroup_quota(root, "0::/a/b\n") is None
    assert threads.cgroup_quota(tmp_path / "missing", "garbage\n") is None


def test_cgroup_v1_cfs_quota(tmp_path):
    d = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("200000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    proc = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
    assert threads.cgroup_quota(tmp_path, proc) == pytest.approx(2.0)
    (d / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_quota(tmp_path, proc) is None


def test_usable_cpus_takes_affinity_and_rounds_the_quota_up(monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    root = _v2(tmp_path, {"": "250000 100000"})
    n, limits = threads.usable_cpus(root, "0::/\n")
    assert n == 3 and "affinity 8" in limits and "cgroup quota 2.5" in limits
    root = _v2(tmp_path / "x", {"": "50000 100000"})
    assert threads.usable_cpus(root, "0::/\n")[0] == 1  # half a CPU: still one thread
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 2)
    root = _v2(tmp_path / "y", {"": "max 100000"})
    assert threads.usable_cpus(root, "0::/\n")[0] == 2


def test_overrides_in_order(monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 4)
    root = _v2(tmp_path, {"": "max 100000"})
    assert threads.decide(None, root, "0::/").intra_op == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (threads.decide(None, root, "0::/").intra_op, threads.decide(None, root, "0::/").source) == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("INTERTASK_THREADS", "2")
    assert (threads.decide(None, root, "0::/").intra_op, threads.decide(None, root, "0::/").source) == (2, "INTERTASK_THREADS")
    p = threads.decide(5, root, "0::/")
    assert (p.intra_op, p.inter_op, p.source) == (5, 1, "--threads")


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_thread_counts_are_config_errors(monkeypatch, value):
    monkeypatch.setenv("INTERTASK_THREADS", value)
    with pytest.raises(ConfigError, match="INTERTASK_THREADS"):
        threads.decide()
    with pytest.raises(ConfigError, match="--threads"):
        threads.decide(0)


def test_prepare_environment_respects_the_user(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("KMP_BLOCKTIME", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    threads.prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and os.environ["KMP_BLOCKTIME"] == "0"
    assert "GOMP_SPINCOUNT" not in os.environ  # libgomp would take it over the user's ACTIVE


_SCRIPT = """
import os, sys
{before}
import intertask.threads as t
p = t.apply_thread_policy(3, announce=True)
t.apply_thread_policy(announce=True)  # idempotent: no second line, same decision
import torch
t.apply_thread_policy()
print(torch.get_num_threads(), torch.get_num_interop_threads(), os.environ["OMP_WAIT_POLICY"], os.environ["OMP_NUM_THREADS"], os.environ["GOMP_SPINCOUNT"])
"""


def _run(before: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "INTERTASK_THREADS", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")}
    return subprocess.run([sys.executable, "-c", _SCRIPT.format(before=before)], capture_output=True, text=True, env=env, timeout=120)


def test_applied_before_torch_in_a_fresh_process():
    out = _run("")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "1", "PASSIVE", "3", "1000"]
    lines = [line for line in out.stderr.splitlines() if line.startswith("threads:")]
    assert len(lines) == 1 and "3 intra-op (--threads" in lines[0] and "wait=PASSIVE, spin 1000" in lines[0]


def test_torch_imported_first_is_reported():
    out = _run("import torch")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["3", "1"]  # the counts still apply through torch.set_num_threads
    assert "wait=ACTIVE (torch loaded first)" in out.stderr


def test_cli_threads_option(monkeypatch):
    from typer.testing import CliRunner

    from intertask.cli.main import app

    torch = sys.modules.get("torch")
    saved = torch.get_num_threads() if torch else None
    try:
        result = CliRunner().invoke(app, ["--threads", "0", "tasks"])
        assert result.exit_code == 2
        monkeypatch.setenv("INTERTASK_THREADS", "nope")
        result = CliRunner().invoke(app, ["tasks"])
        assert result.exit_code == 2 and "INTERTASK_THREADS" in result.output
    finally:
        if torch and saved:
            torch.set_num_threads(saved)
