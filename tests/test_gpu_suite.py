"""benchmarks/gpu_suite.py (issue 14): the CPU smoke run of the whole suite, and its helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_suite

    return gpu_suite


def test_rotations_and_defaults(suite):
    order = suite.rotations(["a", "b", "c"], 3)
    assert [s for _, s in order] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    args = suite.parse_args([])
    assert args.sizes == ["base", "large"] and args.batch_size == 32 and args.seq_len == 256 and args.study_jobs == [1, 2, 4, 8]
    assert args.precision == "bf16" and args.device == "cuda"
    tiny = suite.parse_args(["--device", "cpu", "--tiny"])
    assert tiny.sizes == ["tiny"] and tiny.precision == "fp32" and tiny.study_jobs == [1, 2]
    peaks = dict(suite.PEAK_BF16_TFLOPS)
    assert peaks["H100"] == peaks["H200"] == 989.0 and peaks["A100"] == 312.0
    name = "NVIDIA H100 PCIe"
    assert next(p for k, p in suite.PEAK_BF16_TFLOPS if k in name) == 756.0


@pytest.mark.slow  # ~1-2 min on the 2 shared development cores (worker processes import torch)
def test_cpu_smoke_run_writes_every_figure(tmp_path):
    out = tmp_path / "suite.json"
    env = dict(os.environ, INTERTASK_FEATURE_CACHE=str(tmp_path / "features"))
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_suite.py"), "--device", "cpu", "--tiny", "--json", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {"info", "command", "args", "train", "eval", "mfu", "study", "seconds"} <= result.keys()
    assert result["info"]["torch"] and result["info"]["transformers"]
    systems = {(r["task"], r["system"]) for r in result["train"]}
    assert systems == {(t, s) for t in ("panx", "xnli") for s in ("ours", "ours+switches", "trainer")}
    assert all(r["tokens_per_s"] > 0 and r["vs_trainer"] > 0 for r in result["train"])
    assert result["eval"]["ours"]["accuracy"] == pytest.approx(result["eval"]["trainer.predict"]["accuracy"])
    assert result["mfu"][0]["tokens_per_s"] > 0
    assert [r["jobs"] for r in result["study"]] == [1, 2] and result["study"][0]["vs_one_job"] == 1.0
    assert "# GPU suite:" in proc.stdout and "arms_per_hour" in proc.stdout
    assert not (tmp_path / "work" / "study").exists()  # scratch stage directories are removed
