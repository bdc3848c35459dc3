"""Multiple-choice target tasks: XCOPA and English COPA (its training data)."""

from intertask.data import readers
from intertask.evaluation.metrics import accuracy
from intertask.models.heads import MULTIPLE_CHOICE
from intertask.tasks import languages as L
from intertask.tasks.base import HubDataset, Task
from intertask.tasks.formats import TargetFiles
from intertask.tasks.registry import register


def _hub_copa(r: dict) -> dict:
    return {
        "id": str(r.get("idx", "")),
        "context": r["premise"],
        "question": r["question"],
        "choices": [r["choice1"], r["choice2"]],
        "label": int(r["label"]),
    }


register(
    Task(
        name="xcopa",
        official_name="xcopa",
        description="XCOPA causal commonsense reasoning (Ponti et al. 2020); XTREME-R trains on Social IQa (siqa) then "
        "English COPA (copa); English evaluation = COPA",
        head=MULTIPLE_CHOICE,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=L.XCOPA,
        roles=frozenset({"target"}),
        train_task="copa",
        local=TargetFiles(
            # XTREME layout (xcopa/{split}.{lang}.jsonl, COPA as {split}.en.jsonl), the ../shared/data names
            # (val-en.jsonl), and the cambridgeltl/xcopa repository layout (data/{lang}/{split}.{lang}.jsonl).
            files={
                "dev": "xcopa/val.{lang}.jsonl|xcopa/val-{lang}.jsonl|xcopa/data/{lang}/val.{lang}.jsonl",
                "test": "xcopa/test.{lang}.jsonl|xcopa/test-{lang}.jsonl|xcopa/data/{lang}/test.{lang}.jsonl",
            },
            reader=readers.read_xcopa_jsonl,
        ),
        hub=HubDataset(path="cambridgeltl/xcopa", name="{lang}", splits={"dev": "validation", "test": "test"}, to_example=_hub_copa),
        source="cambridgeltl/xcopa data/{lang}/{val,test}.{lang}.jsonl (XTREME: xcopa/{split}.{lang}.jsonl) or the hub "
        "cambridgeltl/xcopa (no 'en' config there: English is COPA, task copa)",
        license="CC BY 4.0",
    )
)

register(
    Task(
        name="copa",
        description="COPA (Roemmele et al. 2011), English, SuperGLUE jsonl: XCOPA's English training data (400 train, 100 val)",
        head=MULTIPLE_CHOICE,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=("en",),
        roles=frozenset({"intermediate", "target"}),
        local=TargetFiles(
            files={
                "train": "xcopa/train-en.jsonl|xcopa/train.en.jsonl|copa/train.jsonl",
                "dev": "xcopa/val-en.jsonl|xcopa/val.en.jsonl|copa/val.jsonl",
            },
            reader=readers.read_xcopa_jsonl,
        ),
        hub=HubDataset(path="aps/super_glue", name="copa", splits={"train": "train", "dev": "validation"}, to_example=_hub_copa),
        source="SuperGLUE COPA.zip ({train,val}.jsonl; XTREME renames them xcopa/{split}.en.jsonl) or aps/super_glue copa",
        license="BSD 2-Clause",
    )
)
