"""Zero-shot evaluation of a target checkpoint on every language, and of encoders on retrieval tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from intertask.data.loading import available_languages, has_data, load_examples
from intertask.errors import ConfigError
from intertask.evaluation.evaluate import embed_sentences, predict_examples
from intertask.evaluation.metrics import bucc_optimal_threshold, bucc_select
from intertask.evaluation.retrieval import mine_bitext, nearest_neighbours
from intertask.models.loading import checkpoint_dir, load_encoder, load_tokenizer
from intertask.results.stats import example_scores

if TYPE_CHECKING:
    from intertask.tasks.base import Task
    from intertask.tasks.retrieval import RetrievalTask


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_languages(task: Task, requested: Sequence[str], split: str, data_dir: Path, source: str) -> list[str]:
    """The requested languages (validated), or every language with data for this split."""
    if requested:
        for lang in requested:
            if lang not in task.languages:
                from intertask.errors import unknown_name_message

                raise ConfigError(unknown_name_message(f"language for task {task.name}", lang, task.languages))
        return list(requested)
    if source == "hub":
        return list(task.languages)
    langs = available_languages(task, split, data_dir)
    if not langs:
        raise ConfigError(f"task {task.name}: no {split} files for any language under {data_dir}")
    return langs


def retrieval_split(task: Task, split: str) -> str:
    """Retrieval benchmarks such as Tatoeba ship only one split; use it whatever was asked."""
    splits = task.splits()
    return split if split in splits else splits[0]


def evaluate_target(
    task: Task,
    model_path: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str = "dev",
    source: str = "local",
    max_samples: int | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    doc_stride: int = 128,
    seed: int = 0,
) -> dict[str, dict]:
    """Metrics per language of a fine-tuned checkpoint (a stage or model directory)."""
    device = default_device()
    directory = checkpoint_dir(model_path, "model")
    from intertask.models.source import model_errors

    with model_errors(directory, "model"):
        model = task.head.model_class.from_pretrained(str(directory)).to(device)
    _check_labels(task, model, directory)
    tokenizer = load_tokenizer(directory)
    results: dict[str, dict] = {}
    for lang in languages:
        data = load_examples(task, split, lang, data_dir, source, max_samples=max_samples, seed=seed)
        scores, predictions, references = predict_examples(
            model, tokenizer, task, data.examples, lang, max_length, batch_size, device, doc_stride, f"{task.name} {split} {lang}"
        )
        per_example = example_scores(task, predictions, references, lang)  # for bootstrap CIs in reports
        results[lang] = {**scores, "examples": len(data.examples), "files": data.files, "per_example": per_example}
    return results


def _check_labels(task: Task, model, directory: Path) -> None:
    if task.labels:
        got = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if got != list(task.labels):
            raise ConfigError(f"{directory}: model labels {got} do not match task {task.name} labels {list(task.labels)}")


# --------------------------------------------------------------------------------------------------------------
# Retrieval: Tatoeba, BUCC, LAReQA, Mewsli-X
# --------------------------------------------------------------------------------------------------------------

EMBEDDING_MODEL_NAME = re.compile(r"(^|[-_.])(e5|labse|minilm|mpnet|bge|gte|sentence-t5)([-_.]|$)|^sentence-transformers$")
E5_NAME = re.compile(r"(^|[-_.])e5([-_.]|$)")


def _model_names(encoder_path: str | Path, config=None) -> list[str]:
    """Lower-cased path components of the model id / directory and of config._name_or_path (hub org included)."""
    names = [str(encoder_path)] + ([str(getattr(config, "_name_or_path", "") or "")] if config is not None else [])
    return [part.lower() for n in names for part in Path(n).parts[-2:] if part]


def is_embedding_model(encoder_path: str | Path, config=None) -> bool:
    """Sentence-embedding models (the embedded e5 default, sentence-transformers, LaBSE, ...) are trained to be
    used from their last layer with their own pooling; XTREME's middle-layer choice is for MLM encoders."""
    return str(encoder_path) == "default" or any(EMBEDDING_MODEL_NAME.search(n) for n in _model_names(encoder_path, config))


