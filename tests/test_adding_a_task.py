"""docs/adding_a_task.md, run: its reader, language entry, record and config work as the page says."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from intertask.config import ExperimentConfig, apply_overrides, from_dict
from intertask.errors import DataFormatError
from intertask.tasks import TASKS, get_task
from intertask.tasks import languages as L

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding_a_task.md"

RU_TEST = """-DOCSTART- -X- O O

Владимир NNP B-NP B-PER
Путин NNP I-NP I-PER
посетил VB B-VP O
Казань NNP B-NP B-LOC
. . O O

Газпром NNP B-NP B-ORG
растёт VB B-VP O
"""


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def ru_ner(monkeypatch):
    """The page's module code, registered in a copy of the registry (the real one is left as it was)."""
    monkeypatch.setattr(TASKS, "_items", dict(TASKS._items))
    [languages_block] = [b for b in _blocks("python") if b.startswith("# intertask/tasks/languages.py")]
    namespace = dict(vars(L))
    exec(languages_block, namespace)
    monkeypatch.setattr(L, "RU_NER", namespace["RU_NER"], raising=False)
    module = {"__name__": "ru_ner_example"}
    exec("".join(b for b in _blocks("python") if b.startswith("# intertask/tasks/ru_ner.py")), module)
    return module


def _layout(root: Path, sample_data: Path) -> Path:
    (root / "ru_ner").mkdir(parents=True)
    (root / "ru_ner" / "test-ru.conll").write_text(RU_TEST, encoding="utf-8")
    shutil.copytree(sample_data / "panx", root / "panx")
    return root


def test_the_record_reads_the_conll_layout_and_english_panx(ru_ner, tmp_path, sample_data):
    from intertask.data.loading import load_examples

    task = get_task("ru_ner")
    assert task.languages == ("en", "ru") and task.training_task() is get_task("panx")
    data_dir = _layout(tmp_path, sample_data)
    test = load_examples(task, "test", "ru", data_dir).examples
    assert test == [
        {"tokens": ["Владимир", "Путин", "посетил", "Казань", "."], "tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]},
        {"tokens": ["Газпром", "растёт"], "tags": ["B-ORG", "O"]},
    ]
    dev_en = load_examples(task, "dev", "en", data_dir).examples  # the English dev: PAN-X's, read by the same reader
    assert dev_en and dev_en[0]["tokens"][:2] == ["Sioux", "Falls"]
    bad = tmp_path / "bad.conll"
    bad.write_text("Москва B-LOC\n\nНью-Йорк B-GPE\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 3: tag 'B-GPE' is not one of"):
        ru_ner["read_conll_ner"](bad)
    kept = ru_ner["read_conll_ner"](bad, on_bad_example="skip")
    assert kept.examples == [{"tokens": ["Москва"], "tags": ["B-LOC"]}] and len(kept.skipped) == 1
    with pytest.raises(ValueError, match="already registered"):
        exec("register(task)", {**ru_ner, "task": task})  # a second registration is an error


def test_the_page_config_validates_and_a_head_evaluates(ru_ner, tmp_path, sample_data, tiny_model):
    from intertask.evaluation.zero_shot import evaluate_target
    from intertask.models.loading import build_model, load_tokenizer
    from intertask.pipeline import validate_experiment

    data_dir = _layout(tmp_path / "data", sample_data)
    [config] = [b for b in _blocks("yaml") if b.startswith("# configs/ru_ner.yaml")]
    overrides = [f"data_dir={data_dir}", f"model.name_or_path={tiny_model}", "intermediate=null"]
    cfg = from_dict(ExperimentConfig, apply_overrides(yaml.safe_load(config), overrides))
    notes = validate_experiment(cfg)
    assert any("ru_ner: zero-shot evaluation on ru (test)" in n for n in notes), notes
    task = get_task("ru_ner")
    model_dir = tmp_path / "model"
    build_model(task, str(tiny_model)).save_pretrained(model_dir)
    load_tokenizer(tiny_model).save_pretrained(model_dir)
    scores = evaluate_target(task, model_dir, ["ru"], data_dir, split="test")["ru"]
    assert scores["examples"] == 2 and 0.0 <= scores["f1"] <= 1.0
