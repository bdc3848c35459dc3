"""Tokenise once: a disk cache of featurised examples, reused across runs, stages and evaluations.

Featurising (tokenising + aligning labels / offsets) XNLI-, MNLI- or SQuAD-sized data takes from seconds to minutes
on CPU and is repeated identically by every arm of an experiment (baseline and each intermediate task evaluate the
same target languages), by every evaluation of the English dev set during training, and by every re-run. The cache
stores a head's :class:`~intertask.models.heads.Features` once:

* ``inputs`` as an Arrow table (``datasets.Dataset.save_to_disk``; read back memory-mapped, so a cache hit costs a
  read of the columns rather than a tokenisation),
* ``example_index`` and the head's ``extra`` (word ids, offsets) pickled next to it (exact Python objects).

The key is everything featurisation depends on: the tokenizer's identity (a hash of its serialised fast-tokenizer
definition and special tokens), the task (name, version, labels) and head, the split, language, ``max_length``,
``doc_stride``, train/eval mode, a featuriser version, and a hash of the examples themselves (so a changed data
file, ``max_samples``/``seed`` subset, skipped bad records or relabelled examples all give a new key; the data files'
size+mtime are part of the directory's metadata for humans). A hit therefore returns exactly what
``head.featurize`` would return. Entries are written to a temporary directory and renamed into place, so
concurrent runs never see half-written entries.

Location: ``$INTERTASK_FEATURE_CACHE`` (``off``/``0``/``none`` disables the disk cache), else
``~/.cache/intertask/features``. Small inputs (fewer than ``MIN_EXAMPLES`` examples) are only memoised in memory:
tokenising them is faster than a disk round trip. Within a process the last few entries are also kept in memory,
so evaluating the dev set every N steps featurises it once.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from intertask.progress import log

if TYPE_CHECKING:
    from intertask.models.heads import Features
    from intertask.tasks.base import Task

FEATURIZER_VERSION = 2  # bump when a head's featurize output changes for the same inputs
MIN_EXAMPLES = 2000  # below this, disk caching costs more than it saves
MEMORY_ENTRIES = 8

_memory: "collections.OrderedDict[str, Features]" = collections.OrderedDict()
_memory_lock = threading.Lock()
_tokenizer_ids: dict[int, tuple[Any, str]] = {}


def cache_root() -> Path | None:
    """The cache directory, or None when the disk cache is off."""
    value = os.environ.get("INTERTASK_FEATURE_CACHE", "")
    if value.strip().lower() in ("off", "0", "none", "false", "no"):
        return None
    return Path(value) if value else Path.home() / ".cache" / "intertask" / "features"


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's full definition (vocabulary, normaliser, post-processor, special tokens)."""
    known = _tokenizer_ids.get(id(tokenizer))
    if known is not None and known[0] is tokenizer:
        return known[1]
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer.get_vocab())).encode())
    h.update(json.dumps([type(tokenizer).__name__, tokenizer.padding_side, tokenizer.truncation_side, sorted(map(str, tokenizer.all_special_tokens))]).encode())
    digest = h.hexdigest()[:16]
    _tokenizer_ids[id(tokenizer)] = (tokenizer, digest)
    return digest


def examples_fingerprint(examples: Sequence[Any]) -> str:
    return hashlib.sha256(pickle.dumps(list(examples), protocol=4)).hexdigest()[:16]


def _files_meta(files: Sequence[str]) -> list[dict]:
    meta = []
    for f in files:
        try:
            st = os.stat(f)
            meta.append({"path": str(f), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        except OSError:
            meta.append({"path": str(f)})
    return meta


def feature_key(task: "Task", tokenizer, examples: Sequence[Any], max_length: int, train: bool, doc_stride: int, split: str = "", language: str = "") -> str:
    parts = {
        "v": FEATURIZER_VERSION,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "task": [task.name, getattr(task, "version", None), list(task.labels or [])],
        "head": task.head.name,
        "split": split,
        "language": language,
        "max_length": max_length,
        "doc_stride": doc_stride,
        "train": bool(train),
        "examples": [len(examples), examples_fingerprint(examples)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def featurize_cached(
    task: "Task",
    examples: Sequence[Any],
    tokenizer,
    max_length: int,
    train: bool,
    doc_stride: int = 128,
    split: str = "",
    language: str = "",
    files: Sequence[str] = (),
    root: Path | None | str = "env",
    min_examples: int | None = None,
) -> "Features":
    """``task.head.featurize(examples, tokenizer, task.labels, max_length, train, doc_stride)``, through the cache."""
    head = task.head
    key = feature_key(task, tokenizer, examples, max_length, train, doc_stride, split, language)
    with _memory_lock:
        hit = _memory.get(key)
        if hit is not None:
            _memory.move_to_end(key)
            return hit
    directory = cache_root() if root == "env" else (Path(root) if root is not None else None)
    use_disk = directory is not None and len(examples) >= (MIN_EXAMPLES if min_examples is None else min_examples)
    features = None
    if use_disk:
        entry = directory / f"{task.name}-{split or 'x'}-{language or 'x'}-{key}"
        features = _read(entry)
        if features is None:
            features = head.featurize(examples, tokenizer, task.labels, max_length, train=train, doc_stride=doc_stride)
            try:
                meta = {"task": task.name, "split": split, "language": language, "files": _files_meta(files)}
                _write(entry, features, {**meta, "max_length": max_length, "doc_stride": doc_stride, "train": bool(train), "rows": len(features)})
            except OSError as exc:  # a full or read-only disk must not stop the run
                log(f"[yellow]feature cache: could not write {entry}: {exc}[/yellow]")
    if features is None:
        features = head.featurize(examples, tokenizer, task.labels, max_length, train=train, doc_stride=doc_stride)
    with _memory_lock:
        _memory[key] = features
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)
    return features


def clear_memory() -> None:
    with _memory_lock:
        _memory.clear()


def _read(entry: Path) -> "Features | None":
    from intertask.models.heads import Features

    if not (entry / "meta.pkl").is_file():
        return None
    try:
        import datasets

        table = datasets.load_from_disk(str(entry / "inputs"))  # memory-mapped Arrow
        with open(entry / "meta.pkl", "rb") as fh:
            meta = pickle.load(fh)
        columns = table.column_names
        data = {c: table.data.column(c).to_pylist() for c in columns}
        inputs = [dict(zip(columns, values)) for values in zip(*(data[c] for c in columns))] if columns else []
        return Features(inputs, meta["example_index"], meta["extra"])
    except Exception as exc:  # a corrupt entry: recompute (and overwrite)
        log(f"[yellow]feature cache: ignoring unreadable entry {entry}: {exc}[/yellow]")
        return None


@contextlib.contextmanager
def _quiet(datasets):
    """No "Saving the dataset" bar in the middle of our own progress display."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _write(entry: Path, features: "Features", info: dict) -> None:
    import datasets

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
    try:
        columns = list(features.inputs[0].keys()) if features.inputs else []
        table = datasets.Dataset.from_dict({c: [row[c] for row in features.inputs] for c in columns})
        with _quiet(datasets):
            table.save_to_disk(str(tmp / "inputs"))
        with open(tmp / "meta.pkl", "wb") as fh:
            pickle.dump({"example_index": features.example_index, "extra": features.extra}, fh, protocol=4)
        (tmp / "info.json").write_text(json.dumps(info, indent=1))
        try:
            os.replace(tmp, entry)
        except OSError:  # another process wrote the same entry first: keep theirs
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