def default_retrieval_layer(task: RetrievalTask, encoder_path: str | Path, config) -> int:
    """XTREME's layer for this model depth (the record's ``xtreme_layers``); -1 (last) for embedding models
    and other depths."""
    if is_embedding_model(encoder_path, config):
        return -1
    return task.xtreme_layers.get(int(getattr(config, "num_hidden_layers", 0)), -1)


def default_prefixes(encoder_path: str | Path, config, task: RetrievalTask) -> tuple[str, str]:
    """(query prefix, document prefix): e5 models expect "query: " / "passage: " (both "query: " for symmetric
    bitext tasks, the record's ``asymmetric=False``); no prefix for anything else."""
    if str(encoder_path) == "default" or any(E5_NAME.search(n) for n in _model_names(encoder_path, config)):
        return ("query: ", "passage: ") if task.asymmetric else ("query: ", "query: ")
    return "", ""


@dataclass
class RetrievalRun:
    """What a retrieval procedure needs besides the task and the languages."""

    data_dir: Path
    split: str
    source: str
    embed: Callable[[Sequence[str], str, str], Any]  # (texts, prefix, what) -> (n, dim) embeddings
    query_prefix: str
    document_prefix: str
    k: int  # ranking depth (mAP@k)
    margin_k: int  # neighbours of the mining margin


def evaluate_retrieval(
    task: RetrievalTask,
    encoder_path: str | Path,
    languages: Sequence[str],
    data_dir: Path,
    split: str = "test",
    batch_size: int = 64,
    max_length: int = 128,
    pooling: str = "mean",
    layer: int | None = None,
    prefix: str | None = None,
    source: str = "local",
    k: int = 20,
    margin_k: int = 4,
) -> dict[str, dict]:
    """Evaluate a bare encoder on a retrieval task, per language, by the record's ``procedure``
    (:data:`RETRIEVAL_PROCEDURES`) and with the record's metrics.

    * aligned_pairs (Tatoeba): nearest-neighbour accuracy both ways (``accuracy`` = XTREME's en->xx search).
    * bitext_mining (BUCC): ratio-margin mining (``margin_k`` = 4 neighbours) over both whole corpora; on
      ``split="test"`` the threshold maximising F1 on the dev ("sample") split is applied to test; on
      ``split="dev"`` the dev-optimal threshold is reported on dev itself (optimistic, ``threshold_from: dev``).
    * pooled_ranking (LAReQA): every question of a language ranks the pooled candidates of *all* languages with
      data (XQuAD-R's 11), ``map@20``; the pool does not shrink when fewer query languages are asked for.
    * candidate_ranking (Mewsli-X): mentions rank the entity candidate set, ``map@20`` (one gold entity: MRR@20).

    ``layer=None``: XTREME's layer for the model depth, the last one for embedding models (see
    :func:`default_retrieval_layer`); ``prefix=None``: e5's "query: "/"passage: " for e5 models, else none.
    """
    procedure = RETRIEVAL_PROCEDURES.get(getattr(task, "procedure", None))  # type: ignore[arg-type]
    if procedure is None:
        known = ", ".join(RETRIEVAL_PROCEDURES)
        raise ConfigError(f"task {task.name} is not a retrieval task (a RetrievalTask whose procedure is one of {known})")
    device = default_device()
    encoder = load_encoder(encoder_path).to(device)
    tokenizer = load_tokenizer(encoder_path)
    if layer is None:
        layer = default_retrieval_layer(task, encoder_path, encoder.config)
    n_states = int(getattr(encoder.config, "num_hidden_layers", 0)) + 1
    if n_states > 1 and not -n_states <= layer < n_states:
        raise ConfigError(f"layer {layer}: the encoder has hidden states 0..{n_states - 1} (0 = embeddings, -1 = last)")
    if pooling not in ("mean", "cls"):
        raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    q_prefix, d_prefix = (prefix, prefix) if prefix is not None else default_prefixes(encoder_path, encoder.config, task)
    split = retrieval_split(task, split)
    settings = {"split": split, "pooling": pooling, "layer": layer, "prefix": [q_prefix, d_prefix]}

    def embed(texts: Sequence[str], side_prefix: str, what: str):
        return embed_sentences(encoder, tokenizer, list(texts), batch_size, max_length, device, pooling, layer, side_prefix, f"{task.name} {what}")

    run = RetrievalRun(Path(data_dir), split, source, embed, q_prefix, d_prefix, k, margin_k)
    results = procedure(task, languages, run)
    return {lang: {**scores, **settings} for lang, scores in results.items()}


