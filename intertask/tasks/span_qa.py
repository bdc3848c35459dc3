"""Extractive question answering tasks (SQuAD format)."""

from functools import partial

from intertask.data import readers
from intertask.evaluation.metrics import mlqa_scores, squad_scores
from intertask.models.heads import SPAN_QA
from intertask.tasks import languages as L
from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.formats import TargetFiles
from intertask.tasks.registry import register


def _hub_squad(r: dict) -> dict:
    answers = r["answers"]
    return {
        "id": r["id"],
        "question": r["question"],
        "context": r["context"],
        "answers": {"text": list(answers["text"]), "answer_start": list(answers["answer_start"])},
        "is_impossible": len(answers["text"]) == 0,
    }


register(
    Task(
        name="squad_v1",
        description="SQuAD v1.1 (Rajpurkar et al. 2016): intermediate task, and XQuAD/MLQA's English training data",
        head=SPAN_QA,
        metrics=(squad_scores,),
        main_metric="f1",
        languages=("en",),
        roles=frozenset({"intermediate", "target"}),
        local=LocalFiles(
            # The official file name first; the sample shipped in ../shared/data second.
            files={"train": "squad/train-v1.1.json|squad/train-v1.1.subset-44articles.json", "dev": "squad/dev-v1.1.json"},
            reader=partial(readers.read_squad_json, version="1.1"),
        ),
        hub=HubDataset(path="rajpurkar/squad", name=None, splits={"train": "train", "dev": "validation"}, to_example=_hub_squad),
        source="SQuAD v1.1 JSON or rajpurkar/squad",
        license="CC BY-SA 4.0",
    )
)

_SQUAD_V1 = partial(readers.read_squad_json, version="1.1")
_QA_DEV_EN = "squad/dev-v1.1.json"  # checkpoint selection for XQuAD: English SQuAD dev (XQuAD has no dev split)

register(
    Task(
        name="xquad",
        official_name="xquad",
        description="XQuAD (Artetxe et al. 2020): SQuAD v1.1 dev translated; English training data is SQuAD v1.1",
        head=SPAN_QA,
        metrics=(squad_scores,),
        main_metric="f1",
        languages=tuple(dict.fromkeys(L.XQUAD + L.XQUAD_XTREME_R)),
        roles=frozenset({"target"}),
        train_task="squad_v1",
        local=TargetFiles(
            files={"dev": _QA_DEV_EN, "test": "xquad/xquad.{lang}.json"},
            reader=_SQUAD_V1,
            split_languages={"dev": ("en",)},
        ),
        hub=HubDataset(path="google/xtreme", name="XQuAD.{lang}", splits={"test": "validation"}, to_example=_hub_squad),
        source="deepmind/xquad xquad.{lang}.json (XTREME keeps the names) or google/xtreme XQuAD.{lang}",
        license="CC BY-SA 4.0",
    )
)

register(
    Task(
        name="mlqa",
        official_name="mlqa",
        description="MLQA (Lewis et al. 2020), context and question in the same language; English training data is "
        "SQuAD v1.1; scored with the language-aware MLQA script",
        head=SPAN_QA,
        metrics=(mlqa_scores,),
        main_metric="f1",
        languages=L.MLQA,
        roles=frozenset({"target"}),
        train_task="squad_v1",
        local=LocalFiles(
            files={
                "dev": "mlqa/dev-context-{lang}-question-{lang}.json|mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json",
                "test": "mlqa/test-context-{lang}-question-{lang}.json|mlqa/MLQA_V1/test/test-context-{lang}-question-{lang}.json",
            },
            reader=_SQUAD_V1,
        ),
        hub=HubDataset(
            path="google/xtreme", name="MLQA.{lang}.{lang}", splits={"dev": "validation", "test": "test"}, to_example=_hub_squad
        ),
        source="MLQA_V1.zip ({dev,test}/{split}-context-{lang}-question-{lang}.json) or google/xtreme MLQA.{lang}.{lang}",
        license="CC BY-SA 3.0",
    )
)

register(
    Task(
        name="tydiqa",
        official_name="tydiqa",
        description="TyDiQA-GoldP (Clark et al. 2020): as in XTREME, the official dev set is the test set and the "
        "English GoldP train set is the training data",
        head=SPAN_QA,
        metrics=(squad_scores,),
        main_metric="f1",
        languages=L.TYDIQA,
        roles=frozenset({"target"}),
        local=TargetFiles(
            files={
                "train": "tydiqa/tydiqa.goldp.{lang}.train.json|tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.{lang}.train.json",
                # dev and test are the same files (XTREME has no separate TyDiQA dev set); XTREME's copies have
                # their answers stripped, so scoring needs the labeled per-language files.
                "dev": "tydiqa/tydiqa.goldp.{lang}.dev.json|tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json",
                "test": "tydiqa/tydiqa.goldp.{lang}.dev.json|tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json",
            },
            reader=_SQUAD_V1,
            split_languages={"train": ("en",)},
        ),
        # google/xtreme "tydiqa" holds all nine languages in one config (ids start with the language name):
        # loading it gives every language's questions, not one language's.
        hub=HubDataset(path="google/xtreme", name="tydiqa", splits={"train": "train", "dev": "validation", "test": "validation"}, to_example=_hub_squad),
        source="XTREME download (tydiqa-goldp-v1.1-{train,dev}/tydiqa.goldp.{lang}.{train,dev}.json) or google/xtreme tydiqa",
        license="Apache 2.0",
    )
)
