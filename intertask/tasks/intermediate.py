"""The intermediate tasks of X-STILTs (Phang et al. 2020, arXiv 2005.13013), and the MLM baseline's text record.

Records: ``anli_plus`` (ANLI R1-R3 + MNLI + SNLI + FEVER-NLI, as the paper combines them), ``anli``, ``qqp``,
``squad_v2`` (null answers; dev scored with the best null threshold), ``hellaswag``, ``commonsenseqa``, ``cosmosqa``,
``siqa``, ``ccg`` (supertags; label set taken from the training data) and ``mlm`` (plain text per language for the
continued-MLM baseline, run by :mod:`intertask.training.objectives.mlm`). ``mnli`` and ``squad_v1`` live with their families
(sentence_pair.py, span_qa.py).

Translate-train: every record here reads machine-translated training data through :class:`TranslatableFiles`:
with ``intermediate.language: ru`` the train split comes from the translated file (``hellaswag/hellaswag_train_ru.jsonl``
or ``hellaswag/ru/hellaswag_train.jsonl``, same format), and the dev split stays English (checkpoint selection and
the stage's dev metrics are always English: strict zero-shot). See docs/intermediate.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

from transformers import AutoModelForMaskedLM

from intertask.data import readers
from intertask.data.readers import NLI_LABELS, ReadResult, _Bad, _get, _jsonl_records, _looks_like_jsonl, _mc, _Records, read_text
from intertask.errors import DataFormatError
from intertask.evaluation.metrics import Metric, accuracy, best_null_threshold, squad_v2_scores
from intertask.models.heads import MULTIPLE_CHOICE, SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION, Head, SpanQAHead
from intertask.tasks import languages as L
from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.registry import register
from intertask.tasks.sentence_pair import _hub_nli
from intertask.tasks.span_qa import _hub_squad

# Languages a translated copy of the training data may be in (every language of the benchmarks' targets).
TRANSLATE_LANGUAGES: tuple[str, ...] = tuple(
    dict.fromkeys(("en",) + L.PANX_XTREME_R + L.XNLI + L.TYDIQA + L.XCOPA + L.UDPOS_XTREME_R + L.TATOEBA_XTREME_R)
)


# --------------------------------------------------------------------------------------------------------------
# Translate-train layout
# --------------------------------------------------------------------------------------------------------------


def translated(pattern: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """The translated-copy names of an English file pattern: ``dir/name.ext`` -> ``dir/name_{lang}.ext|dir/{lang}/name.ext``
    (for every ``|`` alternative; tuples pattern by pattern)."""
    if isinstance(pattern, tuple):
        return tuple(translated(p) for p in pattern)  # type: ignore[misc]
    out = []
    for alt in (a.strip() for a in pattern.split("|")):
        p = Path(alt)
        suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix  # train-v2.0.json -> train-v2.0_{lang}.json
        stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
        out += [str(p.parent / f"{stem}_{{lang}}{suffix}"), str(p.parent / "{lang}" / p.name)]
    return "|".join(dict.fromkeys(out))


@dataclass(frozen=True)
class TranslatableFiles(LocalFiles):
    """English files (`files`, the official names) plus machine-translated copies of some splits (`translated`,
    patterns with ``{lang}``). For a language other than English, a split listed in `translated` is read from the
    translated copy; every other split (dev) is the English file, so dev metrics stay English. An English
    original is never silently read in place of a missing translation."""

    translated: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    def paths(self, data_dir: Path, split: str, language: str) -> tuple[Path, ...]:
        if language != "en" and split in self.translated:
            return LocalFiles(files=self.translated, reader=self.reader, file_codes=self.file_codes).paths(data_dir, split, language)
        return super().paths(data_dir, split, "en")


def _files(reader: Any, train: str | tuple[str, ...], dev: str | tuple[str, ...], **extra: str | tuple[str, ...]) -> TranslatableFiles:
    return TranslatableFiles(files={"train": train, "dev": dev, **extra}, reader=reader, translated={"train": translated(train)})


# --------------------------------------------------------------------------------------------------------------
# Readers not in intertask.data.readers
# --------------------------------------------------------------------------------------------------------------

_FEVER_LABELS = {"SUPPORTS": "entailment", "REFUTES": "contradiction", "NOT ENOUGH INFO": "neutral"}


def read_fever_nli(path: str | Path, *, on_bad_example: str = "error") -> ReadResult[list[dict]]:
    """FEVER-NLI (Nie et al. 2019, released with ANLI as ``nli_fever/{train,dev}_fitems.jsonl``): ``context``
    (evidence, the premise), ``query`` (the claim, the hypothesis), ``label`` SUPPORTS / REFUTES / NOT ENOUGH INFO
    -> entailment / contradiction / neutral (the mapping of facebookresearch/anli's training code)."""
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, read_text(path)):
        with out.record(lineno):
            raw = _get(obj, "label")
            if raw not in _FEVER_LABELS:
                raise _Bad(f"label {raw!r} is not one of {', '.join(map(repr, _FEVER_LABELS))}")
            out.examples.append({"text_a": _get(obj, "context"), "text_b": _get(obj, "query"), "label": _FEVER_LABELS[raw]})
    return out.result()


