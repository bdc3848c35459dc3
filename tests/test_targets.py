"""Every XTREME / XTREME-R target task: registry, official file layouts, reader -> model -> metric, hub path.

Targets without data in ../shared/data get a tiny dataset in their official format in tmp_path; models are the
tiny random XLM-R of conftest (heads built on it and saved), so scores are meaningless but every code path runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from intertask.data.loading import load_examples
from intertask.errors import ConfigError
from intertask.evaluation.zero_shot import default_retrieval_layer, evaluate_retrieval, evaluate_target
from intertask.tasks import all_tasks, get_task
from intertask.tasks import languages as L

TARGETS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc", "tatoeba", "xcopa", "lareqa", "mewslix")

EN = ["The cat sat on the mat .", "Paris is the capital of France .", "I like green tea very much .",
      "The train leaves at nine .", "She reads a book in the park .", "We walked home after dinner ."]  # fmt: skip
RU = ["Кошка сидела на коврике .", "Париж столица Франции .", "Я очень люблю зелёный чай .",
      "Поезд уходит в девять .", "Она читает книгу в парке .", "Мы пошли домой после ужина ."]  # fmt: skip


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def squad_file(path: Path, contexts: list[str], prefix: str = "q") -> Path:
    """SQuAD v1.1 JSON: one question per context, whose answer is the context's first word."""
    paragraphs = [
        {"context": c, "qas": [{"id": f"{prefix}{i}", "question": f"What is {c.split()[1]} ?", "answers": [{"text": c.split()[0], "answer_start": 0}]}]}
        for i, c in enumerate(contexts)
    ]
    return write(path, json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}, ensure_ascii=False))


def conllu(sentences: list[list[tuple[str, str]]]) -> str:
    blocks = []
    for k, sent in enumerate(sentences):
        lines = [f"# sent_id = s{k}"] + [f"{i}\t{w}\t{w}\t{t}\t_\t_\t0\troot\t_\t_" for i, (w, t) in enumerate(sent, start=1)]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n"


# ---------------------------------------------------------------------------------------------------- registry


def test_every_target_is_registered_with_complete_records():
    names = {t.name for t in all_tasks()}
    assert set(TARGETS) <= names and {"paws", "copa"} <= names
    for name in TARGETS:
        task = get_task(name)
        d = task.describe()
        assert "target" in d["roles"] and d["head"] and d["metrics"] and d["languages"] and d["source"] and d["license"]
        assert task.local is not None
        for bench in ("xtreme", "xtreme-r"):
            assert set(L.benchmark_languages(name, bench)) <= set(task.languages)
    counts = {n: len(get_task(n).languages) for n in TARGETS}
    assert counts == {"xnli": 15, "pawsx": 7, "udpos": 38, "panx": 48, "xquad": 12, "mlqa": 7, "tydiqa": 9, "bucc": 4,
                      "tatoeba": 41, "xcopa": 12, "lareqa": 11, "mewslix": 11}  # fmt: skip
    train = {n: get_task(n).train_task for n in TARGETS}
    assert train["xnli"] == "mnli" and train["pawsx"] == "paws" and train["xquad"] == train["mlqa"] == "squad_v1"
    assert train["xcopa"] == "copa" and train["lareqa"] == "squad_v1"
    assert L.benchmark_languages("bucc", "xtreme-r") == () and len(L.benchmark_languages("tatoeba", "xtreme")) == 36


def test_tasks_cli_lists_every_target():
    from typer.testing import CliRunner

    from intertask.cli.main import app

    out = CliRunner().invoke(app, ["tasks", "--json"])
    assert out.exit_code == 0, out.output
    records = {r["name"]: r for r in json.loads(out.output)}
    for name in TARGETS:
        r = records[name]
        assert "target" in r["roles"] and r["head"] and r["metrics"] and len(r["languages"]) == len(get_task(name).languages)
    assert records["bucc"]["metrics"] == ["bucc_f1"] and records["mewslix"]["main_metric"] == "map@20"


# ------------------------------------------------------------------------------------------ trained-head targets


@pytest.fixture(scope="module")
def head_models(tiny_model, tmp_path_factory):
    """One saved head model per head type, built on the tiny encoder (random heads)."""
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


