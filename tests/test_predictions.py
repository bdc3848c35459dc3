"""Prediction files in the official XTREME / XTREME-R layout, scored the official way.

For every one of the 12 targets a small labelled fixture is predicted with the tiny random model
(`intertask.evaluation.predictions.write_predictions`, labels written alongside). The files are then read back
and scored with the official formulas, re-implemented here from their published definitions (google-research/
xtreme evaluate.py: read_label / read_tag / read_squad / read_xcopa, accuracy, seqeval f1 as it calls it, bucc_f1;
third_party/evaluate_squad.py and evaluate_mlqa.py: normalisation, EM, token F1, max over gold answers;
utils_mewslix.evaluate: MRR@20; utils_lareqa.average_precision_at_k: mAP@20); the official script itself is not
run (it is not available offline as a package). The numbers must equal the project's metrics on the same
predictions and `intertask eval`'s scores.
"""

from __future__ import annotations

import json
import re
import string
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from intertask.evaluation.predictions import prediction_file, write_predictions
from intertask.evaluation.zero_shot import evaluate_retrieval, evaluate_target
from intertask.tasks import get_task

sys.path.insert(0, str(Path(__file__).parent))
from test_targets import EN, RU, _bucc, _xquad_r, conllu, jsonl, squad_file, write

# ------------------------------------------------------------------------------- official formulas (re-written)


def read_label(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh]


def read_tag(path: Path) -> list[list[str]]:
    labels, example = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                example.append(line)
            else:
                labels.append(example)
                example = []
    if example:
        labels.append(example)
    return labels


def official_accuracy(labels, predictions) -> dict:
    assert len(labels) == len(predictions)
    return {"accuracy": 100 * sum(int(p == g) for p, g in zip(predictions, labels)) / len(predictions)}


def official_tag_f1(labels, predictions) -> dict:
    from seqeval.metrics import (  # what evaluate.py calls
        f1_score,
        precision_score,
        recall_score,
    )

    assert len(labels) == len(predictions)
    return {
        "f1": 100 * f1_score(labels, predictions),
        "precision": 100 * precision_score(labels, predictions),
        "recall": 100 * recall_score(labels, predictions),
    }


_PUNCT = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}.union(
    string.punctuation
)


