"""Prediction files in the layout the official XTREME / XTREME-R ``evaluate.py`` reads.

google-research/xtreme ``evaluate.py --prediction_folder P --label_folder L [--xtreme_version xtreme|xtreme-r]``
opens ``{P,L}/{task}/test-{lang}.{suffix}`` for every task folder present in both, with the folder names and
suffixes below; we write the same layout for any split (``{split}-{lang}.{suffix}``; the official script reads
``test-*`` only). Formats, as its readers (``read_label`` / ``read_tag`` / ``read_squad`` / ``read_xcopa``) and
XTREME's own prediction writers produce them:

=========================  =====================================================================================
folder / suffix            one file per language
=========================  =====================================================================================
``xnli``, ``pawsx`` .tsv   one predicted label per line, in the order of the test file (``entailment`` / ``0``)
``panx``, ``udpos`` .tsv   one predicted tag per token line, a blank line after each sentence (seqeval input)
``xquad``, ``mlqa``,       JSON object ``{question id: answer text}`` (SQuAD's prediction file)
``tydiqa`` .json
``xcopa`` .jsonl           one JSON object ``{"label": <choice index>}`` per line (run_xcopa.py's writer)
``bucc2018`` .tsv          the mined pairs, ``<xx id><TAB><en id>`` per line (utils_retrieve.bucc_extract)
``tatoeba`` .tsv           for every English sentence, in file order, the 0-based line index of the retrieved
                           sentence of the other language (run_retrieval.py indexes the xx side)
``mewslix`` .json          ``{example_id: [entity ids, best first, 20]}`` (evaluate_retrieval.py's writer)
``lareqa`` .json           ``{question uid: [candidate uids, best first, 20]}``; uids as XTREME-R's
                           utils_lareqa (``<xling id>_<lang>``, ``<lang>_<paragraph>_<sentence>``). The public
                           evaluate.py lists no LAReQA language (its test answers are public): score this file
                           with mAP@20 (utils_lareqa.mean_avg_prec_at_k) or ``intertask eval``.
=========================  =====================================================================================

With ``labels_dir`` the gold side of labeled data is written in the label-folder layout too (SQuAD JSON for QA,
``{example_id: [entity]}`` for Mewsli-X, gold pairs for BUCC, gold indices for Tatoeba), so the official script
can score dev predictions. Unlabeled test files (XTREME strips labels from PAN-X, UD-POS, XNLI, PAWS-X, QA and
Mewsli-X test data; XCOPA's are all 0) are read for prediction; then no score is computed.

Everything reuses the evaluation path: the same featurisation, model forward and head post-processing as
``intertask eval`` (:mod:`intertask.evaluation.evaluate`), the same embeddings and rankings for retrieval
(:mod:`intertask.evaluation.retrieval`, :mod:`intertask.evaluation.zero_shot`), and the project's metrics score
the written predictions when gold labels exist.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intertask.errors import ConfigError
from intertask.io import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from intertask.tasks.base import Task

TOP_K = 20  # Mewsli-X / LAReQA predictions per query (utils_mewslix.TOP_K, mAP@20)


def predictable_tasks() -> list[str]:
    """Names of the tasks with an official prediction file (their record's ``official_name``)."""
    from intertask.tasks import all_tasks

    return [t.name for t in all_tasks() if t.official_name]


def prediction_format(task: Task) -> str:
    """The file format of `task`'s predictions, from its head (and a retrieval record's ``procedure``):
    labels / tags / answers / choices / pairs / ranked (see the module docstring)."""
    procedure = getattr(task, "procedure", None)
    if procedure is not None:
        return RETRIEVAL_FORMATS[procedure]
    if task.head.name.startswith("span_qa"):
        return "answers"
    return HEAD_FORMATS[task.head.name]


def prediction_file(root: str | Path, task: Task | str, split: str, language: str) -> Path:
    """``root/<official folder>/<split>-<lang>.<suffix>``, e.g. ``preds/bucc2018/test-de.tsv`` (`task`: record or name)."""
    if isinstance(task, str):
        from intertask.tasks import get_task

        task = get_task(task)
    suffix = FORMATS[prediction_format(task)][0]
    return Path(root) / _folder(task) / f"{split}-{language}.{suffix}"


def _folder(task: Task) -> str:
    if not task.official_name:
        raise ConfigError(
            f"task {task.name}: the official XTREME / XTREME-R prediction files exist for "
            f"{', '.join(predictable_tasks())}"
        )
    return task.official_name


# --------------------------------------------------------------------------------------------------------------
# Writers (one per format)
# --------------------------------------------------------------------------------------------------------------


def _lines(values: Sequence[Any]) -> str:
    for v in values:
        if "\n" in str(v) or "\r" in str(v):
            raise ValueError(f"a value to write one per line contains a line break: {v!r}")
    return "".join(f"{v}\n" for v in values)


def write_lines(path: str | Path, values: Sequence[Any]) -> Path:
    """One value per line (XNLI / PAWS-X labels, Tatoeba indices, BUCC ``src<TAB>tgt`` pairs)."""
    write_text_atomic(path, _lines(values))
    return Path(path)


def write_tags(path: str | Path, sentences: Sequence[Sequence[str]]) -> Path:
    """One tag per line, a blank line after each sentence (read back by evaluate.py's ``read_tag``)."""
    write_text_atomic(path, "".join(_lines(tags) + "\n" for tags in sentences))
    return Path(path)


def write_jsonl_labels(path: str | Path, labels: Sequence[int]) -> Path:
    write_text_atomic(path, "".join(json.dumps({"label": int(x)}) + "\n" for x in labels))
    return Path(path)


def write_json(path: str | Path, predictions: Any) -> Path:
    """A JSON object (QA answers by question id, Mewsli-X / LAReQA rankings by query id)."""
    write_json_atomic(path, predictions)
    return Path(path)


def write_pairs(path: str | Path, pairs: Any) -> Path:
    """BUCC's mined pairs, ``<xx id><TAB><en id>`` per line, sorted."""
    return write_lines(path, [f"{s}\t{t}" for s, t in sorted(pairs)])


# format -> (suffix, writer), as evaluate.py's ``get_suffix`` and readers expect
FORMATS: dict[str, tuple[str, Callable[[Path, Any], Path]]] = {
    "labels": ("tsv", write_lines),  # XNLI / PAWS-X labels; Tatoeba indices
    "tags": ("tsv", write_tags),
    "answers": ("json", write_json),
    "choices": ("jsonl", write_jsonl_labels),
    "pairs": ("tsv", write_pairs),
    "ranked": ("json", write_json),
}
HEAD_FORMATS = {"sequence_classification": "labels", "token_classification": "tags", "multiple_choice": "choices"}
RETRIEVAL_FORMATS = {"aligned_pairs": "labels", "bitext_mining": "pairs", "pooled_ranking": "ranked", "candidate_ranking": "ranked"}


def _write(task: Task, path: Path, predictions: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FORMATS[prediction_format(task)][1](path, predictions)


def _squad_labels(examples: Sequence[dict]) -> dict:
    """Gold answers as a SQuAD-schema document (one paragraph per question, as XTREME's test files)."""
    data = []
    for ex in examples:
        answers = [{"text": t, "answer_start": s} for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"])]
        data.append(
            {
                "paragraphs": [
                    {
                        "context": ex["context"],
                        "qas": [{"id": ex["id"], "question": ex["question"], "answers": answers}],
                    }
                ]
            }
        )
    return {"version": "1.1", "data": data}


# --------------------------------------------------------------------------------------------------------------
# Reading (labeled or not)
# --------------------------------------------------------------------------------------------------------------


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def read_for_prediction(
    task: Task, split: str, language: str, data_dir: Path, source: str = "local"
) -> tuple[Any, list[str]]:
    """(examples, files) of one split and language; unlabeled test files are accepted where the reader can
    read them (``allow_unlabeled=True``)."""
    from intertask.data.loading import load_examples

    if source == "hub" or task.local is None or not _accepts(task.local.reader, "allow_unlabeled"):
        data = load_examples(task, split, language, data_dir, source)
        return data.examples, data.files
    if language not in task.languages:
        from intertask.errors import unknown_name_message

        raise ConfigError(unknown_name_message(f"language for task {task.name}", language, task.languages))
    if split not in task.local.files:
        raise ConfigError(
            f"task {task.name} has no {split!r} split in local files (has: {', '.join(task.local.files)})"
        )
    paths = task.local.paths(Path(data_dir), split, language)
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"task {task.name}, {split} {language}: data file not found: {p} (data_dir={data_dir})")
    result = task.local.reader(*paths, allow_unlabeled=True, on_bad_example="error")
    return result.examples, [str(p) for p in paths]


def _is_labeled(task: Task, ex: dict) -> bool:
    head = task.head.name
    if head == "token_classification":
        return ex.get("tags") is not None
    if head.startswith("span_qa"):
        return bool(ex["answers"]["text"]) or bool(ex.get("is_impossible"))
    return ex.get("label") is not None


def _placeholder(task: Task, ex: dict) -> dict:
    """An unlabeled classification example with a stand-in label: featurisation needs one for its (unused) loss
    row; predictions never read it."""
    if task.head.name == "sequence_classification" and ex.get("label") is None:
        return {**ex, "label": task.labels[0]}
    return ex


# --------------------------------------------------------------------------------------------------------------
# Fine-tuned targets: XNLI, PAWS-X, UD-POS, PAN-X, XQuAD, MLQA, TyDiQA-GoldP, XCOPA
# --------------------------------------------------------------------------------------------------------------


def predict_target(
    task: Task,
    model_path: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str,
    output_dir: Path,
    labels_dir: Path | None = None,
    source: str = "local",
    batch_size: int = 64,
    max_length: int = 128,
    doc_stride: int = 128,
) -> dict[str, dict]:
    """Write ``output_dir/<task>/<split>-<lang>.<suffix>`` for a fine-tuned checkpoint; per language
    ``{"file", "examples", "labeled", "scores"?, "label_file"?}`` (scores by the task's metrics when labeled)."""
    from intertask.data.cache import featurize_cached
    from intertask.evaluation.evaluate import predict
    from intertask.evaluation.zero_shot import _check_labels, default_device
    from intertask.models.loading import checkpoint_dir, load_tokenizer

    device = default_device()
    directory = checkpoint_dir(model_path, "model")
    from intertask.models.source import model_errors

    with model_errors(directory, "model"):
        model = task.head.model_class.from_pretrained(str(directory)).to(device)
    _check_labels(task, model, directory)
    tokenizer = load_tokenizer(directory)
    out: dict[str, dict] = {}
    for lang in languages:
        examples, files = read_for_prediction(task, split, lang, data_dir, source)
        labeled = bool(examples) and all(_is_labeled(task, ex) for ex in examples)
        inputs = [_placeholder(task, ex) for ex in examples]
        features = featurize_cached(task, inputs, tokenizer, max_length, False, doc_stride, "eval", lang)
        raw = predict(model, tokenizer, task, features, batch_size, device, f"{task.name} {split} {lang} predict")
        predictions, references = task.head.postprocess(inputs, features, raw, task)
        path = _write(task, prediction_file(output_dir, task, split, lang), predictions)
        summary: dict[str, Any] = {
            "file": str(path),
            "examples": len(examples),
            "labeled": labeled,
            "data_files": files,
        }
        if labeled:
            summary["scores"] = task.compute_metrics(predictions, references, lang)
            if labels_dir is not None:
                gold = _squad_labels(examples) if prediction_format(task) == "answers" else references
                summary["label_file"] = str(
                    _write(task, prediction_file(labels_dir, task, split, lang), gold)
                )
        out[lang] = summary
    return out


# --------------------------------------------------------------------------------------------------------------
# Retrieval: Tatoeba, BUCC, LAReQA, Mewsli-X (a bare or fine-tuned encoder)
# --------------------------------------------------------------------------------------------------------------


def _embedder(
    task: Task,
    encoder_path: str | Path,
    batch_size: int,
    max_length: int,
    pooling: str,
    layer: int | None,
    prefix: str | None,
):
    """(embed(texts, side) with side "query" / "document", settings), as ``evaluate_retrieval`` sets it up:
    XTREME's layer for the model depth (last for embedding models), e5 prefixes for e5 models."""
    from intertask.evaluation.evaluate import embed_sentences
    from intertask.evaluation.zero_shot import (
        default_device,
        default_prefixes,
        default_retrieval_layer,
    )
    from intertask.models.loading import load_encoder, load_tokenizer

    device = default_device()
    encoder = load_encoder(encoder_path).to(device)
    tokenizer = load_tokenizer(encoder_path)
    if layer is None:
        layer = default_retrieval_layer(task, encoder_path, encoder.config)
    if pooling not in ("mean", "cls"):
        raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    q_prefix, d_prefix = (
        (prefix, prefix) if prefix is not None else default_prefixes(encoder_path, encoder.config, task)
    )

    def embed(texts: Sequence[str], side: str, what: str) -> np.ndarray:
        return embed_sentences(
            encoder,
            tokenizer,
            list(texts),
            batch_size,
            max_length,
            device,
            pooling,
            layer,
            q_prefix if side == "query" else d_prefix,
            f"{task.name} {what}",
        )

    return embed, {"pooling": pooling, "layer": layer, "prefix": [q_prefix, d_prefix]}


def predict_retrieval(
    task: Task,
    encoder_path: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str,
    output_dir: Path,
    labels_dir: Path | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    pooling: str = "mean",
    layer: int | None = None,
    prefix: str | None = None,
    margin_k: int = 4,
) -> dict[str, dict]:
    """Retrieval prediction files (see the module docstring) and, where gold exists, the project's scores of them."""
    from intertask.evaluation.zero_shot import retrieval_split

    split = retrieval_split(task, split)
    embed, settings = _embedder(task, encoder_path, batch_size, max_length, pooling, layer, prefix)
    procedure = getattr(task, "procedure", None)  # the retrieval record says how it is run
    if procedure == "bitext_mining":
        results = {lang: _bucc(task, lang, data_dir, split, embed, margin_k) for lang in languages}
    elif procedure == "pooled_ranking":  # one candidate pool across languages
        results = _lareqa(task, languages, data_dir, split, embed)
    elif procedure == "candidate_ranking":
        results = {lang: _mewslix(task, lang, data_dir, split, embed) for lang in languages}
    elif procedure == "aligned_pairs":
        results = {lang: _tatoeba(task, lang, data_dir, split, embed) for lang in languages}
    else:
        raise ConfigError(f"task {task.name}: no official prediction format for retrieval procedure {procedure!r}")
    out = {}
    for lang, (predictions, gold, summary) in results.items():
        summary["file"] = str(_write(task, prediction_file(output_dir, task, split, lang), predictions))
        if gold is not None and labels_dir is not None:
            summary["label_file"] = str(_write(task, prediction_file(labels_dir, task, split, lang), gold))
        out[lang] = {**summary, "labeled": gold is not None, **settings, "split": split}
    return out


def _tatoeba(task, lang, data_dir, split, embed):
    from intertask.data.loading import load_examples
    from intertask.evaluation.retrieval import tatoeba_accuracy, tatoeba_search

    data = load_examples(task, split, lang, data_dir)
    src, tgt = data.examples
    x, y = embed(src, "query", lang), embed(tgt, "document", f"{lang}-en en")
    predicted = tatoeba_search(y, x).tolist()  # English queries, xx index: XTREME's direction
    gold = list(range(len(src)))  # LASER's files are line-aligned
    return predicted, gold, {"examples": len(src), "scores": tatoeba_accuracy(x, y), "data_files": data.files}


def _bucc(task, lang, data_dir, split, embed, margin_k):
    from intertask.data import readers
    from intertask.data.loading import load_examples
    from intertask.evaluation.metrics import (
        bucc_f1,
        bucc_optimal_threshold,
        bucc_select,
    )
    from intertask.evaluation.zero_shot import bucc_candidates
    from intertask.tasks.formats import BitextCorpus

    def embed2(texts, _prefix, what):
        return embed(texts, "query", what)

    dev = load_examples(task, "dev", lang, data_dir).examples
    threshold = bucc_optimal_threshold(bucc_candidates(dev, embed2, "", margin_k, f"{lang} dev"), dev.gold)
    if split == "dev":
        corpus = dev
    else:
        paths = task.local.paths(Path(data_dir), split, lang)
        if not paths[2].is_file() and paths[0].is_file() and paths[1].is_file():
            # BUCC's test gold is not public (XTREME's download drops it): mine from the sentences alone
            corpus = BitextCorpus(readers.read_bucc(paths[0]).examples, readers.read_bucc(paths[1]).examples, set())
        else:
            corpus = load_examples(task, split, lang, data_dir).examples
    mined = bucc_select(bucc_candidates(corpus, embed2, "", margin_k, f"{lang} {split}"), threshold)
    summary: dict[str, Any] = {
        "examples": len(corpus.source),
        "threshold": threshold,
        "threshold_from": "dev",
        "pairs": len(mined),
    }
    gold = None
    if corpus.gold:
        gold = sorted(corpus.gold)
        summary["scores"] = bucc_f1(mined, corpus.gold)
    return mined, gold, summary


def _ranked(embed, queries, documents, lang, what):
    from intertask.evaluation.zero_shot import rank_documents

    doc_emb = embed([d["text"] for d in documents], "document", what)
    return rank_documents(
        embed([q["text"] for q in queries], "query", f"{lang} queries"), doc_emb, [d["id"] for d in documents], TOP_K
    )


def _lareqa(task, languages, data_dir, split, embed):
    from intertask.data.loading import has_data, load_examples
    from intertask.evaluation.metrics import map_at_k

    pool = [lang for lang in task.languages if has_data(task, split, lang, data_dir)] or list(languages)
    sets = {
        lang: load_examples(task, split, lang, data_dir).examples
        for lang in dict.fromkeys(list(pool) + list(languages))
    }
    documents = [d for s in sets.values() for d in s.documents]
    by_xling: dict[str, set[str]] = {}
    for d in documents:
        for x in d["xling_ids"]:
            by_xling.setdefault(x, set()).add(d["id"])
    from intertask.evaluation.zero_shot import rank_documents

    doc_emb = embed([d["text"] for d in documents], "document", f"candidates ({len(sets)} languages)")
    doc_ids = [d["id"] for d in documents]
    out = {}
    for lang in languages:
        queries = sets[lang].queries
        ranked = rank_documents(
            embed([q["text"] for q in queries], "query", f"{lang} questions"), doc_emb, doc_ids, TOP_K
        )
        relevant = [by_xling[q["xling_id"]] for q in queries]
        predictions = {q["id"]: r for q, r in zip(queries, ranked)}
        gold = {q["id"]: sorted(rel) for q, rel in zip(queries, relevant)}
        out[lang] = (
            predictions,
            gold,
            {"examples": len(queries), "candidates": len(documents), "scores": map_at_k(ranked, relevant, k=TOP_K)},
        )
    return out


def _mewslix(task, lang, data_dir, split, embed):
    from intertask.evaluation.metrics import map_at_k
    from intertask.tasks.formats import read_mewslix

    paths = task.local.paths(Path(data_dir), split, lang)
    for p in paths[:2]:
        if not p.is_file():
            raise ConfigError(f"task mewslix, {split} {lang}: data file not found: {p} (data_dir={data_dir})")
    labels = paths[2] if len(paths) > 2 and paths[2].is_file() else None
    data = read_mewslix(paths[0], paths[1], labels, allow_unlabeled=True).examples
    ranked = _ranked(embed, data.queries, data.documents, lang, "entities")
    predictions = {q["id"]: r for q, r in zip(data.queries, ranked)}
    summary: dict[str, Any] = {"examples": len(data.queries), "candidates": len(data.documents)}
    gold = None
    if data.queries and all(q["relevant"] for q in data.queries):
        gold = {q["id"]: sorted(q["relevant"]) for q in data.queries}
        summary["scores"] = map_at_k(ranked, [q["relevant"] for q in data.queries], k=TOP_K)
    return predictions, gold, summary


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def write_predictions(
    task: Task,
    model: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str,
    output_dir: Path,
    labels_dir: Path | None = None,
    source: str = "local",
    batch_size: int = 64,
    max_length: int = 128,
    doc_stride: int = 128,
    pooling: str = "mean",
    layer: int | None = None,
) -> dict[str, Any]:
    """Prediction files of `task` for `languages` under `output_dir` (official layout) and a summary
    ``{"task", "folder", "split", "languages": {lang: {...}}}``, also written to ``output_dir/<folder>/summary-<split>.json``."""
    if split not in ("dev", "test"):
        raise ConfigError(f"split: expected dev or test, got {split!r}")
    folder = _folder(task)  # fails clearly for a task without an official prediction file
    output_dir = Path(output_dir)
    if task.head.name == "retrieval":
        per_lang = predict_retrieval(
            task, model, languages, data_dir, split, output_dir, labels_dir, batch_size, max_length, pooling, layer
        )
    else:
        per_lang = predict_target(
            task, model, languages, data_dir, split, output_dir, labels_dir, source, batch_size, max_length, doc_stride
        )
    summary = {
        "task": task.name,
        "folder": folder,
        "model": str(model),
        "split": split,
        "languages": per_lang,
    }
    write_json_atomic(output_dir / folder / f"summary-{split}.json", summary)
    return summary


def write_run_predictions(
    cfg: Any, target_cfg: Any, target_dir: Path, encoder_from: Path | None, output_dir: Path
) -> dict[str, Any]:
    """``evaluation.predict: true``: prediction files of the run's target (its fine-tuned checkpoint) and
    retrieval tasks (the arm's encoder) under `output_dir`, on ``evaluation.split`` and its languages, gold labels
    of labeled data under ``output_dir/labels``. Done once per checkpoint: a finished task leaves its summary."""
    from intertask.evaluation.zero_shot import pick_languages, retrieval_split
    from intertask.models.loading import MODEL_DIR
    from intertask.tasks import get_task

    ev = cfg.evaluation
    out: dict[str, Any] = {}
    target = get_task(cfg.target.task)
    jobs: list[tuple[Any, Any, list[str]]] = []
    if target.official_name:
        jobs.append(
            (
                target,
                Path(target_dir) / MODEL_DIR,
                pick_languages(target, ev.languages, ev.split, cfg.data_dir, cfg.data_source),
            )
        )
    encoder = encoder_from if encoder_from is not None else cfg.model.name_or_path
    for name in ev.retrieval_tasks:
        task = get_task(name)
        if task.official_name:
            jobs.append(
                (
                    task,
                    encoder,
                    pick_languages(
                        task, ev.retrieval_languages, retrieval_split(task, ev.split), cfg.data_dir, "local"
                    ),
                )
            )
    for task, model, langs in jobs:
        done = Path(output_dir) / _folder(task) / f"summary-{ev.split}.json"
        if done.is_file():
            out[task.name] = json.loads(done.read_text(encoding="utf-8"))
            continue
        max_length = (
            (target_cfg.max_seq_length or cfg.model.max_seq_length) if task is target else cfg.model.max_seq_length
        )
        source = cfg.data_source if task is target else "local"
        out[task.name] = write_predictions(
            task,
            model,
            langs,
            Path(cfg.data_dir),
            ev.split,
            Path(output_dir),
            Path(output_dir) / "labels",
            source,
            ev.batch_size,
            max_length,
            target_cfg.doc_stride,
        )
    return out