def _pawsx(d: Path) -> None:  # official x-final layout, with header
    rows = ["id\tsentence1\tsentence2\tlabel"] + [f"{i}\t{a}\t{b}\t{i % 2}" for i, (a, b) in enumerate(zip(EN, RU))]
    write(d / "pawsx/x-final/de/test_2k.tsv", "\n".join(rows) + "\n")


def _udpos(d: Path) -> None:  # two Russian treebanks: XTREME concatenates them
    write(d / "ud/ru_gsd-ud-test.conllu", conllu([[("Кошка", "NOUN"), ("спит", "VERB"), (".", "PUNCT")]]))
    write(d / "ud/ru_taiga-ud-test.conllu", conllu([[("Я", "PRON"), ("читаю", "VERB")], [("Да", "INTJ")]]))


def _xquad(d: Path) -> None:
    squad_file(d / "xquad/xquad.ru.json", RU)


def _mlqa(d: Path) -> None:
    squad_file(d / "mlqa/MLQA_V1/test/test-context-de-question-de.json", EN)


def _tydiqa(d: Path) -> None:  # labeled GoldP dev file (XTREME's copies are stripped)
    squad_file(d / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.ru.dev.json", RU)


def _xcopa(d: Path) -> None:  # cambridgeltl/xcopa repository layout
    rows = [{"premise": RU[i], "choice1": RU[i + 1], "choice2": RU[i + 2], "question": "cause", "label": i % 2, "idx": i} for i in range(4)]
    jsonl(d / "xcopa/data/et/test.et.jsonl", rows)


@pytest.mark.parametrize(
    "task_name, lang, build, n, metric",
    [
        ("pawsx", "de", _pawsx, 6, "accuracy"),
        ("udpos", "ru", _udpos, 3, "f1"),
        ("xquad", "ru", _xquad, 6, "exact_match"),
        ("mlqa", "de", _mlqa, 6, "exact_match"),
        ("tydiqa", "ru", _tydiqa, 6, "f1"),
        ("xcopa", "et", _xcopa, 4, "accuracy"),
    ],
)
def test_trained_head_target_reader_model_metric(task_name, lang, build, n, metric, head_models, tmp_path):
    build(tmp_path)
    task = get_task(task_name)
    result = evaluate_target(task, head_models(task_name), [lang], tmp_path, split="test", batch_size=4, max_length=64)
    scores = result[lang]
    assert scores["examples"] == n
    assert 0.0 <= scores[metric] <= 1.0 and 0.0 <= scores[task.main_metric] <= 1.0


def test_udpos_layouts_and_xquad_dev_is_english_only(tmp_path):
    _udpos(tmp_path)
    task = get_task("udpos")
    data = load_examples(task, "test", "ru", tmp_path)
    assert [Path(f).name for f in data.files] == ["ru_gsd-ud-test.conllu", "ru_taiga-ud-test.conllu"]
    assert [e["tags"] for e in data.examples] == [["NOUN", "VERB", "PUNCT"], ["PRON", "VERB"], ["INTJ"]]
    write(tmp_path / "udpos/test-de.tsv", "Katze\tNOUN\nschläft\tVERB\n\nJa\tINTJ\n")  # XTREME's preprocessed tsv
    assert [e["tokens"] for e in load_examples(task, "test", "de", tmp_path).examples] == [["Katze", "schläft"], ["Ja"]]
    with pytest.raises(ConfigError, match="only for en"):
        load_examples(get_task("xquad"), "dev", "ru", tmp_path)


# ------------------------------------------------------------------------------------------------- retrieval


def _bucc_split(d: Path, lang: str, split: str, official: bool, pairs: list[tuple[str, str]], extra_src: list[str], extra_tgt: list[str]) -> None:
    name = {"dev": "sample", "test": "training"}[split] if official else split
    base = d / "bucc2018" / (f"{lang}-en/{lang}-en.{name}" if official else f"{lang}-en.{name}")
    src = [(f"{lang}-{i:09d}", s) for i, (s, _) in enumerate(pairs)] + [(f"{lang}-{len(pairs) + i:09d}", s) for i, s in enumerate(extra_src)]
    tgt = [(f"en-{i:09d}", t) for i, (_, t) in enumerate(pairs)] + [(f"en-{len(pairs) + i:09d}", t) for i, t in enumerate(extra_tgt)]
    write(Path(f"{base}.{lang}"), "".join(f"{i}\t{s}\n" for i, s in reversed(src)))
    write(Path(f"{base}.en"), "".join(f"{i}\t{s}\n" for i, s in tgt))
    write(Path(f"{base}.gold"), "".join(f"{lang}-{i:09d}\ten-{i:09d}\n" for i in range(len(pairs))))


def _bucc(d: Path, lang: str, official: bool, sample_data: Path) -> None:
    """Gold pairs are identical sentences on both sides (cosine 1 with any encoder); the rest are distractors."""
    lines = (sample_data / "tatoeba/tatoeba.rus-eng.rus").read_text(encoding="utf-8").splitlines()
    en = (sample_data / "tatoeba/tatoeba.rus-eng.eng").read_text(encoding="utf-8").splitlines()
    _bucc_split(d, lang, "dev", official, [(s, s) for s in lines[:8]], lines[8:20], en[20:32])
    _bucc_split(d, lang, "test", official, [(s, s) for s in lines[40:48]], lines[48:60], en[60:72])


def test_bucc_mining_both_layouts_and_cli(tiny_model, tmp_path, sample_data):
    from typer.testing import CliRunner

    from intertask.cli.main import app

    _bucc(tmp_path, "ru", True, sample_data)  # official bucc2018/ru-en/ru-en.{sample,training}.*
    _bucc(tmp_path, "de", False, sample_data)  # XTREME bucc2018/de-en.{dev,test}.*
    task = get_task("bucc")
    corpus = load_examples(task, "dev", "ru", tmp_path).examples
    assert len(corpus.source) == 20 and len(corpus.target) == 20 and len(corpus.gold) == 8
    res = evaluate_retrieval(task, tiny_model, ["ru", "de"], tmp_path, split="test", batch_size=16)
    for lang in ("ru", "de"):
        r = res[lang]
        # identical sentences are mined, distractors cut off by the dev threshold (on test, with a random encoder,
        # a gold pair may fall just under it)
        assert r["dev_f1"] == 1.0 and r["precision"] == 1.0 and r["f1"] >= 0.8, r
        assert r["threshold_from"] == "dev" and r["gold_pairs"] == 8 and r["layer"] == -1 and r["examples"] == 20
    out = CliRunner().invoke(app, ["eval", "--model", str(tiny_model), "--task", "bucc", "--languages", "ru",
                                   "--data-dir", str(tmp_path), "--split", "test"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["languages"]["ru"]["f1"] == res["ru"]["f1"]


def test_retrieval_procedure_comes_from_the_record(tiny_model, tmp_path, sample_data):
    _bucc(tmp_path, "ru", True, sample_data)
    renamed = dataclasses.replace(get_task("bucc"), name="my_mining_task")  # no dispatch on the name
    res = evaluate_retrieval(renamed, tiny_model, ["ru"], tmp_path, split="dev", batch_size=16)["ru"]
    assert res["threshold_from"] == "dev" and {"precision", "recall", "f1"} <= set(res) and res["gold_pairs"] == 8
    with pytest.raises(ConfigError, match="xnli is not a retrieval task"):
        evaluate_retrieval(get_task("xnli"), tiny_model, ["ru"], tmp_path)


def _xquad_r(d: Path, lang: str, sentences: list[str]) -> None:
    """XQuAD-R: two paragraphs of three sentences, one question per paragraph answered by its 2nd sentence."""
    paragraphs = []
    for p in range(2):
        sents = sentences[3 * p : 3 * p + 3]
        context, breaks, pos = "", [], 0
        for s in sents:
            breaks.append([pos, pos + len(s)])
            context += s + " "
            pos += len(s) + 1
        context = context[:-1]
        qa = {"id": f"x{p}", "question": f"{sents[1]} ?", "answers": [{"text": sents[1].split()[0], "answer_start": breaks[1][0]}]}
        paragraphs.append({"context": context, "sentence_breaks": breaks, "qas": [qa]})
    write(d / f"lareqa/xquad-r/{lang}.json", json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}, ensure_ascii=False))


def test_lareqa_pools_candidates_of_all_languages(tiny_model, tmp_path):
    _xquad_r(tmp_path, "en", EN)
    _xquad_r(tmp_path, "ru", RU)
    task = get_task("lareqa")
    ru = load_examples(task, "test", "ru", tmp_path).examples
    assert len(ru.queries) == 2 and len(ru.documents) == 6
    assert ru.documents[1]["sentence"] == RU[1] and ru.documents[1]["xling_ids"] == {"x0"}
    res = evaluate_retrieval(task, tiny_model, ["ru"], tmp_path, batch_size=8)["ru"]
    # the pool holds both languages' 12 candidates; each question has 2 relevant answers (en + ru sentence)
    assert res["candidates"] == 12 and res["candidate_languages"] == ["en", "ru"] and res["queries"] == 2
    assert 0.0 <= res["map@20"] <= 1.0


def test_mewslix_mentions_retrieve_entities(tiny_model, tmp_path):
    entities = [{"entity_id": f"Q{i}", "title": EN[i].split()[1], "description": EN[i], "description_language": "en",
                 "description_url": "", "sentence_spans": []} for i in range(6)]  # fmt: skip
    jsonl(tmp_path / "mewslix/candidate_set_entities.jsonl", entities)
    text = " ".join(RU[:3])
    mentions = [{"example_id": f"ex{i}", "mention_span": {"start": text.index(RU[i]), "end": text.index(RU[i]) + len(RU[i].split()[0]),
                 "text": RU[i].split()[0]}, "entity_id": ""} for i in range(3)]  # fmt: skip
    context = {"document_title": "t", "document_url": "", "document_id": "d", "language": "uk", "text": text,
               "sentence_spans": [{"start": text.index(s), "end": text.index(s) + len(s)} for s in RU[:3]]}  # fmt: skip
    jsonl(tmp_path / "mewslix/wikinews_mentions/test-uk.jsonl", [{"context": context, "mentions": mentions}])
    write(tmp_path / "mewslix/wikinews_labels/test-uk.json", json.dumps({f"ex{i}": [f"Q{i}"] for i in range(3)}))
    task = get_task("mewslix")
    data = load_examples(task, "test", "uk", tmp_path).examples
    assert data.queries[1]["text"] == f"{RU[1].split()[0]} : {RU[1]}" and data.queries[1]["relevant"] == {"Q1"}
    res = evaluate_retrieval(task, tiny_model, ["uk"], tmp_path, batch_size=8)["uk"]
    assert res["queries"] == 3 and res["candidates"] == 6 and 0.0 <= res["map@20"] <= 1.0


def test_retrieval_layer_defaults_follow_xtreme(tiny_model, tmp_path, sample_data):
    base, large = SimpleNamespace(num_hidden_layers=12), SimpleNamespace(num_hidden_layers=24)
    assert default_retrieval_layer(get_task("tatoeba"), "xlm-roberta-base", base) == 8
    assert default_retrieval_layer(get_task("bucc"), "bert-base-multilingual-cased", base) == 8
    assert default_retrieval_layer(get_task("tatoeba"), "xlm-roberta-large", large) == 14
    assert default_retrieval_layer(get_task("bucc"), "xlm-roberta-large", large) == 20
    assert default_retrieval_layer(get_task("tatoeba"), "default", base) == -1  # the e5 embedding model: last layer
    assert default_retrieval_layer(get_task("bucc"), "intfloat/multilingual-e5-base", base) == -1
    assert default_retrieval_layer(get_task("tatoeba"), "/runs/3fe5a0/model", base) == 8  # "e5" inside a hash is not e5
    stage_of_e5 = SimpleNamespace(num_hidden_layers=12, _name_or_path="/cache/intertask/multilingual-e5-small")
    assert default_retrieval_layer(get_task("tatoeba"), "/runs/x/model", stage_of_e5) == -1
    assert default_retrieval_layer(get_task("lareqa"), "xlm-roberta-large", large) == -1
    task = get_task("tatoeba")
    res = evaluate_retrieval(task, tiny_model, ["ru"], sample_data, batch_size=16, pooling="cls", layer=1)
    assert res["ru"]["layer"] == 1 and res["ru"]["pooling"] == "cls"
    with pytest.raises(ConfigError, match="hidden states 0..2"):
        evaluate_retrieval(task, tiny_model, ["ru"], sample_data, layer=5)


# ---------------------------------------------------------------------------------------------------- hub path


def _hub_copy(task, directory: Path, rows: dict[str, list[dict]]):
    """The task with its HubDataset pointed at a local folder of {split}.jsonl files (datasets' own loader)."""
    for split, split_rows in rows.items():
        jsonl(directory / f"{split}.jsonl", split_rows)
    return dataclasses.replace(task, hub=dataclasses.replace(task.hub, path=str(directory), name=None))


def test_hub_code_paths_with_local_datasets(tiny_model, tmp_path, sample_data, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # Tatoeba: google/xtreme tatoeba.rus rows, evaluated like the local files
    ru = (sample_data / "tatoeba/tatoeba.rus-eng.rus").read_text(encoding="utf-8").splitlines()[:20]
    en = (sample_data / "tatoeba/tatoeba.rus-eng.eng").read_text(encoding="utf-8").splitlines()[:20]
    tatoeba = _hub_copy(get_task("tatoeba"), tmp_path / "tatoeba", {"validation": [
        {"source_sentence": a, "target_sentence": b, "source_lang": "rus", "target_lang": "eng"} for a, b in zip(ru, en)]})  # fmt: skip
    res = evaluate_retrieval(tatoeba, tiny_model, ["ru"], tmp_path, batch_size=16, source="hub")["ru"]
    assert res["examples"] == 20 and 0.0 <= res["accuracy"] <= 1.0
    # UD-POS: google/xtreme udpos.* stores pos_tags as class indices in UPOS order
    udpos = _hub_copy(get_task("udpos"), tmp_path / "udpos", {"test": [{"tokens": ["Кошка", "спит"], "pos_tags": [7, 15]}]})
    assert load_examples(udpos, "test", "ru", tmp_path, source="hub").examples == [{"tokens": ["Кошка", "спит"], "tags": ["NOUN", "VERB"]}]
    # XQuAD (google/xtreme XQuAD.ru: one "validation" split = our test)
    squad_row = {"id": "q0", "title": "t", "context": RU[0], "question": "Кто ?", "answers": {"text": ["Кошка"], "answer_start": [0]}}
    xquad = _hub_copy(get_task("xquad"), tmp_path / "xquad", {"validation": [squad_row]})
    [ex] = load_examples(xquad, "test", "ru", tmp_path, source="hub").examples
    assert ex["answers"] == {"text": ["Кошка"], "answer_start": [0]} and not ex["is_impossible"]
    # PAWS-X and XCOPA
    pawsx = _hub_copy(get_task("pawsx"), tmp_path / "pawsx", {"test": [{"id": 1, "sentence1": EN[0], "sentence2": EN[1], "label": 1}]})
    assert load_examples(pawsx, "test", "de", tmp_path, source="hub").examples == [{"text_a": EN[0], "text_b": EN[1], "label": "1"}]
    xcopa = _hub_copy(get_task("xcopa"), tmp_path / "xcopa", {"validation": [
        {"premise": RU[0], "choice1": RU[1], "choice2": RU[2], "question": "effect", "label": 1, "idx": 3}]})  # fmt: skip
    [mc] = load_examples(xcopa, "dev", "et", tmp_path, source="hub").examples
    assert mc == {"id": "3", "context": RU[0], "question": "effect", "choices": [RU[1], RU[2]], "label": 1}


def test_format_errors_name_the_record(tmp_path):
    from intertask.errors import DataFormatError
    from intertask.tasks.formats import read_bucc_corpus, read_lareqa

    src = write(tmp_path / "ru-en.dev.ru", "ru-000000001\tКошка .\n")
    tgt = write(tmp_path / "ru-en.dev.en", "en-000000001\tCat .\n")
    gold = write(tmp_path / "ru-en.dev.gold", "ru-000000001\ten-000000001\nru-000000009\ten-000000001\n")
    with pytest.raises(DataFormatError, match="ru-000000009"):
        read_bucc_corpus(src, tgt, gold)
    kept = read_bucc_corpus(src, tgt, gold, on_bad_example="skip")
    assert kept.examples.gold == {("ru-000000001", "en-000000001")} and len(kept.skipped) == 1
    bad = {"data": [{"paragraphs": [{"context": "A b. C d.", "sentence_breaks": [[0, 4]],
                                     "qas": [{"id": "q", "question": "?", "answers": [{"text": "C", "answer_start": 5}]}]}]}]}  # fmt: skip
    path = write(tmp_path / "ru.json", json.dumps(bad))
    with pytest.raises(DataFormatError, match=r"qas\[0\].*answer_start 5 lies in no sentence"):
        read_lareqa(path)
