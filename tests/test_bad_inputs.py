"""Bad input (issue 16): every row is one bad input, the command it is given to, the expected message fragment and
exit code. Each case asserts the exit code, the message, that no traceback was printed, and that nothing else
changed in its workspace (the directory tree is snapshotted before and after).

Most rows run the CLI in-process (`intertask.cli.main.main`, the console-script entry with its last-resort handler)
on the tiny random model; the signal rows run `python -m intertask` in a subprocess (marked slow).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

from intertask.cli.main import main
from intertask.errors import DataFormatError, IntertaskError

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
runner = CliRunner()


# ----------------------------------------------------------------------------- helpers


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def cli(args: list[str], env: dict[str, str] | None = None) -> Outcome:
    """`intertask ARGS` in this process, through the console-script entry (exit codes, last-resort handler)."""
    with runner.isolation(env=env) as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout, stderr = out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")
    return Outcome(code, stdout, stderr)


def tree(root: Path) -> dict[str, tuple]:
    """Every file and directory under `root`: kind, size, mtime (what a bad input must not change)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        # Directories by existence (SQLite's transient -wal / -shm files touch a folder's mtime); files by size and mtime.
        out[str(p.relative_to(root))] = ("d", 0, 0) if p.is_dir() else ("f", st.st_size, st.st_mtime_ns)
    return out


def base_config(ws: Path, model: Path, **extra: Any) -> str:
    text = textwrap.dedent(
        f"""\
        name: t
        seed: 1
        data_dir: {SAMPLE}
        output_dir: {ws / "runs"}
        model: {{name_or_path: {model}, max_seq_length: 64}}
        target: {{task: panx, max_steps: 2, batch_size: 4, max_train_samples: 16, max_eval_samples: 8, eval_every_steps: 2}}
        evaluation: {{languages: [en], max_eval_samples: 8}}
        """
    )
    return text + "".join(f"{k}: {v}\n" for k, v in extra.items())


@dataclass
class Fx:
    """What a case's setup gets: its workspace and the shared fixtures."""

    ws: Path
    model: Path
    trained: Path  # an output_dir holding one finished tiny run (copied into ws by cases that alter it)
    env: dict[str, str] = field(default_factory=dict)

    def config(self, text: str | bytes | None = None, name: str = "c.yaml", **extra: Any) -> Path:
        path = self.ws / name
        content = base_config(self.ws, self.model, **extra) if text is None else text
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def copy_trained(self) -> Path:
        out = self.ws / "runs"
        shutil.copytree(self.trained, out)
        return out

    def stage_dir(self) -> Path:
        return next((self.ws / "runs" / "t" / "baseline").glob("target-*"))

    def model_copy(self) -> Path:
        dest = self.ws / "m"
        shutil.copytree(self.model, dest)
        return dest


@dataclass
class Case:
    id: str
    setup: Callable[[Fx], list[Any]]  # -> command line (after `intertask`)
    fragment: str  # expected in stderr (or stdout)
    code: int = 2
    changes: bool = False  # the command may legitimately write (e.g. it recovers and runs)
    env: dict[str, str] = field(default_factory=dict)
    chdir: bool = False  # run in the workspace (no ../shared/data beside it)


def run_case(case: Case, fx: Fx, monkeypatch) -> Outcome:
    args = case.setup(fx)
    if case.chdir:
        monkeypatch.chdir(fx.ws)
    before = tree(fx.ws)
    result = cli(args, env={**case.env, **fx.env})
    after = tree(fx.ws)
    assert result.code == case.code, f"{case.id}: exit {result.code}, expected {case.code}\n{result.text[-3000:]}"
    assert case.fragment.lower() in result.text.lower(), f"{case.id}: {case.fragment!r} not in output:\n{result.text[-3000:]}"
    assert "Traceback (most recent call last)" not in result.text, f"{case.id}: traceback printed\n{result.text[-3000:]}"
    if not case.changes:
        assert after == before, f"{case.id}: the workspace changed: {sorted(set(after.items()) ^ set(before.items()))[:10]}"
    return result


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory) -> Path:
    """One finished tiny run (target panx, baseline only): its output_dir."""
    ws = tmp_path_factory.mktemp("trained")
    cfg = ws / "c.yaml"
    cfg.write_text(base_config(ws, tiny_model), encoding="utf-8")
    result = cli(["run", cfg])
    assert result.code == 0, result.text
    return ws / "runs"


@pytest.fixture
def fx(tmp_path, tiny_model, trained, monkeypatch) -> Fx:
    ws = tmp_path / "ws"
    ws.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("INTERTASK_CACHE", str(cache))  # traceback files and caches: outside the workspace
    monkeypatch.setenv("INTERTASK_FEATURE_CACHE", "off")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("INTERTASK_DEBUG", raising=False)
    return Fx(ws=ws, model=tiny_model, trained=trained)


def ov(fx: Fx, *overrides: str, command: str = "run") -> list[Any]:
    """`intertask run <good config> OVERRIDES` (or grid / validate)."""
    return [command, fx.config(), *overrides]


def cfg_text(fx: Fx, text: str) -> list[Any]:
    return ["run", fx.config(text)]


def cfg_edit(fx: Fx, old: str, new: str, command: str = "run") -> list[Any]:
    text = base_config(fx.ws, fx.model)
    assert old in text, old
    return [command, fx.config(text.replace(old, new))]


def _with(*overrides: str, command: str = "run") -> Callable[[Fx], list[Any]]:
    return lambda f: ov(f, *overrides, command=command)


# ----------------------------------------------------------------------------- config files

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh")
)

CONFIG_FILES = [
    Case("config-missing", lambda f: ["run", f.ws / "nope.yaml"], "config file not found"),
    Case("config-directory", lambda f: ["run", f.ws], "is a directory, expected a YAML config file"),
    Case("config-empty", lambda f: cfg_text(f, ""), "c.yaml: the config file is empty"),
    Case("config-only-comments", lambda f: cfg_text(f, "# nothing\n"), "the config file is empty"),
    Case("config-binary", lambda f: ["run", f.config(b"\x89PNG\r\n\x1a\n\x00\x00\x00")], "not UTF-8 text"),
    Case("config-latin1", lambda f: ["run", f.config("name: caf\xe9\n".encode("latin-1"))], "line 1: not UTF-8 text"),
    Case("config-utf16", lambda f: ["run", f.config("name: x\n".encode("utf-16"))], "not UTF-8 text (UTF-16"),
    Case("config-list", lambda f: cfg_text(f, "- a\n- b\n"), "expected a mapping at the top level, got list"),
    Case("config-scalar", lambda f: cfg_text(f, "hello\n"), "expected a mapping at the top level, got str"),
    Case("config-bad-yaml", lambda f: cfg_text(f, "target: {task: panx\n"), "invalid YAML"),
    Case("config-tab-indent", lambda f: cfg_text(f, "target:\n\ttask: panx\n"), "invalid YAML"),
    Case("config-alias-bomb", lambda f: cfg_text(f, BOMB), "alias bomb"),
    Case("config-alias-bomb-grid", lambda f: ["grid", f.config(BOMB)], "alias bomb"),
    Case("config-duplicate-key", lambda f: cfg_text(f, "name: a\nname: b\ntarget: {task: panx}\n"), "duplicate key 'name' (first given on line 1)"),
    Case("config-duplicate-section", lambda f: cfg_text(f, "target: {task: panx}\nseed: 1\ntarget: {task: xnli}\n"), "duplicate key 'target'"),
    Case("config-duplicate-nested", lambda f: cfg_text(f, "target:\n  task: panx\n  task: xnli\n"), "line 3"),
    Case("config-python-tag", lambda f: cfg_text(f, "name: !!python/object/apply:os.system ['touch pwned']\n"), "Python tags are never executed"),
    Case("config-unknown-key", lambda f: cfg_edit(f, "seed: 1", "sed: 1"), "unknown config key sed; did you mean seed?"),
    Case("config-unknown-nested-key", lambda f: cfg_edit(f, "max_steps: 2", "max_step: 2"), "target.max_step"),
    Case("config-unknown-key-validate", lambda f: cfg_edit(f, "seed: 1", "sed: 1", command="validate"), "unknown config key sed"),
    Case("config-no-target-task", lambda f: cfg_text(f, f"output_dir: {f.ws / 'runs'}\nname: t\n"), "c.yaml: target.task is required"),
    Case("config-section-not-mapping", lambda f: cfg_text(f, "target: panx\n"), "target: expected a mapping"),
    Case("config-wrong-type-int", lambda f: cfg_edit(f, "batch_size: 4", "batch_size: four"), "target.batch_size: expected an integer"),
    Case("config-wrong-type-bool", lambda f: ["run", f.config(), "baseline=maybe"], "baseline: expected true or false"),
    Case("config-unknown-task", lambda f: cfg_edit(f, "task: panx", "task: panxx"), "did you mean 'panx'"),
    Case("config-unknown-literal", lambda f: ["run", f.config(), "mixed_precision=fp8"], "mixed_precision: expected one of"),
]

# ----------------------------------------------------------------------------- values out of range (overrides)

VALUES = [
    ("lr-zero", "target.learning_rate=0", "target.learning_rate: expected a number in (0, 1]"),
    ("lr-negative", "target.learning_rate=-1e-5", "target.learning_rate"),
    ("lr-inf", "target.learning_rate=.inf", "target.learning_rate"),
    ("lr-nan", "target.learning_rate=.nan", "target.learning_rate"),
    ("lr-huge", "target.learning_rate=1e10", "target.learning_rate"),
    ("lr-string", "target.learning_rate=fast", "target.learning_rate: expected a number"),
    ("max-steps-zero", "target.max_steps=0", "target.max_steps: expected a positive integer or null"),
    ("max-steps-negative", "target.max_steps=-3", "target.max_steps"),
    ("epochs-zero", "target.num_epochs=0", "target.num_epochs: expected a positive number"),
    ("epochs-nan", "target.num_epochs=.nan", "target.num_epochs"),
    ("epochs-negative", "target.num_epochs=-1", "target.num_epochs"),
    ("warmup-five", "target.warmup_ratio=5", "target.warmup_ratio: expected a fraction"),
    ("warmup-negative", "target.warmup_ratio=-0.1", "target.warmup_ratio"),
    ("seq-zero", "target.max_seq_length=0", "target.max_seq_length: expected at least 8"),
    ("model-seq-zero", "model.max_seq_length=0", "model.max_seq_length: expected at least 8"),
    ("seq-beyond-positions", "target.max_seq_length=100000", "beyond the model's"),
    ("model-seq-beyond-positions", "model.max_seq_length=4096", "model.max_seq_length: 4096 is beyond"),
    ("eval-every-zero", "target.eval_every_steps=0", "target.eval_every_steps: expected a positive integer"),
    ("checkpoint-every-negative", "target.checkpoint_every_steps=-1", "target.checkpoint_every_steps"),
    ("doc-stride-window", "target={task: squad_v1, max_seq_length: 64, doc_stride: 64}", "target.doc_stride: expected an overlap of 1 to 63"),
    ("doc-stride-beyond", "intermediate={task: squad_v1, doc_stride: 500}", "intermediate.doc_stride"),
    ("doc-stride-zero", "target.doc_stride=0", "target.doc_stride"),
    ("batch-zero", "target.batch_size=0", "target.batch_size: expected a positive integer"),
    ("batch-negative", "target.batch_size=-4", "target.batch_size"),
    ("eval-batch-zero", "target.eval_batch_size=0", "target.eval_batch_size"),
    ("evaluation-batch-zero", "evaluation.batch_size=0", "evaluation.batch_size"),
    ("accumulation-zero", "target.gradient_accumulation_steps=0", "target.gradient_accumulation_steps"),
    ("seed-negative", "seed=-1", "seed: expected an integer in [0, 2**32)"),
    ("seed-too-big", "seed=4294967296", "seed: expected an integer in [0, 2**32)"),
    ("workers-negative", "target.dataloader_workers=-1", "target.dataloader_workers: expected an integer >= 0"),
    ("weight-decay-negative", "target.weight_decay=-0.1", "target.weight_decay"),
    ("grad-norm-nan", "target.max_grad_norm=.nan", "target.max_grad_norm"),
    ("max-train-samples-zero", "target.max_train_samples=0", "target.max_train_samples"),
    ("max-eval-samples-zero", "evaluation.max_eval_samples=0", "evaluation.max_eval_samples"),
    ("intermediate-lr-zero", "intermediate={task: squad_v1, learning_rate: 0}", "intermediate.learning_rate"),
    ("logging-every-zero", "logging.every_steps=0", "logging.every_steps"),
    ("override-bad-yaml", "target.max_steps=[1,", "the value is not valid YAML"),
    ("override-tab", "target.task=\tpanx: x", "not valid YAML"),
    ("override-python-tag", "name=!!python/object/apply:os.system ['touch pwned']", "Python tags are never executed"),
    ("override-no-equals", "target.max_steps", "expected dotted key=value"),
    ("override-empty-key", "target..max_steps=3", "empty key component"),
    ("override-not-section", "seed.x=1", "seed is not a section"),
    ("override-nul", "name=a\x00b", "NUL"),
    ("override-unknown-key", "target.lr=1", "unknown config key target.lr"),
]
VALUE_CASES = [Case(f"value-{i}", _with(o), frag) for i, o, frag in VALUES]
VALUE_CASES.append(Case("value-grid-batch-zero", lambda f: ov(f, "target.batch_size=0", command="grid"), "target.batch_size"))
VALUE_CASES.append(Case("value-validate-lr-zero", lambda f: ov(f, "--set", "target.learning_rate=0", command="validate"), "learning_rate"))