def _aligned_pairs(task: RetrievalTask, languages: Sequence[str], run: RetrievalRun) -> dict[str, dict]:
    """Tatoeba-style line-aligned pairs (local files, or hub rows ``[{"source", "target"}]``)."""
    results = {}
    for lang in languages:
        data = load_examples(task, run.split, lang, run.data_dir, run.source)
        if isinstance(data.examples, list):  # hub rows
            source_sentences = [r["source"] for r in data.examples]
            target_sentences = [r["target"] for r in data.examples]
        else:
            source_sentences, target_sentences = data.examples
        src = run.embed(source_sentences, run.query_prefix, f"{lang}")
        tgt = run.embed(target_sentences, run.document_prefix, f"{lang}-en en")
        results[lang] = {**task.compute_metrics(src, tgt, lang), "examples": len(source_sentences)}
    return results


def bucc_candidates(corpus, embed, prefix: str = "", margin_k: int = 4, what: str = "") -> list[tuple[str, str, float]]:
    """Margin-scored candidate pairs (src id, tgt id, score) of one BUCC corpus (a formats.BitextCorpus).

    As XTREME: identical sentences are embedded and mined once, and a sentence that occurs under several ids
    on its side is dropped from the candidates (utils_retrieve.read_sent2id)."""
    src_texts, src_map = _unique(corpus.source)
    tgt_texts, tgt_map = _unique(corpus.target)
    x = embed(src_texts, prefix, f"{what} xx")
    y = embed(tgt_texts, prefix, f"{what} en")
    mined = mine_bitext(x, y, list(range(len(src_texts))), list(range(len(tgt_texts))), k=margin_k, margin="ratio", min_score=None)
    out = []
    for s, t, score in mined:
        s_text, t_text = src_texts[s], tgt_texts[t]
        if s_text in src_map and t_text in tgt_map:
            out.append((src_map[s_text], tgt_map[t_text], score))
    return out


def _unique(id2sent: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    texts: list[str] = []
    first: dict[str, str] = {}
    repeated: set[str] = set()
    for sid, sent in id2sent.items():
        sent = sent.strip()
        if sent in first:
            repeated.add(sent)
        else:
            first[sent] = sid
            texts.append(sent)
    return texts, {t: i for t, i in first.items() if t not in repeated}


def _bitext_mining(task: RetrievalTask, languages: Sequence[str], run: RetrievalRun) -> dict[str, dict]:
    return {lang: _mine_language(task, lang, run) for lang in languages}


def _mine_language(task: RetrievalTask, lang: str, run: RetrievalRun) -> dict:
    dev = load_examples(task, "dev", lang, run.data_dir).examples
    dev_cands = bucc_candidates(dev, run.embed, run.query_prefix, run.margin_k, f"{lang} dev")
    threshold = bucc_optimal_threshold(dev_cands, dev.gold)
    dev_scores = task.compute_metrics(bucc_select(dev_cands, threshold), dev.gold, lang)
    if run.split == "dev":
        sizes = {"examples": len(dev.source), "sentences": [len(dev.source), len(dev.target)], "gold_pairs": len(dev.gold)}
        return {**dev_scores, "threshold": threshold, "threshold_from": "dev", **sizes}
    test = load_examples(task, run.split, lang, run.data_dir).examples
    test_cands = bucc_candidates(test, run.embed, run.query_prefix, run.margin_k, f"{lang} {run.split}")
    scores = task.compute_metrics(bucc_select(test_cands, threshold), test.gold, lang)
    sizes = {"examples": len(test.source), "sentences": [len(test.source), len(test.target)], "gold_pairs": len(test.gold)}
    return {**scores, "threshold": threshold, "threshold_from": "dev", f"dev_{task.main_metric}": dev_scores[task.main_metric], **sizes}


def rank_documents(query_emb, doc_emb, doc_ids: Sequence[str], k: int = 20) -> list[list[str]]:
    """Top-k document ids per query by cosine (faiss, exact)."""
    _, idx = nearest_neighbours(query_emb, doc_emb, k)
    return [[doc_ids[j] for j in row if j >= 0] for row in idx]


def _pooled_ranking(task: RetrievalTask, languages: Sequence[str], run: RetrievalRun) -> dict[str, dict]:
    """LAReQA: each language's questions rank the pooled candidates of every language with data."""
    pool_langs = [lang for lang in task.languages if has_data(task, run.split, lang, run.data_dir)] or list(languages)
    sets = {lang: load_examples(task, run.split, lang, run.data_dir).examples for lang in dict.fromkeys(list(pool_langs) + list(languages))}
    documents = [d for s in sets.values() for d in s.documents]
    by_xling: dict[str, set[str]] = {}
    for d in documents:
        for x in d["xling_ids"]:
            by_xling.setdefault(x, set()).add(d["id"])
    doc_emb = run.embed([d["text"] for d in documents], run.document_prefix, f"candidates ({len(pool_langs)} languages)")
    doc_ids = [d["id"] for d in documents]
    results: dict[str, dict] = {}
    for lang in languages:
        queries = sets[lang].queries
        ranked = rank_documents(run.embed([q["text"] for q in queries], run.query_prefix, f"{lang} questions"), doc_emb, doc_ids, run.k)
        relevant = [by_xling[q["xling_id"]] for q in queries]
        sizes = {"examples": len(queries), "queries": len(queries), "candidates": len(documents), "candidate_languages": sorted(sets)}
        results[lang] = {**task.compute_metrics(ranked, relevant, lang, k=run.k), **sizes}
    return results


def _candidate_ranking(task: RetrievalTask, languages: Sequence[str], run: RetrievalRun) -> dict[str, dict]:
    """Mewsli-X: each language's mentions rank the one shared entity candidate set."""
    results: dict[str, dict] = {}
    cache: dict[tuple[str, ...], tuple] = {}
    for lang in languages:
        data = load_examples(task, run.split, lang, run.data_dir)
        key = tuple(data.files[1:2])  # the shared entity file
        if key not in cache:
            docs = data.examples.documents
            cache[key] = (run.embed([d["text"] for d in docs], run.document_prefix, "entities"), [d["id"] for d in docs])
        doc_emb, doc_ids = cache[key]
        queries = data.examples.queries
        ranked = rank_documents(run.embed([q["text"] for q in queries], run.query_prefix, f"{lang} mentions"), doc_emb, doc_ids, run.k)
        scores = task.compute_metrics(ranked, [q["relevant"] for q in queries], lang, k=run.k)
        results[lang] = {**scores, "examples": len(queries), "queries": len(queries), "candidates": len(doc_ids)}
    return results


# procedure (RetrievalTask.procedure) -> (task, languages, run) -> {language: scores}
RETRIEVAL_PROCEDURES: dict[str, Callable[[RetrievalTask, Sequence[str], RetrievalRun], dict[str, dict]]] = {
    "aligned_pairs": _aligned_pairs,
    "bitext_mining": _bitext_mining,
    "pooled_ranking": _pooled_ranking,
    "candidate_ranking": _candidate_ranking,
}
