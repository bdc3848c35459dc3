"""Readers for the official file formats of every task (XTREME / XTREME-R targets, X-STILTs intermediate tasks).

Design (uniform for every reader)
---------------------------------
* Every reader takes its file path(s) positionally, options as keywords, and
  ``on_bad_example: Literal["error", "skip"] = "error"`` (so ``intertask.data.loading`` can call any of them as
  ``reader(*paths, on_bad_example=...)``; bind other options with ``functools.partial``).
* Every reader returns ``ReadResult(examples, skipped)``:

  - ``examples``: the parsed data. For example readers it is a ``list[dict]`` in one of the canonical shapes
    below; the text/retrieval readers document their own structure (``read_tatoeba``: a pair of aligned
    ``list[str]``; ``read_bucc``: ``dict[id, sentence]``; ``read_bucc_gold``: ``set[(src_id, tgt_id)]``;
    ``read_plain_text_lines`` / ``read_image_list``: ``list[str]``).
  - ``skipped``: the ``DataFormatError`` of every bad record dropped under ``on_bad_example="skip"``
    (empty with ``"error"``, where the first bad record raises). Nothing is ever dropped silently.

* File-level defects always raise ``DataFormatError``, whatever ``on_bad_example`` says: empty file, invalid
  UTF-8 (with the line number), corrupt gzip, JSON that does not parse, broken CSV quoting, a missing header
  column, JSON without the expected top-level list, parallel files with different line counts.
  Record-level defects (wrong column count, missing key, wrong value type, label outside the label set,
  token/tag mismatch, answer span outside the context, a JSONL line that does not parse, ...) raise by
  default and are collected in ``skipped`` with ``on_bad_example="skip"``.
* ``where`` in an error is a 1-based line number for line-oriented files (for a multi-line CSV record: the line
  it starts on) and a record path such as ``data[3].paragraphs[0].qas[2]`` for nested JSON.
* All files are read through one helper layer (:func:`read_text` / :func:`open_text`): gzip is detected by its
  magic bytes (``.gz`` / ``.gzip``), text is decoded as ``utf-8-sig`` (a BOM is fine) and CRLF is normalised to
  LF, so BOM and CRLF variants parse identically to the clean file.

Canonical example shapes (other modules depend on exactly these keys)
---------------------------------------------------------------------
* sentence(-pair) classification: ``{"text_a": str, "text_b": str | None, "label": str}``
* tagging: ``{"tokens": list[str], "tags": list[str]}``
* span QA: ``{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}, "is_impossible"}``
* multiple choice: ``{"id": str, "context": str, "question": str, "choices": list[str], "label": int}``
* captions: ``{"image": str | None, "caption": str}`` (Flickr8k, Multi30k);
  ``{"image_id", "file_name", "caption"}`` (COCO); VQA: ``{"question_id", "image_id", "question", "answers",
  "multiple_choice_answer"}``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Iterator, Literal, Mapping, Sequence, TypeVar

from intertask.errors import ConfigError, DataFormatError

__all__ = [
    "ReadResult",
    "OnBadExample",
    "NLI_LABELS",
    "PAWSX_LABELS",
    "PANX_TAGS",
    "UPOS_TAGS",
    "open_text",
    "read_text",
    "read_pair_tsv",
    "read_pair_table",
    "read_mnli",
    "read_qqp_tsv",
    "read_anli",
    "read_conll_tags",
    "read_conllu_pos",
    "read_ccg_supertags",
    "read_squad_json",
    "read_tatoeba",
    "read_bucc",
    "read_bucc_gold",
    "read_xcopa_jsonl",
    "read_siqa_jsonl",
    "read_hellaswag_jsonl",
    "read_cosmosqa_csv",
    "read_plain_text_lines",
    "read_flickr8k_captions",
    "read_coco_captions",
    "read_vqa",
    "read_multi30k",
    "read_image_list",
]

OnBadExample = Literal["error", "skip"]
PathLike = str | Path
T = TypeVar("T")

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
PAWSX_LABELS: tuple[str, ...] = ("0", "1")  # "1" = paraphrase (PAWS, PAWS-X; QQP's duplicate flag too)
PANX_TAGS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
UPOS_TAGS: tuple[str, ...] = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip
_ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


@dataclass
class ReadResult(Generic[T]):
    """What a reader returns: the parsed data and the bad records it skipped (see the module docstring)."""

    examples: T
    skipped: list[DataFormatError] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Shared layer: opening (gzip / BOM / CRLF / UTF-8 check), line numbering, JSON, tables, error policy.
# --------------------------------------------------------------------------------------------------------------


def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DataFormatError(path, None, "file not found") from None
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix (.gz, .gzip)
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(path, None, f"corrupt or truncated gzip data ({exc}); expected a complete gzip file") from None
    return data


def read_text(path: PathLike) -> str:
    """The whole file as text: gunzipped if gzip, decoded as ``utf-8-sig``, CRLF normalised to LF.

    Raises DataFormatError for an empty (or whitespace-only) file and for invalid UTF-8, naming the line.
    """
    data = _read_bytes(path)
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    if not body:
        raise DataFormatError(path, None, "file is empty (0 bytes); expected data")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # offsets are relative to the text after the BOM
        line = body.count(b"\n", 0, exc.start) + 1
        bad = body[exc.start : exc.start + 1].hex()
        hint = " (the file looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DataFormatError(path, line, f"invalid UTF-8: byte 0x{bad} ({exc.reason}){hint}; expected UTF-8 text") from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise DataFormatError(path, None, "file is empty (only whitespace); expected data")
    return text


def open_text(path: PathLike) -> io.StringIO:
    """A text stream over :func:`read_text` (gzip, BOM, CRLF and UTF-8 handled); usable as a context manager."""
    return io.StringIO(read_text(path), newline="\n")


def _lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line without "\\n"); a final newline does not start an extra line.

    Splits on "\\n" only: str.splitlines() would also split on U+2028, \\x1c, \\x85 ... found inside real text.
    """
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return list(enumerate(parts, start=1))


class _Bad(Exception):
    """A bad record; `where` / `path` override the record's location (e.g. a sub-record or a second file)."""

    def __init__(self, problem: str, where: int | str | None = None, path: PathLike | None = None):
        super().__init__(problem)
        self.problem, self.where, self.path = problem, where, path


def _check_policy(on_bad_example: str) -> None:
    if on_bad_example not in ("error", "skip"):
        raise ConfigError(f"on_bad_example must be 'error' or 'skip', found {on_bad_example!r}")


def _top_list(path: PathLike, doc: Any, key: str, what: str) -> list:
    """doc[key] for a JSON document that must be an object holding a list under `key` (file-level check)."""
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        found = f"an object with keys {', '.join(map(repr, doc)) or 'none'}" if isinstance(doc, dict) else _type_name(doc)
        if isinstance(doc, dict) and key in doc:
            found = f"{key!r} is {_type_name(doc[key])}"
        raise DataFormatError(path, None, f"expected a JSON object with a {key!r} list ({what}), found {found}")
    return doc[key]