# ----------------------------------------------------------------------------- names that become paths

NAMES = [
    ("name-dotdot", "name=../x", "not a safe name"),
    ("name-absolute", "name=/tmp/x", "not a safe name"),
    ("name-empty", "name=''", "not a safe name (empty)"),
    ("name-dot", "name=.", "not a safe name"),
    ("name-dotdot-inner", "name=a/../../x", "not a safe name"),
    ("name-hidden", "name=.x", "starts with '.'"),
    ("name-dash", "name=-rf", "starts with '-'"),
    ("name-markup", "name='[/bold]x'", "not a safe name"),
    ("name-space", "name='a b'", "contains ' '"),
    ("name-backslash", "name=a\\b", "not a safe name"),
    ("name-too-long", "name=" + "x" * 300, "at most 200"),
    ("name-trailing-slash", "name=a/", "not a safe name (empty)"),
    ("name-number", "name=3", "expected a string"),
    ("language-dotdot", "target.language=../en", "target.language"),
    ("eval-language-slash", "evaluation.languages=[../../x]", "evaluation.languages[0]"),
    ("retrieval-task-slash", "evaluation.retrieval_tasks=[../x]", "evaluation.retrieval_tasks[0]"),
    ("task-slash", "target.task=../panx", "target.task"),
]
NAME_CASES = [Case(f"names-{i}", _with(o), frag) for i, o, frag in NAMES]
NAME_CASES += [
    Case("names-grid-dotdot", lambda f: ov(f, "name=../../x", command="grid"), "not a safe name"),
    Case("names-grid-absolute", lambda f: ov(f, "name=/abs", command="grid"), "not a safe name"),
    Case("names-validate-dotdot", lambda f: ov(f, "--set", "name=../x", command="validate"), "not a safe name"),
    Case("names-data-dir-missing", lambda f: ov(f, f"data_dir={f.ws / 'nodata'}"), "no such directory"),
    Case("names-data-dir-file", lambda f: ov(f, f"data_dir={f.config()}"), "not a directory"),
    Case("names-output-dir-file", lambda f: ov(f, f"output_dir={f.config()}"), "is a file, expected a directory"),
    Case("names-model-missing", lambda f: ov(f, f"model.name_or_path={f.ws / 'nomodel'}"), "no such directory"),
    Case("names-model-file", lambda f: ov(f, f"model.name_or_path={f.config()}"), "is a file, expected a model directory"),
    Case("names-model-offline-typo", lambda f: ov(f, "model.name_or_path=xlm-robreta-base"), "neither a local directory nor a cached hub model"),
    Case("names-model-invalid-id", lambda f: ov(f, "model.name_or_path=a/b/c/"), "no such directory"),
    Case("names-grid-model-offline-typo", _with("model.name_or_path=xlm-robreta-base", command="grid"), "neither a local directory nor a cached hub model"),
    Case("names-validate-model-missing", _with("--set", "model.name_or_path=./nomodel", command="validate"), "no such directory"),
    Case("names-init-encoder-missing", lambda f: ov(f, f"target.init_encoder_from={f.ws / 'x'}"), "init_encoder_from"),
]


def _readonly_output(f: Fx) -> list[Any]:
    out = f.ws / "ro"
    out.mkdir()
    out.chmod(0o500)
    return ov(f, f"output_dir={out / 'runs'}")


if os.geteuid() != 0:  # root ignores permissions
    NAME_CASES.append(Case("names-output-dir-readonly", _readonly_output, "not writable"))

# ----------------------------------------------------------------------------- eval / predict / report / results / select options