def _nli_format(path: str | Path) -> str:
    """Which NLI format a file is in, from its first record: anli (jsonl or annotation csv), fever, or mnli/snli."""
    text = read_text(path)
    first = next((line for line in text.split("\n") if line.strip()), "")
    if _looks_like_jsonl(text):
        import json

        try:
            keys = set(json.loads(first))
        except (ValueError, TypeError):
            keys = set()
        if "query" in keys:
            return "fever"
        if "hypothesis" in keys:
            return "anli"
        return "mnli"
    return "anli" if "statement" in first.split(",") else "mnli"


def read_nli_mixture(*paths: str | Path, on_bad_example: str = "error") -> ReadResult[list[dict]]:
    """NLI pairs from several files, concatenated in order; each file's format is recognised from its first record:
    ANLI jsonl (``context, hypothesis, label e/n/c``) or annotation csv, FEVER-NLI (``query, context, label``),
    MNLI / SNLI jsonl (``sentence1, sentence2, gold_label``) or GLUE MNLI tsv. MNLI / SNLI pairs whose gold label
    is ``-`` (no annotator consensus) are left out, as every NLI training script does; the count is in
    ``skipped`` only under on_bad_example="skip" (with "error" they are dropped by convention, not raised)."""
    examples: list[dict] = []
    skipped: list[DataFormatError] = []
    for path in paths:
        kind = _nli_format(path)
        if kind == "fever":
            result = read_fever_nli(path, on_bad_example=on_bad_example)
        elif kind == "anli":
            result = readers.read_anli(path, on_bad_example=on_bad_example)
        else:
            result = readers.read_mnli(path, labels=NLI_LABELS + ("-",), on_bad_example=on_bad_example)
            result = ReadResult([e for e in result.examples if e["label"] != "-"], result.skipped)
        examples.extend(result.examples)
        skipped.extend(result.skipped)
    return ReadResult(examples, skipped)


def read_commonsenseqa_jsonl(path: str | Path, *, on_bad_example: str = "error") -> ReadResult[list[dict]]:
    """CommonsenseQA (Talmor et al. 2019, ``{train,dev}_rand_split.jsonl``): ``id``, ``question: {stem, choices:
    [{label, text}]}``, ``answerKey`` -> multiple choice (context = stem, no question, choices = texts in label order,
    label = index of answerKey)."""
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, read_text(path)):
        with out.record(lineno):
            question = _get(obj, "question", dict)
            raw_choices = _get(question, "choices", list)
            keys, texts = [], []
            for i, choice in enumerate(raw_choices):
                keys.append(_get(choice, "label", where=f"question.choices[{i}]"))
                texts.append(_get(choice, "text", where=f"question.choices[{i}]"))
            answer = _get(obj, "answerKey")
            if answer not in keys:
                raise _Bad(f"answerKey {answer!r} is not one of the choice labels {', '.join(map(repr, keys))}")
            qid = _get(obj, "id", (str, int), optional=True)
            out.examples.append(_mc(str(qid) if qid is not None else f"line{lineno}", _get(question, "stem"), "", texts, keys.index(answer)))
    return out.result()