class _Records:
    """Collects examples and applies the on_bad_example policy to every `_Bad` raised inside `record()`."""

    def __init__(self, path: PathLike, on_bad_example: str):
        _check_policy(on_bad_example)
        self.path, self.policy = path, on_bad_example
        self.examples: list[Any] = []
        self.skipped: list[DataFormatError] = []

    @contextmanager
    def record(self, where: int | str | None) -> Iterator[None]:
        try:
            yield
        except _Bad as bad:
            err = DataFormatError(bad.path or self.path, bad.where if bad.where is not None else where, bad.problem)
            if self.policy == "error":
                raise err from None
            self.skipped.append(err)

    def result(self, examples: Any = None) -> ReadResult:
        return ReadResult(self.examples if examples is None else examples, self.skipped)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object"}
_A_TYPE = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list", dict: "an object"}


def _type_name(value: Any) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def _get(obj: Any, key: str, kind: type | tuple[type, ...] = str, where: str | None = None, optional: bool = False) -> Any:
    """obj[key], checked to be of `kind` (bool never counts as int); raises _Bad naming the key."""
    if not isinstance(obj, dict):
        raise _Bad(f"expected a JSON object, found {_type_name(obj)}", where)
    if key not in obj:
        if optional:
            return None
        raise _Bad(f"missing key {key!r} (found keys: {', '.join(map(repr, obj)) or 'none'})", where)
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(_A_TYPE.get(k, k.__name__) for k in kinds)
        raise _Bad(f"expected {key!r} to be {expected}, found {_type_name(value)} {_short(value)}", where)
    return value


def _check_label(label: str, labels: Sequence[str] | None, name: str = "label") -> str:
    if labels is not None and label not in labels:
        raise _Bad(f"{name} {label!r} is not one of the allowed labels: {', '.join(map(repr, labels))}")
    return label


def _index(value: Any, n: int, name: str = "label") -> int:
    """A 0-based choice index from an int or a digit string; must be in [0, n)."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"expected {name} to be an integer choice index, found {_type_name(value)} {_short(value)}")
    if not 0 <= value < n:
        raise _Bad(f"{name} {value} is outside the {n} choices; expected 0..{n - 1}")
    return value


def _split(line: str, names: Sequence[str]) -> list[str]:
    fields = line.split("\t")
    if len(fields) != len(names):
        raise _Bad(f"expected {len(names)} tab-separated columns ({', '.join(names)}), found {len(fields)}")
    return fields


def _parse_json(path: PathLike, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            path, exc.lineno, f"invalid or truncated JSON: {exc.msg} at column {exc.colno}; expected one complete JSON document"
        ) from None


def _json_line(line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Bad(
            f"invalid or truncated JSON line: {exc.msg} at column {exc.colno}; expected one JSON object per line"
        ) from None
    if not isinstance(obj, dict):
        raise _Bad(f"expected a JSON object per line, found {_type_name(obj)}")
    return obj


def _jsonl_records(out: "_Records", text: str) -> Iterator[tuple[int, int, dict]]:
    """(position, line number, object) for every non-blank line of a JSONL file. `position` counts non-blank
    lines (for alignment with a separate labels file); a line that does not parse goes through the skip policy."""
    position = -1
    for lineno, line in _lines(text):
        if not line.strip():
            continue
        position += 1
        obj = None
        with out.record(lineno):
            obj = _json_line(line)
        if obj is not None:
            yield position, lineno, obj


def _looks_like_jsonl(text: str) -> bool:
    return text.lstrip()[:1] == "{"


def _table(path: PathLike, text: str, delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and (start line, row) records of a header-driven table.

    CSV (delimiter ",") follows RFC 4180 quoting, so quoted fields may span lines. TSV files are split on tabs
    without any quote processing, as GLUE / PAWS-X / Quora files are (their fields contain unbalanced quotes).
    """
    if delimiter == ",":
        # fed line by line (split on "\n" only) so that csv's line_num agrees with _lines()
        reader = csv.reader((line + "\n" for _, line in _lines(text)), strict=True)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise DataFormatError(path, 1, f"unreadable CSV header: {exc}") from None

        def rows() -> Iterator[tuple[int, list[str]]]:
            start = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise DataFormatError(path, start, f"malformed CSV record: {exc}; expected RFC 4180 quoting") from None
                if row:  # csv yields [] for blank lines
                    yield start, row
                start = reader.line_num + 1

        return header, rows()
    lines = _lines(text)
    header = lines[0][1].split(delimiter)
    return header, ((n, line.split(delimiter)) for n, line in lines[1:] if line.strip())


def _columns(path: PathLike, header: Sequence[str], wanted: Sequence[str]) -> list[int]:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataFormatError(
            path, 1, f"header lacks column(s) {', '.join(map(repr, missing))}; found columns: {', '.join(map(repr, header))}"
        )
    return [header.index(c) for c in wanted]


def _row_check(row: list[str], header: Sequence[str], sep_name: str) -> None:
    if len(row) != len(header):
        shown = ", ".join(header) if len(header) <= 8 else ", ".join(header[:4]) + ", ..., " + header[-1]
        raise _Bad(f"expected {len(header)} {sep_name}-separated columns ({shown}), found {len(row)}")


def _blocks(text: str) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """Blank-line separated blocks: (line of the first line, [(line number, line), ...])."""
    block: list[tuple[int, str]] = []
    for lineno, line in _lines(text):
        if line.strip():
            block.append((lineno, line))
        elif block:
            yield block[0][0], block
            block = []
    if block:
        yield block[0][0], block


# --------------------------------------------------------------------------------------------------------------
# Sentence(-pair) classification
# --------------------------------------------------------------------------------------------------------------


def _csv_unquote(value: str) -> str:
    """Undo Python csv.writer quoting of one field (a field ``"a ""b"" c"`` becomes ``a "b" c``).

    Only a field that starts and ends with a quote and has nothing but doubled quotes inside is unquoted;
    any other field is returned as it is.
    """
    if len(value) >= 2 and value[0] == value[-1] == '"' and '"' not in value[1:-1].replace('""', ""):
        return value[1:-1].replace('""', '"')
    return value


def _pair(a: str, b: str | None, label: str, labels: Sequence[str] | None) -> dict:
    return {"text_a": a, "text_b": b, "label": _check_label(label, labels)}


