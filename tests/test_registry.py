import pytest

from intertask.errors import ConfigError
from intertask.registry import Registry
from intertask.tasks import all_tasks, get_task


def test_did_you_mean_on_typo():
    with pytest.raises(ConfigError, match=r"unknown task 'pnax'; did you mean 'panx'"):
        get_task("pnax")


def test_duplicate_registration_is_an_error():
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    assert list(reg) == ["a"] and reg.get("a") == 1 and "a" in reg


def test_every_task_record_is_complete():
    for task in all_tasks():
        d = task.describe()
        assert d["roles"] and d["metrics"] and d["languages"], task.name
        assert task.main_metric, task.name
        assert task.local is not None or task.hub is not None, task.name
        if task.train_task:
            get_task(task.train_task)  # the benchmark's English training task is registered


def test_first_tasks_of_the_foundation():
    assert get_task("xnli").head.name == "sequence_classification"
    assert get_task("panx").head.name == "token_classification"
    assert get_task("tatoeba").head.name == "retrieval"
    assert get_task("squad_v1").can_play("intermediate")
    assert "ru" in get_task("xnli").languages and get_task("xnli").train_task == "mnli"


def test_multimodal_tasks_are_records_of_the_one_registry():
    from intertask.multimodal.tasks import MultimodalTask, multimodal_spec
    from intertask.tasks import register

    spec = multimodal_spec("coco_captioning")
    assert isinstance(spec, MultimodalTask) and get_task("coco_captioning") is spec and spec.kind == "captioning"
    assert multimodal_spec("panx") is None and multimodal_spec("no_such_task") is None
    with pytest.raises(ValueError, match="task 'coco_captioning' is already registered"):
        register(spec)  # no silent re-registration
