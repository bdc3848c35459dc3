"""Tests for intertask.data.readers.

1. real sample lines (tests/fixtures/formats, provenance in its README.md) parse to the canonical shapes;
2. every reader over the full real file in ../shared/data (skipped when absent), with the counts of SOURCES.md;
3. BOM / CRLF / gzip variants parse identically to the clean file;
4. a table of malformed inputs, generated in tmp_path: each raises DataFormatError naming the file and the
   right line or record, and record-level defects are collected (not raised) with on_bad_example="skip".
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import pytest

from intertask.data import readers as R
from intertask.errors import ConfigError, DataFormatError

FIX = Path(__file__).parent / "fixtures" / "formats"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def fx(name: str) -> str:
    """A fixture's text with LF line ends (the 'clean' form)."""
    return (FIX / name).read_bytes().decode("utf-8").replace("\r\n", "\n")


def fx_json(name: str) -> Any:
    return json.loads(fx(name))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# ----------------------------------------------------------------------------------------------------------------
# 1. Real sample lines
# ----------------------------------------------------------------------------------------------------------------


def test_xnli_pairs():
    r = R.read_pair_tsv(FIX / "xnli_dev-ru.tsv", R.NLI_LABELS)
    assert len(r.examples) == 12 and r.skipped == []
    assert r.examples[0] == {
        "text_a": "И он сказал: Мама, я дома.",
        "text_b": "Он позвал маму, как только вышел из школьного автобуса.",
        "label": "neutral",
    }
    assert [e["label"] for e in r.examples[:3]] == ["neutral", "contradiction", "entailment"]


def test_pawsx_csv_quoting_is_undone():
    r = R.read_pair_tsv(FIX / "pawsx_dev-de.tsv", R.PAWSX_LABELS)
    assert len(r.examples) == 8
    # line 115 of dev-de.tsv: XTREME wrote it with csv.writer, which quoted the field and doubled the quote
    assert r.examples[5]["text_a"] == 'Siebenberg bezeichnete ihn als seinen Lieblingssong auf dem Album ", weil er so rein und persönlich ist.'
    # and the result equals what the csv module reads
    rows = list(csv.reader(io.StringIO(fx("pawsx_dev-de.tsv")), delimiter="\t"))
    assert [[e["text_a"], e["text_b"], e["label"]] for e in r.examples] == rows


def test_pawsx_official_header(tmp_path):
    lines = fx("xnli_dev-ru.tsv").splitlines()[:3]
    body = "id\tsentence1\tsentence2\tlabel\n" + "".join(f"{i}\t{line.rsplit(chr(9), 1)[0]}\t1\n" for i, line in enumerate(lines))
    r = R.read_pair_tsv(write(tmp_path, "dev_2k.tsv", body), R.PAWSX_LABELS)
    assert [e["label"] for e in r.examples] == ["1", "1", "1"]
    assert r.examples[0]["text_a"] == "И он сказал: Мама, я дома."


def test_mnli_qqp_header_driven(tmp_path):
    mnli = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
        "0\t31193\t31193n\tgovernment\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tConceptually cream skimming has two basic "
        "dimensions.\tProduct and geography are what make cream skimming work. \tneutral\tneutral\n"
    )
    r = R.read_mnli(write(tmp_path, "train.tsv", mnli))
    assert r.examples == [{"text_a": "Conceptually cream skimming has two basic dimensions.",
                           "text_b": "Product and geography are what make cream skimming work. ", "label": "neutral"}]  # fmt: skip
    line = {"annotator_labels": ["neutral"], "genre": "government", "gold_label": "neutral", "pairID": "31193n",
            "sentence1": "Conceptually cream skimming has two basic dimensions.",
            "sentence2": "Product and geography are what make cream skimming work. "}  # fmt: skip
    assert R.read_mnli(write(tmp_path, "multinli_1.0_train.jsonl", json.dumps(line) + "\n")).examples == r.examples
    qqp = (
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration is enough?\t0\n"
    )
    assert R.read_qqp_tsv(write(tmp_path, "dev.tsv", qqp)).examples == [
        {"text_a": "How is the life of a math student?", "text_b": "Which level of prepration is enough?", "label": "0"}
    ]


def test_anli_csv_and_jsonl(tmp_path):
    r = R.read_anli(FIX / "anli_r1_dev.csv")
    assert [e["label"] for e in r.examples] == ["neutral", "contradiction", "entailment", "contradiction", "neutral"]
    assert r.examples[2]["text_b"] == "The literature of England has non english examples."
    lines = [json.dumps({"uid": str(i), "context": e["text_a"], "hypothesis": e["text_b"], "label": e["label"][0],
                         "reason": ""}) for i, e in enumerate(r.examples)]  # fmt: skip
    assert R.read_anli(write(tmp_path, "dev.jsonl", "\n".join(lines) + "\n")).examples == r.examples


def test_panx_tags():
    r = R.read_conll_tags(FIX / "panx_dev-ru.tsv", R.PANX_TAGS)
    assert r.examples == [
        {"tokens": ["Отличился", "во", "время", "боёв", "в", "Германии", "."], "tags": ["O"] * 5 + ["B-LOC", "O"]},
        {"tokens": ["1920—1922", "—", "техник", "военно-гидротехнического", "отряда", "(", "Чернигов", ")", ","],
         "tags": ["O"] * 6 + ["B-LOC", "O", "O"]},
    ]  # fmt: skip


def test_panx_language_prefix(tmp_path):
    clean = R.read_conll_tags(FIX / "panx_dev-ru.tsv").examples
    prefixed = "\n".join("ru:" + line if line else line for line in fx("panx_dev-ru.tsv").split("\n"))
    assert R.read_conll_tags(write(tmp_path, "ru-dev", prefixed)).examples == clean
    # only when every token carries it: a lone "ru:" token is kept as it is
    mixed = fx("panx_dev-ru.tsv").replace("Отличился\tO", "ru:Отличился\tO")
    assert R.read_conll_tags(write(tmp_path, "mixed.tsv", mixed)).examples[0]["tokens"][0] == "ru:Отличился"
    assert R.read_conll_tags(write(tmp_path, "never.tsv", prefixed), strip_lang_prefix=False).examples[0]["tokens"][0] == "ru:Отличился"


def test_conllu_skips_ranges_and_empty_nodes():
    r = R.read_conllu_pos(FIX / "en_ewt-ud.conllu", multiword="syntactic")
    assert r.examples == [
        {"tokens": ["Today", "'s", "Article"], "tags": ["NOUN", "PART", "NOUN"]},
        {"tokens": ["They", "recently", "surprised", "me", "a", "larger", "order", "."],
         "tags": ["PRON", "ADV", "VERB", "PRON", "DET", "ADJ", "NOUN", "PUNCT"]},
    ]  # fmt: skip
    # default: XTREME's items, the fused form with its span head's UPOS
    assert R.read_conllu_pos(FIX / "en_ewt-ud.conllu").examples[0] == {"tokens": ["Today's", "Article"], "tags": ["NOUN", "NOUN"]}