def read_pair_table(
    path: PathLike,
    text_a: str,
    text_b: str | None,
    label: str,
    labels: Sequence[str] | None = None,
    *,
    label_map: Mapping[str, str] | None = None,
    delimiter: str = "\t",
    on_bad_example: OnBadExample = "error",
) -> ReadResult[list[dict]]:
    """Header-driven TSV/CSV pair classification: columns are found by header name, not position.

    Used for GLUE MNLI tsv (``sentence1, sentence2, gold_label``), QQP (``question1, question2, is_duplicate``),
    official PAWS-X (``id, sentence1, sentence2, label``) and the ANLI annotation csv. `label_map` translates
    raw labels (ANLI ``e`` -> ``entailment``) before they are checked against `labels`.
    """
    text = read_text(path)
    return _pair_table(path, text, text_a, text_b, label, labels, label_map, delimiter, on_bad_example)


def _pair_table(path, text, text_a, text_b, label, labels, label_map, delimiter, on_bad_example) -> ReadResult:
    out = _Records(path, on_bad_example)
    header, rows = _table(path, text, delimiter)
    wanted = [text_a, label] + ([text_b] if text_b else [])
    cols = _columns(path, header, wanted)
    sep_name = "comma" if delimiter == "," else "tab"
    for lineno, row in rows:
        with out.record(lineno):
            _row_check(row, header, sep_name)
            raw = row[cols[1]]
            if label_map is not None:
                if raw not in label_map:
                    raise _Bad(f"{label} {raw!r} is not one of {', '.join(map(repr, label_map))}")
                raw = label_map[raw]
            out.examples.append(_pair(row[cols[0]], row[cols[2]] if text_b else None, raw, labels))
    return out.result()