def read_siqa(path: str | Path, *, on_bad_example: str = "error") -> ReadResult[list[dict]]:
    """Social IQa jsonl; the labels come from the ``correct`` key (v1.4 files) or, as in the official
    ``socialiqa-train-dev.zip``, from the sibling ``<name>-labels.lst`` (``train.jsonl`` -> ``train-labels.lst``)."""
    path = Path(path)
    labels = path.with_name(path.name.rsplit(".", 1)[0] + "-labels.lst")
    return readers.read_siqa_jsonl(path, labels if labels.is_file() else None, on_bad_example=on_bad_example)


# --------------------------------------------------------------------------------------------------------------
# Metrics and heads specific to the intermediate tasks
# --------------------------------------------------------------------------------------------------------------


class QAPredictions(dict):
    """qid -> predicted answer ("" = no answer), plus what the best-threshold search needs: `spans` (qid -> the best
    non-null span) and `null_odds` (qid -> null score minus best span score; higher = more likely unanswerable)."""

    def __init__(self, predictions: Mapping[str, str], spans: Mapping[str, str], null_odds: Mapping[str, float]):
        super().__init__(predictions)
        self.spans, self.null_odds = dict(spans), dict(null_odds)


class SquadV2Head(SpanQAHead):
    """SPAN_QA_WITH_NULL whose post-processing also keeps each question's best span and null odds, so dev can be
    scored as evaluate-v2.0.py does with --na-prob-file (best_exact / best_f1 over the null threshold)."""

    def __init__(self) -> None:
        super().__init__(allow_null=True)

    def postprocess(self, examples, features, raw, labels):
        predictions, references = super().postprocess(examples, features, raw, labels)
        spans, odds = {}, {}
        for ex, (text, score, null_score) in zip(examples, self.best_spans(examples, features, raw)):
            spans[ex["id"]] = text
            diff = null_score - score
            odds[ex["id"]] = float(diff) if math.isfinite(diff) else 1e9
        return QAPredictions(predictions, spans, odds), references


