"""The stage kind is decided in one place from the configuration (intertask/training/kinds.py)."""

from __future__ import annotations

import pytest

from intertask.config import MLMConfig, MultimodalConfig, StageConfig
from intertask.errors import ConfigError
from intertask.training.kinds import stage_kind, validate_stage


@pytest.mark.parametrize(
    "stage, kind",
    [
        (StageConfig(task="panx"), "single"),
        (StageConfig(tasks=["mnli", "squad_v1"]), "multitask"),
        (StageConfig(task="mlm"), "mlm"),
        (StageConfig(task="mlm", mlm=MLMConfig(languages=["en", "ru"])), "mlm"),
        (StageConfig(task="synthetic_captioning"), "captioning"),
        (StageConfig(task="vqa_v2", multimodal=MultimodalConfig(fusion="prefix")), "vqa"),
    ],
)
def test_stage_kind(stage, kind):
    assert stage_kind(stage) == kind


def test_each_kind_validates_its_own_settings(tmp_path):
    with pytest.raises(ConfigError, match="is not multimodal"):
        validate_stage(StageConfig(task="mnli", multimodal=MultimodalConfig()), "intermediate", tmp_path, check_data=False)
    with pytest.raises(ConfigError, match="not a masked-LM task"):
        validate_stage(StageConfig(task="panx", mlm=MLMConfig()), "intermediate", tmp_path, check_data=False)
    with pytest.raises(ConfigError, match="task is required"):
        validate_stage(StageConfig(), "target", tmp_path, check_data=False)
    assert validate_stage(StageConfig(task="panx"), "target", tmp_path, check_data=False) == []
