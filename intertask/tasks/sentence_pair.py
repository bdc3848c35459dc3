"""Sentence-pair classification tasks."""

from functools import partial

from intertask.data import readers
from intertask.evaluation.metrics import accuracy
from intertask.models.heads import SEQUENCE_CLASSIFICATION
from intertask.tasks import HubDataset, LocalFiles, Task, register
from intertask.tasks import languages as L

NLI_LABELS = ("entailment", "neutral", "contradiction")
_HUB_NLI = {0: "entailment", 1: "neutral", 2: "contradiction"}

register(
    Task(
        name="xnli",
        description="Cross-lingual natural language inference (Conneau et al. 2018); English training data is MNLI",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=L.XNLI,
        roles=frozenset({"target"}),
        labels=NLI_LABELS,
        train_task="mnli",
        local=LocalFiles(
            files={"dev": "xnli/dev-{lang}.tsv", "test": "xnli/test-{lang}.tsv"},
            reader=partial(readers.read_pair_tsv, labels=NLI_LABELS),
        ),
        hub=HubDataset(
            path="facebook/xnli",
            name="{lang}",
            splits={"train": "train", "dev": "validation", "test": "test"},
            to_example=lambda r: {"text_a": r["premise"], "text_b": r["hypothesis"], "label": _HUB_NLI[r["label"]]},
        ),
        source="XTREME download (xnli/dev-*.tsv) or facebook/xnli",
        license="CC BY-NC 4.0",
    )
)

register(
    Task(
        name="mnli",
        description="Multi-Genre NLI (Williams et al. 2018): intermediate task, and XNLI's English training data",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=("en",),
        roles=frozenset({"intermediate", "target"}),
        labels=NLI_LABELS,
        local=LocalFiles(
            files={"train": "mnli/train.tsv", "dev": "mnli/dev_matched.tsv"},
            reader=partial(readers.read_mnli, labels=NLI_LABELS),
        ),
        hub=HubDataset(
            path="nyu-mll/glue",
            name="mnli",
            splits={"train": "train", "dev": "validation_matched"},
            to_example=lambda r: {"text_a": r["premise"], "text_b": r["hypothesis"], "label": _HUB_NLI[r["label"]]},
        ),
        source="GLUE MNLI",
        license="mixed (see the MNLI data card)",
    )
)