def ev(f: Fx, *extra: Any, model: Any = None) -> list[Any]:
    return ["eval", "--model", model if model is not None else f.stage_trained, "--task", "panx", "--languages", "en", "--data-dir", SAMPLE, *extra]


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _model_broken(f: Fx, name: str, content: bytes | None = None, keep: int | None = None) -> Path:
    m = f.model_copy()
    if keep is not None:
        _truncate(m / name, keep)
    elif content is None:
        (m / name).unlink()
    else:
        (m / name).write_bytes(content)
    return m


def _broken_default_model(f: Fx, name: str = "model.safetensors", keep: int = 100) -> None:
    """A converted default model in INTERTASK_CACHE whose `name` is cut short."""
    from intertask.models.embedded import MODEL_DIR_NAME

    cache = f.ws / "cache"
    shutil.copytree(f.model, cache / MODEL_DIR_NAME)
    _truncate(cache / MODEL_DIR_NAME / name, keep)
    f.env["INTERTASK_CACHE"] = str(cache)


SELECT = ["select", "--target", "panx", "--candidates", "squad_v1"]
SQUAD_OUTSIDE = {"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", "answers": [{"text": "zzz", "answer_start": 99}]}]}]}]}

CLI_CASES = [
    Case("eval-source-unknown", lambda f: ev(f, "--source", "web"), "--source: expected local or hub"),
    Case("eval-split-unknown", lambda f: ev(f, "--split", "train"), "--split: expected dev or test"),
    Case("eval-max-length-zero", lambda f: ev(f, "--max-length", "0"), "--max-length: expected a length"),
    Case("eval-max-samples-zero", lambda f: ev(f, "--max-samples", "0"), "--max-samples: expected a positive integer"),
    Case("eval-max-samples-negative", lambda f: ev(f, "--max-samples", "-5"), "--max-samples"),
    Case("eval-batch-zero", lambda f: ev(f, "--batch-size", "0"), "--batch-size"),
    Case("eval-pooling", lambda f: ev(f, "--pooling", "max"), "--pooling: expected mean or cls"),
    Case("eval-layer", lambda f: ev(f, "--layer", "-7"), "--layer"),
    Case("eval-unknown-task", lambda f: ["eval", "--model", f.model, "--task", "panxx"], "did you mean 'panx'"),
    Case("eval-unknown-language", lambda f: ev(f, "--languages", "xx"), "--languages"),
    Case("eval-model-missing", lambda f: ev(f, model=f.ws / "no-such-dir"), "--model"),
    Case("eval-model-missing-no-init-encoder", lambda f: ev(f, model="no-such-dir/"), "no such directory"),
    Case("eval-model-file", lambda f: ev(f, model=f.config()), "is a file"),
    Case("eval-model-offline-typo", lambda f: ev(f, model="xlm-robreta-base"), "neither a local directory nor a cached hub model"),
    Case("eval-model-empty-dir", lambda f: ev(f, model=(f.ws / "empty").mkdir() or f.ws / "empty"), "no config.json"),
    Case("eval-model-truncated-safetensors", lambda f: ev(f, model=_model_broken(f, "model.safetensors", keep=1000)), "truncated"),
    Case("eval-model-tiny-safetensors", lambda f: ev(f, model=_model_broken(f, "model.safetensors", keep=3)), "truncated"),
    Case("eval-model-no-weights", lambda f: ev(f, model=_model_broken(f, "model.safetensors")), "no weights"),
    Case("eval-model-config-broken", lambda f: ev(f, model=_model_broken(f, "config.json", keep=10)), "config.json is broken"),
    Case("eval-model-config-missing", lambda f: ev(f, model=_model_broken(f, "config.json")), "no config.json"),
    Case("eval-model-not-safetensors", lambda f: ev(f, model=_model_broken(f, "model.safetensors", b"hello world, not weights")), "not a safetensors file"),
    Case("default-model-truncated-run", lambda f: (_broken_default_model(f), ov(f, "model.name_or_path=default"))[1], "intertask model prepare --force"),
    Case(
        "default-model-config-truncated",
        lambda f: (_broken_default_model(f, "config.json", 5), ov(f, "model.name_or_path=default"))[1],
        "model prepare --force",
    ),
    Case("default-model-truncated-eval", lambda f: (_broken_default_model(f), ev(f, model="default"))[1], "intertask model prepare --force"),
    Case("eval-output-directory", lambda f: ev(f, "--output", f.ws), "is a directory, expected a file name"),
    Case("eval-output-parent-file", lambda f: ev(f, "--output", f.config() / "x.json"), "is not a directory"),
    Case("eval-data-dir-missing", lambda f: ev(f, "--data-dir", f.ws / "nodata"), "--data-dir"),
    Case("eval-default-data-dir-hint", lambda f: ["eval", "--model", f.stage_trained, "--task", "panx"], "with --data-dir PATH", chdir=True),
    Case("predict-output-dir-file", lambda f: ["predict", "--model", f.model, "--task", "panx", "--output-dir", f.config(), "--data-dir", SAMPLE], "is a file"),
    Case("predict-split", lambda f: ["predict", "--model", f.model, "--task", "panx", "--output-dir", f.ws / "p", "--split", "x"], "--split"),
    Case("report-bootstrap-negative", lambda f: ["report", f.trained, "--output", f.ws / "rep", "--bootstrap", "-1"], "--bootstrap"),
    Case("report-confidence-one", lambda f: ["report", f.trained, "--output", f.ws / "rep", "--confidence", "1"], "--confidence: expected a level in (0, 1)"),
    Case("report-confidence-zero", lambda f: ["report", f.trained, "--output", f.ws / "rep", "--confidence", "0"], "--confidence"),
    Case("report-confidence-nan", lambda f: ["report", f.trained, "--output", f.ws / "rep", "--confidence", "nan"], "--confidence"),
    Case("report-output-file", lambda f: ["report", f.trained, "--output", f.config()], "is a file, expected a directory"),
    Case("report-store-missing", lambda f: ["report", f.ws / "none.sqlite", "--output", f.ws / "rep"], "results store not found"),
    Case("results-format", lambda f: ["results", "--store", f.trained, "--format", "xml"], "--format: expected table, csv or json"),
    Case("results-output-directory", lambda f: ["results", "--store", f.trained, "--output", f.ws], "is a directory"),
    Case("select-max-samples-zero", lambda f: [*SELECT, "--max-samples", "0", "--data-dir", SAMPLE], "--max-samples"),
    Case("select-k-zero", lambda f: [*SELECT, "--k", "0", "--data-dir", SAMPLE], "--k"),
    Case("select-data-dir-missing", lambda f: [*SELECT, "--data-dir", f.ws / "x"], "--data-dir"),
    Case("plan-tokens-negative", lambda f: ["plan", f.config(), "--tokens-per-second", "-1"], "--tokens-per-second"),
    Case("unknown-command", lambda f: ["rnu"], "No such command"),
    Case("unknown-option", lambda f: ["run", f.config(), "--fast"], "No such option"),
    Case("model-prepare-cache-file", lambda f: ["model", "prepare", "--cache-dir", f.config()], "is a file, expected a directory"),
]

