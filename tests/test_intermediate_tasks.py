"""Intermediate tasks of the paper: readers, records, heads, hand-off, translate-train; on tiny official-format
fixtures and on the local data in ../shared/data (tiny random model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from intermediate_fixtures import write_intermediate_data

from intertask.config import ModelConfig, StageConfig
from intertask.data.loading import load_examples
from intertask.evaluation.metrics import squad_v2_scores
from intertask.models.loading import build_model, encoder_state_dict
from intertask.tasks import get_task
from intertask.tasks.intermediate import QAPredictions, read_nli_mixture, squad_v2_with_best_threshold
from intertask.training.recipe import StageContext, run_stage

TASKS = ["anli_plus", "anli", "qqp", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa", "siqa", "ccg"]


@pytest.fixture(scope="module")
def inter_data(tmp_path_factory) -> Path:
    return write_intermediate_data(tmp_path_factory.mktemp("inter-data"))


def _stage(task: str, **kw) -> StageConfig:
    base = dict(task=task, max_steps=2, batch_size=4, eval_batch_size=8, max_train_samples=16, max_eval_samples=8, max_seq_length=64, learning_rate=1e-3)
    return StageConfig(**{**base, **kw})


def _assert_hands_off(stage_dir: Path, tiny_model: Path) -> None:
    """The stage's encoder (and only the encoder) goes to a target head of another type."""
    model = build_model(get_task("panx"), str(tiny_model), init_encoder_from=stage_dir)
    got = model.base_model.state_dict()
    expected = encoder_state_dict(stage_dir, model.base_model_prefix)
    for key, value in got.items():
        assert torch.equal(value, expected[key]), key


# ----------------------------------------------------------------------------- readers and records


def test_records_are_intermediate_tasks_with_official_layouts():
    heads = {"anli_plus": "sequence_classification", "qqp": "sequence_classification", "squad_v2": "span_qa_with_null",
             "hellaswag": "multiple_choice", "commonsenseqa": "multiple_choice", "cosmosqa": "multiple_choice",
             "siqa": "multiple_choice", "ccg": "token_classification", "mlm": "masked_lm"}  # fmt: skip
    for name, head in heads.items():
        task = get_task(name)
        assert task.head.name == head and task.roles == {"intermediate"} and "ru" in task.languages, name
        assert set(task.local.files) >= {"train"}
    assert get_task("squad_v2").main_metric == "best_f1"


def test_anli_plus_concatenates_anli_mnli_snli_fever(inter_data):
    data = load_examples(get_task("anli_plus"), "train", "en", inter_data)
    assert len(data.files) == 6
    # 3 ANLI rounds x 12 + MNLI 12 + SNLI 12 minus 3 no-consensus ("-") + FEVER 12
    assert len(data.examples) == 36 + 12 + 9 + 12
    assert {e["label"] for e in data.examples} == {"entailment", "neutral", "contradiction"}
    fever = read_nli_mixture(inter_data / "anli/nli_fever/train_fitems.jsonl").examples
    assert [e["label"] for e in fever[:3]] == ["entailment", "contradiction", "neutral"]
    assert len(load_examples(get_task("anli_plus"), "dev", "en", inter_data).examples) == 36  # ANLI R1-R3 dev


def test_commonsenseqa_and_siqa_readers(inter_data):
    csqa = load_examples(get_task("commonsenseqa"), "train", "en", inter_data).examples
    assert len(csqa[0]["choices"]) == 5 and [e["label"] for e in csqa[:6]] == [0, 1, 2, 3, 4, 0]
    siqa = load_examples(get_task("siqa"), "dev", "en", inter_data).examples  # labels from dev-labels.lst
    assert len(siqa[0]["choices"]) == 3 and [e["label"] for e in siqa[:4]] == [0, 1, 2, 0]


def test_ccg_label_set_comes_from_training_data(inter_data):
    from intertask.training.recipe import fit_task_to_data

    ccg = get_task("ccg")
    assert ccg.labels == ()
    train = load_examples(ccg, "train", "en", inter_data)
    dev = load_examples(ccg, "dev", "en", inter_data)
    fitted = fit_task_to_data(ccg, train, dev)
    assert set(fitted.labels) == {"NP/N", "N", "(S\\NP)/NP", "NP", "S[dcl]\\NP", "<unk>"}
    assert "PP/NP" not in {t for e in dev.examples for t in e["tags"]} and "<unk>" in {t for e in dev.examples for t in e["tags"]}


def test_squad_v2_postprocess_feeds_squad_v2_scores_and_best_threshold():
    refs = {"a": ["the cat"], "b": []}
    preds = QAPredictions({"a": "", "b": "dog"}, spans={"a": "the cat", "b": "dog"}, null_odds={"a": 0.5, "b": 2.0})
    scores = squad_v2_with_best_threshold(preds, refs)
    assert scores["f1"] == squad_v2_scores(preds, refs)["f1"] == 0.0  # the model's own decisions: both wrong
    assert scores["best_f1"] == 1.0 and 0.5 <= scores["best_f1_threshold"] < 2.0  # a threshold between the odds fixes both
    assert scores["has_ans_f1"] == 0.0 and scores["no_ans_f1"] == 0.0


# ----------------------------------------------------------------------------- every task trains, evaluates, hands off


