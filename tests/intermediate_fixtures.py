"""Tiny files in the official formats of every intermediate task (and MLM text), written into a data dir."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

WORDS = "the cat sat on a mat while dogs ran in the park and people walked home after work".split()


def _sent(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(n))


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _squad_v2(n: int, seed: int) -> dict:
    paragraphs = []
    for i in range(n):
        context = f"{_sent(i + seed, 8)}. The answer number {i} is here. {_sent(i + seed + 1, 8)}."
        answer = f"number {i}"
        qas = [
            {
                "id": f"q{seed}-{i}",
                "question": f"what is the answer {i}?",
                "answers": [{"text": answer, "answer_start": context.index(answer)}],
                "is_impossible": False,
            },
            {"id": f"u{seed}-{i}", "question": "who won the cup?", "answers": [], "is_impossible": True},
        ]
        paragraphs.append({"context": context, "qas": qas})
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}


def write_intermediate_data(root: Path, n: int = 12) -> Path:
    """Every intermediate task's train and dev files (n examples each) under `root`, official names."""
    root = Path(root)
    labels_enc = ["e", "n", "c"]
    for r in (1, 2, 3):
        for split in ("train", "dev"):
            _jsonl(root / f"anli/anli_v1.0/R{r}/{split}.jsonl", [
                {"uid": f"{r}{split}{i}", "context": _sent(i + r), "hypothesis": _sent(i + 2), "label": labels_enc[i % 3]} for i in range(n)
            ])  # fmt: skip
    mnli = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse"
        "\tsentence1\tsentence2\tlabel1\tgold_label\n"
    )
    mnli += "".join(
        f"{i}\tp\tq\tfiction\t-\t-\t-\t-\t{_sent(i)}\t{_sent(i + 5)}\tneutral\t{['entailment', 'neutral', 'contradiction'][i % 3]}\n" for i in range(n)
    )
    _text(root / "mnli/train.tsv", mnli)
    _text(root / "mnli/dev_matched.tsv", mnli)
    _jsonl(root / "snli/snli_1.0_train.jsonl", [
        {"sentence1": _sent(i), "sentence2": _sent(i + 1), "gold_label": (["entailment", "neutral", "contradiction", "-"])[i % 4]} for i in range(n)
    ])  # fmt: skip
    _jsonl(root / "anli/nli_fever/train_fitems.jsonl", [
        {"cid": str(i), "fid": "f", "query": _sent(i + 1), "context": _sent(i), "label": ["SUPPORTS", "REFUTES", "NOT ENOUGH INFO"][i % 3]} for i in range(n)
    ])  # fmt: skip
    qqp = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n" + "".join(f"{i}\t{i}\t{i + 1}\t{_sent(i)}?\t{_sent(i + 1)}?\t{i % 2}\n" for i in range(n))
    _text(root / "qqp/train.tsv", qqp)
    _text(root / "qqp/dev.tsv", qqp)
    _text(root / "squad/train-v2.0.json", json.dumps(_squad_v2(n // 2, 0)))
    _text(root / "squad/dev-v2.0.json", json.dumps(_squad_v2(n // 2, 100)))
    hs = [{"ind": i, "ctx": _sent(i, 8), "endings": [_sent(i + k, 4) for k in range(4)], "label": i % 4, "split": "train"} for i in range(n)]
    _jsonl(root / "hellaswag/hellaswag_train.jsonl", hs)
    _jsonl(root / "hellaswag/hellaswag_val.jsonl", hs)
    # Translate-train: a "Russian" copy of HellaSwag train in the same format.
    _jsonl(root / "hellaswag/hellaswag_train_ru.jsonl", [{**r, "ctx": "кошка сидела на коврике " + str(i)} for i, r in enumerate(hs)])
    csqa = [
        {
            "answerKey": "ABCDE"[i % 5],
            "id": f"cs{i}",
            "question": {
                "question_concept": "x",
                "stem": _sent(i) + "?",
                "choices": [{"label": L, "text": WORDS[(i + k) % len(WORDS)]} for k, L in enumerate("ABCDE")],
            },
        }
        for i in range(n)
    ]
    _jsonl(root / "commonsenseqa/train_rand_split.jsonl", csqa)
    _jsonl(root / "commonsenseqa/dev_rand_split.jsonl", csqa)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label"])
    for i in range(n):
        w.writerow([f"c{i}", _sent(i, 10) + ", said \"she\".", _sent(i + 1) + "?", *[_sent(i + k, 3) for k in range(4)], i % 4])
    _text(root / "cosmosqa/train.csv", buf.getvalue())
    _text(root / "cosmosqa/valid.csv", buf.getvalue())
    for split in ("train", "dev"):  # official socialiqa-train-dev layout: labels in a separate file
        _jsonl(
            root / f"siqa/{split}.jsonl",
            [
                {"context": _sent(i), "question": "what next?", "answerA": _sent(i + 1, 3), "answerB": _sent(i + 2, 3), "answerC": _sent(i + 3, 3)}
                for i in range(n)
            ],
        )
        _text(root / f"siqa/{split}-labels.lst", "".join(f"{i % 3 + 1}\n" for i in range(n)))
    tags = ["NP/N", "N", "(S\\NP)/NP", "NP", "S[dcl]\\NP", "PP/NP"]
    train_lines = [" ".join(f"{w}|NN|{tags[(i + k) % 5]}" for k, w in enumerate(_sent(i).split())) for i in range(n)]
    dev_lines = [" ".join(f"{w}|NN|{tags[(i + k) % 6]}" for k, w in enumerate(_sent(i).split())) for i in range(n)]  # PP/NP unseen in train
    _text(root / "ccg/train.txt", "\n".join(train_lines) + "\n")
    _text(root / "ccg/dev.txt", "\n".join(dev_lines) + "\n")
    _text(root / "mlm/en.txt", "".join(_sent(i, 10) + ".\n" for i in range(40)))
    _text(root / "mlm/ru.txt", "".join(f"кошка сидела на коврике {i} и собака бежала в парке.\n" for i in range(40)))
    return root