# ----------------------------------------------------------------------------- results store


def _store(f: Fx, kind: str) -> Path:
    path = f.ws / "results.sqlite"
    if kind == "text":
        path.write_text("this is not a database\n" * 100)
    elif kind == "truncated":
        data = (f.trained / "results.sqlite").read_bytes()
        path.write_bytes(data[:50])
    elif kind == "foreign":
        with closing(sqlite3.connect(path)) as con, con:
            con.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
    elif kind == "other-app":
        with closing(sqlite3.connect(path)) as con, con:
            con.execute("CREATE TABLE notes (body TEXT)")
    elif kind == "directory":
        path.mkdir()
    elif kind == "broken-json":
        shutil.copy(f.trained / "results.sqlite", path)
        with closing(sqlite3.connect(path)) as con, con:
            con.execute("UPDATE runs SET record = '{not json'")
    elif kind == "json-list":
        shutil.copy(f.trained / "results.sqlite", path)
        with closing(sqlite3.connect(path)) as con, con:
            con.execute("UPDATE runs SET record = '[1, 2]'")
    elif kind == "empty-file":
        path.write_bytes(b"")
    return path


STORE_CASES = []
for kind, frag in (
    ("text", "not a readable SQLite results store"),
    ("truncated", "not a readable SQLite results store"),
    ("foreign", "table 'runs' is not intertask's"),
    ("other-app", "is not intertask's"),
    ("broken-json", "holds a broken JSON record"),
    ("json-list", "expected a JSON object"),
    ("empty-file", "no such table"),
):
    STORE_CASES.append(Case(f"store-results-{kind}", (lambda k: lambda f: ["results", "--store", _store(f, k)])(kind), frag))
    STORE_CASES.append(Case(f"store-report-{kind}", (lambda k: lambda f: ["report", _store(f, k), "--output", f.ws / "rep"])(kind), frag))
STORE_CASES += [
    Case("store-results-directory", lambda f: ["results", "--store", (f.ws / "d").mkdir() or f.ws / "d"], "results store not found"),
    Case("store-run-directory", lambda f: (_store(f, "directory"), ov(f, f"output_dir={f.ws}"))[1], "is a directory, expected a SQLite file"),
    Case("store-run-foreign", lambda f: (_store(f, "foreign"), ov(f, f"output_dir={f.ws}"))[1], "is not intertask's"),
    Case("store-run-text", lambda f: (_store(f, "text"), ov(f, f"output_dir={f.ws}"))[1], "not a readable SQLite"),
    Case("store-grid-text", lambda f: (_store(f, "text"), ov(f, f"output_dir={f.ws}", command="grid"))[1], "not a readable SQLite"),
]


def _readonly_store(f: Fx) -> list[Any]:
    out = f.copy_trained()
    (out / "results.sqlite").chmod(0o444)
    return ov(f, "seed=2")


if os.geteuid() != 0:
    STORE_CASES.append(Case("store-run-readonly", _readonly_store, "read-only"))

# ----------------------------------------------------------------------------- stage directories, checkpoints, caches


def _stage(f: Fx, action: Callable[[Path], None]) -> list[Any]:
    f.copy_trained()
    stage = f.stage_dir()
    (stage / "stage.json").unlink()
    for p in stage.glob("eval-*"):
        p.unlink()
    with closing(sqlite3.connect(f.ws / "runs" / "results.sqlite")) as con, con:
        con.execute("DELETE FROM scores")
        con.execute("DELETE FROM runs")
    action(stage)
    return ["run", f.config()]


def _checkpoint(stage: Path, state: bytes | None = None, latest: str = "step-0000001", write_state: bool = True) -> None:
    root = stage / "checkpoints"
    (root / "step-0000001").mkdir(parents=True)
    (root / "LATEST").write_text(latest + "\n")
    if write_state:
        (root / "step-0000001" / "state.pt").write_bytes(state if state is not None else b"")


def _crafted_state(ws: Path) -> bytes:
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {ws / 'pwned'}",))

    buf = io.BytesIO()
    torch.save({"model": Evil()}, buf)
    return buf.getvalue()


def _truncated_state() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(1000)}, "step": 1}, buf)
    return buf.getvalue()[:300]


STAGE_CASES = [
    Case("checkpoint-crafted-pickle", lambda f: _stage(f, lambda s: _checkpoint(s, _crafted_state(f.ws))), "not a readable data-only checkpoint"),
    Case("checkpoint-truncated", lambda f: _stage(f, lambda s: _checkpoint(s, _truncated_state())), "not a readable data-only checkpoint"),
    Case("checkpoint-empty-state", lambda f: _stage(f, lambda s: _checkpoint(s, b"")), "not a readable data-only checkpoint"),
    Case("checkpoint-dangling-latest", lambda f: _stage(f, lambda s: _checkpoint(s, latest="step-0000009")), "does not exist"),
    Case("checkpoint-latest-escape", lambda f: _stage(f, lambda s: _checkpoint(s, latest="../../../x")), "expected the name of a checkpoint directory"),
    Case("checkpoint-latest-empty", lambda f: _stage(f, lambda s: _checkpoint(s, latest="")), "expected the name of a checkpoint directory"),
    Case("checkpoint-not-a-dict", lambda f: _stage(f, lambda s: _checkpoint(s, _list_state())), "expected a checkpoint dictionary"),
]