def test_conllu_multiword_tokens_as_xtreme():
    """Expected items = the output of XTREME's own conversion (third_party/ud-conversion-tools/conllu_to_conll.py
    --lang <code> --replace_subtokens_with_fused_forms, then utils_preprocess.py udpos_preprocess), run offline
    on these fixture files (networkx 3 with a compatibility shim) when the test was written."""
    en = R.read_conllu_pos(FIX / "en_mwt-ud-test.conllu").examples
    assert en == [
        {"tokens": ["I", "don't", "know", ",", "it's", "fine", "."], "tags": ["PRON", "AUX", "VERB", "PUNCT", "PRON", "ADJ", "PUNCT"]},
        {"tokens": ["gonna", "go"], "tags": ["VERB", "VERB"]},  # one highest word: gon (root)
        # tie in the basic tree (AUX would win by precedence), but can's enhanced DEPS give it more ancestors
        {"tokens": ["cannot", "stop", ",", "enhanced"], "tags": ["PART", "VERB", "PUNCT", "ADJ"]},
        # the "_ _ x" sentence is dropped (text withheld); spaces and U+200C leave the forms
        {"tokens": ["ab", "cd"], "tags": ["NOUN", "NOUN"]},
    ]
    assert sum(len(e["tokens"]) for e in en) == 15
    syntactic = R.read_conllu_pos(FIX / "en_mwt-ud-test.conllu", multiword="syntactic").examples
    assert [len(e["tokens"]) for e in syntactic] == [9, 3, 5, 3, 2] and syntactic[0]["tokens"][1:3] == ["do", "n't"]
    # the tie-break order is per language, from the file name (es_...) or `language`
    es = R.read_conllu_pos(FIX / "es_mwt-ud-test.conllu").examples
    assert es == [{"tokens": ["Vamos", "al", "cine", "del", "barrio", "dámelo", "sehe"], "tags": ["VERB", "ADP", "NOUN", "ADP", "NOUN", "VERB", "AUX"]}]
    assert R.read_conllu_pos(FIX / "es_mwt-ud-test.conllu", language="de").examples[0]["tags"][-1] == "PRON"
    with pytest.raises(ConfigError, match="multiword"):
        R.read_conllu_pos(FIX / "es_mwt-ud-test.conllu", multiword="fused")  # type: ignore[arg-type]


def test_conllu_ud_english_ewt_token_counts_as_xtreme(shared_data):
    """EWT test: XTREME's UD-POS file has 24,740 items; the syntactic words are 25,094 (302 sentences differ)."""
    path = shared_data / "ud" / "en_ewt-ud-test.conllu"
    xtreme = R.read_conllu_pos(path).examples
    words = R.read_conllu_pos(path, multiword="syntactic").examples
    assert (len(xtreme), sum(len(e["tokens"]) for e in xtreme)) == (2077, 24740)
    assert sum(len(e["tokens"]) for e in words) == 25094
    assert sum(a != b for a, b in zip(xtreme, words)) == 302


CCG_PIPES = "Pierre|NNP|N/N Vinken|NNP|N ,|,|, 61|CD|N/N years|NNS|N old|JJ|(S[adj]\\NP)\\NP\nIt|PRP|NP rains|VBZ|S[dcl]\\NP\n"


def test_ccg_supertags(tmp_path):
    r = R.read_ccg_supertags(write(tmp_path, "wsj.stagged", CCG_PIPES))
    assert r.examples[0] == {"tokens": ["Pierre", "Vinken", ",", "61", "years", "old"],
                             "tags": ["N/N", "N", ",", "N/N", "N", "(S[adj]\\NP)\\NP"]}  # fmt: skip
    conll = "Pierre\tN/N\nVinken\tN\n\nIt\tNP\nrains\tS[dcl]\\NP\n"
    assert R.read_ccg_supertags(write(tmp_path, "ccg.tsv", conll)).examples[1] == {"tokens": ["It", "rains"], "tags": ["NP", "S[dcl]\\NP"]}


def test_squad_v11_mlqa_tydiqa_train():
    r = R.read_squad_json(FIX / "squad_dev-v1.1.excerpt.json")
    assert len(r.examples) == 3
    assert r.examples[0]["id"] == "56be4db0acb8001400a502ec"
    assert r.examples[0]["answers"] == {"text": ["Denver Broncos"] * 3, "answer_start": [177] * 3}
    assert r.examples[0]["is_impossible"] is False
    assert set(r.examples[0]) == {"id", "question", "context", "answers", "is_impossible"}
    m = R.read_squad_json(FIX / "mlqa_dev-de-de.excerpt.json").examples
    assert m[0]["answers"] == {"text": ["überwiegend antibritisch und prorussisch"], "answer_start": [1591]}
    t = R.read_squad_json(FIX / "tydiqa.goldp.en.train.excerpt.json").examples
    assert [(e["id"], e["answers"]["text"]) for e in t] == [("12", ["1920s"]), ("0", ["Sully Prudhomme"])]


def test_tydiqa_dev_placeholder_answers():
    path = FIX / "tydiqa.goldp.en.dev.excerpt.json"
    with pytest.raises(DataFormatError, match="remove_qa_test_annotations") as info:
        R.read_squad_json(path)
    assert info.value.where == "data[0].paragraphs[0].qas[0]"
    r = R.read_squad_json(path, allow_unlabeled=True)
    assert [e["answers"] for e in r.examples] == [{"text": [], "answer_start": []}] * 2
    assert r.examples[0]["id"] == "english--3215621880858840488-2"
    skipped = R.read_squad_json(path, on_bad_example="skip")
    assert skipped.examples == [] and len(skipped.skipped) == 2


def test_squad_v20(tmp_path):
    doc = fx_json("squad_dev-v1.1.excerpt.json")
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    for qa in qas:
        qa["is_impossible"] = False
    qas.append({"id": "impossible-1", "question": "Who sang at Super Bowl 49?", "answers": [], "is_impossible": True,
                "plausible_answers": [{"text": "Beyoncé", "answer_start": 0}]})  # fmt: skip
    path = write(tmp_path, "dev-v2.0.json", json.dumps(doc))
    r = R.read_squad_json(path, version="2.0")
    assert [e["is_impossible"] for e in r.examples] == [False, False, False, True]
    assert r.examples[3]["answers"] == {"text": [], "answer_start": []}
    with pytest.raises(DataFormatError, match="version='2.0'"):
        R.read_squad_json(path)


