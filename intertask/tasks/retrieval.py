"""Sentence retrieval tasks: no training, the encoder's sentence embeddings are matched by cosine.

Each record is a :class:`RetrievalTask`: its ``procedure`` says how evaluation runs it (see
``intertask.evaluation.zero_shot.RETRIEVAL_PROCEDURES``), and its metrics are the ones computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from intertask.data import readers
from intertask.evaluation.metrics import bucc_f1, map_at_k, tatoeba_accuracy
from intertask.models.heads import RETRIEVAL
from intertask.tasks import languages as L
from intertask.tasks.base import HubDataset, LocalFiles, Task
from intertask.tasks.formats import TargetFiles, read_bucc_corpus, read_lareqa, read_mewslix, read_mewslix_pairs
from intertask.tasks.registry import register

# aligned_pairs: line-aligned sentence pairs, nearest-neighbour accuracy (Tatoeba);
# bitext_mining: margin-based mining over two corpora, threshold chosen on dev (BUCC);
# pooled_ranking: each language's queries rank the pooled candidates of all languages (LAReQA);
# candidate_ranking: queries rank one shared candidate set (Mewsli-X).
Procedure = Literal["aligned_pairs", "bitext_mining", "pooled_ranking", "candidate_ranking"]

# XTREME's embedding layer, as its scripts compute it. run_retrieval.py / evaluate_retrieval.py keep
# ``hidden_states[-num_layers:]`` (the embedding output dropped) and take index ``--specific_layer``, so in
# transformers' ``hidden_states`` numbering (0 = embeddings) the layer is ``n_hidden + 1 - num_layers + specific``:
#   12-layer models (mBERT, XLM-R base): specific_layer 7, num_layers 12              -> hidden_states[8]
#   24-layer XLM-R large, Tatoeba (run_tatoeba.sh: LAYER=13, NLAYER=24)                 -> hidden_states[14]
#   24-layer XLM-R large, BUCC (run_bucc2018.sh: --specific_layer 7, num_layers left at 12) -> hidden_states[20]
# XTREME-R's LAReQA / Mewsli-X use fine-tuned dual encoders on their last layer. Other depths: the last layer.


@dataclass(frozen=True)
class RetrievalTask(Task):
    """A retrieval target: no fine-tuning; a bare encoder's sentence embeddings are matched by cosine."""

    procedure: Procedure = "aligned_pairs"
    # Queries and documents are different kinds of text (e5 models get "query: " / "passage: " prefixes);
    # False for symmetric bitext tasks (both sides "query: ").
    asymmetric: bool = False
    # Encoder depth (num_hidden_layers) -> the hidden state XTREME embeds with; other depths: the last layer.
    xtreme_layers: Mapping[int, int] = field(default_factory=dict)

    def describe(self) -> dict:
        return {**super().describe(), "procedure": self.procedure, "asymmetric": self.asymmetric}


register(
    RetrievalTask(
        name="tatoeba",
        official_name="tatoeba",
        description="Tatoeba similarity search (Artetxe & Schwenk 2019), xx<->en, accuracy of the nearest neighbour",
        head=RETRIEVAL,
        metrics=(tatoeba_accuracy,),
        main_metric="accuracy",
        languages=L.TATOEBA_XTREME_R,  # XTREME's 36 + az lt pl uk ro (XTREME-R)
        roles=frozenset({"target"}),
        local=LocalFiles(
            files={"test": ("tatoeba/tatoeba.{lang}-eng.{lang}", "tatoeba/tatoeba.{lang}-eng.eng")},
            reader=readers.read_tatoeba,
            file_codes=L.TATOEBA_CODES,
        ),
        # google/xtreme tatoeba.{xxx}: one "validation" split of aligned pairs (source_sentence = xx).
        hub=HubDataset(
            path="google/xtreme",
            name="tatoeba.{lang}",
            splits={"test": "validation"},
            to_example=lambda r: {"source": r["source_sentence"], "target": r["target_sentence"]},
            file_codes=L.TATOEBA_CODES,
        ),
        source="LASER Tatoeba v1 (tatoeba.xxx-eng.{xxx,eng}) or google/xtreme tatoeba.{xxx}",
        license="CC BY 2.0 FR",
        procedure="aligned_pairs",
        xtreme_layers={12: 8, 24: 14},
    )
)