def _norm(s: str, lang: str | None) -> list[str]:
    s = s.lower()
    if lang is None:  # SQuAD v1.1 evaluate-v1.1.py
        s = "".join(ch for ch in s if ch not in set(string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return s.split()
    s = "".join(ch for ch in s if ch not in _PUNCT)  # MLQA: every Unicode P* character
    articles = {"en": r"\b(a|an|the)\b", "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"}
    return re.sub(articles[lang], " ", s).split()


def official_qa(gold_doc: dict, predictions: dict, lang: str | None) -> dict:
    em = f1 = total = 0.0
    for article in gold_doc["data"]:
        for par in article["paragraphs"]:
            for qa in par["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                pred = predictions[qa["id"]]
                golds = [a["text"] for a in qa["answers"]]
                em += max(float(_norm(pred, lang) == _norm(g, lang)) for g in golds)
                scores = []
                for g in golds:
                    p_tok, g_tok = _norm(pred, lang), _norm(g, lang)
                    same = sum((Counter(p_tok) & Counter(g_tok)).values())
                    scores.append(
                        0.0
                        if same == 0
                        else 2 * (same / len(p_tok)) * (same / len(g_tok)) / (same / len(p_tok) + same / len(g_tok))
                    )
                f1 += max(scores)
    return {"exact_match": 100 * em / total, "f1": 100 * f1 / total}


def official_bucc(labels: list[str], predictions: list[str]) -> dict:
    gold, pred = {tuple(x.split("\t")) for x in labels}, {tuple(x.split("\t")) for x in predictions}
    n = len(gold & pred)
    if n == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    p, r = n / len(pred), n / len(gold)
    return {"f1": 100 * 2 * p * r / (p + r), "precision": 100 * p, "recall": 100 * r}


def official_mrr20(gold: dict, predictions: dict) -> float:
    ranks = []
    for ex_id, labels in gold.items():
        top = predictions.get(ex_id, [])[:20]
        ranks.append(next((1.0 / r for r, p in enumerate(top, start=1) if p == labels[0].strip()), 0.0))
    return 100 * sum(ranks) / len(ranks)


def official_map20(gold: dict, predictions: dict) -> float:
    aps = []
    for qid, targets in gold.items():
        ranked, score, hits = predictions[qid][:20], 0.0, 0.0
        for i, pred in enumerate(ranked):
            if pred in targets and pred not in ranked[:i]:
                hits += 1
                score += hits / (i + 1)
        aps.append(score / min(len(targets), 20))
    return 100 * sum(aps) / len(aps)


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def head_models(tiny_model, tmp_path_factory):
    from intertask.models.loading import build_model, load_tokenizer

    cache: dict[str, Path] = {}

    def get(task_name: str) -> Path:
        task = get_task(task_name)
        key = f"{task.head.name}:{len(task.labels)}"
        if key not in cache:
            out = tmp_path_factory.mktemp(task.head.name)
            build_model(task, str(tiny_model)).save_pretrained(out)
            load_tokenizer(tiny_model).save_pretrained(out)
            cache[key] = out
        return cache[key]

    return get


def _words(lines: list[str]) -> list[list[str]]:
    return [s.split() for s in lines]


def build_targets(d: Path, sample_data: Path) -> dict[str, str]:
    """A labelled test file per fine-tuned target, in the official layouts; -> {task: language}."""
    ru = (sample_data / "tatoeba/tatoeba.rus-eng.rus").read_text(encoding="utf-8").splitlines()[:24]
    en = (sample_data / "tatoeba/tatoeba.rus-eng.eng").read_text(encoding="utf-8").splitlines()[:24]
    nli = ("entailment", "neutral", "contradiction")
    write(d / "xnli/test-ru.tsv", "".join(f"{a}\t{b}\t{nli[i % 3]}\n" for i, (a, b) in enumerate(zip(ru, en))))
    write(d / "pawsx/test-de.tsv", "".join(f"{a}\t{b}\t{i % 2}\n" for i, (a, b) in enumerate(zip(en, reversed(en)))))
    panx_tags = ("B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "O")
    write(
        d / "panx/test-ru.tsv",
        "".join(
            "".join(f"{w}\t{panx_tags[(i + k) % 8]}\n" for k, w in enumerate(s)) + "\n"
            for i, s in enumerate(_words(ru))
        ),
    )
    upos = ("NOUN", "VERB", "ADJ", "PUNCT", "PRON", "NOUN", "ADP", "CCONJ", "SCONJ", "X")
    write(
        d / "ud/ru_test-ud-test.conllu",
        conllu([[(w, upos[(i + k) % 10]) for k, w in enumerate(s)] for i, s in enumerate(_words(ru))]),
    )
    squad_file(d / "xquad/xquad.ru.json", ru)
    squad_file(d / "mlqa/MLQA_V1/test/test-context-de-question-de.json", en)
    squad_file(d / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.ru.dev.json", ru)
    rows = [
        {"premise": ru[i], "choice1": ru[i + 1], "choice2": ru[i + 2], "question": "cause", "label": i % 2, "idx": i}
        for i in range(20)
    ]
    jsonl(d / "xcopa/data/et/test.et.jsonl", rows)
    return {
        "xnli": "ru",
        "pawsx": "de",
        "panx": "ru",
        "udpos": "ru",
        "xquad": "ru",
        "mlqa": "de",
        "tydiqa": "ru",
        "xcopa": "et",
    }


def build_retrieval(d: Path, sample_data: Path) -> dict[str, str]:
    ru = (sample_data / "tatoeba/tatoeba.rus-eng.rus").read_text(encoding="utf-8").splitlines()[:30]
    en = (sample_data / "tatoeba/tatoeba.rus-eng.eng").read_text(encoding="utf-8").splitlines()[:30]
    write(d / "tatoeba/tatoeba.rus-eng.rus", "\n".join(ru) + "\n")
    write(d / "tatoeba/tatoeba.rus-eng.eng", "\n".join(en) + "\n")
    _bucc(d, "ru", False, sample_data)
    _xquad_r(d, "en", EN)
    _xquad_r(d, "ru", RU)
    entities = [
        {"entity_id": f"Q{i}", "title": EN[i].split()[1], "description": EN[i], "description_language": "en"}
        for i in range(6)
    ]
    jsonl(d / "mewslix/candidate_set_entities.jsonl", entities)
    text = " ".join(RU[:3])
    mentions = [{"example_id": f"ex{i}", "mention_span": {"start": text.index(RU[i]), "end": text.index(RU[i]) + len(RU[i].split()[0]),
                 "text": RU[i].split()[0]}, "entity_id": ""} for i in range(3)]  # fmt: skip
    context = {
        "language": "uk",
        "text": text,
        "sentence_spans": [{"start": text.index(s), "end": text.index(s) + len(s)} for s in RU[:3]],
    }
    jsonl(d / "mewslix/wikinews_mentions/test-uk.jsonl", [{"context": context, "mentions": mentions}])
    write(d / "mewslix/wikinews_labels/test-uk.json", json.dumps({f"ex{i}": [f"Q{i}"] for i in range(3)}))
    return {"tatoeba": "ru", "bucc": "ru", "lareqa": "ru", "mewslix": "uk"}


def official_scores(task: str, lang: str, preds: Path, labels: Path) -> dict:
    """What evaluate.py (or, for LAReQA, utils_lareqa) computes from the two files, x100."""
    p, g = prediction_file(preds, task, "test", lang), prediction_file(labels, task, "test", lang)
    if task in ("xnli", "pawsx", "tatoeba"):
        return official_accuracy(read_label(g), read_label(p))
    if task in ("panx", "udpos"):
        return official_tag_f1(read_tag(g), read_tag(p))
    if task in ("xquad", "tydiqa", "mlqa"):
        return official_qa(json.loads(g.read_text()), json.loads(p.read_text()), lang if task == "mlqa" else None)
    if task == "xcopa":
        return official_accuracy(*[[json.loads(line)["label"] for line in f.read_text().splitlines()] for f in (g, p)])
    if task == "bucc":
        return official_bucc(read_label(g), read_label(p))
    if task == "mewslix":
        return {"map@20": official_mrr20(json.loads(g.read_text()), json.loads(p.read_text()))}
    if task == "lareqa":
        return {"map@20": official_map20(json.loads(g.read_text()), json.loads(p.read_text()))}
    raise AssertionError(task)


# ---------------------------------------------------------------------------------------------------- tests


def test_fine_tuned_targets_predictions_score_as_official(head_models, tmp_path, sample_data):
    data, preds, labels = tmp_path / "data", tmp_path / "preds", tmp_path / "labels"
    tasks = build_targets(data, sample_data)
    nonzero = 0
    for name, lang in tasks.items():
        task = get_task(name)
        summary = write_predictions(
            task, head_models(name), [lang], data, "test", preds, labels, batch_size=8, max_length=24
        )
        got = summary["languages"][lang]
        assert (
            got["labeled"]
            and Path(got["file"]) == prediction_file(preds, name, "test", lang)
            and Path(got["file"]).is_file()
        )
        official = official_scores(name, lang, preds, labels)
        ours = got["scores"]
        for metric, value in official.items():
            assert ours[metric] * 100 == pytest.approx(value, abs=1e-9), (name, metric, ours, official)
        nonzero += any(v > 0 for v in official.values())
        # the same checkpoint through `intertask eval` gives the same numbers
        evaluated = evaluate_target(task, head_models(name), [lang], data, "test", batch_size=8, max_length=24)[lang]
        assert {k: evaluated[k] for k in official} == pytest.approx({k: ours[k] for k in official}, abs=1e-12)
    assert nonzero >= 5  # the random model's scores are not all trivially zero
    # layout: evaluate.py's folder names and suffixes; one line per example / token
    assert sorted(p.name for p in preds.iterdir()) == sorted(tasks)
    assert len(read_label(prediction_file(preds, "xnli", "test", "ru"))) == 24
    assert [len(s) for s in read_tag(prediction_file(preds, "panx", "test", "ru"))] == [
        len(s) for s in read_tag(prediction_file(labels, "panx", "test", "ru"))
    ]
    assert set(json.loads(prediction_file(preds, "xquad", "test", "ru").read_text())) == {f"q{i}" for i in range(24)}


def test_retrieval_predictions_score_as_official(tiny_model, tmp_path, sample_data):
    data, preds, labels = tmp_path / "data", tmp_path / "preds", tmp_path / "labels"
    tasks = build_retrieval(data, sample_data)
    for name, lang in tasks.items():
        task = get_task(name)
        summary = write_predictions(task, tiny_model, [lang], data, "test", preds, labels, batch_size=16)
        got = summary["languages"][lang]
        official = official_scores(name, lang, preds, labels)
        for metric, value in official.items():
            assert got["scores"][metric] * 100 == pytest.approx(value, abs=1e-9), (name, metric, got, official)
        evaluated = evaluate_retrieval(task, tiny_model, [lang], data, "test", batch_size=16)[lang]
        for metric in official:
            assert evaluated[metric] == pytest.approx(got["scores"][metric], abs=1e-12), (name, metric)
    assert sorted(p.name for p in preds.iterdir()) == ["bucc2018", "lareqa", "mewslix", "tatoeba"]
    assert len(read_label(prediction_file(preds, "tatoeba", "test", "ru"))) == 30
    bucc_lines = read_label(prediction_file(preds, "bucc", "test", "ru"))
    assert bucc_lines and all(re.fullmatch(r"ru-\d{9}\ten-\d{9}", x) for x in bucc_lines)
    assert all(len(v) <= 20 for v in json.loads(prediction_file(preds, "mewslix", "test", "uk").read_text()).values())


def test_unlabeled_test_files_are_predicted(head_models, tmp_path):
    """XTREME's test files without labels: PAN-X / UD-POS tokens only, XNLI two columns, QA placeholder answers."""
    from typer.testing import CliRunner

    from intertask.cli.main import app

    data, preds = tmp_path / "data", tmp_path / "preds"
    write(data / "panx/test-ru.tsv", "".join("\n".join(s.split()) + "\n\n" for s in RU))
    write(data / "udpos/test-de.tsv", "Die\nKatze\nschläft\n\nJa\n")
    write(data / "xnli/test-ru.tsv", "".join(f"{a}\t{b}\n" for a, b in zip(RU, EN)))
    placeholder = {
        "version": "1.1",
        "data": [
            {
                "paragraphs": [
                    {
                        "context": c,
                        "qas": [{"id": f"t{i}", "question": "Кто ?", "answers": [{"answer_start": 0, "text": ""}]}],
                    }
                ]
            }
            for i, c in enumerate(RU)
        ],
    }
    write(data / "tydiqa/tydiqa.goldp.ru.dev.json", json.dumps(placeholder, ensure_ascii=False))
    for name, lang in (("panx", "ru"), ("udpos", "de"), ("xnli", "ru"), ("tydiqa", "ru")):
        out = CliRunner().invoke(app, ["predict", "--model", str(head_models(name)), "--task", name, "--languages", lang, "--split", "test",
                                       "--data-dir", str(data), "--output-dir", str(preds), "--batch-size", "4", "--max-length", "16"])  # fmt: skip
        assert out.exit_code == 0, out.output
        summary = json.loads(out.output)["languages"][lang]
        assert not summary["labeled"] and "scores" not in summary
    assert [len(s) for s in read_tag(prediction_file(preds, "panx", "test", "ru"))] == [len(s.split()) for s in RU]
    assert read_tag(prediction_file(preds, "udpos", "test", "de"))[0].__len__() == 3
    assert set(read_label(prediction_file(preds, "xnli", "test", "ru"))) <= {"entailment", "neutral", "contradiction"}
    assert sorted(json.loads(prediction_file(preds, "tydiqa", "test", "ru").read_text())) == [
        f"t{i}" for i in range(len(RU))
    ]


def test_run_with_evaluation_predict_writes_files_and_keeps_the_eval_cache(tiny_model, sample_data, tmp_path):
    from typer.testing import CliRunner

    from intertask.cli.main import app

    repo = Path(__file__).resolve().parent.parent
    args = ["run", str(repo / "configs/quickstart.yaml"), f"model.name_or_path={tiny_model}", f"output_dir={tmp_path}", f"data_dir={sample_data}",
            "intermediate=null", "target.max_steps=2", "target.max_train_samples=16", "target.max_eval_samples=8", "target.batch_size=8",
            "evaluation.max_eval_samples=8", "evaluation.languages=[ru]", "evaluation.retrieval_languages=[ru]"]  # fmt: skip
    out = CliRunner().invoke(app, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    [eval_file] = list((tmp_path / "quickstart" / "baseline").glob("target-*/eval-*[0-9a-f].json"))
    before = eval_file.stat().st_mtime_ns
    out = CliRunner().invoke(app, [*args, "evaluation.predict=true"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert eval_file.stat().st_mtime_ns == before  # predict does not change the evaluation's identity
    root = tmp_path / "quickstart" / "baseline" / "predictions"
    panx = read_tag(root / "panx" / "dev-ru.tsv")
    assert (
        len(panx) == len(read_tag(root / "labels" / "panx" / "dev-ru.tsv")) > 8
    )  # every dev sentence, not the eval subset
    assert len(read_label(root / "tatoeba" / "test-ru.tsv")) == len(
        read_label(root / "labels" / "tatoeba" / "test-ru.tsv")
    )
    from intertask.results.store import ResultsStore

    [record] = ResultsStore(tmp_path / "results.sqlite").records("quickstart")  # same run id with or without predict
    assert record["arm"] == "baseline"
    summary = json.loads((root / "panx" / "summary-dev.json").read_text())
    assert summary["languages"]["ru"]["labeled"] and 0.0 <= summary["languages"]["ru"]["scores"]["f1"] <= 1.0
