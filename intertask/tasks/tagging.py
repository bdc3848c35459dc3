"""Token tagging tasks."""

from functools import partial

from intertask.data import readers
from intertask.data.readers import PANX_TAGS
from intertask.evaluation.metrics import pos_f1, seqeval_f1
from intertask.models.heads import TOKEN_CLASSIFICATION
from intertask.tasks import languages as L
from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.formats import TargetFiles, read_ud_pos
from intertask.tasks.registry import register

register(
    Task(
        name="panx",
        official_name="panx",
        description="WikiANN / PAN-X named entity recognition (Pan et al. 2017; Rahimi et al. 2019 splits)",
        head=TOKEN_CLASSIFICATION,
        metrics=(seqeval_f1,),
        main_metric="f1",
        languages=tuple(dict.fromkeys(L.PANX + L.PANX_XTREME_R)),  # XTREME's 40 + XTREME-R's 8
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

UPOS_TAGS = readers.UPOS_TAGS  # the 17 UD tags, alphabetical (= google/xtreme udpos pos_tags class order)


def _hub_udpos(r: dict) -> dict:
    return {"tokens": list(r["tokens"]), "tags": [UPOS_TAGS[t] if isinstance(t, int) else t for t in r["pos_tags"]]}


register(
    Task(
        name="udpos",
        official_name="udpos",
        description="Universal Dependencies POS tagging (XTREME: UD v2.5, XTREME-R: v2.7); English training data is "
        "UD English (every en_* treebank found; ../shared/data has EWT)",
        head=TOKEN_CLASSIFICATION,
        metrics=(pos_f1,),
        main_metric="f1",
        languages=tuple(dict.fromkeys(L.UDPOS + L.UDPOS_XTREME_R)),
        roles=frozenset({"target"}),
        labels=UPOS_TAGS,
        local=TargetFiles(
            # Every treebank of the language, concatenated (as XTREME's utils_preprocess.py does); else the
            # XTREME-preprocessed tsv (token<TAB>UPOS).
            files={
                "train": "ud/{lang}_*-ud-train.conllu|udpos/train-{lang}.tsv",
                "dev": "ud/{lang}_*-ud-dev.conllu|udpos/dev-{lang}.tsv",
                "test": "ud/{lang}_*-ud-test.conllu|udpos/test-{lang}.tsv",
            },
            reader=read_ud_pos,
        ),
        hub=HubDataset(
            path="google/xtreme",
            name="udpos.{lang}",
            splits={"train": "train", "dev": "validation", "test": "test"},
            to_example=_hub_udpos,
            file_codes=L.UDPOS_HUB_NAMES,
        ),
        # version 2: XTREME's items (a multiword token is one item with its span head's UPOS), was: syntactic words
        version=2,
        source="UD treebanks (ud/{lang}_<treebank>-ud-{split}.conllu), XTREME udpos/{split}-{lang}.tsv, or google/xtreme udpos.<Language>",
        license="per treebank (mostly CC BY-SA 4.0)",
    )
)