def _squad_v2_with_best_threshold(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """`squad_v2_scores` at the model's own decision plus, from the predictions' null odds, the best null
    threshold's scores (evaluate-v2.0.py with --na-prob-file: best_exact_match, best_f1 and their thresholds)."""
    scores = squad_v2_scores(predictions, references)  # the model's own decision (null iff null score > best span)
    spans, odds = getattr(predictions, "spans", None), getattr(predictions, "null_odds", None)
    if odds is not None:
        scores.update(best_null_threshold(odds, spans, references))
    else:  # plain predictions: no threshold search possible; the decision as made
        scores.update(best_exact_match=scores["exact_match"], best_f1=scores["f1"], best_exact_match_threshold=0.0, best_f1_threshold=0.0)
    return scores


squad_v2_with_best_threshold = Metric(name="squad_v2_with_best_threshold", primary="best_f1", fn=_squad_v2_with_best_threshold)


def _tag_accuracy(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    n = sum(len(r) for r in references)
    if n == 0:
        raise ValueError("no tokens to score")
    return {"accuracy": sum(p == g for ps, rs in zip(predictions, references) for p, g in zip(ps, rs)) / n}


tag_accuracy = Metric(name="tag_accuracy", primary="accuracy", fn=_tag_accuracy)


@dataclass(frozen=True)
class DataLabelledTask(Task):
    """A tagging task whose label set is computed from its training data when a stage loads it (CCG: CCGbank is
    not public, so no fixed supertag inventory ships with the code). Tags seen fewer than `min_label_count` times
    in train, and tags of dev never seen in train, become `unknown_label` (scored as errors unless predicted as
    such, as in CCG supertagging practice). The stage's saved config.json records the label set (id2label)."""

    min_label_count: int = 1
    unknown_label: str = "<unk>"

    def fit_labels(self, train_examples: Sequence[dict]) -> DataLabelledTask:
        counts = Counter(tag for ex in train_examples for tag in ex["tags"])
        kept = sorted((t for t, c in counts.items() if c >= self.min_label_count and t != self.unknown_label), key=lambda t: (-counts[t], t))
        return dataclasses.replace(self, labels=tuple(kept) + (self.unknown_label,))

    def map_unknown_labels(self, examples: list[dict]) -> list[dict]:
        known = set(self.labels)
        return [ex if all(t in known for t in ex["tags"]) else {**ex, "tags": [t if t in known else self.unknown_label for t in ex["tags"]]} for ex in examples]


class MaskedLMHead(Head):
    """Continued masked-language modelling (the MLM baseline). Trained by intertask.training.objectives.mlm, not by the
    single-task recipe; the record exists so data, languages and validation work like any other task's."""

    name = "masked_lm"
    model_class = AutoModelForMaskedLM


MASKED_LM = MaskedLMHead()


def _mlm_scores(predictions: Any, references: Any) -> dict[str, float]:  # computed in intertask.models.masked_lm
    raise NotImplementedError("MLM dev metrics are computed by intertask.models.masked_lm")


masked_lm_accuracy = Metric(name="masked_lm", primary="accuracy", fn=_mlm_scores)


# --------------------------------------------------------------------------------------------------------------
# Hub rows -> canonical examples
# --------------------------------------------------------------------------------------------------------------


def _hub_qqp(r: dict) -> dict:
    return {"text_a": r["question1"], "text_b": r["question2"], "label": str(int(r["label"]))}


def _hub_hellaswag(r: dict) -> dict:
    return {"id": str(r.get("ind", "")), "context": r["ctx"], "question": "", "choices": list(r["endings"]), "label": int(r["label"])}


def _hub_csqa(r: dict) -> dict:
    keys = list(r["choices"]["label"])
    return {"id": r["id"], "context": r["question"], "question": "", "choices": list(r["choices"]["text"]), "label": keys.index(r["answerKey"])}


def _hub_cosmosqa(r: dict) -> dict:
    return {"id": r["id"], "context": r["context"], "question": r["question"], "choices": [r[f"answer{i}"] for i in range(4)], "label": int(r["label"])}


def _hub_siqa(r: dict) -> dict:
    return {"id": "", "context": r["context"], "question": r["question"], "choices": [r["answerA"], r["answerB"], r["answerC"]], "label": int(r["label"]) - 1}


# --------------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------------

_ROLES = frozenset({"intermediate"})
# ANLI rounds: the official release (anli_v1.0/R{n}/{split}.jsonl), a flattened copy, or (dev) the annotated csv
# of anlizinganli, which is what ../shared/data holds.
_ANLI_TRAIN = tuple(f"anli/anli_v1.0/R{n}/train.jsonl|anli/R{n}/train.jsonl" for n in (1, 2, 3))
_ANLI_DEV = tuple(f"anli/anli_v1.0/R{n}/dev.jsonl|anli/R{n}/dev.jsonl|anli/ANLI_analysis_r{n}_dev.csv" for n in (1, 2, 3))
_MNLI_TRAIN = "mnli/train.tsv|mnli/multinli_1.0_train.jsonl"
_SNLI_TRAIN = "snli/snli_1.0_train.jsonl|snli/train.jsonl"
_FEVER_TRAIN = "anli/nli_fever/train_fitems.jsonl|nli_fever/train_fitems.jsonl"

register(
    Task(
        name="anli_plus",
        description="ANLI+ (X-STILTs): ANLI R1-R3 + MNLI + SNLI + FEVER-NLI training data concatenated (Nie et al. 2020's "
        "training mix); dev = ANLI R1-R3 dev",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        labels=NLI_LABELS,
        local=_files(read_nli_mixture, _ANLI_TRAIN + (_MNLI_TRAIN, _SNLI_TRAIN, _FEVER_TRAIN), _ANLI_DEV),
        source="facebookresearch/anli anli_v1.0.zip (R1-R3 + nli_fever), GLUE MNLI, SNLI 1.0; no single hub dataset",
        license="CC BY-NC 4.0 (ANLI), mixed (MNLI), CC BY-SA 4.0 (SNLI), CC BY-SA 3.0 (FEVER)",
    )
)

register(
    Task(
        name="anli",
        description="Adversarial NLI (Nie et al. 2020), rounds R1-R3 concatenated",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        labels=NLI_LABELS,
        local=_files(read_nli_mixture, _ANLI_TRAIN, _ANLI_DEV),
        hub=HubDataset(path="facebook/anli", name=None, splits={"train": "train_r1+train_r2+train_r3", "dev": "dev_r1+dev_r2+dev_r3"}, to_example=_hub_nli),
        source="facebookresearch/anli anli_v1.0/R{1,2,3}/{train,dev}.jsonl (dev also as the anlizinganli csv) or facebook/anli",
        license="CC BY-NC 4.0",
    )
)

register(
    Task(
        name="qqp",
        description="Quora Question Pairs (GLUE): duplicate-question classification",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        labels=("0", "1"),
        local=_files(readers.read_qqp_tsv, "qqp/train.tsv|QQP/train.tsv", "qqp/dev.tsv|QQP/dev.tsv"),
        hub=HubDataset(path="nyu-mll/glue", name="qqp", splits={"train": "train", "dev": "validation"}, to_example=_hub_qqp),
        source="GLUE QQP.zip ({train,dev}.tsv: question1, question2, is_duplicate) or nyu-mll/glue qqp",
        license="Quora terms (non-commercial research)",
    )
)

SQUAD_V2_HEAD = SquadV2Head()

register(
    Task(
        name="squad_v2",
        description="SQuAD 2.0 (Rajpurkar et al. 2018): extractive QA with unanswerable questions; dev scored with the "
        "official best null-odds threshold (best_f1), also exact_match/f1 at the model's own null decision",
        head=SQUAD_V2_HEAD,
        metrics=(squad_v2_with_best_threshold,),
        main_metric="best_f1",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        local=_files(
            partial(readers.read_squad_json, version="2.0"), "squad/train-v2.0.json|squad_v2/train-v2.0.json", "squad/dev-v2.0.json|squad_v2/dev-v2.0.json"
        ),
        hub=HubDataset(path="rajpurkar/squad_v2", name=None, splits={"train": "train", "dev": "validation"}, to_example=_hub_squad),
        source="SQuAD 2.0 JSON (train-v2.0.json, dev-v2.0.json) or rajpurkar/squad_v2",
        license="CC BY-SA 4.0",
    )
)

register(
    Task(
        name="hellaswag",
        description="HellaSwag (Zellers et al. 2019): choose the ending of a context (4 choices)",
        head=MULTIPLE_CHOICE,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        local=_files(
            readers.read_hellaswag_jsonl,
            "hellaswag/hellaswag_train.jsonl|hellaswag/data/hellaswag_train.jsonl",
            "hellaswag/hellaswag_val.jsonl|hellaswag/data/hellaswag_val.jsonl|hellaswag/hellaswag_val_500_en.jsonl",
        ),
        hub=HubDataset(path="Rowan/hellaswag", name=None, splits={"train": "train", "dev": "validation"}, to_example=_hub_hellaswag),
        source="rowanz/hellaswag data/hellaswag_{train,val}.jsonl (../shared/data: 500 val items) or Rowan/hellaswag",
        license="MIT",
    )
)

register(
    Task(
        name="commonsenseqa",
        description="CommonsenseQA (Talmor et al. 2019): 5-choice commonsense questions",
        head=MULTIPLE_CHOICE,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        local=_files(
            read_commonsenseqa_jsonl,
            "commonsenseqa/train_rand_split.jsonl|csqa/train_rand_split.jsonl",
            "commonsenseqa/dev_rand_split.jsonl|csqa/dev_rand_split.jsonl",
        ),
        hub=HubDataset(path="tau/commonsense_qa", name=None, splits={"train": "train", "dev": "validation"}, to_example=_hub_csqa),
        source="CommonsenseQA {train,dev}_rand_split.jsonl (s3 commensenseqa bucket) or tau/commonsense_qa",
        license="MIT",
    )
)

register(
    Task(
        name="cosmosqa",
        description="Cosmos QA (Huang et al. 2019): reading comprehension with commonsense, 4 choices",
        head=MULTIPLE_CHOICE,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        local=_files(readers.read_cosmosqa_csv, "cosmosqa/train.csv|cosmosqa/data/train.csv", "cosmosqa/valid.csv|cosmosqa/data/valid.csv"),
        hub=HubDataset(path="allenai/cosmos_qa", name=None, splits={"train": "train", "dev": "validation"}, to_example=_hub_cosmosqa),
        source="wilburOne/cosmosqa data/{train,valid}.csv (../shared/data: valid) or allenai/cosmos_qa",
        license="CC BY 4.0",
    )
)

register(
    Task(
        name="siqa",
        description="Social IQa (Sap et al. 2019): social commonsense, 3 choices (also XTREME-R's step before COPA for XCOPA)",
        head=MULTIPLE_CHOICE,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        local=_files(read_siqa, "siqa/train.jsonl|siqa/socialIQa_v1.4_trn.jsonl", "siqa/dev.jsonl|siqa/socialIQa_v1.4_dev.jsonl"),
        hub=HubDataset(path="allenai/social_i_qa", name=None, splits={"train": "train", "dev": "validation"}, to_example=_hub_siqa),
        source="socialiqa-train-dev.zip ({train,dev}.jsonl + -labels.lst) or v1.4 jsonl with 'correct', or allenai/social_i_qa",
        license="CC BY 4.0",
    )
)

register(
    DataLabelledTask(
        name="ccg",
        description="CCG supertagging (CCGbank, Hockenmaier & Steedman 2007); the supertag set is taken from the training "
        "data at load time (CCGbank is licensed by the LDC, so none ships here)",
        head=TOKEN_CLASSIFICATION,
        metrics=(tag_accuracy,),
        main_metric="accuracy",
        languages=TRANSLATE_LANGUAGES,
        roles=_ROLES,
        local=_files(
            readers.read_ccg_supertags,
            "ccg/train.tsv|ccg/train.txt|ccg/ccg.train.tsv|ccg/wsj_02-21.stagged",
            "ccg/dev.tsv|ccg/dev.txt|ccg/ccg.dev.tsv|ccg/wsj_00.stagged",
        ),
        source="derived from CCGbank (LDC2005T13): word<TAB>supertag CoNLL, or word|POS|supertag lines (C&C / EasySRL)",
        license="LDC (CCGbank)",
    )
)

MLM_LANGUAGES = TRANSLATE_LANGUAGES

register(
    Task(
        name="mlm",
        description="Continued masked-language modelling on plain text, one file per language (the paper's MLM "
        "baseline); dev = the dev file, else lines held out from train (mlm.dev_lines)",
        head=MASKED_LM,
        metrics=(masked_lm_accuracy,),
        main_metric="accuracy",
        languages=MLM_LANGUAGES,
        roles=_ROLES,
        local=LocalFiles(
            files={"train": "mlm/{lang}.train.txt|mlm/{lang}.txt|mlm/{lang}.txt.gz", "dev": "mlm/{lang}.dev.txt"},
            reader=readers.read_plain_text_lines,
        ),
        hub=HubDataset(path="wikimedia/wikipedia", name="20231101.{lang}", splits={"train": "train"}, to_example=lambda r: r["text"]),
        source="any UTF-8 text, one sentence/paragraph per line (e.g. Wikipedia dumps via wikiextractor) or wikimedia/wikipedia",
        license="depends on the corpus (Wikipedia: CC BY-SA 3.0)",
    )
)