def read_pair_tsv(
    path: PathLike, labels: Sequence[str] | None = None, *, allow_unlabeled: bool = False, on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """XNLI / PAWS-X pairs -> ``{"text_a", "text_b", "label"}``.

    Two layouts, detected from the first line:

    * XTREME (google-research/xtreme ``utils_preprocess.py``, files ``{split}-{lang}.tsv``): no header,
      ``text_a<TAB>text_b<TAB>label``. These files were written with Python's ``csv.writer(delimiter="\\t")``,
      so fields containing ``"`` are quoted with doubled quotes; that quoting is undone.
    * Official PAWS-X (google-research-datasets/paws, ``x-final/{lang}/dev_2k.tsv``) or any file with a header
      naming ``sentence1``, ``sentence2`` and ``label``/``gold_label``: read by header name, no quote processing.

    XTREME's test files (``xnli_preprocess`` / ``pawsx_preprocess``) drop the label column: with
    ``allow_unlabeled=True`` a two-column line is read as ``{"text_a", "text_b", "label": None}`` (for prediction).
    """
    text = read_text(path)
    first = text.split("\n", 1)[0].split("\t")
    if {"sentence1", "sentence2"} <= set(first) and ({"label", "gold_label"} & set(first)):
        label_col = "label" if "label" in first else "gold_label"
        return _pair_table(path, text, "sentence1", "sentence2", label_col, labels, None, "\t", on_bad_example)
    out = _Records(path, on_bad_example)
    for lineno, line in _lines(text):
        if not line.strip():
            continue
        with out.record(lineno):
            if allow_unlabeled and line.count("\t") == 1:
                a, b = (_csv_unquote(f) for f in line.split("\t"))
                out.examples.append({"text_a": a, "text_b": b, "label": None})
                continue
            a, b, label = (_csv_unquote(f) for f in _split(line, ("text_a", "text_b", "label")))
            out.examples.append(_pair(a, b, label, labels))
    return out.result()


def read_mnli(
    path: PathLike, labels: Sequence[str] | None = NLI_LABELS, *, on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """MultiNLI: official ``multinli_1.0_{split}.jsonl`` (cims.nyu.edu/~sbowman/multinli; keys ``sentence1``,
    ``sentence2``, ``gold_label``) or the GLUE ``MNLI/{split}.tsv`` (gluebenchmark.com; columns found by header
    name). Pairs whose gold label is ``-`` (no annotator consensus) are outside `labels`: skip them with
    ``on_bad_example="skip"``."""
    text = read_text(path)
    if not _looks_like_jsonl(text):
        return _pair_table(path, text, "sentence1", "sentence2", "gold_label", labels, None, "\t", on_bad_example)
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, text):
        with out.record(lineno):
            out.examples.append(_pair(_get(obj, "sentence1"), _get(obj, "sentence2"), _get(obj, "gold_label"), labels))
    return out.result()


def read_qqp_tsv(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """Quora Question Pairs: GLUE ``QQP/{split}.tsv`` or the original ``quora_duplicate_questions.tsv``; header
    with ``question1``, ``question2``, ``is_duplicate`` (0/1)."""
    return read_pair_table(path, "question1", "question2", "is_duplicate", PAWSX_LABELS, on_bad_example=on_bad_example)


def read_anli(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """Adversarial NLI (facebookresearch/anli), labels ``e/n/c`` mapped to entailment/neutral/contradiction.

    * official ``anli_v1.0/R{1,2,3}/{train,dev,test}.jsonl``: keys ``context``, ``hypothesis``, ``label``;
    * annotated dev csv ``anlizinganli/anli_annot_v0.2/ANLI_analysis_r{1,2,3}_dev.csv``: columns ``context``,
      ``statement``, ``gold_label`` (found by header name; the column order differs between rounds).
    """
    text = read_text(path)
    if not _looks_like_jsonl(text):
        return _pair_table(path, text, "context", "statement", "gold_label", NLI_LABELS, _ANLI_LABELS, ",", on_bad_example)
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, text):
        with out.record(lineno):
            raw = _get(obj, "label")
            if raw not in _ANLI_LABELS:
                raise _Bad(f"label {raw!r} is not one of 'e', 'n', 'c'")
            out.examples.append(_pair(_get(obj, "context"), _get(obj, "hypothesis"), _ANLI_LABELS[raw], NLI_LABELS))
    return out.result()


# --------------------------------------------------------------------------------------------------------------
# Tagging
# --------------------------------------------------------------------------------------------------------------

_LANG_PREFIX = re.compile(r"^([a-z]{2,3}):(.+)$", re.S)


def read_conll_tags(
    path: PathLike,
    tag_set: Sequence[str] | None = None,
    *,
    strip_lang_prefix: bool | None = None,
    allow_unlabeled: bool = False,
    on_bad_example: OnBadExample = "error",
) -> ReadResult[list[dict]]:
    """``token<TAB>tag`` per line, blank line between sentences -> ``{"tokens", "tags"}``.

    The XTREME PAN-X / WikiANN format (google-research/xtreme ``utils_preprocess.py panx_preprocess`` output
    ``{split}-{lang}.tsv``; the XTREME UD-POS ``.tsv`` files have the same layout). The raw WikiANN files prefix
    every token with its language (``en:Paris``); with ``strip_lang_prefix=None`` such a prefix is stripped only
    when every token of the file carries the same one (``True``: required, ``False``: never stripped).
    A sentence with a bad line (wrong column count, empty token or tag, tag outside `tag_set`) is bad as a whole.

    Unlabeled files: XTREME's PAN-X and UD-POS test files (``panx_preprocess`` / ``udpos_preprocess`` in its
    ``utils_preprocess.py``) hold one token per line and no tag. With ``allow_unlabeled=True`` a sentence whose
    lines all lack a tag is read as ``{"tokens": [...], "tags": None}`` (for prediction); a sentence mixing
    tagged and untagged lines is still bad.
    """
    return _conll_tags(path, read_text(path), tag_set, strip_lang_prefix, on_bad_example, allow_unlabeled)


def _conll_tags(path, text, tag_set, strip_lang_prefix, on_bad_example, allow_unlabeled=False) -> ReadResult:
    blocks = list(_blocks(text))
    strip = bool(strip_lang_prefix)
    if strip_lang_prefix is None:  # auto: only when every token carries the same prefix
        prefixes = {(m.group(1) if (m := _LANG_PREFIX.match(line)) else None) for _, block in blocks for _, line in block}
        strip = len(prefixes) == 1 and None not in prefixes
    allowed = None if tag_set is None else frozenset(tag_set)
    out = _Records(path, on_bad_example)
    for start, block in blocks:
        tokens, tags = [], []
        with out.record(start):
            if allow_unlabeled and all("\t" not in line for _, line in block):
                for lineno, line in block:
                    token = line.strip()
                    if strip:
                        m = _LANG_PREFIX.match(token)
                        if m is None:
                            raise _Bad(f"token {token!r} lacks the 'xx:' language prefix that strip_lang_prefix requires", lineno)
                        token = m.group(2)
                    tokens.append(token)
                out.examples.append({"tokens": tokens, "tags": None})
                continue
            for lineno, line in block:
                fields = line.split("\t")
                if len(fields) != 2:
                    raise _Bad(f"expected 2 tab-separated columns (token, tag), found {len(fields)}", lineno)
                token, tag = fields
                if not token.strip() or not tag.strip():
                    raise _Bad(f"empty {'token' if not token.strip() else 'tag'}; expected a non-empty token and tag", lineno)
                if allowed is not None and tag not in allowed:
                    raise _Bad(f"tag {tag!r} is not one of the allowed tags: {', '.join(map(repr, tag_set))}", lineno)
                if strip:
                    m = _LANG_PREFIX.match(token)
                    if m is None:
                        raise _Bad(f"token {token!r} lacks the 'xx:' language prefix that strip_lang_prefix requires", lineno)
                    token = m.group(2)
                tokens.append(token)
                tags.append(tag)
            out.examples.append({"tokens": tokens, "tags": tags})
    return out.result()


_UPOS = frozenset(UPOS_TAGS)
_RANGE_OR_EMPTY = re.compile(r"\d+-\d+|\d+\.\d+")


# XTREME's UD conversion (third_party/ud-conversion-tools, run by scripts/download_data.sh with --lang <code>
# --replace_subtokens_with_fused_forms): the UPOS order that breaks ties between span heads, per language.
UD_POS_PRECEDENCE: dict[str, tuple[str, ...]] = {
    "default": ("VERB", "NOUN", "PROPN", "PRON", "ADJ", "NUM", "ADV", "INTJ", "AUX", "ADP", "DET", "PART", "CCONJ", "SCONJ", "X", "PUNCT"),
    "es": ("VERB", "AUX", "PRON", "ADP", "DET"),
    "fr": ("VERB", "AUX", "PRON", "NOUN", "ADJ", "ADV", "ADP", "DET", "PART", "SCONJ", "CONJ"),
    "it": ("VERB", "AUX", "ADV", "PRON", "ADP", "DET", "INTJ"),
}  # fmt: skip
Multiword = Literal["xtreme", "syntactic"]


def ud_language(path: PathLike) -> str:
    """The language code of a UD file name (``en_ewt-ud-test.conllu`` -> ``en``), as XTREME's download script
    takes it (the part before the first ``_``)."""
    return Path(path).name.split("_")[0]


def _ancestors(node: int, parents: Mapping[int, set[int]]) -> int:
    """How many nodes reach `node` along head -> dependent edges (networkx ``len(ancestors(G, node))``)."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        for head in parents.get(stack.pop(), ()):
            if head not in seen:
                seen.add(head)
                stack.append(head)
    seen.discard(node)  # a node on a cycle is not its own ancestor
    return len(seen)


def xtreme_span_head(span: Sequence[int], upos: Mapping[int, str], parents: Mapping[int, set[int]], language: str = "default") -> int:
    """The word of a multiword-token span whose UPOS the fused form keeps in XTREME's UD-POS data.

    XTREME's conversion (``DependencyTree._choose_spanhead_from_heuristics`` in third_party/ud-conversion-tools):
    (1) the word with the fewest ancestors in the sentence graph (HEAD plus the numeric heads of DEPS, the
    enhanced graph) if it is the only one with that count; (2) otherwise, among those highest words, the first
    (in word order) whose UPOS comes earliest in the language's precedence list (:data:`UD_POS_PRECEDENCE`: es,
    fr and it have their own, every other language the default). A UPOS missing from the list makes the
    official tool stop with an error; here it ranks last.
    """
    depth = {w: _ancestors(w, parents) for w in span}
    highest = min(depth.values())
    top = [w for w in span if depth[w] == highest]
    if len(top) == 1:
        return top[0]
    order = UD_POS_PRECEDENCE.get(language, UD_POS_PRECEDENCE["default"])
    rank = {tag: i for i, tag in enumerate(order)}
    best, best_rank = top[0], len(order) + 1
    for w in top:
        r = rank.get(upos[w], len(order))
        if r < best_rank:
            best, best_rank = w, r
    return best


def _int_head(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def read_conllu_pos(
    path: PathLike, *, multiword: Multiword = "xtreme", language: str | None = None, on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """Universal Dependencies CoNLL-U (universaldependencies.org/format.html) -> ``{"tokens": FORM, "tags": UPOS}``.

    Comment lines (``#``) and empty nodes (``1.1``) are skipped. Every other line needs 10 tab-separated columns,
    IDs 1, 2, 3, ... in order, and a UPOS among the 17 UD tags. Multiword tokens (ranges ``1-2``):

    * ``multiword="xtreme"`` (default): XTREME's UD-POS items. A multiword token is one item, its surface form
      (``don't``, ``del``) tagged with the UPOS of its span head (:func:`xtreme_span_head`: ``don't`` AUX,
      ``it's`` PRON, ``Today's`` NOUN), as XTREME's download script produces it with ``conllu_to_conll.py
      --replace_subtokens_with_fused_forms``; then, as its ``utils_preprocess.py udpos_preprocess``, spaces and
      U+200C are removed from every form and a sentence is dropped when all forms but at most one are ``_``
      (treebanks distributed without their text). `language` picks the tie-break order (default: the file name's
      prefix, ``en_ewt-ud-test.conllu`` -> ``en``).
    * ``multiword="syntactic"``: the syntactic words (``do`` + ``n't``), the ranges skipped; forms as in the file.
    """
    if multiword not in ("xtreme", "syntactic"):
        raise ConfigError(f"multiword must be 'xtreme' or 'syntactic', found {multiword!r}")
    lang = language or ud_language(path)
    out = _Records(path, on_bad_example)
    names = "ID, FORM, LEMMA, UPOS, XPOS, FEATS, HEAD, DEPREL, DEPS, MISC"
    for start, block in _blocks(read_text(path)):
        tokens: list[str] = []
        tags: list[str] = []
        ranges: list[tuple[int, int, str]] = []
        parents: dict[int, set[int]] = {}
        with out.record(start):
            for lineno, line in block:
                if line[0] == "#":
                    continue
                cols = line.split("\t")
                if len(cols) != 10:
                    raise _Bad(f"expected 10 tab-separated columns ({names}), found {len(cols)}", lineno)
                tid = cols[0]
                if not tid.isdigit():
                    if _RANGE_OR_EMPTY.fullmatch(tid):
                        if "-" in tid:
                            first, last = map(int, tid.split("-"))
                            ranges.append((first, last, cols[1]))
                        continue
                    raise _Bad(f"ID {tid!r} is not a word index N, a range N-M or an empty node N.M", lineno)
                if int(tid) != len(tokens) + 1:
                    raise _Bad(f"expected token ID {len(tokens) + 1}, found {tid!r}", lineno)
                if cols[3] not in _UPOS:
                    raise _Bad(f"UPOS {cols[3]!r} is not one of the 17 UD tags ({', '.join(UPOS_TAGS)})", lineno)
                tokens.append(cols[1])
                tags.append(cols[3])
                if multiword == "xtreme":
                    heads = parents.setdefault(int(tid), set())
                    if (h := _int_head(cols[6])) is not None:
                        heads.add(h)
                    if cols[8] != "_":
                        heads.update(h for dep in cols[8].split("|") if (h := _int_head(dep.split(":")[0])) is not None)
            if not tokens:
                raise _Bad("sentence has comment lines but no token lines")
            if multiword == "xtreme":
                example = _xtreme_ud_items(tokens, tags, ranges, parents, lang)
                if example is not None:
                    out.examples.append(example)
            else:
                out.examples.append({"tokens": tokens, "tags": tags})
    return out.result()


def _xtreme_ud_items(tokens: list[str], tags: list[str], ranges: list[tuple[int, int, str]], parents: Mapping[int, set[int]], lang: str) -> dict | None:
    """One sentence as XTREME's UD-POS files have it (see :func:`read_conllu_pos`), or None when XTREME drops it."""
    n = len(tokens)
    form = dict(enumerate(tokens, start=1))
    upos = dict(enumerate(tags, start=1))
    dropped: set[int] = set()
    for first, last, fused in ranges:
        span = [w for w in range(first, last + 1) if w in form]
        if not span:
            continue
        head = xtreme_span_head(span, upos, parents, lang)
        form[head] = fused
        dropped.update(w for w in span if w != head)
    words = [w for w in range(1, n + 1) if w not in dropped]
    forms = [form[w].strip() for w in words]
    n_blank = sum(f == "_" for f in forms)
    if n_blank and n_blank >= len(forms) - 1:
        return None
    return {"tokens": ["".join(f.replace("\u200c", "").split(" ")) for f in forms], "tags": [upos[w] for w in words]}


def read_ccg_supertags(
    path: PathLike, *, format: Literal["auto", "conll", "pipes"] = "auto", on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """CCG supertags -> ``{"tokens", "tags"}`` (tags = supertags). Two layouts:

    * ``conll``: ``word<TAB>supertag`` per line, blank line between sentences (read by :func:`read_conll_tags`);
    * ``pipes``: one sentence per line of space-separated ``word|POS|supertag`` tokens, the format derived from
      CCGbank AUTO files used by C&C / EasySRL (e.g. ``Pierre|NNP|N/N Vinken|NNP|N``); POS is dropped.

    ``auto`` picks ``conll`` when the first line contains a tab.
    """
    text = read_text(path)
    if format == "auto":
        format = "conll" if "\t" in text.lstrip().split("\n", 1)[0] else "pipes"
    if format == "conll":
        return _conll_tags(path, text, None, False, on_bad_example)
    if format != "pipes":
        raise ConfigError(f"format must be 'auto', 'conll' or 'pipes', found {format!r}")
    out = _Records(path, on_bad_example)
    for lineno, line in _lines(text):
        if not line.strip():
            continue
        with out.record(lineno):
            tokens, tags = [], []
            for i, item in enumerate(line.split(), start=1):
                parts = item.rsplit("|", 2)
                if len(parts) != 3 or not all(parts):
                    raise _Bad(
                        f"token {i} {_short(item)}: expected word|POS|supertag, found {len(parts)} '|'-separated field(s)"
                        + (" with an empty one" if len(parts) == 3 else "")
                    )
                tokens.append(parts[0])
                tags.append(parts[2])
            out.examples.append({"tokens": tokens, "tags": tags})
    return out.result()


# --------------------------------------------------------------------------------------------------------------
# Span QA (SQuAD schema: SQuAD v1.1 / v2.0, MLQA, XQuAD, TyDiQA-GoldP)
# --------------------------------------------------------------------------------------------------------------


def read_squad_json(
    path: PathLike,
    version: Literal["1.1", "2.0"] = "1.1",
    *,
    allow_unlabeled: bool = False,
    on_bad_example: OnBadExample = "error",
) -> ReadResult[list[dict]]:
    """SQuAD-schema JSON (rajpurkar.github.io/SQuAD-explorer): ``{"data": [{"paragraphs": [{"context", "qas":
    [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}`` -> one example per
    question. MLQA (facebookresearch/MLQA), XQuAD (deepmind/xquad) and the XTREME TyDiQA-GoldP files use it too.

    Checks: every answer span must match the context exactly (``context[start:start+len(text)] == text``);
    v1.1: at least one non-empty answer; v2.0: ``is_impossible`` questions have no answers, the others at least one.

    Unlabeled questions: XTREME's ``remove_qa_test_annotations`` (``utils_preprocess.py``) replaces the gold
    answers of evaluation files by the placeholder ``[{"answer_start": 0, "text": ""}]`` (the XTREME TyDiQA-GoldP
    dev files, used as its test set, have it for every question). By default that is a bad record; with
    ``allow_unlabeled=True`` such questions (and questions with no answers in v1.1) are kept with empty answer
    lists and ``is_impossible=False``, e.g. to run prediction.

    Question ids are not checked for uniqueness: XTREME's TyDiQA-GoldP train files keep only the last part of
    the official id (``english-...-3`` -> ``3``), so 3,696 English train questions share 89 ids.
    """
    if version not in ("1.1", "2.0"):
        raise ConfigError(f"version must be '1.1' or '2.0', found {version!r}")
    data = _top_list(path, _parse_json(path, read_text(path)), "data", "SQuAD schema")
    out = _Records(path, on_bad_example)
    for i, article in enumerate(data):
        where = f"data[{i}]"
        paragraphs: list = []
        with out.record(where):
            paragraphs = _get(article, "paragraphs", list)
        for j, paragraph in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            context, qas = None, []
            with out.record(where):
                context = _get(paragraph, "context")
                qas = _get(paragraph, "qas", list)
            for k, qa in enumerate(qas):
                where = f"data[{i}].paragraphs[{j}].qas[{k}]"
                with out.record(where):
                    out.examples.append(_squad_qa(qa, context, where, version, allow_unlabeled))
    return out.result()


def _squad_qa(qa: Any, context: str, where: str, version: str, allow_unlabeled: bool) -> dict:
    qid = _get(qa, "id")
    question = _get(qa, "question")
    answers = _get(qa, "answers", list)
    impossible = _get(qa, "is_impossible", bool, optional=True) or False
    texts, starts = [], []
    placeholder = bool(answers) and all(
        isinstance(a, dict) and a.get("text") == "" and a.get("answer_start") == 0 for a in answers
    )
    if impossible:
        if version == "1.1":
            raise _Bad("is_impossible is true, which SQuAD v1.1 does not allow; expected version='2.0'")
        if answers:
            raise _Bad(f"is_impossible is true but 'answers' has {len(answers)} entries; expected none")
    elif placeholder or not answers:
        if not allow_unlabeled:
            what = (
                "the answer is the placeholder {'text': '', 'answer_start': 0} that XTREME's remove_qa_test_annotations "
                "puts in place of stripped gold answers"
                if placeholder
                else "'answers' is empty"
            )
            raise _Bad(
                f"{what}; expected at least one answer span"
                + (" (or is_impossible: true)" if version == "2.0" else "")
                + "; pass allow_unlabeled=True to read questions without gold answers"
            )
    else:
        for m, answer in enumerate(answers):
            a_where = f"{where}.answers[{m}]"
            text = _get(answer, "text", where=a_where)
            start = _get(answer, "answer_start", int, where=a_where)
            if not text:
                raise _Bad(f"answer text is empty (answer_start {start}); expected a non-empty span of the context", a_where)
            end = start + len(text)
            if start < 0 or end > len(context):
                raise _Bad(
                    f"answer span [{start}:{end}] lies outside the context ({len(context)} characters); "
                    f"expected the answer text {_short(text)} inside it",
                    a_where,
                )
            if context[start:end] != text:
                raise _Bad(
                    f"answer span does not match the context: context[{start}:{end}] is {_short(context[start:end])}, "
                    f"expected the answer text {_short(text)}",
                    a_where,
                )
            texts.append(text)
            starts.append(start)
    return {
        "id": qid,
        "question": question,
        "context": context,
        "answers": {"text": texts, "answer_start": starts},
        "is_impossible": bool(impossible),
    }


# --------------------------------------------------------------------------------------------------------------
# Retrieval and plain text
# --------------------------------------------------------------------------------------------------------------


def _aligned(path_a: PathLike, path_b: PathLike) -> list[tuple[int, str, str]]:
    """Line-aligned files: (line number, line a, line b); unequal line counts are a file-level error."""
    lines_a, lines_b = _lines(read_text(path_a)), _lines(read_text(path_b))
    if len(lines_a) != len(lines_b):
        raise DataFormatError(
            path_a,
            None,
            f"has {len(lines_a)} lines but the aligned file {path_b} has {len(lines_b)}; expected the same number of lines",
        )
    return [(n, a, b) for (n, a), (_, b) in zip(lines_a, lines_b)]


def read_tatoeba(
    src_path: PathLike, tgt_path: PathLike, *, on_bad_example: OnBadExample = "error"
) -> ReadResult[tuple[list[str], list[str]]]:
    """Tatoeba similarity search, LASER v1 (facebookresearch/LASER ``data/tatoeba/v1/tatoeba.{xxx}-eng.{xxx}``
    and ``.eng``): two UTF-8 files, line i of one is the translation of line i of the other.

    Returns ``ReadResult((sources, targets), skipped)``. A pair with an empty line on either side is a bad
    record; skipping drops both sides, so the lists stay aligned.
    """
    out = _Records(src_path, on_bad_example)
    src, tgt = [], []
    for lineno, a, b in _aligned(src_path, tgt_path):
        with out.record(lineno):
            if not a.strip() or not b.strip():
                raise _Bad("empty sentence; expected a sentence on every line", lineno, src_path if not a.strip() else tgt_path)
            src.append(a)
            tgt.append(b)
    return out.result((src, tgt))


_BUCC_ID = re.compile(r"^[a-z]{2}-\d+$")


def _bucc_id(value: str, name: str) -> str:
    if not _BUCC_ID.match(value):
        raise _Bad(f"{name} {_short(value)} is not a BUCC sentence id; expected e.g. 'ru-000000123'")
    return value


def read_bucc(sentences_path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[dict[str, str]]:
    """BUCC 2018 shared task sentence file (comparable.limsi.fr/bucc2018, ``{xx}-en.{split}.{xx|en}``):
    ``ID<TAB>sentence`` per line, e.g. ``ru-000000123<TAB>текст`` -> ``{id: sentence}``. Duplicate ids are bad."""
    out = _Records(sentences_path, on_bad_example)
    sentences: dict[str, str] = {}
    for lineno, line in _lines(read_text(sentences_path)):
        if not line.strip():
            continue
        with out.record(lineno):
            sid, sentence = _split(line, ("id", "sentence"))
            _bucc_id(sid, "id")
            if not sentence.strip():
                raise _Bad(f"empty sentence for id {sid!r}; expected text after the tab")
            if sid in sentences:
                raise _Bad(f"duplicate id {sid!r}; expected unique ids")
            sentences[sid] = sentence
    return out.result(sentences)


def read_bucc_gold(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[set[tuple[str, str]]]:
    """BUCC 2018 gold alignments ``{xx}-en.{split}.gold``: ``src_id<TAB>tgt_id`` per line -> set of pairs."""
    out = _Records(path, on_bad_example)
    pairs: set[tuple[str, str]] = set()
    for lineno, line in _lines(read_text(path)):
        if not line.strip():
            continue
        with out.record(lineno):
            src, tgt = _split(line, ("source id", "target id"))
            pairs.add((_bucc_id(src, "source id"), _bucc_id(tgt, "target id")))
    return out.result(pairs)


def read_plain_text_lines(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[str]]:
    """One sentence / document per line (plain UTF-8 text, e.g. for continued MLM); blank lines are skipped by
    design (they separate documents) and are not reported as bad records."""
    _check_policy(on_bad_example)
    return ReadResult([line for _, line in _lines(read_text(path)) if line.strip()], [])


def read_image_list(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[str]]:
    """Image split lists, one file name per line (Flickr8k ``Flickr_8k.{train,dev,test}Images.txt``, Multi30k
    ``image_splits/*.txt``). A blank line is a bad record (it would shift the alignment with caption files)."""
    out = _Records(path, on_bad_example)
    for lineno, line in _lines(read_text(path)):
        with out.record(lineno):
            if not line.strip():
                raise _Bad("empty line; expected an image file name")
            out.examples.append(line.strip())
    return out.result()


# --------------------------------------------------------------------------------------------------------------
# Multiple choice
# --------------------------------------------------------------------------------------------------------------


def _mc(qid: str, context: str, question: str, choices: list[Any], label: Any) -> dict:
    for i, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip():
            raise _Bad(f"choice {i} is {_type_name(choice)} {_short(choice)}; expected a non-empty string")
    return {"id": qid, "context": context, "question": question, "choices": choices, "label": _index(label, len(choices))}


def read_xcopa_jsonl(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """XCOPA (cambridgeltl/xcopa ``data/{lang}/{split}.{lang}.jsonl``) and English COPA in the SuperGLUE jsonl
    format: ``premise, choice1, choice2, question (cause|effect), label (0|1), idx`` -> multiple choice with
    context=premise, question=question, choices=[choice1, choice2]; id = ``idx`` (else ``line<N>``)."""
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, read_text(path)):
        with out.record(lineno):
            question = _get(obj, "question")
            if question not in ("cause", "effect"):
                raise _Bad(f"question {question!r} is not 'cause' or 'effect'")
            idx = _get(obj, "idx", (int, str), optional=True)
            choices = [_get(obj, "choice1"), _get(obj, "choice2")]
            out.examples.append(
                _mc(str(idx) if idx is not None else f"line{lineno}", _get(obj, "premise"), question, choices,
                    _get(obj, "label", int))
            )  # fmt: skip
    return out.result()


def read_siqa_jsonl(
    path: PathLike, labels_path: PathLike | None = None, *, on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """Social IQa (Sap et al. 2019; leaderboard.allenai.org/socialiqa, ``socialiqa-train-dev.zip``): jsonl with
    ``context, question, answerA, answerB, answerC``. Labels come either from a ``correct`` key (``A``/``B``/``C``, the copy in shared/data) or,
    as in the official release, from a separate labels file (``dev-labels.lst``: ``1``/``2``/``3``, one line per
    jsonl line). With both, they must agree. id = ``line<N>`` (Social IQa has no ids)."""
    text = read_text(path)
    out = _Records(path, on_bad_example)
    file_labels: list[tuple[int, str]] | None = None
    if labels_path is not None:
        file_labels = [(n, line.strip()) for n, line in _lines(read_text(labels_path)) if line.strip()]
        n_records = sum(1 for line in text.split("\n") if line.strip())
        if len(file_labels) != n_records:
            raise DataFormatError(
                labels_path, None,
                f"has {len(file_labels)} labels but {path} has {n_records} examples; expected one label per example",
            )  # fmt: skip
    for position, lineno, obj in _jsonl_records(out, text):
        with out.record(lineno):
            choices = [_get(obj, "answerA"), _get(obj, "answerB"), _get(obj, "answerC")]
            if file_labels is None and "correct" not in obj:
                raise _Bad(
                    f"missing key 'correct' (found keys: {', '.join(map(repr, obj))}); for the official release pass "
                    "labels_path (the separate labels file)"
                )
            correct = _get(obj, "correct", optional=True)
            label = None
            if correct is not None:
                if correct not in ("A", "B", "C"):
                    raise _Bad(f"correct {correct!r} is not one of 'A', 'B', 'C'")
                label = "ABC".index(correct)
            if file_labels is not None:
                l_line, raw = file_labels[position]
                if raw not in ("1", "2", "3"):
                    raise _Bad(f"label {raw!r} is not one of '1', '2', '3'", l_line, labels_path)
                if label is not None and label != int(raw) - 1:
                    raise _Bad(f"labels file says {raw} but 'correct' is {correct!r}; expected them to agree")
                label = int(raw) - 1
            out.examples.append(_mc(f"line{lineno}", _get(obj, "context"), _get(obj, "question"), choices, label))
    return out.result()


def read_hellaswag_jsonl(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """HellaSwag (rowanz/hellaswag ``data/hellaswag_{split}.jsonl``): keys ``ctx`` (or ``ctx_a`` + ``ctx_b``),
    ``endings`` (4), ``label``, ``ind``; also the re-exported variant with ``context`` instead of ``ctx`` (the copy
    in shared/data). -> context = full context, question = "" (HellaSwag has no question), choices = endings;
    id = ``ind`` (else ``line<N>``). ``label`` may be an int or a digit string (Hugging Face export)."""
    out = _Records(path, on_bad_example)
    for _, lineno, obj in _jsonl_records(out, read_text(path)):
        with out.record(lineno):
            if "ctx" in obj:
                context = _get(obj, "ctx")
            elif "context" in obj:
                context = _get(obj, "context")
            elif "ctx_a" in obj:
                ctx_b = _get(obj, "ctx_b", optional=True) or ""
                context = (_get(obj, "ctx_a") + " " + ctx_b).strip()
            else:
                raise _Bad(f"missing key 'ctx', 'context' or 'ctx_a' (found keys: {', '.join(map(repr, obj))})")
            endings = _get(obj, "endings", list)
            if len(endings) < 2:
                raise _Bad(f"'endings' has {len(endings)} entries; expected at least 2")
            ind = _get(obj, "ind", (int, str), optional=True)
            qid = str(ind) if ind is not None else f"line{lineno}"
            out.examples.append(_mc(qid, context, "", endings, _get(obj, "label", (int, str))))
    return out.result()


def read_cosmosqa_csv(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """Cosmos QA (wilburOne/cosmosqa ``data/{train,valid}.csv``): header ``id,context,question,answer0..answer3,
    label`` (0-3). The same keys as jsonl (``data/test.jsonl`` / the jsonl release) are read too."""
    text = read_text(path)
    out = _Records(path, on_bad_example)
    keys = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label")
    records: Iterator[tuple[int, Any]]
    if _looks_like_jsonl(text):
        records, to_obj = ((n, obj) for _, n, obj in _jsonl_records(out, text)), lambda obj: obj
    else:
        header, records = _table(path, text, ",")
        _columns(path, header, keys)

        def to_obj(row: list[str]) -> dict:
            _row_check(row, header, "comma")
            return dict(zip(header, row))

    for lineno, record in records:
        with out.record(lineno):
            obj = to_obj(record)
            choices = [_get(obj, f"answer{i}") for i in range(4)]
            qid = _get(obj, "id", (str, int))
            out.examples.append(
                _mc(str(qid), _get(obj, "context"), _get(obj, "question"), choices, _get(obj, "label", (int, str)))
            )
    return out.result()


# --------------------------------------------------------------------------------------------------------------
# Multimodal: the text side
# --------------------------------------------------------------------------------------------------------------


def read_flickr8k_captions(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """Flickr8k ``Flickr8k.token.txt`` (Hodosh et al. 2013, Flickr8k_text.zip): ``<image>.jpg#<k><TAB>caption``
    -> ``{"image": "<image>.jpg", "caption"}``. The release contains a known stray name,
    ``2258277193_586949ec62.jpg.1``, which is returned as found."""
    out = _Records(path, on_bad_example)
    for lineno, line in _lines(read_text(path)):
        if not line.strip():
            continue
        with out.record(lineno):
            key, caption = _split(line, ("image#k", "caption"))
            image, hash_, k = key.rpartition("#")
            if not hash_ or not image or not k.isdigit():
                raise _Bad(
                    f"first column {_short(key)} is not '<image>#<caption number>'; "
                    "expected e.g. '1000268201_693b08cb0e.jpg#0'"
                )
            if not caption.strip():
                raise _Bad(f"empty caption for {key!r}")
            out.examples.append({"image": image, "caption": caption})
    return out.result()


def read_coco_captions(path: PathLike, *, on_bad_example: OnBadExample = "error") -> ReadResult[list[dict]]:
    """COCO captions JSON (cocodataset.org, ``annotations/captions_{train,val}2014.json``): ``images`` (``id``,
    ``file_name``) and ``annotations`` (``image_id``, ``caption``) -> ``{"image_id", "file_name", "caption"}``, one
    per annotation. An annotation whose image is not in ``images`` is a bad record."""
    doc = _parse_json(path, read_text(path))
    images_list = _top_list(path, doc, "images", "COCO captions")
    annotations = _top_list(path, doc, "annotations", "COCO captions")
    out = _Records(path, on_bad_example)
    files: dict[int, str] = {}
    for i, image in enumerate(images_list):
        with out.record(f"images[{i}]"):
            files[_get(image, "id", int)] = _get(image, "file_name")
    for j, ann in enumerate(annotations):
        with out.record(f"annotations[{j}]"):
            image_id = _get(ann, "image_id", int)
            caption = _get(ann, "caption")
            if image_id not in files:
                raise _Bad(f"image_id {image_id} is not among the {len(files)} entries of 'images'")
            out.examples.append({"image_id": image_id, "file_name": files[image_id], "caption": caption})
    return out.result()


def read_vqa(
    questions_path: PathLike, annotations_path: PathLike | None = None, *, on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """VQA v2 (visualqa.org, ``v2_OpenEnded_mscoco_{split}2014_questions.json`` + ``v2_mscoco_{split}2014_
    annotations.json``; also the gzip subset ``vqa_{questions,annotatons}_{split}.gzip`` of timbmg/NLP1-2017-VQA
    with the same structure): ``{"questions": [{"image_id", "question", "question_id"}]}`` and ``{"annotations":
    [{"question_id", "image_id", "multiple_choice_answer", "answers": [10 x {"answer", ...}]}]}``, joined on
    ``question_id`` -> ``{"question_id", "image_id", "question", "answers": [10 str], "multiple_choice_answer"}``.
    Without `annotations_path` (test questions) answers are ``[]`` and multiple_choice_answer is None."""
    questions = _top_list(questions_path, _parse_json(questions_path, read_text(questions_path)), "questions", "VQA questions")
    annotations: dict[int, tuple[int, dict]] = {}
    out = _Records(questions_path, on_bad_example)
    if annotations_path is not None:
        ann_list = _top_list(
            annotations_path, _parse_json(annotations_path, read_text(annotations_path)), "annotations", "VQA annotations"
        )
        for j, ann in enumerate(ann_list):
            where = f"annotations[{j}]"
            with out.record(where):
                try:
                    qid = _get(ann, "question_id", int)
                    answers = _get(ann, "answers", list)
                    if len(answers) != 10:
                        raise _Bad(f"'answers' has {len(answers)} entries; expected 10")
                    try:  # fast path; the checked loop below names the bad answer
                        texts = [a["answer"] for a in answers]
                        ok = all(type(t) is str for t in texts)
                    except (KeyError, TypeError):
                        ok = False
                    if not ok:
                        texts = [_get(a, "answer", where=f"{where}.answers[{m}]") for m, a in enumerate(answers)]
                    parsed = {"image_id": _get(ann, "image_id", int), "answers": texts,
                              "multiple_choice_answer": _get(ann, "multiple_choice_answer")}  # fmt: skip
                    if qid in annotations:
                        raise _Bad(f"duplicate question_id {qid}; expected one annotation per question")
                except _Bad as bad:
                    raise _Bad(bad.problem, bad.where or where, annotations_path) from None
                annotations[qid] = (j, parsed)
    used: set[int] = set()
    for i, q in enumerate(questions):
        with out.record(f"questions[{i}]"):
            qid = _get(q, "question_id", int)
            used.add(qid)
            example = {"question_id": qid, "image_id": _get(q, "image_id", int), "question": _get(q, "question"),
                       "answers": [], "multiple_choice_answer": None}  # fmt: skip
            if annotations_path is not None:
                if qid not in annotations:
                    raise _Bad(f"question_id {qid} has no annotation in {annotations_path}")
                _, ann = annotations[qid]
                if ann["image_id"] != example["image_id"]:
                    raise _Bad(f"image_id {example['image_id']} differs from the annotation's image_id {ann['image_id']}")
                example["answers"], example["multiple_choice_answer"] = ann["answers"], ann["multiple_choice_answer"]
            out.examples.append(example)
    for qid in sorted(set(annotations) - used):
        j, _ = annotations[qid]
        with out.record(f"annotations[{j}]"):
            raise _Bad(f"question_id {qid} has no question in {questions_path}", path=annotations_path)
    return out.result()


def read_multi30k(
    path: PathLike, images_path: PathLike | None = None, *, on_bad_example: OnBadExample = "error"
) -> ReadResult[list[dict]]:
    """Multi30k (multi30k/dataset ``data/task{1,2}/raw/{split}[.k].{lang}.gz``): gzip text, one caption per line,
    aligned with the image list ``data/task{1,2}/image_splits/{split}[_images].txt``.

    -> ``{"image": str | None, "caption": str}``; `image` is None unless `images_path` is given (then the two
    files must have the same number of lines). An empty caption is a bad record (skipping drops the pair)."""
    out = _Records(path, on_bad_example)
    if images_path is None:
        pairs = [(n, None, line) for n, line in _lines(read_text(path))]
    else:
        pairs = [(n, image, caption) for n, caption, image in _aligned(path, images_path)]
    for lineno, image, caption in pairs:
        with out.record(lineno):
            if not caption.strip():
                raise _Bad("empty caption; expected one caption per line")
            if image is not None and not image.strip():
                raise _Bad("empty image file name", lineno, images_path)
            out.examples.append({"image": image.strip() if image is not None else None, "caption": caption})
    return out.result()
