"""Sentence retrieval tasks: no training, the encoder's sentence embeddings are matched by cosine."""

from intertask.data import readers
from intertask.evaluation.metrics import retrieval_accuracy
from intertask.models.heads import RETRIEVAL
from intertask.tasks import LocalFiles, Task, register
from intertask.tasks import languages as L

register(
    Task(
        name="tatoeba",
        description="Tatoeba similarity search (Artetxe & Schwenk 2019), xx<->en, accuracy of the nearest neighbour",
        head=RETRIEVAL,
        metrics=(retrieval_accuracy,),
        main_metric="accuracy",
        languages=L.TATOEBA,
        roles=frozenset({"target"}),
        local=LocalFiles(
            files={"test": ("tatoeba/tatoeba.{lang}-eng.{lang}", "tatoeba/tatoeba.{lang}-eng.eng")},
            reader=readers.read_tatoeba,
            file_codes=L.TATOEBA_CODES,
        ),
        source="LASER Tatoeba v1 (tatoeba.xxx-eng.{xxx,eng})",
        license="CC BY 2.0 FR",
    )
)