register(
    RetrievalTask(
        name="bucc",
        official_name="bucc2018",
        description="BUCC 2018 parallel sentence mining, xx-en (Zweigenbaum et al. 2018): ratio-margin mining (k=4), "
        "threshold chosen on the sample (dev) split and applied to the training (test) split, F1",
        head=RETRIEVAL,
        metrics=(bucc_f1,),
        main_metric="f1",
        languages=L.BUCC,
        roles=frozenset({"target"}),
        local=TargetFiles(
            # XTREME layout (download_data.sh renames sample -> dev, training -> test and drops test.gold, which
            # you need to put back for scoring) first, then the official tarballs' layout.
            files={
                "dev": (
                    "bucc2018/{lang}-en.dev.{lang}|bucc2018/{lang}-en/{lang}-en.sample.{lang}",
                    "bucc2018/{lang}-en.dev.en|bucc2018/{lang}-en/{lang}-en.sample.en",
                    "bucc2018/{lang}-en.dev.gold|bucc2018/{lang}-en/{lang}-en.sample.gold",
                ),
                "test": (
                    "bucc2018/{lang}-en.test.{lang}|bucc2018/{lang}-en/{lang}-en.training.{lang}",
                    "bucc2018/{lang}-en.test.en|bucc2018/{lang}-en/{lang}-en.training.en",
                    "bucc2018/{lang}-en.test.gold|bucc2018/{lang}-en/{lang}-en.training.gold",
                ),
            },
            reader=read_bucc_corpus,
        ),
        # No hub source: google/xtreme bucc18.{lang} holds only the gold pairs, not the corpora to mine.
        source="comparable.limsi.fr/bucc2018 bucc2018-{lang}-en.{sample,training}-gold.tar.bz2",
        license="BUCC 2018 shared task terms (research use)",
        procedure="bitext_mining",
        xtreme_layers={12: 8, 24: 20},
    )
)

register(
    RetrievalTask(
        name="lareqa",
        official_name="lareqa",
        description="LAReQA on XQuAD-R (Roy et al. 2020): each question retrieves its answer sentence from the pooled "
        "candidates of all 11 languages, mAP@20; English training data is SQuAD v1.1 (XTREME-R)",
        head=RETRIEVAL,
        metrics=(map_at_k,),
        main_metric="map@20",
        languages=L.LAREQA,
        roles=frozenset({"target"}),
        train_task="squad_v1",
        local=TargetFiles(files={"test": "lareqa/xquad-r/{lang}.json"}, reader=read_lareqa),
        source="google-research-datasets/lareqa xquad-r/{lang}.json (XTREME-R download_lareqa)",
        license="CC BY-SA 4.0",
        procedure="pooled_ranking",
        asymmetric=True,
    )
)

register(
    RetrievalTask(
        name="mewslix",
        official_name="mewslix",
        description="Mewsli-X entity linking as retrieval (Botha et al. 2020; XTREME-R): Wikinews mentions retrieve "
        "English Wikipedia entity descriptions, mAP@20; English training data is its Wikipedia mention-entity pairs",
        head=RETRIEVAL,
        metrics=(map_at_k,),
        main_metric="map@20",
        languages=L.MEWSLIX,
        roles=frozenset({"target"}),
        local=TargetFiles(
            files={
                "train": "mewslix/wikipedia_pairs-train.jsonl",
                "dev": ("mewslix/wikinews_mentions/dev-{lang}.jsonl", "mewslix/candidate_set_entities.jsonl"),
                "test": (
                    "mewslix/wikinews_mentions/test-{lang}.jsonl",
                    "mewslix/candidate_set_entities.jsonl",
                    "mewslix/wikinews_labels/test-{lang}.json",
                ),
            },
            reader=lambda *paths, on_bad_example="error": (
                read_mewslix_pairs(*paths, on_bad_example=on_bad_example) if len(paths) == 1
                else read_mewslix(*paths, on_bad_example=on_bad_example)
            ),
            split_languages={"train": ("en",)},
        ),
        source="XTREME-R download_mewslix (google-research dense_representations_for_entity_retrieval/mel get-mewsli-x.sh)",
        license="CC BY 3.0 (Wikinews) / CC BY-SA 3.0 (Wikipedia)",
        procedure="candidate_ranking",
        asymmetric=True,
    )
)