def test_tatoeba():
    r = R.read_tatoeba(FIX / "tatoeba.rus-eng.rus", FIX / "tatoeba.rus-eng.eng")
    src, tgt = r.examples
    assert len(src) == len(tgt) == 6
    assert src[0] == "Я знаю много людей, у которых нет прав."
    assert tgt[0] == "I know a lot of people who don't have driver's licenses."


def test_bucc(tmp_path):
    ru = write(tmp_path, "ru-en.dev.ru", "ru-000000001\tПривет, мир.\nru-000000002\tКак дела?\n")
    en = write(tmp_path, "ru-en.dev.en", "en-000000001\tHow are you?\n")
    gold = write(tmp_path, "ru-en.dev.gold", "ru-000000002\ten-000000001\n")
    assert R.read_bucc(ru).examples == {"ru-000000001": "Привет, мир.", "ru-000000002": "Как дела?"}
    assert R.read_bucc(en).examples == {"en-000000001": "How are you?"}
    assert R.read_bucc_gold(gold).examples == {("ru-000000002", "en-000000001")}


def test_xcopa():
    r = R.read_xcopa_jsonl(FIX / "xcopa_train-en.jsonl")
    assert r.examples[0] == {"id": "0", "context": "My body cast a shadow over the grass.", "question": "cause",
                             "choices": ["The sun was rising.", "The grass was cut."], "label": 0}  # fmt: skip
    et = R.read_xcopa_jsonl(FIX / "xcopa_val.et.jsonl").examples  # CRLF in the source
    assert et[0]["choices"] == ["Tualett täitus veega.", "Tilast voolas vett."] and et[0]["label"] == 1


def test_siqa_correct_key_and_labels_file(tmp_path):
    r = R.read_siqa_jsonl(FIX / "siqa_dev.jsonl")
    assert [e["label"] for e in r.examples] == [2, 0, 1, 0, 2]
    assert r.examples[0]["choices"] == ["make a new plan", "Go home and see Riley", "Find somewhere to go"]
    # official release: no 'correct' key, labels 1/2/3 in a separate file
    objs = [json.loads(line) for line in fx("siqa_dev.jsonl").splitlines()]
    labels = "".join(f"{'ABC'.index(o.pop('correct')) + 1}\n" for o in objs)
    jsonl = write(tmp_path, "dev.jsonl", "".join(json.dumps(o) + "\n" for o in objs))
    official = R.read_siqa_jsonl(jsonl, write(tmp_path, "dev-labels.lst", labels))
    assert official.examples == r.examples
    # both present: they must agree
    assert R.read_siqa_jsonl(FIX / "siqa_dev.jsonl", write(tmp_path, "agree.lst", labels)).examples == r.examples


