"""Sentence-pair classification tasks."""

from functools import partial

from intertask.data import readers
from intertask.data.readers import NLI_LABELS, PAWSX_LABELS
from intertask.evaluation.metrics import accuracy
from intertask.models.heads import SEQUENCE_CLASSIFICATION
from intertask.tasks import languages as L
from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.formats import TargetFiles
from intertask.tasks.registry import register


def _hub_nli(r: dict) -> dict:
    """A hub NLI row (MNLI, XNLI, ANLI: label 0 entailment, 1 neutral, 2 contradiction) -> canonical example."""
    return {"text_a": r["premise"], "text_b": r["hypothesis"], "label": NLI_LABELS[int(r["label"])]}


register(
    Task(
        name="xnli",
        official_name="xnli",
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
            to_example=_hub_nli,
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
            to_example=_hub_nli,
        ),
        source="GLUE MNLI",
        license="mixed (see the MNLI data card)",
    )
)

def _hub_paws(r: dict) -> dict:
    return {"text_a": r["sentence1"], "text_b": r["sentence2"], "label": str(int(r["label"]))}


register(
    Task(
        name="pawsx",
        official_name="pawsx",
        description="PAWS-X paraphrase identification (Yang et al. 2019); English training data is PAWS (task paws)",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=L.PAWSX,
        roles=frozenset({"target"}),
        labels=PAWSX_LABELS,
        train_task="paws",
        local=LocalFiles(
            # XTREME layout first, then the official x-final/{lang}/ files (header: id, sentence1, sentence2, label).
            files={
                "dev": "pawsx/dev-{lang}.tsv|pawsx/x-final/{lang}/dev_2k.tsv",
                "test": "pawsx/test-{lang}.tsv|pawsx/x-final/{lang}/test_2k.tsv",
            },
            reader=partial(readers.read_pair_tsv, labels=PAWSX_LABELS),
        ),
        hub=HubDataset(
            path="google-research-datasets/paws-x",
            name="{lang}",
            splits={"train": "train", "dev": "validation", "test": "test"},
            to_example=_hub_paws,
        ),
        source="XTREME download (pawsx/{dev,test}-{lang}.tsv), official x-final.tar.gz, or google-research-datasets/paws-x "
        "(also google/xtreme PAWS-X.{lang})",
        license="custom (PAWS-X: may be freely used, with attribution)",
    )
)

register(
    Task(
        name="paws",
        description="PAWS-Wiki labeled final (Zhang et al. 2019), English: PAWS-X's English training data",
        head=SEQUENCE_CLASSIFICATION,
        metrics=(accuracy,),
        main_metric="accuracy",
        languages=("en",),
        roles=frozenset({"intermediate", "target"}),
        labels=PAWSX_LABELS,
        local=TargetFiles(
            # XTREME's pawsx/train-en.tsv is PAWS-X en train = PAWS-Wiki labeled final train.
            files={
                "train": "pawsx/train-en.tsv|paws/train.tsv|pawsx/x-final/en/train.tsv",
                "dev": "pawsx/dev-en.tsv|paws/dev.tsv|pawsx/x-final/en/dev_2k.tsv",
                "test": "paws/test.tsv|pawsx/test-en.tsv",
            },
            reader=partial(readers.read_pair_tsv, labels=PAWSX_LABELS),
        ),
        hub=HubDataset(
            path="google-research-datasets/paws",
            name="labeled_final",
            splits={"train": "train", "dev": "validation", "test": "test"},
            to_example=_hub_paws,
        ),
        source="PAWS final (paws/{train,dev,test}.tsv) or XTREME pawsx/train-en.tsv, or google-research-datasets/paws labeled_final",
        license="custom (PAWS: may be freely used, with attribution)",
    )
)
