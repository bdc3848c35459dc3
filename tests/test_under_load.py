"""benchmarks/under_load.py: the table and its fair-share arithmetic (fast), and the --quick run end to end (slow)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "under_load.py"


def _module():
    spec = importlib.util.spec_from_file_location("under_load", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(k, mode, embed, train):
    return {"K": k, "mode": mode, "load": 0.5, "embed": [embed, embed], "train": [train, train]}


def test_table_fair_share_and_target(capsys):
    mod = _module()
    rows = [
        _row(0, "old", 10, 10), _row(0, "new", 10, 10),
        _row(1, "old", 40, 40), _row(1, "new", 15, 15),
        _row(2, "old", 150, 150), _row(2, "new", 30, 30),
        {"K": 4, "mode": "old", "load": 4.0, "timeout": True}, _row(4, "new", 40, 40),
    ]  # fmt: skip
    mod.print_table(rows, [0, 1, 2, 4], cores=2, work=2, timeout=240)
    out = capsys.readouterr().out
    lines = {tuple(line.split()[:3]): line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"], ["4"])}
    assert lines[("1", "1.50", "new")][-3:] == ["1.50x", "1.00", "0.38"]  # slowdown 30/20, / fair 1.5, new/old 30/80
    assert lines[("2", "2.00", "new")][-3:] == ["3.00x", "1.50", "0.20"]
    assert lines[("4", "3.00", "new")][-3:-1] == ["4.00x", "1.33"]
    assert "> 240" in " ".join(lines[("4", "3.00", "old")])
    assert "max(1, (K + w) / c)" in out and "target (new slowdown <= 1.5 x fair share for every K): met" in out
    rows[3] = _row(1, "new", 40, 40)  # 4x at K=1: 2.67 x fair
    mod.print_table(rows, [0, 1, 2, 4], cores=2, work=2, timeout=240)
    assert "NOT met" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_run():
    env = dict(os.environ, PYTHONPATH=str(SCRIPT.parent.parent))
    out = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "model tiny" in out.stdout and "fair-share slowdown" in out.stdout
    table = [line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert {(r[0], r[2]) for r in table} == {("0", "old"), ("0", "new"), ("1", "old"), ("1", "new")}