def _list_state() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save([1, 2, 3], buf)
    return buf.getvalue()


def _lock_stage(f: Fx) -> list[Any]:
    """An intermediate stage whose lock another process holds."""
    import fcntl

    from intertask.config import load_config
    from intertask.pipeline import intermediate_dir

    args = ov(f, "intermediate={task: squad_v1, max_steps: 1, max_train_samples: 8, max_eval_samples: 4, batch_size: 2}")
    cfg = load_config(args[1], args[2:])
    stage = intermediate_dir(cfg)
    stage.parent.mkdir(parents=True)
    lock = stage.parent / f".{stage.name}.lock"
    fh = open(lock, "a+")  # noqa: SIM115 - held until the test ends
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    fh.write("pid 4242 on testhost (intertask run other.yaml)\n")
    fh.flush()
    f.env["INTERTASK_LOCK_TIMEOUT"] = "0.5"
    f.__dict__["_hold"] = fh
    return args


STAGE_CASES.append(Case("stage-lock-held", _lock_stage, "locked by another worker: pid 4242", changes=True))

# Wrong shapes of stage.json / eval caches: not taken as complete; the run redoes them (exit 0) with a message.


def _stage_json(content: str) -> Callable[[Fx], list[Any]]:
    def setup(f: Fx) -> list[Any]:
        f.copy_trained()
        (f.stage_dir() / "stage.json").write_text(content)
        with closing(sqlite3.connect(f.ws / "runs" / "results.sqlite")) as con, con:
            con.execute("DELETE FROM runs")
        return ["run", f.config()]

    return setup


def _eval_cache(content: str, partial: bool = False) -> Callable[[Fx], list[Any]]:
    def setup(f: Fx) -> list[Any]:
        f.copy_trained()
        for p in f.stage_dir().glob("eval-*.json"):
            if not p.name.endswith(".examples.json"):
                if partial:
                    p.unlink()
                    p.with_suffix(".partial.json").write_text(content)
                else:
                    p.write_text(content)
        with closing(sqlite3.connect(f.ws / "runs" / "results.sqlite")) as con, con:
            con.execute("DELETE FROM runs")
        return ["run", f.config()]

    return setup


RECOVER_CASES = [
    Case("stage-json-empty", _stage_json(""), "not complete, training it again", code=0, changes=True),
    Case("stage-json-list", _stage_json("[1, 2]"), "expected a JSON object", code=0, changes=True),
    Case("stage-json-wrong-shape", _stage_json('{"hello": 1}'), "'task' missing", code=0, changes=True),
    Case("stage-json-truncated", _stage_json('{"task": "panx", "steps": '), "broken JSON", code=0, changes=True),
    Case("eval-cache-corrupt", _eval_cache("{oops"), "evaluating again", code=0, changes=True),
    Case("eval-cache-wrong-shape", _eval_cache('{"scores": 1}'), "evaluating again", code=0, changes=True),
    Case("eval-partial-corrupt", _eval_cache("", partial=True), "evaluating again", code=0, changes=True),
    Case("feature-cache-is-a-file", lambda f: (f.env.update(INTERTASK_FEATURE_CACHE=str(f.config(name="fc"))), ov(f, "name=fc"))[1], "", code=0, changes=True),
]

# ----------------------------------------------------------------------------- markup in user text, unexpected errors, --debug


def _markup_run(f: Fx) -> list[Any]:
    out = f.ws / "[bold]out[/bold]"
    return ov(f, f"output_dir={out}")


