"""Experiment grids: schema validation, expansion, locking, executors, and kill -> resume end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from intertask.errors import ConfigError
from intertask.grid import Job, build_grid, load_grid, plan, run_grid, stage_lock
from intertask.results.store import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def tiny(tiny_model) -> Path:  # the session-wide tiny XLM-R of conftest.py
    return tiny_model


def grid_data(model: Path | str, out: Path, **extra) -> dict:
    data = {
        "name": "tg",
        "seed": 1,
        "data_dir": str(SAMPLE),
        "output_dir": str(out),
        "model": {"name_or_path": str(model), "max_seq_length": 64},
        "intermediate": {"task": "squad_v1", "max_steps": 1, "max_train_samples": 8, "max_eval_samples": 4, "batch_size": 8},
        "target": {"task": "panx", "max_steps": 1, "max_train_samples": 8, "max_eval_samples": 4, "batch_size": 8},
        "evaluation": {"max_eval_samples": 4},
        "grid": {"intermediate": ["squad_v1", "panx", None], "target": ["panx", "squad_v1"], "seed": [1, 2]},
        "per_task": {"squad_v1": {"max_seq_length": 128, "doc_stride": 32}},
    }
    data.update(extra)
    return data


# ----------------------------------------------------------------------------- schema and expansion


def test_expansion_shares_intermediates_and_applies_per_task(tmp_path):
    g = build_grid(grid_data("m", tmp_path), check_data=False)
    assert len(g.runs) == 12  # (2 intermediates + baseline) x 2 targets x 2 seeds
    assert len({r.run_id for r in g.runs}) == 12
    assert sorted({r.arm for r in g.runs}) == ["baseline", "panx", "squad_v1"]
    base = [r for r in g.runs if r.arm == "baseline"]
    assert all(r.cfg.intermediate is None and r.cfg.baseline for r in base)
    inter = [r for r in g.runs if r.arm != "baseline"]
    assert all(not r.cfg.baseline for r in inter)
    squad_target = next(r for r in g.runs if r.cfg.target.task == "squad_v1")
    assert squad_target.cfg.target.max_seq_length == 128 and squad_target.cfg.target.doc_stride == 32
    panx_target = next(r for r in g.runs if r.cfg.target.task == "panx")
    assert panx_target.cfg.target.max_seq_length is None
    # Same intermediate task and seed -> the same checkpoint directory, whatever the target.
    from intertask.pipeline import intermediate_dir

    dirs = {(r.cfg.intermediate.task, r.cfg.seed): set() for r in inter}
    for r in inter:
        dirs[(r.cfg.intermediate.task, r.cfg.seed)].add(intermediate_dir(r.cfg))
    assert all(len(v) == 1 for v in dirs.values()) and len(dirs) == 4
    inter_jobs, run_jobs, done = plan(g)
    assert len(inter_jobs) == 4 and len(run_jobs) == 12 and not done
    # Expansion is deterministic: the same preset gives the same run ids (what resuming relies on).
    assert [r.run_id for r in build_grid(grid_data("m", tmp_path), check_data=False).runs] == [r.run_id for r in g.runs]


def test_hyperparameter_axis_and_baseline_added_from_base(tmp_path):
    data = grid_data("m", tmp_path, baseline=True)
    data["grid"] = {"intermediate": ["squad_v1"], "target.learning_rate": [2e-5, 3e-5]}
    g = build_grid(data, check_data=False)
    assert len(g.runs) == 4  # squad_v1 + baseline (added because baseline: true) x 2 learning rates
    assert {r.cfg.target.learning_rate for r in g.runs} == {2e-5, 3e-5}
    assert any("learning_rate=3e-05" in r.cfg.name for r in g.runs)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grid": {"intermedate": ["panx"]}}, "did you mean intermediate"),
        ({"grid": {"target.learning_rat": [1e-5]}}, "did you mean target.learning_rate"),
        ({"grid": {"seed": []}}, "non-empty list"),
        ({"grid": {"seed": 3}}, "non-empty list"),
        ({"grid": {"target": ["panx", None]}}, "null is only allowed"),
        ({"grid": {"target.learning_rate": ["fast"]}}, "target.learning_rate: expected a number"),
        ({"grid": {"target": ["panxx"]}}, "did you mean 'panx'"),
        ({"grid": {"intermediate": ["xnli"]}}, "cannot be used as intermediate"),
        ({"executor": {"knd": "local"}}, "did you mean executor.kind"),
        ({"executor": {"kind": "ray"}}, "expected one of"),
        ({"per_task": {"squad": {"doc_stride": 8}}}, "unknown task 'squad'"),
        ({"per_task": {"squad_v1": {"doc_strid": 8}}}, "did you mean per_task.squad_v1.doc_stride"),
        ({"grid": {"seed": [1, 1]}}, "duplicate"),
    ],
)
def test_grid_schema_errors(tmp_path, change, message):
    data = grid_data("m", tmp_path)
    data.update(change)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        build_grid(data, check_data=False)


def test_missing_data_fails_before_running(tmp_path):
    data = grid_data("m", tmp_path, data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="grid point tg/"):
        build_grid(data, check_data=True)


def test_load_grid_with_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(grid_data("m", tmp_path)))
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"target": ["panx"], "seed": [1]}}))
    g = load_grid(tmp_path / "g.yaml", ["grid.seed=[3,4]", "target.max_steps=5"], check_data=False)
    assert len(g.runs) == 6 and {r.cfg.seed for r in g.runs} == {3, 4}
    assert all(r.cfg.target.max_steps == 5 for r in g.runs)
    assert "grid.seed=[3,4]" in g.command


def test_example_preset_validates():
    g = load_grid(ROOT / "configs" / "grid_example.yaml", check_data=True)
    assert len(g.runs) == 12


def test_stage_lock_excludes_a_second_worker(tmp_path):
    stage = tmp_path / "intermediate" / "squad_v1-abc"
    held, release = threading.Event(), threading.Event()

    def holder():
        with stage_lock(stage):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with pytest.raises(TimeoutError, match="locked by another worker"):
        with stage_lock(stage, timeout=0.3):
            pass
    release.set()
    t.join()
    with stage_lock(stage, timeout=1):
        pass
    assert (tmp_path / "intermediate" / ".squad_v1-abc.lock").is_file()


# ----------------------------------------------------------------------------- end to end


def _stage_mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}


@pytest.mark.slow
def test_grid_kill_and_resume_runs_every_point_once(tiny, tmp_path):
    out = tmp_path / "out"
    preset = tmp_path / "grid.yaml"
    preset.write_text(yaml.safe_dump(grid_data(tiny, out)))
    env = {**os.environ, "INTERTASK_PROGRESS": "0"}
    cmd = [sys.executable, "-c", "from intertask.cli.main import app; app()", "grid", str(preset)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    store_file = out / "results.sqlite"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if store_file.is_file() and ResultsStore(store_file).run_ids():
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    before = ResultsStore(store_file).run_ids()
    assert 1 <= len(before) < 12
    mtimes = _stage_mtimes(out)
    records_before = {r["run_id"]: r["created"] for r in ResultsStore(store_file).records()}

    g = load_grid(preset)
    outcome = run_grid(g, show_progress=False)
    assert not outcome.failed, outcome.failed
    assert outcome.skipped == len(before)
    ran = [rid for c in outcome.completed if c["kind"] == "run" for rid in c["run_ids"]]
    assert sorted(ran) == sorted({r.run_id for r in g.runs} - before)  # nothing repeated, nothing lost
    store = ResultsStore(store_file)
    assert store.run_ids() == {r.run_id for r in g.runs}
    assert len(store.records()) == 12
    assert {r["run_id"]: r["created"] for r in store.records() if r["run_id"] in before} == records_before
    for path, mtime in mtimes.items():  # completed stages were reused, not retrained
        assert path.stat().st_mtime_ns == mtime, path
    assert len(list((out / "intermediate").glob("*/stage.json"))) == 4  # 2 tasks x 2 seeds, shared by both targets
    # A third invocation has nothing left to do.
    again = run_grid(load_grid(preset), show_progress=False)
    assert again.skipped == 12 and not again.completed and not again.failed
    assert (out / "grids" / "tg.json").is_file()

    # The report over the real grid: table, heatmaps, delta chart, HTML.
    from intertask.results.report import write_report

    paths = write_report(store_file, tmp_path / "report", n_boot=200)
    names = {p.name for p in paths}
    assert {"report.md", "report.html", "deltas.png"} <= names
    assert any(n.startswith("heatmap-panx") for n in names)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "squad_v1" in md and "baseline" in md and "±" in md


def test_failed_job_is_reported_not_raised(tmp_path):
    from intertask.executors import LocalExecutor

    bad = Job("run", "broken", {"name": "x", "target": {"task": "panx"}, "data_dir": str(tmp_path / "none")})
    [(job, result, error)] = list(LocalExecutor().run([bad]))
    assert job is bad and result is None and "data" in error


def test_grid_command_dry_run_and_errors(tmp_path):
    from typer.testing import CliRunner

    from intertask.cli.main import app

    preset = tmp_path / "grid.yaml"
    preset.write_text(yaml.safe_dump(grid_data("unused-model", tmp_path / "out")))
    runner = CliRunner()
    res = runner.invoke(app, ["grid", str(preset), "--dry-run", "grid.seed=[7]"])
    assert res.exit_code == 0, res.output
    assert "0 done, 6 to run, 2 intermediate checkpoints to train" in res.output
    assert "todo  tg/panx/squad_v1/seed7" in res.output
    res = runner.invoke(app, ["grid", str(preset), "--dry-run", "grid.sed=[7]"])
    assert res.exit_code == 2 and "did you mean seed" in res.output
