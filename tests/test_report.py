"""The paper-style report and `intertask results`: aggregation, paired bootstrap, files, HTML in a browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intertask.cli.main import app
from intertask.config import config_hash
from intertask.results.report import aggregate, export_results, write_report
from intertask.results.stats import hierarchical_bootstrap, paired_bootstrap, save_example_scores
from intertask.results.store import ResultsStore

approx = pytest.approx


def record(
    arm: str, target: str, seed: int, scores: dict, lr: float = 2e-5, created: str = "2026-01-01T00:00:00",
    tmp: Path | None = None, curves: bool = False,
) -> dict:
    config = {
        "name": f"g/{target}/{arm}/seed{seed}",
        "seed": seed,
        "output_dir": "runs",
        "baseline": arm == "baseline",
        "model": {"name_or_path": "tiny"},
        "intermediate": None if arm == "baseline" else {"task": arm, "learning_rate": 1e-5},
        "target": {"task": target, "learning_rate": lr},
    }
    rec = {
        "run_id": f"{config['name']}/{arm}/{config_hash(config)}",
        "experiment": config["name"],
        "arm": arm,
        "intermediate": None if arm == "baseline" else arm,
        "target": target,
        "seed": seed,
        "config": config,
        "config_hash": config_hash(config),
        "git_hash": "abc",
        "created": created,
        "scores": scores,
        "stages": {"target": {"dir": str(tmp / config_hash(config))}} if tmp else {},
        "seconds": 1.0,
    }
    if curves:  # the stage briefs carry stage.json's history (dev evaluations), as the pipeline writes them
        f1 = scores[target]["en"]["f1"]
        rec["stages"]["target"] = {"main_metric": "f1", "history": [{"step": s, "loss": 2.0 / s, "f1": f1 * s / 30} for s in (10, 20, 30)]}
        if arm != "baseline":
            rec["stages"]["intermediate"] = {"task": arm, "main_metric": "f1", "history": [{"step": s, "loss": 3.0 / s, "f1": 0.1 * s / 50} for s in (25, 50)]}
    return rec


def panx(en: float, ru: float) -> dict:
    return {"panx": {"en": {"f1": en, "precision": en}, "ru": {"f1": ru, "precision": ru}}}


@pytest.fixture
def store(tmp_path) -> Path:
    s = ResultsStore(tmp_path / "results.sqlite")
    # baseline panx avg: seed1 0.50, seed2 0.60; squad_v1 arm: 0.55, 0.70 -> deltas 0.05, 0.10
    s.add(record("baseline", "panx", 1, panx(0.6, 0.4), curves=True))
    s.add(record("baseline", "panx", 2, panx(0.7, 0.5), curves=True))
    s.add(record("squad_v1", "panx", 1, panx(0.7, 0.4), curves=True))
    s.add(record("squad_v1", "panx", 2, panx(0.8, 0.6), curves=True))
    s.add(record("mnli", "panx", 1, panx(0.5, 0.3), curves=True))
    s.add(record("mnli", "panx", 2, panx(0.6, 0.4), curves=True))
    s.add({**record("squad_v1", "panx", 3, panx(0.1, 0.1)), "experiment": "other", "run_id": "other/x"})
    return tmp_path / "results.sqlite"


# ----------------------------------------------------------------------------- statistics


def test_paired_bootstrap_hand_checkable():
    # Identical differences: every resample gives the same mean.
    iv = paired_bootstrap([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], n_boot=200)
    assert iv.delta == approx(0.1) and iv.low == approx(0.1) and iv.high == approx(0.1) and iv.p_le_zero == 0.0
    # Differences 0.1 and 0.3: resample means are 0.1, 0.2 or 0.3 (probabilities 1/4, 1/2, 1/4).
    iv = paired_bootstrap([0.6, 0.8], [0.5, 0.5], n_boot=4000, confidence=0.9)
    assert iv.delta == approx(0.2) and iv.low == approx(0.1) and iv.high == approx(0.3) and iv.n == 2
    # One pair: no spread to resample.
    iv = paired_bootstrap([0.4], [0.5])
    assert (iv.low, iv.high, iv.p_le_zero) == (approx(-0.1), approx(-0.1), 1.0)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_hierarchical_bootstrap_over_seeds_and_examples():
    rng = np.random.default_rng(0)
    base = [rng.integers(0, 2, 200).astype(float) for _ in range(2)]
    better = [np.maximum(b, (rng.random(200) < 0.3)) for b in base]  # never worse, often better
    iv = hierarchical_bootstrap(better, base, n_boot=300)
    assert iv.level == "seeds x examples" and iv.low > 0 and iv.delta == approx(np.mean([a.mean() - b.mean() for a, b in zip(better, base)]))
    same = hierarchical_bootstrap(base, base, n_boot=50)
    assert same.low == same.high == 0.0
    # Corpus-level F1 from per-example (tp, fp, fn): 2*3/(2*3+1+1) = 0.75 vs 2*1/(2+3+3) = 0.25.
    a = [np.array([[2, 0, 1], [1, 1, 0]])]
    b = [np.array([[1, 1, 2], [0, 2, 1]])]
    assert hierarchical_bootstrap(a, b, kind="f1", n_boot=20).delta == approx(0.5)
    with pytest.raises(ValueError, match="different examples"):
        hierarchical_bootstrap([np.ones(3)], [np.ones(4)])


# ----------------------------------------------------------------------------- aggregation


def test_aggregate_table_means_deltas_best(store):
    data = aggregate(ResultsStore(store).query(experiment="g"), n_boot=500)
    assert data.rows == [("baseline", ""), ("mnli", ""), ("squad_v1", "")]
    assert data.columns == ["panx"]
    sq = data.cells[(("squad_v1", ""), "panx")]
    assert sq.values == {1: approx(0.55), 2: approx(0.70)}
    assert sq.mean == approx(0.625) and sq.std == approx(np.std([0.55, 0.70], ddof=1))
    iv = data.intervals[(("squad_v1", ""), "panx")]
    assert iv.delta == approx(0.075) and iv.low == approx(0.05) and iv.high == approx(0.10) and iv.level == "seeds"
    assert data.intervals[(("mnli", ""), "panx")].delta == approx(-0.1)
    assert (("baseline", ""), "panx") not in data.intervals
    assert data.best("panx") == ("squad_v1", "")
    assert sq.langs["ru"] == {1: approx(0.4), 2: approx(0.6)}


def test_variant_labels_and_matching_baselines(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    for lr, bump in ((2e-5, 0.0), (3e-5, 0.2)):
        s.add(record("baseline", "panx", 1, panx(0.5 + bump, 0.5 + bump), lr=lr))
        s.add(record("squad_v1", "panx", 1, panx(0.6 + bump, 0.6 + bump), lr=lr))
    data = aggregate(s.records(), n_boot=100)
    assert [r for r in data.rows if r[0] == "squad_v1"] == [("squad_v1", "learning_rate=2e-05"), ("squad_v1", "learning_rate=3e-05")]
    for row in data.rows:
        if row[0] == "squad_v1":  # each compared with the baseline of its own learning rate
            assert data.intervals[(row, "panx")].delta == approx(0.1)


def test_example_level_bootstrap_used_when_saved(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    rng = np.random.default_rng(1)
    for seed in (1, 2):
        base_correct = rng.integers(0, 2, 100).astype(float)
        for arm, correct in (("baseline", base_correct), ("squad_v1", np.maximum(base_correct, rng.random(100) < 0.2))):
            rec = record(arm, "xnli", seed, {"xnli": {"en": {"accuracy": float(correct.mean())}}}, tmp=tmp_path)
            Path(rec["stages"]["target"]["dir"]).mkdir(parents=True)
            save_example_scores(
                Path(rec["stages"]["target"]["dir"]) / "eval-k.json", {"xnli": {"en": {"kind": "mean", "metric": "accuracy", "values": correct.tolist()}}}
            )
            s.add(rec)
    data = aggregate(s.records(), n_boot=200)
    iv = data.intervals[(("squad_v1", ""), "xnli")]
    assert iv.level == "seeds x examples" and iv.low > 0


# ----------------------------------------------------------------------------- files and CLI


def test_write_report_files(store, tmp_path):
    out = tmp_path / "report"
    paths = write_report(store, out, experiment="g", n_boot=300)
    names = {p.name for p in paths}
    assert {"report.md", "report.html", "report.json", "heatmap-panx.png", "deltas.png", "curves-panx.png"} <= names
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "| squad_v1 | **62.5 ± 10.6**<br>Δ +7.5 [+5.0, +10.0] |" in md
    assert "| – (no intermediate) | 55.0 ± 7.1 |" in md
    assert "intertask run runs/g/panx/squad_v1/seed1/config.yaml" in md
    assert "xtreme" in md  # panx is an XTREME task: aggregate over the tasks present
    page = (out / "report.html").read_text()
    srcs = re.findall(r'src="([^"]+)"', page)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert 'alt="curves-panx"' in page and "![curves-panx](curves-panx.png)" in md  # the learning curves figure
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in page and "https://" not in page  # self-contained
    assert len(list((out / "configs").glob("*.yaml"))) == 6
    summary = json.loads((out / "report.json").read_text())
    assert summary["cells"]["squad_v1 | panx"]["delta"]["delta"] == approx(0.075)


def test_results_command_filters_and_formats(store, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["results", "--store", str(tmp_path), "--experiment", "g", "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == "run_id,experiment,arm,target,seed,task,language,metric,value"
    assert len(lines) == 1 + 6 * 4  # 6 runs x 2 languages x 2 metrics
    res = runner.invoke(app, ["results", "--store", str(store), "--arm", "squad_v1", "--format", "json"])
    assert {r["experiment"] for r in json.loads(res.output)} == {"g/panx/squad_v1/seed1", "g/panx/squad_v1/seed2", "other"}
    text = export_results(store, experiment="g/panx/mnli")
    assert "mnli" in text and "squad_v1" not in text and "40.0" in text  # (0.5 + 0.3) / 2
    res = runner.invoke(app, ["results", "--store", str(tmp_path / "nope"), "--format", "table"])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["results", "--store", str(store), "--format", "xml"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["report", str(store), "--output", str(tmp_path / "rep"), "--bootstrap", "100"])
    assert res.exit_code == 0 and (tmp_path / "rep" / "report.html").is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_html_renders_in_headless_chromium(store, tmp_path):
    out = tmp_path / "report"
    write_report(store, out, experiment="g", n_boot=100)
    page = (out / "report.html").read_text()
    # A copy with a probe that records, after load, each image's natural width and any error.
    probe = (
        "<script>window.__errors=[];window.addEventListener('error',e=>window.__errors.push(String(e.message||e.type)),true);"
        "window.addEventListener('load',()=>{const r={imgs:[...document.images].map(i=>i.complete?i.naturalWidth:-1),alts:[...document.images].map(i=>i.alt),"
        "errors:window.__errors,rows:document.querySelectorAll('#main tbody tr').length};"
        "document.body.setAttribute('data-probe',JSON.stringify(r));});</script>"
    )
    test_page = out / "probe.html"
    test_page.write_text(page.replace("<head>", "<head>" + probe, 1))
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", test_page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]+)\"", proc.stdout)
    assert m, proc.stdout[:2000]
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["rows"] == 3
    assert len(result["imgs"]) == 3 and all(w > 0 for w in result["imgs"]), result
    assert "curves-panx" in result["alts"], result  # each arm's learning curves, decoded and laid out
    assert result["errors"] == []
    console_errors = [
        line for line in proc.stderr.splitlines() if "CONSOLE" in line and ("rror" in line or "Uncaught" in line) or "Failed to load resource" in line
    ]
    assert not console_errors, console_errors


def test_report_without_baseline_has_no_deltas(tmp_path):
    s = ResultsStore(tmp_path / "results.sqlite")
    s.add(record("squad_v1", "panx", 1, panx(0.7, 0.4)))
    paths = write_report(tmp_path, tmp_path / "rep", n_boot=50)
    names = {p.name for p in paths}
    assert "deltas.png" not in names and "heatmap-panx.png" in names
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| squad_v1 | **55.0 ± 0.0** |" in md


def test_example_scores_reproduce_the_corpus_metric():
    from intertask.results.stats import _score, example_scores
    from intertask.tasks import get_task

    panx = get_task("panx")
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"], ["I-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG", "O"], ["I-LOC", "B-PER"]]
    ex = example_scores(panx, pred, gold, "en")
    assert ex["kind"] == "f1" and ex["values"] == [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
    assert float(_score(np.array(ex["values"], dtype=float), "f1")) == approx(panx.compute_metrics(pred, gold, "en")["f1"])
    squad = get_task("squad_v1")
    preds, refs = {"a": "the cat", "b": "dog house"}, {"a": ["cat"], "b": ["a dog"]}
    ex = example_scores(squad, preds, refs, "en")
    assert ex["kind"] == "mean" and np.mean(ex["values"]) == approx(squad.compute_metrics(preds, refs, "en")[squad.main_metric])


def test_curves_read_stage_json_when_the_record_has_no_history(tmp_path):
    """Records written before the stage briefs carried `history`: the curves come from each stage's stage.json."""
    s = ResultsStore(tmp_path / "r.sqlite")
    for arm in ("baseline", "squad_v1"):
        rec = record(arm, "panx", 1, panx(0.6, 0.4), tmp=tmp_path)
        stage_dir = Path(rec["stages"]["target"]["dir"])
        stage_dir.mkdir(parents=True)
        history = [{"step": 5, "loss": 1.0, "f1": 0.3}, {"step": 10, "loss": 0.5, "f1": 0.5}]
        (stage_dir / "stage.json").write_text(json.dumps({"main_metric": "f1", "history": history}))
        s.add(rec)
    names = {p.name for p in write_report(tmp_path / "r.sqlite", tmp_path / "rep", n_boot=50)}
    assert "curves-panx.png" in names
    s2 = ResultsStore(tmp_path / "r2.sqlite")
    s2.add(record("squad_v1", "panx", 1, panx(0.7, 0.4)))  # no history anywhere: no curves figure, no error
    assert "curves-panx.png" not in {p.name for p in write_report(tmp_path / "r2.sqlite", tmp_path / "rep2", n_boot=50)}