def _locked_store(f: Fx) -> list[Any]:
    """Another connection holds the store's write lock for the whole run."""
    out = f.copy_trained()
    con = sqlite3.connect(out / "results.sqlite", isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    f.__dict__["_hold"] = con
    f.env["INTERTASK_LOCK_TIMEOUT"] = "1"
    return ov(f, "seed=3")


MISC_CASES = [
    Case("store-locked", _locked_store, "locked by", changes=True),
    Case("markup-in-output-dir", _markup_run, "out[/bold", code=0, changes=True),
    Case("markup-unbalanced-output-dir", lambda f: ov(f, f"output_dir={f.ws / '[/bold]x'}"), "[/bold]x", code=0, changes=True),
    Case("markup-in-error", lambda f: ["run", f.ws / "[/bold]missing.yaml"], "[/bold]missing.yaml"),
]

ALL = CONFIG_FILES + VALUE_CASES + NAME_CASES + CLI_CASES + STORE_CASES + STAGE_CASES + RECOVER_CASES + MISC_CASES


@pytest.fixture
def _trained_stage(fx: Fx) -> Fx:
    return fx


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_bad_input(case: Case, fx: Fx, monkeypatch) -> None:
    fx.stage_trained = next((fx.trained / "t" / "baseline").glob("target-*"))  # type: ignore[attr-defined]
    try:
        run_case(case, fx, monkeypatch)
    finally:
        hold = fx.__dict__.get("_hold")
        if hold is not None:
            hold.close()
    assert not (fx.ws / "pwned").exists() and not Path("pwned").exists(), "code from a file was executed"


def test_at_least_120_distinct_bad_inputs() -> None:
    assert len({c.id for c in ALL}) == len(ALL)
    assert len(ALL) + len(READER_CASES) + len(SIGNAL_CASES) >= 120


# ----------------------------------------------------------------------------- data files of every reader format


def _reader(name: str):
    from intertask.data import readers

    return getattr(readers, name)


READER_CASES = [
    ("tsv-pair-missing-column", "read_pair_tsv", "dev.tsv", "sentence1\tsentence3\tlabel\na\tb\t1\n", {"labels": ["0", "1"]}),
    ("tsv-pair-wrong-label", "read_pair_tsv", "dev.tsv", "a\tb\tmaybe\n", {"labels": ["entailment", "neutral", "contradiction"]}),
    ("tsv-pair-short-row", "read_pair_tsv", "dev.tsv", "a\tb\tentailment\na\tentailment\n", {"labels": ["entailment", "neutral", "contradiction"]}),
    ("tsv-binary", "read_pair_tsv", "dev.tsv", b"\x00\x01\x02\xff\xfe", {"labels": ["entailment", "neutral", "contradiction"]}),
    ("conll-bad-tag", "read_conll_tags", "dev-en.tsv", "en:Paris\tB-XYZ\n", {"tag_set": ["O", "B-LOC", "I-LOC"]}),
    ("conll-no-tag", "read_conll_tags", "dev-en.tsv", "Paris\n\n", {"tag_set": ["O", "B-LOC", "I-LOC"]}),
    ("squad-truncated", "read_squad_json", "dev.json", '{"data": [{"paragraphs": [', {}),
    ("squad-no-data", "read_squad_json", "dev.json", '{"version": "1.1"}', {}),
    ("squad-answer-outside", "read_squad_json", "dev.json", json.dumps(SQUAD_OUTSIDE), {}),
    ("squad-latin1", "read_squad_json", "dev.json", '{"data": "caf\xe9"}'.encode("latin-1"), {}),
    ("xcopa-bad-label", "read_xcopa_jsonl", "x.jsonl", '{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 7, "idx": 0}\n', {}),
    ("xcopa-not-json", "read_xcopa_jsonl", "x.jsonl", "{premise\n", {}),
    ("cosmosqa-missing-column", "read_cosmosqa_csv", "c.csv", "id,context\n1,x\n", {}),
    ("bucc-bad-id", "read_bucc", "b.txt", "no-tab-here\n", {}),
    ("image-list-empty-line", "read_image_list", "i.txt", "a.jpg\n\n\x00\n", {}),
]


@pytest.mark.parametrize("row", READER_CASES, ids=[r[0] for r in READER_CASES])
def test_bad_data_file(row, tmp_path) -> None:
    """Every reader: a bad file is a DataFormatError (an IntertaskError: one line, exit 2) naming the file."""
    _, reader, name, content, kwargs = row
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = tree(tmp_path)
    with pytest.raises((DataFormatError, IntertaskError)) as info:
        _reader(reader)(path, **kwargs)
    assert str(path) in str(info.value) or name in str(info.value)
    assert tree(tmp_path) == before


def test_data_file_error_through_the_cli(fx: Fx) -> None:
    data = fx.ws / "data"
    shutil.copytree(SAMPLE, data)
    (data / "panx" / "dev-en.tsv").write_text("en:Paris\tB-NOPE\n", encoding="utf-8")
    before = tree(fx.ws)
    stage = next((fx.trained / "t" / "baseline").glob("target-*"))
    result = cli(["eval", "--model", stage, "--task", "panx", "--languages", "en", "--data-dir", data])
    assert result.code == 2 and "dev-en.tsv" in result.stderr and "Traceback" not in result.text
    assert tree(fx.ws) == before


# ----------------------------------------------------------------------------- unexpected errors, --debug, safety nets


def test_unexpected_error_is_one_line_with_a_traceback_file(fx: Fx, monkeypatch, tmp_path) -> None:
    import intertask.pipeline

    def boom(cfg):
        raise ZeroDivisionError("kaboom")

    monkeypatch.setattr(intertask.pipeline, "run_experiment", boom)
    config = fx.config()
    before = tree(fx.ws)
    result = cli(["run", config])
    assert result.code == 1 and "unexpected ZeroDivisionError: kaboom" in result.stderr
    assert "Traceback" not in result.text and len(result.stderr.strip().splitlines()) == 1
    saved = Path(result.stderr.split("full traceback: ")[1].split(";")[0])
    assert saved.is_file() and "ZeroDivisionError" in saved.read_text() and str(saved).startswith(os.environ["INTERTASK_CACHE"])
    assert tree(fx.ws) == before


def test_os_error_names_the_file(fx: Fx, monkeypatch) -> None:
    import intertask.pipeline

    def full(cfg):
        raise OSError(28, "No space left on device", str(fx.ws / "runs" / "x"))

    monkeypatch.setattr(intertask.pipeline, "run_experiment", full)
    result = cli(["run", fx.config()])
    assert result.code == 1 and "No space left on device" in result.stderr and str(fx.ws / "runs" / "x") in result.stderr
    assert "Traceback" not in result.text


def test_debug_shows_the_traceback(fx: Fx) -> None:
    with pytest.raises(IntertaskError, match="learning_rate"):
        cli(["--debug", "run", fx.config(), "target.learning_rate=0"])
    os.environ.pop("INTERTASK_DEBUG", None)
    with pytest.raises(IntertaskError):
        cli(["run", fx.config(), "target.learning_rate=0"], env={"INTERTASK_DEBUG": "1"})


def test_help_keeps_square_brackets() -> None:
    result = cli(["--help"])
    assert result.code == 0 and "[intermediate task]" in result.stdout


def test_results_table_goes_to_stdout(fx: Fx) -> None:
    result = cli(["run", fx.config()])
    assert result.code == 0, result.text
    assert "zero-shot results" in result.stdout and "zero-shot results" not in result.stderr
    assert "results:" in result.stderr  # diagnostics on stderr


def test_config_yaml_written_only_after_success(fx: Fx, monkeypatch) -> None:
    out = fx.copy_trained()
    before = (out / "t" / "config.yaml").read_text()
    import intertask.pipeline

    def fail(*a, **k):
        raise IntertaskError("evaluation failed")

    monkeypatch.setattr(intertask.pipeline, "evaluate_arm", fail)
    result = cli(["run", fx.config(), "target.max_steps=3"])
    assert result.code == 2 and "evaluation failed" in result.stderr
    assert (out / "t" / "config.yaml").read_text() == before  # still describes the result.json beside it


def test_eval_per_example_scores_go_to_a_file(fx: Fx) -> None:
    stage = next((fx.trained / "t" / "baseline").glob("target-*"))
    out = fx.ws / "e.json"
    result = cli(["eval", "--model", stage, "--task", "panx", "--languages", "en", "--data-dir", SAMPLE, "--max-samples", "5", "--output", out])
    assert result.code == 0, result.text
    assert "per_example" not in result.stdout and "per_example" not in out.read_text()
    assert json.loads((fx.ws / "e.per_example.json").read_text())["per_example"]["en"]


def test_validate_does_not_import_torch_for_a_misspelt_key(fx: Fx) -> None:
    cfg = fx.config(base_config(fx.ws, fx.model).replace("seed: 1", "sed: 1"))
    code = (
        "import sys; from intertask.cli.main import main\n"
        "try:\n    main(['validate', sys.argv[1]])\nexcept SystemExit as e:\n    print('torch' in sys.modules, e.code)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.stdout.strip() == "False 2", out.stdout + out.stderr


def test_feature_cache_metadata_is_json_and_never_unpickled(tmp_path, monkeypatch) -> None:
    import pickle

    from intertask.data import cache

    monkeypatch.delenv("INTERTASK_FEATURE_CACHE", raising=False)
    monkeypatch.setenv("INTERTASK_CACHE", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c" / "features"  # INTERTASK_CACHE respected
    entry = tmp_path / "entry"
    (entry / "inputs").mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (entry / "meta.pkl").write_bytes(pickle.dumps(Evil()))
    assert cache._read(entry) is None and not (tmp_path / "pwned").exists()
    assert cache._untag(json.loads(json.dumps(cache._tag({"x": [(1, 2), None]})), object_hook=cache._untag)) == {"x": [(1, 2), None]}


def test_shared_fixtures_unchanged(tiny_model, trained) -> None:
    """The cases above copy what they alter: the shared model and run are as built."""
    assert (tiny_model / "config.json").is_file() and (trained / "results.sqlite").is_file()
    from intertask.results.store import ResultsStore

    assert len(ResultsStore(trained / "results.sqlite", readonly=True).records()) == 1


# ----------------------------------------------------------------------------- signals (subprocesses)

SIGNAL_CASES = [
    ("run-sigint", "run", signal.SIGINT),
    ("run-sigterm", "run", signal.SIGTERM),
    ("grid-sigint", "grid", signal.SIGINT),
    ("grid-sigterm", "grid", signal.SIGTERM),
    ("eval-sigint", "eval", signal.SIGINT),
    ("eval-sigterm", "eval", signal.SIGTERM),
]


@pytest.mark.slow
@pytest.mark.parametrize("row", SIGNAL_CASES, ids=[r[0] for r in SIGNAL_CASES])
def test_signal_stops_with_130(row, fx: Fx, trained) -> None:
    _, command, sig = row
    out = fx.ws / "runs"
    if command == "eval":
        stage = next((trained / "t" / "baseline").glob("target-*"))
        # batch size 1 over four languages: seconds of embedding after the first pass, so the signal lands mid-work
        args = ["eval", "--model", stage, "--task", "tatoeba", "--languages", "ru,de,fr,uk", "--batch-size", "1", "--data-dir", SAMPLE]
    else:
        longer = base_config(fx.ws, fx.model).replace("max_steps: 2", "max_steps: 400").replace("max_train_samples: 16", "max_train_samples: 400")
        cfg = fx.config(longer)
        args = [command, cfg] + (["grid.seed=[1,2,3]"] if command == "grid" else [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "INTERTASK_PROGRESS": "1" if command == "eval" else "0"}
    log = fx.ws.parent / "stderr.log"  # a file, not a pipe: read while the command runs
    with open(log, "w") as err:
        # A test runner started in the background of a non-interactive shell inherits SIGINT ignored, and Python then
        # keeps it ignored (as it should); give the command the disposition of a terminal's foreground job.
        proc = subprocess.Popen(
            [sys.executable, "-m", "intertask", *map(str, args)], stdout=subprocess.PIPE, stderr=err, text=True, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    deadline = time.time() + 120
    # Wait until the work has started (a stage directory, or the first finished embedding pass), then interrupt.
    while time.time() < deadline and proc.poll() is None:
        if command == "eval" and "[done]" in log.read_text():
            break
        if command != "eval" and out.is_dir() and any(out.rglob("target-*")):
            time.sleep(1.0)
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    stderr = log.read_text()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "interrupted" in stderr.lower()
    if command == "grid":
        assert stderr.count("intermediate: none") <= 1 and "runs completed" not in stderr  # stopped: no next job
    assert not list(out.rglob("*.tmp")) if out.is_dir() else True


def test_eval_output_full_disk_keeps_the_result(fx: Fx, monkeypatch) -> None:
    """A full disk while writing eval --output: exit 2, the reason, and the scores still printed (not lost)."""
    import intertask.io

    def full(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(intertask.io, "write_json_atomic", full)
    stage = next((fx.trained / "t" / "baseline").glob("target-*"))
    out = fx.ws / "e.json"
    result = cli(["eval", "--model", stage, "--task", "panx", "--languages", "en", "--data-dir", SAMPLE, "--max-samples", "5", "--output", out])
    assert result.code == 2 and "No space left on device" in result.stderr and '"task": "panx"' in result.stdout
    assert "Traceback" not in result.text and not out.exists()
