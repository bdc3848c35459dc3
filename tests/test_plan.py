"""`intertask plan`: stages (shared, done), examples and steps per stage, device hours; the full-study preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.errors import ConfigError
from intertask.grid import build_grid
from intertask.planning import (
    Throughput,
    gpu_throughput,
    load_plan_grid,
    make_plan,
    measure_throughput,
    model_size,
    plan_summary,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
runner = CliRunner()


def small_grid(model: Path, out: Path) -> dict:
    return {
        "name": "pg",
        "seed": 1,
        "data_dir": str(SAMPLE),
        "output_dir": str(out),
        "model": {"name_or_path": str(model), "max_seq_length": 64},
        "intermediate": {
            "task": "squad_v1",
            "max_steps": 1,
            "max_train_samples": 8,
            "max_eval_samples": 4,
            "batch_size": 8,
        },
        "target": {"task": "panx", "max_steps": 1, "max_train_samples": 8, "max_eval_samples": 4, "batch_size": 8},
        "evaluation": {"max_eval_samples": 4},
        "grid": {"intermediate": ["squad_v1", None], "target": ["panx", "squad_v1"]},
        "per_task": {"squad_v1": {"max_seq_length": 128, "doc_stride": 32}},
    }


# panx: 14 tokens per example (below the 64 cap); squad_v1: capped at its 128; one optimiser step of 8 examples each.
TOKENS = {"panx": 1 * 8 * 14, "squad_v1": 1 * 8 * 128}


def test_plan_counts_shared_and_done_stages_and_hours(tiny_model, tmp_path):
    g = build_grid(small_grid(tiny_model, tmp_path), check_data=True)
    p = make_plan(g, Throughput(1000.0, "given"))
    s = plan_summary(p)
    assert (s["runs"], s["runs_done"], s["stages"], s["stages_done"]) == (
        4,
        0,
        5,
        0,
    )  # 2 arms x 2 targets; 1 + 4 stages
    assert (s["intermediate_stages"], s["shared_stages"], s["runs_fed_by_shared_stages"]) == (
        1,
        1,
        2,
    )  # squad_v1 feeds both targets
    inter = next(st for st in p.stages if st.role == "intermediate")
    assert inter.task == "squad_v1" and len(inter.runs) == 2 and inter.shared
    for st in p.stages:
        assert (st.examples, st.examples_source, st.steps, st.examples_per_step) == (
            8,
            "local files",
            1,
            8,
        )  # max_train_samples of the sample files
    expected_tokens = 3 * TOKENS["squad_v1"] + 2 * TOKENS["panx"]  # intermediate + 2 squad_v1 targets + 2 panx targets
    assert sum(st.tokens for st in p.stages) == expected_tokens
    assert s["device_hours_todo"] == pytest.approx(expected_tokens / 1000.0 / 3600)

    # Run one arm (squad_v1 -> panx): its intermediate and target stages and its run are then done, under the
    # directories the plan named (the plan and the pipeline name stages by the same content hashes).
    from intertask.pipeline import run_experiment

    arm = next(r for r in g.runs if r.arm == "squad_v1" and r.cfg.target.task == "panx")
    run_experiment(arm.cfg)
    p2 = make_plan(g, Throughput(1000.0, "given"))
    s2 = plan_summary(p2)
    assert (s2["runs_done"], s2["stages_done"]) == (1, 2)
    done = {(st.role, st.task) for st in p2.stages if st.done}
    assert done == {("intermediate", "squad_v1"), ("target", "panx")}
    assert all((st.directory / "stage.json").is_file() for st in p2.stages if st.done)
    assert s2["device_hours_todo"] == pytest.approx((2 * TOKENS["squad_v1"] + TOKENS["panx"]) / 1000.0 / 3600)
    assert s2["device_hours_total"] == pytest.approx(s["device_hours_total"])


def test_plan_command(tiny_model, tmp_path):
    preset = tmp_path / "grid.yaml"
    preset.write_text(
        "# test grid: intertask plan grid.yaml\n" + yaml.safe_dump(small_grid(tiny_model, tmp_path / "runs"))
    )
    res = runner.invoke(app, ["plan", str(preset), "--tokens-per-second", "1000", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["summary"]["stages"] == 5 and out["summary"]["shared_stages"] == 1
    assert out["summary"]["device_hours_todo"] == pytest.approx(
        (3 * TOKENS["squad_v1"] + 2 * TOKENS["panx"]) / 1000.0 / 3600
    )
    assert len(out["stages"]) == 5 and {r["status"] for r in out["stages"]} == {"todo"}
    res = runner.invoke(app, ["plan", str(preset), "--tokens-per-second", "1000", "target.max_steps=2"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert (
        "4 runs (0 done); 5 stages (0 done): 1 intermediate, 1 shared by 2 runs" in text
        and "estimated device hours still to run" in text
    )
    res = runner.invoke(app, ["plan", str(preset)])
    assert res.exit_code == 0 and "give a throughput" in res.output
    res = runner.invoke(app, ["plan", str(preset), "--gpu", "tpu9"])
    assert res.exit_code == 2 and "no figures for this device" in res.output
    res = runner.invoke(app, ["plan", str(preset), "--gpu", "h200", "--tokens-per-second", "5"])
    assert res.exit_code == 2 and "one of" in res.output


def test_full_study_preset_plans_offline_in_seconds():
    import time

    start = time.perf_counter()
    g = load_plan_grid(ROOT / "configs" / "paper" / "full_study.yaml")
    p = make_plan(g, gpu_throughput("h200", g.runs[0].cfg.model.name_or_path))
    s = plan_summary(p)
    assert time.perf_counter() - start < 60  # loads no model and no hub data (a few seconds on a quiet machine)
    # (9 intermediates + multi-task + baseline) x 7 targets x 3 seeds; 10 intermediate settings x 3 seeds, each shared by 7
    assert (
        s["runs"] == 231
        and s["intermediate_stages"] == 30
        and s["shared_stages"] == 30
        and s["runs_fed_by_shared_stages"] == 210
    )
    assert s["stages"] == 261 and s["device_hours_todo"] is not None and s["device_hours_todo"] > 50
    cfg = g.runs[0].cfg
    assert cfg.model.name_or_path == "xlm-roberta-large" and cfg.data_source == "hub"
    multi = [r for r in g.runs if r.arm == "multitask"]
    assert len(multi) == 21 and len(multi[0].cfg.intermediate.tasks) == 9
    assert {r.cfg.target.task for r in g.runs} == {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa"}
    assert cfg.evaluation.retrieval_tasks == ["bucc", "tatoeba"]


def test_throughput_sources(tiny_model, tmp_path):
    assert (
        model_size("xlm-roberta-large") == "large"
        and model_size("default") == "small"
        and model_size("/x/tiny") is None
    )
    assert gpu_throughput("H200", "xlm-roberta-large").tokens_per_second == 7530
    assert "estimate" in gpu_throughput("h100", "xlm-roberta-base").source
    with pytest.raises(ConfigError, match="--model-size"):
        gpu_throughput("h200", "/x/tiny")
    g = build_grid(small_grid(tiny_model, tmp_path), check_data=False)
    t = measure_throughput(g.runs[0].cfg, seconds=0.2)
    assert t.tokens_per_second > 0 and "measured here" in t.source


def test_hub_mode_reads_tasks_without_a_hub_copy_from_local_files():
    """data_source=hub: a task / split with no hub copy (here XQuAD's English dev = SQuAD v1.1 dev) is read locally."""
    from intertask.data.loading import hub_falls_back, load_examples
    from intertask.tasks import get_task

    xquad = get_task("xquad")
    assert (
        hub_falls_back(xquad, "dev")
        and not hub_falls_back(xquad, "test")
        and hub_falls_back(get_task("anli_plus"), "train")
    )
    data = load_examples(xquad, "dev", "en", SAMPLE, source="hub", max_samples=5)
    assert len(data.examples) == 5 and data.files[0].endswith("dev-v1.1.json")


def test_validate_accepts_grid_presets():
    res = runner.invoke(
        app,
        [
            "validate",
            "--no-check-data",
            str(ROOT / "configs" / "paper" / "full_study.yaml"),
            str(ROOT / "configs" / "paper" / "mnli.yaml"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "ok: " in res.output and "grid full_study: 231 runs" in res.output
