from pathlib import Path

import pytest

from intertask.config import ExperimentConfig, StageConfig, apply_overrides, config_hash, from_dict, load_config, to_dict
from intertask.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_unknown_key_names_it_and_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown config key target\.learning_rat; did you mean target\.learning_rate\?"):
        from_dict(ExperimentConfig, {"target": {"learning_rat": 1e-5}})


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"unknown config key sead; did you mean seed\?"):
        from_dict(ExperimentConfig, {"sead": 1})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"seed": "one"}, r"seed: expected an integer, got 'one'"),
        ({"seed": True}, r"seed: expected an integer"),
        ({"baseline": "yes"}, r"baseline: expected true or false"),
        ({"target": {"learning_rate": "fast"}}, r"target\.learning_rate: expected a number"),
        ({"mixed_precision": "bf61"}, r"mixed_precision: expected one of .*did you mean 'bf16'"),
        ({"target": {"max_steps": 1.5}}, r"target\.max_steps: expected int or null"),
        ({"evaluation": {"languages": 3}}, r"evaluation\.languages: expected a list"),
        ({"model": "xlmr"}, r"model: expected a mapping of ModelConfig fields"),
    ],
)
def test_wrong_types_fail_loudly(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ExperimentConfig, data)


def test_types_are_converted():
    cfg = from_dict(
        ExperimentConfig,
        {"data_dir": "x/y", "target": {"learning_rate": 3, "init_encoder_from": "a/b", "max_steps": None}, "evaluation": {"languages": "ru, de"}},
    )
    assert cfg.data_dir == Path("x/y")
    assert cfg.target.learning_rate == 3.0 and isinstance(cfg.target.learning_rate, float)
    assert cfg.target.init_encoder_from == Path("a/b")
    assert cfg.evaluation.languages == ["ru", "de"]
    assert cfg.intermediate is None


def test_dotted_overrides_parse_yaml_values():
    data = apply_overrides(
        {"target": {"task": "panx"}},
        ["target.learning_rate=3e-5", "intermediate.task=squad_v1", "evaluation.languages=[ru,de]", "target.max_steps=null", "baseline=false"],
    )
    assert from_dict(StageConfig, data["target"]).learning_rate == 3e-5  # YAML reads 3e-5 as a string
    assert data == {
        "target": {"task": "panx", "learning_rate": "3e-5", "max_steps": None},
        "intermediate": {"task": "squad_v1"},
        "evaluation": {"languages": ["ru", "de"]},
        "baseline": False,
    }


def test_override_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="expected dotted key=value"):
        apply_overrides({}, ["target.learning_rate"])


def test_load_config_round_trip_and_hash(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ntarget:\n  task: panx\n")
    cfg = load_config(path, ["seed=7"])
    assert cfg.seed == 7 and cfg.target == StageConfig(task="panx")
    again = from_dict(ExperimentConfig, to_dict(cfg))
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(path, ["seed=8"])) != config_hash(cfg)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\ntarget: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line \d+: invalid YAML"):
        load_config(path)


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ntargte:\n  task: panx\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key targte; did you mean target\?"):
        load_config(path)


@pytest.mark.parametrize("preset", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_preset_validates(preset):
    """CI validates every preset's schema, tasks, roles and languages without running it."""
    from intertask.pipeline import validate_experiment

    text = preset.read_text(encoding="utf-8")
    assert text.startswith("#"), "a preset starts with a comment giving its purpose and exact command"
    assert "intertask " in text.split("\n\n")[0], "the leading comment gives the exact command"
    if "grid:" in text and "study:" not in text:  # a grid preset: every expanded run, as `intertask grid --dry-run --no-check-data`
        from intertask.grid import load_grid

        assert load_grid(preset, check_data=False).runs
        return
    if "grid:" in text or "study:" in text:
        pytest.skip("grid/study presets are validated by their own tests")
    validate_experiment(load_config(preset), check_data=False)
