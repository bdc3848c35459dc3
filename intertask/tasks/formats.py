"""Target-task file layouts and readers that `intertask.data.readers` does not cover.

* :class:`TargetFiles`: a :class:`~intertask.tasks.base.LocalFiles` whose patterns may contain ``*`` (every
  matching file is read, sorted: UD keeps one CoNLL-U file per treebank and XTREME concatenates every treebank of a
  language) and whose splits may exist only for some languages (XQuAD's dev split is English SQuAD dev).
* Readers, with the uniform reader contract (paths positionally, ``on_bad_example=``, ``ReadResult``):
  :func:`read_ud_pos` (several CoNLL-U files or XTREME ``token<TAB>UPOS`` tsv), :func:`read_bucc_corpus`
  (sentences of both sides + gold), :func:`read_lareqa` (XQuAD-R JSON), :func:`read_mewslix` (Wikinews mentions
  + entity candidates [+ labels]), :func:`read_mewslix_pairs` (English Wikipedia mention-entity training pairs).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from intertask.data import readers
from intertask.data.readers import ReadResult, _Bad, _get, _jsonl_records, _parse_json, _Records, _top_list, read_text
from intertask.errors import DataFormatError
from intertask.tasks.base import LocalFiles

PathLike = str | Path


# --------------------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetFiles(LocalFiles):
    """LocalFiles with globs and per-split language restrictions.

    * A pattern (or one ``|`` alternative of it) containing ``*`` expands to every matching file, sorted; the
      first alternative with at least one match wins, so ``"ud/{lang}_*-ud-dev.conllu|udpos/dev-{lang}.tsv"``
      reads all UD treebanks of the language, else XTREME's preprocessed file.
    * `split_languages` limits a split to some languages (``{"dev": ("en",)}``); for the others `paths` names a
      file that cannot exist and says why, so loading fails with a readable "data file not found" message.
    """

    split_languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def paths(self, data_dir: Path, split: str, language: str) -> tuple[Path, ...]:
        data_dir = Path(data_dir)
        allowed = self.split_languages.get(split)
        if allowed is not None and language not in allowed:
            return (data_dir / f"(no {split} data for language {language!r}: this split exists only for {', '.join(allowed)})",)
        pattern = self.files[split]
        patterns = pattern if isinstance(pattern, tuple) else (pattern,)
        code = self.file_codes.get(language, language)
        out: list[Path] = []
        for p in patterns:
            out.extend(_expand(data_dir, p.format(lang=code)))
        return tuple(out)


def _expand(data_dir: Path, pattern: str) -> list[Path]:
    alternatives = [a.strip() for a in pattern.split("|")]
    for alt in alternatives:
        if "*" in alt:
            matches = sorted(Path(m) for m in glob.glob(str(data_dir / alt)) if Path(m).is_file())
            if matches:
                return matches
        elif (data_dir / alt).is_file():
            return [data_dir / alt]
    return [data_dir / alternatives[0]]  # missing: the first (official) name goes into the error message


# --------------------------------------------------------------------------------------------------------------
# UD POS
# --------------------------------------------------------------------------------------------------------------


def read_ud_pos(*paths: PathLike, multiword: str = "xtreme", allow_unlabeled: bool = False, on_bad_example: str = "error") -> ReadResult[list[dict]]:
    """UD POS from one or more files, concatenated in order (XTREME joins every treebank of a language).

    ``.conllu`` files go through :func:`readers.read_conllu_pos` (FORM + UPOS; ``multiword="xtreme"``, the
    default, gives XTREME's items: a multiword token is one item with its span head's UPOS; ``"syntactic"``
    the syntactic words); any other file is read as XTREME's preprocessed ``token<TAB>UPOS`` tsv
    (``udpos/{split}-{lang}.tsv``) with the 17 UPOS tags. ``allow_unlabeled=True`` also reads XTREME's test
    tsv, which has the tokens only (``tags`` is None then).
    """
    if not paths:
        raise DataFormatError("(no file)", None, "no UD file given; expected at least one CoNLL-U or tsv file")
    examples: list[dict] = []
    skipped: list[DataFormatError] = []
    for path in paths:
        if str(path).endswith(".conllu"):
            result = readers.read_conllu_pos(path, multiword=multiword, on_bad_example=on_bad_example)  # type: ignore[arg-type]
        else:
            result = readers.read_conll_tags(
                path, tag_set=readers.UPOS_TAGS, strip_lang_prefix=False, allow_unlabeled=allow_unlabeled,
                on_bad_example=on_bad_example,
            )
        examples.extend(result.examples)
        skipped.extend(result.skipped)
    return ReadResult(examples, skipped)


# --------------------------------------------------------------------------------------------------------------
# BUCC 2018
# --------------------------------------------------------------------------------------------------------------


@dataclass
class BitextCorpus:
    """One BUCC language pair and split: both monolingual corpora and the gold translation pairs."""

    source: dict[str, str]  # id -> sentence (xx side)
    target: dict[str, str]  # id -> sentence (English side)
    gold: set[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.source)


def read_bucc_corpus(
    source_path: PathLike, target_path: PathLike, gold_path: PathLike, *, on_bad_example: str = "error"
) -> ReadResult[BitextCorpus]:
    """BUCC 2018 (comparable.limsi.fr/bucc2018): ``xx-en.{split}.xx``, ``xx-en.{split}.en`` (``ID<TAB>sentence``)
    and ``xx-en.{split}.gold`` (``xx_id<TAB>en_id``). A gold pair naming an id absent from the corpora is a bad
    record."""
    src = readers.read_bucc(source_path, on_bad_example=on_bad_example)
    tgt = readers.read_bucc(target_path, on_bad_example=on_bad_example)
    gold = readers.read_bucc_gold(gold_path, on_bad_example=on_bad_example)
    out = _Records(gold_path, on_bad_example)
    pairs: set[tuple[str, str]] = set()
    for s, t in sorted(gold.examples):
        with out.record(None):
            if s not in src.examples or t not in tgt.examples:
                missing = s if s not in src.examples else t
                raise _Bad(f"gold pair ({s}, {t}) names id {missing!r}, which is not in the sentence files")
            pairs.add((s, t))
    return ReadResult(BitextCorpus(src.examples, tgt.examples, pairs), src.skipped + tgt.skipped + gold.skipped + out.skipped)


# --------------------------------------------------------------------------------------------------------------
# LAReQA (XQuAD-R) and Mewsli-X
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RetrievalSet:
    """Queries that each have a set of relevant documents, and the documents to rank.

    queries: ``{"id", "text", "lang", "relevant": set[doc id]}`` (LAReQA queries also carry ``xling_id``);
    documents: ``{"id", "text", "lang"}`` (LAReQA documents also carry ``xling_ids``, the questions they answer
    in every language). LAReQA's relevant sets are completed across languages by the evaluation, which pools the
    candidates of all languages.
    """

    queries: list[dict]
    documents: list[dict]

    def __len__(self) -> int:
        return len(self.queries)


def read_lareqa(path: PathLike, *, language: str | None = None, on_bad_example: str = "error") -> ReadResult[RetrievalSet]:
    """XQuAD-R (google-research-datasets/lareqa ``xquad-r/{lang}.json``): SQuAD schema plus per-paragraph
    ``sentence_breaks`` ``[[start, end], ...]``. Every sentence of every paragraph is a candidate answer
    (document text = sentence + paragraph, as XTREME-R encodes it); a question's answer is the sentence holding
    its ``answer_start``; the question id (``xling_id``) is shared by the 11 translations.

    Language = `language`, else the file name stem (``ru.json`` -> ``ru``)."""
    lang = language or Path(path).name.split(".")[0]
    data = _top_list(path, _parse_json(path, read_text(path)), "data", "XQuAD-R / SQuAD schema")
    out = _Records(path, on_bad_example)
    queries: list[dict] = []
    documents: dict[str, dict] = {}
    n_par = 0
    for i, article in enumerate(data):
        paragraphs: list = []
        with out.record(f"data[{i}]"):
            paragraphs = _get(article, "paragraphs", list)
        for j, paragraph in enumerate(paragraphs):
            n_par += 1
            where = f"data[{i}].paragraphs[{j}]"
            with out.record(where):
                context = _get(paragraph, "context")
                breaks = _get(paragraph, "sentence_breaks", list)
                spans = []
                for b in breaks:
                    if not (isinstance(b, list) and len(b) == 2 and all(isinstance(x, int) for x in b) and 0 <= b[0] < b[1] <= len(context)):
                        raise _Bad(f"sentence break {b!r} is not [start, end] inside the {len(context)}-character context")
                    spans.append((b[0], b[1]))
                para_docs = []
                for k, (s, e) in enumerate(spans):
                    doc_id = f"{lang}_{n_par}_{k}"
                    doc = documents.setdefault(
                        doc_id, {"id": doc_id, "text": context[s:e] + " " + context, "sentence": context[s:e], "lang": lang, "xling_ids": set()}
                    )
                    para_docs.append(doc)
                for m, qa in enumerate(_get(paragraph, "qas", list)):
                    with out.record(f"{where}.qas[{m}]"):
                        qid = _get(qa, "id")
                        answers = _get(qa, "answers", list)
                        if not answers:
                            raise _Bad("'answers' is empty; expected the answer span")
                        start = _get(answers[0], "answer_start", int)
                        hit = next((d for d, (s, e) in zip(para_docs, spans) if s <= start < e), None)
                        if hit is None:
                            raise _Bad(f"answer_start {start} lies in no sentence of 'sentence_breaks'")
                        hit["xling_ids"].add(qid)
                        queries.append({"id": f"{qid}_{lang}", "xling_id": qid, "text": _get(qa, "question"), "lang": lang, "relevant": {hit["id"]}})
    return out.result(RetrievalSet(queries, list(documents.values())))


def _mention_text(context: dict, mention: dict) -> str:
    """Mention + the sentence holding it: ``"<mention> : <sentence>"`` (the mention span marks the query)."""
    text = context.get("text", "")
    span = mention.get("mention_span") or {}
    start, end = span.get("start", 0), span.get("end", 0)
    sentence = text
    for s in context.get("sentence_spans") or []:
        if isinstance(s, dict) and s.get("start", 0) <= start < s.get("end", 0):
            sentence = text[s["start"] : s["end"]]
            break
    return f"{span.get('text') or text[start:end]} : {sentence}".strip()


def _entity_text(entity: dict) -> str:
    title = entity.get("title") or ""
    description = entity.get("description") or ""
    return f"{title}. {description}".strip(". ") if title else description


def read_mewslix(
    mentions_path: PathLike, entities_path: PathLike, labels_path: PathLike | None = None, *, allow_unlabeled: bool = False, on_bad_example: str = "error"
) -> ReadResult[RetrievalSet]:
    """Mewsli-X (google-research dense_representations_for_entity_retrieval/mel, as XTREME-R's
    utils_preprocess.py shards it): ``wikinews_mentions/{split}-{lang}.jsonl`` (``{"context": {"text",
    "language", "sentence_spans"}, "mentions": [{"example_id", "mention_span": {"start", "end", "text"},
    "entity_id"}]}``), the shared ``candidate_set_entities.jsonl`` (``entity_id, title, description, ...``) and,
    for test (whose mention labels XTREME blanks), ``wikinews_labels/test-{lang}.json`` (``{example_id:
    [entity_id]}``). Query = mention + its sentence; document = entity title + description.
    ``allow_unlabeled=True`` keeps mentions without a gold entity (XTREME's test files; ``relevant`` empty)."""
    out = _Records(entities_path, on_bad_example)
    documents: list[dict] = []
    seen: set[str] = set()
    for _, lineno, obj in _jsonl_records(out, read_text(entities_path)):
        with out.record(lineno):
            eid = _get(obj, "entity_id")
            if eid in seen:
                raise _Bad(f"duplicate entity_id {eid!r}")
            seen.add(eid)
            documents.append(
                {
                    "id": eid,
                    "text": _entity_text({"title": _get(obj, "title", optional=True), "description": _get(obj, "description")}),
                    "lang": _get(obj, "description_language", optional=True) or "en",
                }
            )
    labels: dict[str, list] | None = None
    if labels_path is not None:
        doc = _parse_json(labels_path, read_text(labels_path))
        if not isinstance(doc, dict):
            raise DataFormatError(labels_path, None, "expected a JSON object {example_id: [entity_id]}")
        labels = doc
    m_out = _Records(mentions_path, on_bad_example)
    queries: list[dict] = []
    for _, lineno, obj in _jsonl_records(m_out, read_text(mentions_path)):
        with m_out.record(lineno):
            context = _get(obj, "context", dict)
            lang = _get(context, "language")
            for mention in _get(obj, "mentions", list):
                ex_id = _get(mention, "example_id")
                gold = [_get(mention, "entity_id", optional=True) or ""]
                if labels is not None:
                    if ex_id not in labels:
                        raise _Bad(f"example_id {ex_id!r} has no entry in {labels_path}")
                    gold = list(labels[ex_id])
                gold = [g for g in gold if g]
                if not gold and allow_unlabeled:
                    queries.append({"id": ex_id, "text": _mention_text(context, mention), "lang": lang, "relevant": set()})
                    continue
                if not gold:
                    raise _Bad(f"mention {ex_id!r} has no entity_id (test labels are in wikinews_labels/test-{{lang}}.json)")
                missing = [g for g in gold if g not in seen]
                if missing:
                    raise _Bad(f"mention {ex_id!r}: gold entity {missing[0]!r} is not in the candidate set")
                queries.append({"id": ex_id, "text": _mention_text(context, mention), "lang": lang, "relevant": set(gold)})
    return ReadResult(RetrievalSet(queries, documents), out.skipped + m_out.skipped)


def read_mewslix_pairs(path: PathLike, *, on_bad_example: str = "error") -> ReadResult[list[dict]]:
    """Mewsli-X English training pairs ``wikipedia_pairs-{train,dev}.jsonl``: ``{"contextual_mention":
    {"context", "mention"}, "entity": {...}}`` -> ``{"query", "document", "entity_id"}``."""
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, read_text(path)):
        with out.record(lineno):
            cm = _get(obj, "contextual_mention", dict)
            entity = _get(obj, "entity", dict)
            out.examples.append({
                "query": _mention_text(_get(cm, "context", dict), _get(cm, "mention", dict)),
                "document": _entity_text(entity),
                "entity_id": _get(entity, "entity_id"),
            })  # fmt: skip
    return out.result()
