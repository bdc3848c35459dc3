"""Shared fixtures: a tiny random XLM-R built in code, and the data directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "data" / "sample"
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("INTERTASK_PROGRESS", "0")  # no progress bars in test logs
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _sample_texts() -> list[str]:
    texts = []
    for name in ("tatoeba/tatoeba.rus-eng.rus", "tatoeba/tatoeba.rus-eng.eng", "xnli/dev-en.tsv", "xnli/dev-ru.tsv"):
        texts += (SAMPLE_DATA / name).read_text(encoding="utf-8").splitlines()
    return texts


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 XLM-R with a 2,000-piece Unigram tokenizer trained on sample text."""
    from intertask.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-xlmr"), _sample_texts())


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA
