"""Extractive question answering tasks (SQuAD format)."""

from functools import partial

from intertask.data import readers
from intertask.evaluation.metrics import squad_scores
from intertask.models.heads import SPAN_QA
from intertask.tasks import HubDataset, LocalFiles, Task, register


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