@pytest.mark.parametrize("name", TASKS)
def test_task_trains_evaluates_and_hands_off(name, inter_data, tiny_model, tmp_path):
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=3, data_dir=inter_data)
    summary = run_stage(_stage(name), ctx, tmp_path / name, "intermediate")
    task = get_task(name)
    assert summary["steps"] == 2 and summary["task"] == name
    assert task.main_metric in summary["dev_metrics"] and np.isfinite(summary["dev_metrics"][task.main_metric])
    saved = json.loads((tmp_path / name / "stage.json").read_text())
    assert saved["dev_metrics"] == summary["dev_metrics"]
    if name == "ccg":
        labels = json.loads((tmp_path / name / "model" / "config.json").read_text())["id2label"]
        assert "<unk>" in labels.values()
    if name == "squad_v2":
        assert {"best_f1", "best_f1_threshold", "has_ans_f1", "no_ans_f1"} <= set(summary["dev_metrics"])
    _assert_hands_off(tmp_path / name, tiny_model)


@pytest.mark.parametrize("name", ["hellaswag", "cosmosqa", "siqa", "commonsenseqa"])
def test_multiple_choice_shapes(name, inter_data, tiny_model):
    """4 choices (HellaSwag, CosmosQA), 3 (SIQA), 5 (CSQA): one score per choice."""
    from intertask.models.loading import load_tokenizer

    task = get_task(name)
    examples = load_examples(task, "dev", "en", inter_data).examples[:3]
    tok = load_tokenizer(str(tiny_model))
    feats = task.head.featurize(examples, tok, task.labels, 64, train=False)
    batch = task.head.collate(feats.inputs, tok)
    n = {"hellaswag": 4, "cosmosqa": 4, "siqa": 3, "commonsenseqa": 5}[name]
    assert batch["input_ids"].shape[:2] == (3, n)
    model = build_model(task, str(tiny_model))
    assert model(**batch).logits.shape == (3, n)


def test_translate_train_reads_the_translated_file(inter_data, tiny_model, tmp_path):
    """intermediate.language: ru reads hellaswag_train_ru.jsonl (same format); dev stays English."""
    task = get_task("hellaswag")
    ru = load_examples(task, "train", "ru", inter_data)
    assert ru.files[0].endswith("hellaswag/hellaswag_train_ru.jsonl") and ru.examples[0]["context"].startswith("кошка")
    assert load_examples(task, "dev", "ru", inter_data).files[0].endswith("hellaswag_val.jsonl")
    assert get_task("qqp").local.paths(inter_data, "train", "ru")[0].name == "train_ru.tsv"  # never the English file
    assert get_task("squad_v2").local.translated["train"].startswith("squad/train-v2.0_{lang}.json|squad/{lang}/train-v2.0.json")
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=1, data_dir=inter_data)
    summary = run_stage(_stage("hellaswag", language="ru"), ctx, tmp_path / "hs-ru", "intermediate")
    assert summary["data"]["train"]["files"][0].endswith("hellaswag_train_ru.jsonl")
    assert summary["data"]["dev"]["files"][0].endswith("hellaswag_val.jsonl")


# ----------------------------------------------------------------------------- the local data in ../shared/data


@pytest.fixture(scope="module")
def local_data(shared_data, tmp_path_factory) -> Path:
    """../shared/data has only dev splits of these tasks: link each dev file as train too (a smoke run, not a
    result) under the official names."""
    root = tmp_path_factory.mktemp("local-data")
    links = {
        "squad/train-v1.1.json": "squad/train-v1.1.subset-44articles.json",
        "squad/dev-v1.1.json": "squad/dev-v1.1.json",
        "cosmosqa/train.csv": "cosmosqa/valid.csv",
        "cosmosqa/valid.csv": "cosmosqa/valid.csv",
        "hellaswag/hellaswag_train.jsonl": "hellaswag/hellaswag_val_500_en.jsonl",
        "hellaswag/hellaswag_val_500_en.jsonl": "hellaswag/hellaswag_val_500_en.jsonl",
        "siqa/socialIQa_v1.4_trn.jsonl": "siqa/socialIQa_v1.4_dev.jsonl",
        "siqa/socialIQa_v1.4_dev.jsonl": "siqa/socialIQa_v1.4_dev.jsonl",
        **{f"anli/R{n}/train.jsonl": f"anli/ANLI_analysis_r{n}_dev.csv" for n in (1, 2, 3)},
        **{f"anli/ANLI_analysis_r{n}_dev.csv": f"anli/ANLI_analysis_r{n}_dev.csv" for n in (1, 2, 3)},
    }
    for name, target in links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(shared_data / target)
    return root


@pytest.mark.parametrize("name", ["squad_v1", "cosmosqa", "hellaswag", "anli", "siqa"])
def test_local_data_runs(name, local_data, tiny_model, tmp_path):
    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=0, data_dir=local_data)
    summary = run_stage(_stage(name, max_seq_length=128), ctx, tmp_path / name, "intermediate")
    assert summary["steps"] == 2 and summary["data"]["train"]["skipped"] == 0
    assert get_task(name).main_metric in summary["dev_metrics"]


@pytest.mark.slow
def test_default_model_three_steps(local_data, tmp_path):
    """The embedded multilingual-e5-small: HellaSwag (multiple choice, with a pooler) for 3 steps, then hand-off."""
    ctx = StageContext(model=ModelConfig(name_or_path="default", freeze_embeddings=True), seed=0, data_dir=local_data)  # 96M frozen: fast steps
    summary = run_stage(
        _stage("hellaswag", max_steps=3, batch_size=2, max_train_samples=6, max_eval_samples=4, learning_rate=2e-5), ctx, tmp_path / "hs", "intermediate"
    )
    assert summary["steps"] == 3 and 0.0 <= summary["dev_metrics"]["accuracy"] <= 1.0
    model = build_model(get_task("panx"), "default", init_encoder_from=tmp_path / "hs")
    expected = encoder_state_dict(tmp_path / "hs", model.base_model_prefix)
    key = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.base_model.state_dict()[key], expected[key])
