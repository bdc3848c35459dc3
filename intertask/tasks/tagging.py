"""Token tagging tasks."""

from functools import partial

from intertask.data import readers
from intertask.evaluation.metrics import seqeval_f1
from intertask.models.heads import TOKEN_CLASSIFICATION
from intertask.tasks import HubDataset, LocalFiles, Task, register
from intertask.tasks import languages as L

PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

register(
    Task(
        name="panx",
        description="WikiANN / PAN-X named entity recognition (Pan et al. 2017; Rahimi et al. 2019 splits)",
        head=TOKEN_CLASSIFICATION,
        metrics=(seqeval_f1,),
        main_metric="f1",
        languages=L.PANX,
        roles=frozenset({"intermediate", "target"}),
        labels=PANX_TAGS,
        local=LocalFiles(
            files={"train": "panx/train-{lang}.tsv", "dev": "panx/dev-{lang}.tsv", "test": "panx/test-{lang}.tsv"},
            reader=partial(readers.read_conll_tags, tag_set=PANX_TAGS),
        ),
        hub=HubDataset(
            path="google/xtreme",
            name="PAN-X.{lang}",
            splits={"train": "train", "dev": "validation", "test": "test"},
            to_example=lambda r: {"tokens": list(r["tokens"]), "tags": [PANX_TAGS[t] for t in r["ner_tags"]]},
        ),
        source="XTREME download (panx/*-{lang}.tsv) or google/xtreme PAN-X.{lang}",
        license="ODC-BY (WikiANN)",
    )
)