def test_hellaswag_both_schemas(tmp_path):
    r = R.read_hellaswag_jsonl(FIX / "hellaswag_val.jsonl")
    assert len(r.examples) == 4 and r.examples[0]["label"] == 2 and r.examples[0]["question"] == ""
    assert r.examples[0]["context"].startswith("[header] How to recover from an emotional affair")
    official = {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
                "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain",
                "label": 3, "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                                        "is holding a rubik's cube.", "starts pulling up roofing on a roof."]}  # fmt: skip
    no_ctx = {k: v for k, v in official.items() if k != "ctx"}
    path = write(tmp_path, "hellaswag_val.jsonl", json.dumps(official) + "\n" + json.dumps(no_ctx) + "\n")
    a, b = R.read_hellaswag_jsonl(path).examples
    assert a == b == {"id": "24", "context": "A man is sitting on a roof. he", "question": "",
                      "choices": official["endings"], "label": 3}  # fmt: skip


def test_cosmosqa_csv_and_jsonl(tmp_path):
    r = R.read_cosmosqa_csv(FIX / "cosmosqa_valid.csv")
    assert len(r.examples) == 4
    assert r.examples[0]["question"] == "Why is this person asking about divorce ?" and r.examples[0]["label"] == 1
    rows = list(csv.DictReader(io.StringIO(fx("cosmosqa_valid.csv"))))
    jsonl = "".join(json.dumps({**row, "label": int(row["label"])}) + "\n" for row in rows)
    assert R.read_cosmosqa_csv(write(tmp_path, "valid.jsonl", jsonl)).examples == r.examples


def test_flickr8k_and_image_lists():
    r = R.read_flickr8k_captions(FIX / "Flickr8k.token.txt")
    assert len(r.examples) == 7
    assert r.examples[0] == {"image": "1000268201_693b08cb0e.jpg",
                             "caption": "A child in a pink dress is climbing up a set of stairs in an entry way ."}  # fmt: skip
    assert not any(e["caption"].endswith("\r") for e in r.examples)
    images = R.read_image_list(FIX / "Flickr_8k.devImages.txt").examples
    assert len(images) == 5 and all(i.endswith(".jpg") for i in images)


def test_coco_captions():
    r = R.read_coco_captions(FIX / "coco_captions_val2014.excerpt.json")
    assert r.examples[0] == {"image_id": 331352, "file_name": "COCO_val2014_000000331352.jpg",
                             "caption": "A small closed toilet in a cramped space."}  # fmt: skip
    assert len(r.examples) == 3


def test_vqa_gzip(tmp_path):
    q = write(tmp_path, "vqa_questions_valid.gzip", gzip.compress(fx("vqa_questions_valid.excerpt.json").encode()))
    a = write(tmp_path, "vqa_annotatons_valid.gzip", gzip.compress(fx("vqa_annotations_valid.excerpt.json").encode()))
    r = R.read_vqa(q, a)
    assert len(r.examples) == 3
    first = r.examples[0]
    assert set(first) == {"question_id", "image_id", "question", "answers", "multiple_choice_answer"}
    assert first["question"] == "What insurance company is a sponsor?" and first["multiple_choice_answer"] == "state farm"
    assert first["answers"] == ["state farm"] * 10
    unlabeled = R.read_vqa(q).examples
    assert unlabeled[0]["answers"] == [] and unlabeled[0]["multiple_choice_answer"] is None


def test_multi30k_gzip_with_images(tmp_path):
    captions = write(tmp_path, "val.en.gz", gzip.compress(fx("multi30k_val.en").encode()))
    r = R.read_multi30k(captions, FIX / "multi30k_val.txt")
    assert r.examples[0] == {"image": "1018148011.jpg", "caption": "A group of men are loading cotton onto a truck"}
    assert len(r.examples) == 5
    assert [e["image"] for e in R.read_multi30k(captions).examples] == [None] * 5


def test_plain_text_and_open_text(tmp_path):
    path = write(tmp_path, "corpus.txt.gz", gzip.compress(b"\xef\xbb\xbfFirst doc.\r\n\r\nSecond doc.\r\n  \r\n"))
    assert R.read_plain_text_lines(path).examples == ["First doc.", "Second doc."]
    with R.open_text(path) as fh:
        assert fh.read() == "First doc.\n\nSecond doc.\n  \n"


def test_on_bad_example_value_is_checked():
    with pytest.raises(ConfigError, match="on_bad_example"):
        R.read_pair_tsv(FIX / "xnli_dev-ru.tsv", on_bad_example="ignore")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------------
# 2. Full real files (../shared/data), counts from SOURCES.md
# ----------------------------------------------------------------------------------------------------------------

NLI = partial(R.read_pair_tsv, labels=R.NLI_LABELS)
PAWS = partial(R.read_pair_tsv, labels=R.PAWSX_LABELS)
PANX = partial(R.read_conll_tags, tag_set=R.PANX_TAGS)
MM = "multimodal/"
M30 = MM + "multi30k/task1/"



def _real(name: str, reader: Callable, files: tuple[str, ...], count: int, slow: bool = False) -> Any:
    return pytest.param(name, reader, files, count, id=name, marks=[pytest.mark.slow] if slow else [])


REAL_FILES = [
    ("xnli dev-en", NLI, ("xnli/dev-en.tsv",), 2490),
    ("xnli dev-ru", NLI, ("xnli/dev-ru.tsv",), 2490),
    *[(f"pawsx dev-{lang}", PAWS, (f"pawsx/dev-{lang}.tsv",), 2000) for lang in ("en", "de", "es", "fr")],
    ("panx dev-ru", PANX, ("panx/dev-ru.tsv",), 5000),
    ("panx dev-en", PANX, ("panx/dev-en.tsv",), 10000),
    ("panx train-en", PANX, ("panx/train-en.tsv",), 20000, True),
    ("ud en_ewt dev", R.read_conllu_pos, ("ud/en_ewt-ud-dev.conllu",), 2001),
    ("ud en_ewt test", R.read_conllu_pos, ("ud/en_ewt-ud-test.conllu",), 2077),
    ("ud en_ewt train", R.read_conllu_pos, ("ud/en_ewt-ud-train.conllu",), 12544, True),
    ("ud ru_gsd dev", R.read_conllu_pos, ("ud/ru_gsd-ud-dev.conllu",), 579),
    ("ud ru_taiga dev", R.read_conllu_pos, ("ud/ru_taiga-ud-dev.conllu",), 1260),
    ("squad dev", R.read_squad_json, ("squad/dev-v1.1.json",), 10570),
    ("squad train subset", R.read_squad_json, ("squad/train-v1.1.subset-44articles.json",), 11877),
    ("mlqa en", R.read_squad_json, ("mlqa/dev-context-en-question-en.json",), 1148),
    ("mlqa de", R.read_squad_json, ("mlqa/dev-context-de-question-de.json",), 512),
    ("mlqa es", R.read_squad_json, ("mlqa/dev-context-es-question-es.json",), 500),
    ("tydiqa train", R.read_squad_json, ("tydiqa/tydiqa.goldp.en.train.json",), 3696),
    ("tydiqa dev", partial(R.read_squad_json, allow_unlabeled=True), ("tydiqa/tydiqa.goldp.en.dev.json",), 440),
    *[(f"tatoeba {c}", R.read_tatoeba, (f"tatoeba/tatoeba.{c}-eng.{c}", f"tatoeba/tatoeba.{c}-eng.eng"), 1000)
      for c in ("rus", "deu", "fra", "spa", "ukr")],  # fmt: skip
    ("xcopa train-en", R.read_xcopa_jsonl, ("xcopa/train-en.jsonl",), 400),
    ("xcopa val-en", R.read_xcopa_jsonl, ("xcopa/val-en.jsonl",), 100),
    *[(f"xcopa val.{c}", R.read_xcopa_jsonl, (f"xcopa/val.{c}.jsonl",), 100)
      for c in ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")],  # fmt: skip
    ("siqa dev", R.read_siqa_jsonl, ("siqa/socialIQa_v1.4_dev.jsonl",), 1954),
    ("siqa tst", R.read_siqa_jsonl, ("siqa/socialIQa_v1.4_tst.jsonl",), 2224),
    ("anli r1", R.read_anli, ("anli/ANLI_analysis_r1_dev.csv",), 1000),
    ("anli r2", R.read_anli, ("anli/ANLI_analysis_r2_dev.csv",), 1000),
    ("anli r3", R.read_anli, ("anli/ANLI_analysis_r3_dev.csv",), 1198),
    ("cosmosqa valid", R.read_cosmosqa_csv, ("cosmosqa/valid.csv",), 2985),
    ("hellaswag val 500", R.read_hellaswag_jsonl, ("hellaswag/hellaswag_val_500_en.jsonl",), 500),
    ("flickr8k captions", R.read_flickr8k_captions, (MM + "flickr8k/Flickr8k.token.txt",), 40450),
    ("flickr8k dev images", R.read_image_list, (MM + "flickr8k/Flickr_8k.devImages.txt",), 1000),
    ("flickr8k test images", R.read_image_list, (MM + "flickr8k/Flickr_8k.testImages.txt",), 1000),
    ("flickr8k train images", R.read_image_list, (MM + "flickr8k/Flickr_8k.trainImages.txt",), 5997),
    ("multi30k val en", R.read_multi30k, (M30 + "raw/val.en.gz", M30 + "image_splits/val.txt"), 1014),
    ("multi30k val cs", R.read_multi30k, (M30 + "raw/val.cs.gz", M30 + "image_splits/val.txt"), 1014),
    ("multi30k test2016 de", R.read_multi30k, (M30 + "raw/test_2016_flickr.de.gz", M30 + "image_splits/test_2016_flickr.txt"), 1000),
    ("multi30k test2017 mscoco fr", R.read_multi30k, (M30 + "raw/test_2017_mscoco.fr.gz", M30 + "image_splits/test_2017_mscoco.txt"), 461),
    ("multi30k train en", R.read_multi30k, (M30 + "raw/train.en.gz", M30 + "image_splits/train.txt"), 29000),
    ("multi30k task2 val.1.de", R.read_multi30k, (MM + "multi30k/task2/raw/val.1.de.gz", MM + "multi30k/task2/image_splits/val_images.txt"), 1014),
    ("vqa valid", R.read_vqa, (MM + "vqa_v2_subset/vqa_questions_valid.gzip", MM + "vqa_v2_subset/vqa_annotatons_valid.gzip"), 8977),
    ("vqa test", R.read_vqa, (MM + "vqa_v2_subset/vqa_questions_test.gzip", MM + "vqa_v2_subset/vqa_annotatons_test.gzip"), 2962),
    ("vqa train", R.read_vqa, (MM + "vqa_v2_subset/vqa_questions_train.gzip", MM + "vqa_v2_subset/vqa_annotatons_train.gzip"), 48061, True),
    ("plain text lines", R.read_plain_text_lines, ("tatoeba/tatoeba.rus-eng.rus",), 1000),
]  # fmt: skip
REAL = [_real(*entry) for entry in REAL_FILES]


def _count(examples: Any) -> int:
    return len(examples[0]) if isinstance(examples, tuple) else len(examples)


@pytest.mark.parametrize("name, reader, files, expected", REAL)
def test_real_file_counts(name, reader, files, expected):
    paths = [SHARED / f for f in files]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"{name}: real data not present under {SHARED}")
    result = reader(*paths)
    assert _count(result.examples) == expected
    assert result.skipped == []


def test_real_tydiqa_dev_is_all_placeholders():
    path = SHARED / "tydiqa/tydiqa.goldp.en.dev.json"
    if not path.is_file():
        pytest.skip("real data not present")
    r = R.read_squad_json(path, on_bad_example="skip")
    assert r.examples == [] and len(r.skipped) == 440
    assert all("remove_qa_test_annotations" in e.problem for e in r.skipped)


def test_real_coco_format_sample_skips_cross_truncated_ids():
    path = SHARED / MM / "format_samples/captions_val2014.json_samples.json"
    if not path.is_file():
        pytest.skip("real data not present")
    with pytest.raises(DataFormatError, match=r"annotations\[0\]: image_id 203564 is not among"):
        R.read_coco_captions(path)
    r = R.read_coco_captions(path, on_bad_example="skip")
    assert len(r.examples) == 4 and len(r.skipped) == 96  # the sample's lists were truncated independently


# ----------------------------------------------------------------------------------------------------------------
# 3. BOM, CRLF and gzip variants parse identically to the clean (LF, no BOM) file
# ----------------------------------------------------------------------------------------------------------------

VARIANT_READERS: list[tuple[str, Callable, tuple[str, ...]]] = [
    ("xnli", NLI, ("xnli_dev-ru.tsv",)),
    ("pawsx", PAWS, ("pawsx_dev-de.tsv",)),
    ("panx", PANX, ("panx_dev-ru.tsv",)),
    ("conllu", R.read_conllu_pos, ("en_ewt-ud.conllu",)),
    ("squad", R.read_squad_json, ("squad_dev-v1.1.excerpt.json",)),
    ("mlqa", R.read_squad_json, ("mlqa_dev-de-de.excerpt.json",)),
    ("tatoeba", R.read_tatoeba, ("tatoeba.rus-eng.rus", "tatoeba.rus-eng.eng")),
    ("xcopa", R.read_xcopa_jsonl, ("xcopa_val.et.jsonl",)),
    ("siqa", R.read_siqa_jsonl, ("siqa_dev.jsonl",)),
    ("anli", R.read_anli, ("anli_r1_dev.csv",)),
    ("cosmosqa", R.read_cosmosqa_csv, ("cosmosqa_valid.csv",)),
    ("hellaswag", R.read_hellaswag_jsonl, ("hellaswag_val.jsonl",)),
    ("flickr8k", R.read_flickr8k_captions, ("Flickr8k.token.txt",)),
    ("image list", R.read_image_list, ("Flickr_8k.devImages.txt",)),
    ("coco", R.read_coco_captions, ("coco_captions_val2014.excerpt.json",)),
    ("vqa", R.read_vqa, ("vqa_questions_valid.excerpt.json", "vqa_annotations_valid.excerpt.json")),
    ("multi30k", R.read_multi30k, ("multi30k_val.en", "multi30k_val.txt")),
    ("ccg", R.read_ccg_supertags, ()),
    ("bucc", R.read_bucc, ()),
]

VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "bom": lambda b: b"\xef\xbb\xbf" + b,
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "bom+crlf": lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"),
    "gzip": lambda b: gzip.compress(b),
    "gzip+bom+crlf": lambda b: gzip.compress(b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")),
}

EXTRA_CLEAN = {"ccg": (CCG_PIPES,), "bucc": ("ru-000000001\tПривет, мир.\nru-000000002\tКак дела?\n",)}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name, reader, fixtures", VARIANT_READERS, ids=[v[0] for v in VARIANT_READERS])
def test_bom_crlf_gzip_variants_parse_identically(tmp_path, name, reader, fixtures, variant):
    texts = EXTRA_CLEAN.get(name) or tuple(fx(f) for f in fixtures)
    clean = [write(tmp_path, f"clean{i}", t) for i, t in enumerate(texts)]
    changed = [write(tmp_path, f"variant{i}", VARIANTS[variant](t.encode("utf-8"))) for i, t in enumerate(texts)]
    expected, got = reader(*clean), reader(*changed)
    assert got.examples == expected.examples
    assert got.skipped == expected.skipped == []


# ----------------------------------------------------------------------------------------------------------------
# 4. Malformed inputs
# ----------------------------------------------------------------------------------------------------------------


def edit_line(text: str, lineno: int, new: str | None) -> str:
    """Replace (or with None: delete) 1-based line `lineno`."""
    lines = text.split("\n")
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    return "\n".join(lines)


def edit_json(name: str, change: Callable[[Any], None]) -> str:
    doc = fx_json(name)
    change(doc)
    return json.dumps(doc, ensure_ascii=False, indent=1)


def edit_csv(name: str, row: int, col: str, value: str) -> str:
    rows = list(csv.reader(io.StringIO(fx(name))))
    rows[row][rows[0].index(col)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def set_qa(path: str, key: str, value: Any) -> Callable[[Any], None]:
    """A change for edit_json: set `key` of the object at `path` (e.g. 'data.0.paragraphs.0.qas.1'); None deletes."""

    def change(doc: Any) -> None:
        obj = doc
        for part in path.split("."):
            obj = obj[int(part)] if isinstance(obj, list) else obj[part]
        if value is None:
            del obj[key]
        else:
            obj[key] = value

    return change


def truncate(text: str, keep: float = 0.6) -> str:
    return text[: int(len(text) * keep)]


SQUAD_CUT = truncate(fx("squad_dev-v1.1.excerpt.json"))  # ends inside the document: the error is on its last line
_ANLI = fx("anli_r1_dev.csv")
ANLI_CUT = _ANLI[: _ANLI.index("\n", _ANLI.index("The literature of England has non english"))]  # inside line 4's quoted 'reason'


XNLI = fx("xnli_dev-ru.tsv")
PANX_TXT = fx("panx_dev-ru.tsv")
UD = fx("en_ewt-ud.conllu")
XCOPA = fx("xcopa_train-en.jsonl")
SIQA = fx("siqa_dev.jsonl")
HELLA = fx("hellaswag_val.jsonl")
FLICKR = fx("Flickr8k.token.txt")
TATO_RU, TATO_EN = fx("tatoeba.rus-eng.rus"), fx("tatoeba.rus-eng.eng")
SQUAD = "squad_dev-v1.1.excerpt.json"
QA1 = "data.0.paragraphs.0.qas.1"
MNLI_HEAD = "index\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
MNLI_ROW = {"gold_label": "neutral", "sentence1": "A man plays.", "sentence2": "Someone plays."}
BUCC = "ru-000000001\tПривет, мир.\nru-000000002\tКак дела?\nru-000000003\tХорошо.\n"


def _vqa_annotations_9_answers(doc: Any) -> None:
    doc["annotations"][1]["answers"].pop()


@dataclass
class Case:
    id: str
    read: Callable[..., R.ReadResult]  # called as read(*paths, on_bad_example=...)
    files: tuple[tuple[str, str | bytes], ...]  # (file name, content) in the order `read` takes them
    where: int | str | None  # expected DataFormatError.where
    contains: tuple[str, ...]  # substrings of the message
    record_level: bool = True  # collected under on_bad_example="skip" (else raised anyway)
    error_file: int = 0  # index into `files` of the file the error must name


CASES = [
    # --- pair tsv (XNLI / PAWS-X), header-driven tsv (MNLI / QQP), ANLI
    Case("xnli wrong column count", NLI, (("dev-ru.tsv", edit_line(XNLI, 3, XNLI.split("\n")[2].rsplit("\t", 1)[0])),), 3,
         ("expected 3 tab-separated columns (text_a, text_b, label), found 2",)),
    Case("xnli label outside set", NLI, (("dev-ru.tsv", XNLI.replace("\tentailment\n", "\tentailed\n", 1)),), 3,
         ("label 'entailed' is not one of the allowed labels", "'entailment'")),
    Case("xnli empty file", NLI, (("dev-ru.tsv", ""),), None, ("file is empty",), record_level=False),
    Case("xnli whitespace-only file", NLI, (("dev-ru.tsv", "\n \n\t\n"),), None, ("file is empty",), record_level=False),
    Case("xnli BOM-only file", NLI, (("dev-ru.tsv", b"\xef\xbb\xbf"),), None, ("file is empty",), record_level=False),
    Case("xnli invalid utf-8", NLI, (("dev-ru.tsv", XNLI.encode().replace("Я не знал".encode(), b"\xff\xfe", 2)),), 4,
         ("invalid UTF-8", "0xff"), record_level=False),
    Case("xnli utf-16 file", NLI, (("dev-ru.tsv", XNLI.encode("utf-16")),), 1, ("invalid UTF-8", "UTF-16"), record_level=False),
    Case("pawsx official header row too short", PAWS,
         (("dev_2k.tsv", "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t1\n2\ta\tb\n"),), 3,
         ("expected 4 tab-separated columns (id, sentence1, sentence2, label), found 3",)),
    Case("mnli tsv lacks gold_label column", R.read_mnli, (("dev_matched.tsv", "index\tsentence1\tsentence2\tlabel1\n0\ta\tb\tneutral\n"),),
         1, ("header lacks column(s) 'gold_label'", "'label1'"), record_level=False),
    Case("mnli jsonl '-' gold label", R.read_mnli,
         (("dev.jsonl", json.dumps(MNLI_ROW) + "\n" + json.dumps({**MNLI_ROW, "gold_label": "-"}) + "\n"),), 2,
         ("label '-' is not one of the allowed labels",)),
    Case("mnli jsonl truncated", R.read_mnli, (("train.jsonl", json.dumps(MNLI_ROW) + "\n" + json.dumps(MNLI_ROW)[:30]),), 2,
         ("invalid or truncated JSON line", "Unterminated string")),
    Case("mnli tsv row with extra column", R.read_mnli, (("train.tsv", MNLI_HEAD + "0\tgov\ta\tb\tneutral\tneutral\textra\n"),), 2,
         ("expected 6 tab-separated columns (index, genre, sentence1, sentence2, label1, gold_label), found 7",)),
    Case("qqp label outside set", R.read_qqp_tsv,
         (("train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tq1?\tq2?\t1\n2\t3\t4\tq3?\tq4?\tyes\n"),), 3,
         ("label 'yes' is not one of the allowed labels: '0', '1'",)),
    Case("anli csv gold label outside e/n/c", R.read_anli, (("r1.csv", edit_csv("anli_r1_dev.csv", 4, "gold_label", "x")),), 6,
         ("gold_label 'x' is not one of 'e', 'n', 'c'",)),
    Case("anli csv truncated inside a quoted field", R.read_anli, (("r1.csv", ANLI_CUT),), 4,
         ("malformed CSV record", "unexpected end of data"), record_level=False),
    Case("anli jsonl missing hypothesis", R.read_anli,
         (("dev.jsonl", json.dumps({"uid": "1", "context": "c", "hypothesis": "h", "label": "e"}) + "\n"
                        + json.dumps({"uid": "2", "context": "c", "label": "n"}) + "\n"),), 2,
         ("missing key 'hypothesis'", "'context', 'label'")),  # fmt: skip
    # --- tagging
    Case("panx token without tag", PANX, (("dev-ru.tsv", edit_line(PANX_TXT, 12, "военно-гидротехнического")),), 12,
         ("expected 2 tab-separated columns (token, tag), found 1",)),
    Case("panx three columns", PANX, (("dev-ru.tsv", edit_line(PANX_TXT, 5, "в\tO\tO")),), 5, ("found 3",)),
    Case("panx tag outside tag set", PANX, (("dev-ru.tsv", edit_line(PANX_TXT, 15, "Чернигов\tB-MISC")),), 15,
         ("tag 'B-MISC' is not one of the allowed tags",)),
    Case("panx empty tag", PANX, (("dev-ru.tsv", edit_line(PANX_TXT, 2, "во\t")),), 2, ("empty tag",)),
    Case("panx invalid utf-8", PANX, (("dev-ru.tsv", PANX_TXT.encode().replace("Чернигов".encode(), b"\xd0\x28", 1)),), 15,
         ("invalid UTF-8",), record_level=False),
    Case("conllu 9 columns", R.read_conllu_pos, (("dev.conllu", edit_line(UD, 4, "1\tToday\ttoday\tNOUN\tNN\tNumber=Sing\t3\tnmod:poss\t_")),),
         4, ("expected 10 tab-separated columns (ID, FORM, LEMMA, UPOS", "found 9")),
    Case("conllu UPOS outside the 17 UD tags", R.read_conllu_pos,
         (("dev.conllu", edit_line(UD, 12, "3\tsurprised\tsurprise\tVERBAL\tVBD\t_\t0\troot\t0:root\t_")),), 12,
         ("UPOS 'VERBAL' is not one of the 17 UD tags",)),
    Case("conllu token ids out of order", R.read_conllu_pos,
         (("dev.conllu", edit_line(UD, 5, "1\t's\t's\tPART\tPOS\t_\t1\tcase\t1:case\t_")),), 5, ("expected token ID 2, found '1'",)),
    Case("conllu malformed id", R.read_conllu_pos,
         (("dev.conllu", edit_line(UD, 13, "x\tme\tI\tPRON\tPRP\t_\t3\tobj\t3:obj\t_")),), 13,
         ("ID 'x' is not a word index N, a range N-M or an empty node N.M",)),
    Case("ccg token without supertag", R.read_ccg_supertags, (("wsj.stagged", CCG_PIPES.replace("Vinken|NNP|N ", "Vinken|NNP ")),), 1,
         ("token 2 'Vinken|NNP': expected word|POS|supertag, found 2",)),
    Case("ccg conll token without supertag", R.read_ccg_supertags, (("ccg.tsv", "Pierre\tN/N\nVinken\tN\n\nIt\tNP\nrains\n"),), 5,
         ("expected 2 tab-separated columns (token, tag), found 1",)),
    # --- SQuAD schema
    Case("squad truncated json", R.read_squad_json, (("dev.json", SQUAD_CUT),), SQUAD_CUT.count("\n") + 1,
         ("invalid or truncated JSON",), record_level=False),
    Case("squad answer span does not match", R.read_squad_json,
         (("dev.json", edit_json(SQUAD, set_qa(QA1, "answers", [{"answer_start": 250, "text": "Carolina Panthers"}]))),),
         "data[0].paragraphs[0].qas[1].answers[0]", ("answer span does not match the context: context[250:267]", "'Carolina Panthers'")),
    Case("squad answer span outside the context", R.read_squad_json,
         (("dev.json", edit_json(SQUAD, set_qa(QA1, "answers", [{"answer_start": 770, "text": "Carolina Panthers"}]))),),
         "data[0].paragraphs[0].qas[1].answers[0]", ("lies outside the context (775 characters)",)),
    Case("squad missing question", R.read_squad_json, (("dev.json", edit_json(SQUAD, set_qa("data.0.paragraphs.0.qas.2", "question", None))),),
         "data[0].paragraphs[0].qas[2]", ("missing key 'question'",)),
    Case("squad answer_start is a string", R.read_squad_json,
         (("dev.json", edit_json(SQUAD, set_qa(QA1, "answers", [{"answer_start": "249", "text": "Carolina Panthers"}]))),),
         "data[0].paragraphs[0].qas[1].answers[0]", ("expected 'answer_start' to be an integer, found string '249'",)),
    Case("squad paragraph without context", R.read_squad_json, (("dev.json", edit_json(SQUAD, set_qa("data.0.paragraphs.0", "context", None))),),
         "data[0].paragraphs[0]", ("missing key 'context'", "'qas'")),
    Case("squad no data list", R.read_squad_json, (("dev.json", json.dumps({"version": "1.1", "articles": []})),), None,
         ("expected a JSON object with a 'data' list", "'version', 'articles'"), record_level=False),
    Case("squad v1.1 is_impossible", R.read_squad_json, (("dev.json", edit_json(SQUAD, set_qa(QA1, "is_impossible", True))),),
         "data[0].paragraphs[0].qas[1]", ("is_impossible is true", "version='2.0'")),
    Case("squad v2.0 impossible with answers", partial(R.read_squad_json, version="2.0"),
         (("dev.json", edit_json(SQUAD, set_qa(QA1, "is_impossible", True))),), "data[0].paragraphs[0].qas[1]",
         ("is_impossible is true but 'answers' has 3 entries",)),
    Case("tydiqa placeholder answer", R.read_squad_json, (("dev.json", fx("tydiqa.goldp.en.dev.excerpt.json")),),
         "data[0].paragraphs[0].qas[0]", ("placeholder", "remove_qa_test_annotations", "allow_unlabeled=True")),
    # --- retrieval, plain text
    Case("tatoeba unequal line counts", R.read_tatoeba, (("t.rus", TATO_RU), ("t.eng", edit_line(TATO_EN, 6, None))), None,
         ("has 6 lines but the aligned file", "t.eng has 5"), record_level=False),
    Case("tatoeba empty target line", R.read_tatoeba, (("t.rus", TATO_RU), ("t.eng", edit_line(TATO_EN, 3, ""))), 3,
         ("empty sentence",), error_file=1),
    Case("bucc line without tab", R.read_bucc, (("ru-en.dev.ru", edit_line(BUCC, 2, "ru-000000002 Как дела?")),), 2,
         ("expected 2 tab-separated columns (id, sentence), found 1",)),
    Case("bucc duplicate id", R.read_bucc, (("ru-en.dev.ru", edit_line(BUCC, 3, "ru-000000001\tХорошо.")),), 3,
         ("duplicate id 'ru-000000001'",)),
    Case("bucc gold malformed id", R.read_bucc_gold, (("ru-en.dev.gold", "ru-000000002\ten-000000001\nru-abc\ten-000000002\n"),), 2,
         ("source id 'ru-abc' is not a BUCC sentence id",)),
    Case("plain text empty file", R.read_plain_text_lines, (("corpus.txt", ""),), None, ("file is empty",), record_level=False),
    Case("image list blank line", R.read_image_list, (("dev.txt", "a.jpg\n\nb.jpg\n"),), 2, ("empty line; expected an image file name",)),
    # --- multiple choice
    Case("xcopa label outside choices", R.read_xcopa_jsonl, (("train.jsonl", XCOPA.replace('"label": 0, "idx": 1', '"label": 2, "idx": 1')),), 2,
         ("label 2 is outside the 2 choices; expected 0..1",)),
    Case("xcopa question not cause/effect", R.read_xcopa_jsonl, (("train.jsonl", XCOPA.replace('"question": "cause"', '"question": "because"', 1)),),
         1, ("question 'because' is not 'cause' or 'effect'",)),
    Case("xcopa truncated jsonl", R.read_xcopa_jsonl, (("train.jsonl", XCOPA.rstrip("\n")[:-40]),), 4, ("invalid or truncated JSON line",)),
    Case("xcopa label as string", R.read_xcopa_jsonl, (("train.jsonl", XCOPA.replace('"label": 0, "idx": 0', '"label": "0", "idx": 0')),), 1,
         ("expected 'label' to be an integer, found string '0'",)),
    Case("xcopa line is a list", R.read_xcopa_jsonl, (("train.jsonl", XCOPA + "[1, 2]\n"),), 5, ("expected a JSON object per line, found list",)),
    Case("siqa correct outside A/B/C", R.read_siqa_jsonl, (("dev.jsonl", SIQA.replace('"correct": "A"', '"correct": "D"', 1)),), 2,
         ("correct 'D' is not one of 'A', 'B', 'C'",)),
    Case("siqa no labels at all", R.read_siqa_jsonl, (("dev.jsonl", SIQA.replace(', "correct": "C"}', "}", 1)),), 1,
         ("missing key 'correct'", "labels_path")),
    Case("siqa labels file count mismatch", R.read_siqa_jsonl, (("dev.jsonl", SIQA), ("dev-labels.lst", "3\n1\n2\n1\n")), None,
         ("has 4 labels but", "dev.jsonl has 5 examples"), record_level=False, error_file=1),
    Case("siqa labels file bad label", R.read_siqa_jsonl, (("dev.jsonl", SIQA), ("dev-labels.lst", "3\n1\n4\n1\n3\n")), 3,
         ("label '4' is not one of '1', '2', '3'",), error_file=1),
    Case("siqa labels file disagrees with correct", R.read_siqa_jsonl, (("dev.jsonl", SIQA), ("dev-labels.lst", "3\n2\n2\n1\n3\n")), 2,
         ("labels file says 2 but 'correct' is 'A'",)),
    Case("hellaswag label outside endings", R.read_hellaswag_jsonl, (("val.jsonl", HELLA.replace('"label": 2', '"label": 4', 1)),), 1,
         ("label 4 is outside the 4 choices; expected 0..3",)),
    Case("hellaswag missing endings", R.read_hellaswag_jsonl, (("val.jsonl", HELLA.replace('"endings"', '"ending_options"', 1)),), 1,
         ("missing key 'endings'",)),
    Case("hellaswag no context key", R.read_hellaswag_jsonl, (("val.jsonl", HELLA.replace('"context"', '"premise"', 1)),), 1,
         ("missing key 'ctx', 'context' or 'ctx_a'",)),
    Case("cosmosqa row missing a column", R.read_cosmosqa_csv,
         (("valid.csv", edit_csv("cosmosqa_valid.csv", 3, "label", "1").replace(",None of the above choices .,1\n", ",1\n", 1)),),
         2, ("expected 8 comma-separated columns (id, context, question, answer0, answer1, answer2, answer3, label), found 7",)),
    Case("cosmosqa header lacks label", R.read_cosmosqa_csv, (("valid.csv", fx("cosmosqa_valid.csv").replace(",label\n", ",gold\n", 1)),), 1,
         ("header lacks column(s) 'label'",), record_level=False),
    Case("cosmosqa label not a number", R.read_cosmosqa_csv, (("valid.csv", edit_csv("cosmosqa_valid.csv", 2, "label", "B")),), 3,
         ("expected label to be an integer choice index, found string 'B'",)),
    # --- multimodal text sides
    Case("flickr8k key without #k", R.read_flickr8k_captions, (("Flickr8k.token.txt", edit_line(FLICKR, 4, FLICKR.split("\n")[3].replace("#3", "", 1))),),
         4, ("is not '<image>#<caption number>'",)),
    Case("flickr8k no tab", R.read_flickr8k_captions, (("Flickr8k.token.txt", edit_line(FLICKR, 2, FLICKR.split("\n")[1].replace("\t", " "))),), 2,
         ("expected 2 tab-separated columns (image#k, caption), found 1",)),
    Case("coco caption for unknown image", R.read_coco_captions,
         (("captions.json", edit_json("coco_captions_val2014.excerpt.json", lambda d: d["annotations"][1].update(image_id=1))),),
         "annotations[1]", ("image_id 1 is not among the 1 entries of 'images'",)),
    Case("vqa annotation with 9 answers", R.read_vqa,
         (("q.json", fx("vqa_questions_valid.excerpt.json")), ("a.json", edit_json("vqa_annotations_valid.excerpt.json", _vqa_annotations_9_answers))),
         "annotations[1]", ("'answers' has 9 entries; expected 10",), error_file=1),
    Case("vqa question without annotation", R.read_vqa,
         (("q.json", edit_json("vqa_questions_valid.excerpt.json", lambda d: d["questions"][2].update(question_id=7))),
          ("a.json", fx("vqa_annotations_valid.excerpt.json"))), "questions[2]", ("question_id 7 has no annotation in",)),
    Case("vqa truncated gzip", R.read_vqa, (("q.gzip", gzip.compress(fx("vqa_questions_valid.excerpt.json").encode())[:-30]),), None,
         ("corrupt or truncated gzip",), record_level=False),
    Case("multi30k captions/images count mismatch", R.read_multi30k, (("val.en", fx("multi30k_val.en")), ("val.txt", "1018148011.jpg\n")), None,
         ("has 5 lines but the aligned file", "val.txt has 1"), record_level=False),
    Case("multi30k empty caption", R.read_multi30k, (("val.en.gz", gzip.compress(edit_line(fx("multi30k_val.en"), 4, "").encode())),), 4,
         ("empty caption",)),
]  # fmt: skip


def test_there_are_at_least_30_malformed_cases():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_raises_with_file_and_location(tmp_path, case: Case):
    paths = [write(tmp_path, name, content) for name, content in case.files]
    with pytest.raises(DataFormatError) as info:
        case.read(*paths, on_bad_example="error")
    err = info.value
    assert err.path == str(paths[case.error_file])
    assert err.where == case.where
    message = str(err)
    assert message.startswith(str(paths[case.error_file]))
    if isinstance(case.where, int):
        assert f", line {case.where}: " in message
    elif isinstance(case.where, str):
        assert f", {case.where}: " in message
    for part in case.contains:
        assert part in message, f"{part!r} not in {message!r}"

    if case.record_level:  # skip policy: the same error is recorded, not raised, and the rest is read
        result = case.read(*paths, on_bad_example="skip")
        assert [str(e) for e in result.skipped][:1] == [message]
    else:  # file-level: raised whatever the policy
        with pytest.raises(DataFormatError):
            case.read(*paths, on_bad_example="skip")


def test_conll_tags_unlabeled_test_files(tmp_path):
    """XTREME's PAN-X / UD-POS test files have tokens only: readable for prediction, refused by default."""
    path = write(tmp_path, "test-en.tsv", "Paris\nis\nnice\n\nHello\n")
    with pytest.raises(DataFormatError, match="2 tab-separated columns"):
        R.read_conll_tags(path, tag_set=R.PANX_TAGS)
    r = R.read_conll_tags(path, tag_set=R.PANX_TAGS, allow_unlabeled=True)
    assert r.examples == [{"tokens": ["Paris", "is", "nice"], "tags": None}, {"tokens": ["Hello"], "tags": None}]
    mixed = write(tmp_path, "mixed.tsv", "Paris\tB-LOC\nis\n")
    with pytest.raises(DataFormatError):
        R.read_conll_tags(mixed, tag_set=R.PANX_TAGS, allow_unlabeled=True)
    from intertask.tasks.formats import read_ud_pos

    assert read_ud_pos(path, allow_unlabeled=True).examples[1] == {"tokens": ["Hello"], "tags": None}
