"""Task records of the multimodal intermediate tasks (captioning, VQA) and their text-only twins.

Examples are normalised to ``{"image": key, "caption": str}`` (captioning) and ``{"image": key,
"question": str, "answers": [10 human answers], "answer": most common answer}`` (VQA); ``key`` is what
:class:`~intertask.multimodal.images.ImageFolder` and the feature cache look images up by.

The ``<captioning task>_paraphrase`` tasks (sentence-pair classification: two captions of the same
image -> "1", of different images -> "0") are the default *size-matched text* control: the same
caption text without images, trained by the ordinary text recipe.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

from intertask.data import readers
from intertask.errors import ConfigError
from intertask.evaluation.metrics import accuracy
from intertask.models.heads import SEQUENCE_CLASSIFICATION, Head
from intertask.multimodal.metrics import retrieval_recall, vqa_accuracy
from intertask.tasks.base import LocalFiles, Task
from intertask.tasks.registry import TASKS, get_task, register


@dataclass(frozen=True)
class MultimodalTask(Task):
    """The record of a multimodal intermediate task: a `Task` plus what the multimodal stage needs."""

    kind: Literal["captioning", "vqa"] = "captioning"
    image_dir: str = ""  # default folder of the images, relative to data_dir (multimodal.image_dir overrides it)
    # Multi30k: task1 (one caption per image, translations) files per extra caption language
    extra_caption_files: Mapping[str, tuple[str, str]] | None = None


MultimodalSpec = MultimodalTask  # the name used before the spec became the task record


def multimodal_spec(task_name: str) -> MultimodalTask | None:
    """The multimodal record called `task_name`, or None when there is no such multimodal task."""
    task = get_task(task_name) if task_name in TASKS else None
    return task if isinstance(task, MultimodalTask) else None


class MultimodalHead(Head):
    """Marks a multimodal task; its models are built by intertask.multimodal.stage, not by run_stage."""

    model_class = None

    def __init__(self, name: str):
        self.name = name

    def build_model(self, name_or_path, labels=()):  # pragma: no cover - guarded by the pipeline's dispatch
        raise ConfigError(f"{self.name} tasks are multimodal: they train through the multimodal objective (intertask.training.objectives.multimodal)")


CAPTIONING = MultimodalHead("captioning")
VQA = MultimodalHead("vqa")


# ----------------------------------------------------------------------------- readers (normalising)


def _result(examples, skipped):
    return readers.ReadResult(examples, list(skipped))


def read_coco_caption_examples(path, *, on_bad_example="error"):
    res = readers.read_coco_captions(path, on_bad_example=on_bad_example)
    return _result([{"image": e["file_name"], "caption": e["caption"]} for e in res.examples], res.skipped)


def read_flickr_caption_examples(captions_path, images_path, *, on_bad_example="error"):
    """Flickr8k/30k token file filtered to the images of one split list."""
    res = readers.read_flickr8k_captions(captions_path, on_bad_example=on_bad_example)
    keep = set(readers.read_image_list(images_path, on_bad_example=on_bad_example).examples)
    return _result([e for e in res.examples if e["image"] in keep], res.skipped)


def read_multi30k_caption_examples(*paths, on_bad_example="error"):
    """Multi30k task2: k caption files (``{split}.{1..5}.{lang}.gz``) and the image list (last path)."""
    *caption_paths, images_path = paths
    examples, skipped = [], []
    for path in caption_paths:
        res = readers.read_multi30k(path, images_path, on_bad_example=on_bad_example)
        examples += res.examples
        skipped += res.skipped
    return _result(examples, skipped)


def read_vqa_examples(questions_path, annotations_path, *, on_bad_example="error"):
    res = readers.read_vqa(questions_path, annotations_path, on_bad_example=on_bad_example)
    return _result(
        [{"image": str(e["image_id"]), "question": e["question"], "answers": e["answers"], "answer": e["multiple_choice_answer"]} for e in res.examples],
        res.skipped,
    )


def caption_pairs(examples: list[dict], seed: int = 0) -> list[dict]:
    """Captions -> paraphrase pairs, one per caption (so a size-matched run sees as many examples as the
    captioning run): the k-th caption of an image is paired with the next caption of the same image
    (label "1") for even k, and with a caption of a random other image ("0") for odd k. Images with a
    single caption are skipped. Seeded."""
    by_image: dict[str, list[str]] = defaultdict(list)
    for e in examples:
        by_image[e["image"]].append(e["caption"])
    images = sorted(by_image)
    if len(images) < 2:
        raise ConfigError("caption pairs need captions of at least two images")
    rng = random.Random(seed)
    pairs = []
    for image in images:
        caps = by_image[image]
        if len(caps) < 2:
            continue
        for k, caption in enumerate(caps):
            if k % 2 == 0:
                pairs.append({"text_a": caption, "text_b": caps[(k + 1) % len(caps)], "label": "1"})
                continue
            other = image
            while other == image:
                other = images[rng.randrange(len(images))]
            pairs.append({"text_a": caption, "text_b": rng.choice(by_image[other]), "label": "0"})
    return pairs


def _paraphrase_reader(caption_reader):
    def read(*paths, on_bad_example="error"):
        res = caption_reader(*paths, on_bad_example=on_bad_example)
        return _result(caption_pairs(res.examples), res.skipped)

    return read


# ----------------------------------------------------------------------------- records


def _register(
    name: str, kind: str, description: str, local: LocalFiles, languages: tuple[str, ...], image_dir: str, source: str, license: str, extra=None
) -> None:
    head, metric = (CAPTIONING, retrieval_recall) if kind == "captioning" else (VQA, vqa_accuracy)
    register(MultimodalTask(name=name, description=description, head=head, metrics=(metric,), main_metric=metric.primary, languages=languages,
                            roles=frozenset({"intermediate"}), local=local, source=source, license=license,
                            kind=kind, image_dir=image_dir, extra_caption_files=extra))  # type: ignore[arg-type]  # fmt: skip
    if kind == "captioning":
        register(Task(name=f"{name}_paraphrase",
                      description=f"{name} captions as paraphrase pairs (same image or not): the size-matched text control",
                      head=SEQUENCE_CLASSIFICATION, metrics=(accuracy,), main_metric="accuracy", languages=languages,
                      roles=frozenset({"intermediate"}), labels=("0", "1"),
                      local=LocalFiles(files=local.files, reader=_paraphrase_reader(local.reader)), source=source, license=license))  # fmt: skip


_M30K = "multimodal/multi30k"
_register(
    "synthetic_captioning", "captioning",
    "Synthetic coloured shapes with captions ('two blue squares'), COCO format; for tests and smoke runs",
    LocalFiles(files={s: f"synthetic_shapes/captions_{s}.json" for s in ("train", "dev")}, reader=read_coco_caption_examples),
    ("en",), "synthetic_shapes/images", "intertask.multimodal.images.make_shapes_dataset", "generated",
)  # fmt: skip
_register(
    "synthetic_vqa", "vqa",
    "Synthetic coloured shapes with questions ('how many squares are there?' -> 'two'), VQA v2 format; for tests",
    LocalFiles(files={s: (f"synthetic_shapes/questions_{s}.json", f"synthetic_shapes/annotations_{s}.json") for s in ("train", "dev")},
               reader=read_vqa_examples),
    ("en",), "synthetic_shapes/images", "intertask.multimodal.images.make_shapes_dataset", "generated",
)  # fmt: skip
_register(
    "coco_captioning", "captioning",
    "MS-COCO captions (Chen et al. 2015), 5 per image; train2014 -> val2014 as dev",
    LocalFiles(files={"train": "multimodal/coco/annotations/captions_train2014.json", "dev": "multimodal/coco/annotations/captions_val2014.json"},
               reader=read_coco_caption_examples),
    ("en",), "multimodal/coco/images", "cocodataset.org annotations_trainval2014.zip", "CC BY 4.0 (annotations); images: Flickr terms",
)  # fmt: skip
_register(
    "flickr8k_captioning", "captioning",
    "Flickr8k captions (Hodosh et al. 2013), 5 per image, official train/dev image lists",
    LocalFiles(files={s: ("multimodal/flickr8k/Flickr8k.token.txt", f"multimodal/flickr8k/Flickr_8k.{s}Images.txt") for s in ("train", "dev", "test")},
               reader=read_flickr_caption_examples),
    ("en",), "multimodal/flickr8k/images", "Flickr8k_text.zip", "research use (Flickr8k terms)",
)  # fmt: skip
_register(
    "multi30k_captioning", "captioning",
    "Multi30k task 2 (Elliott et al. 2016): 5 independent captions per Flickr30k image, English or German; "
    "multimodal.caption_languages adds the task 1 translations (de/fr/cs)",
    LocalFiles(files={s: (*(f"{_M30K}/task2/raw/{s2}.{k}.{{lang}}.gz" for k in range(1, 6)), f"{_M30K}/task2/image_splits/{s2}_images.txt")
                      for s, s2 in (("train", "train"), ("dev", "val"))}, reader=read_multi30k_caption_examples),  # fmt: skip
    ("en", "de"), "multimodal/flickr30k/images", "github.com/multi30k/dataset", "CC BY 4.0 (captions); images: Flickr30k terms",
    extra={lang: (f"{_M30K}/task1/raw/train.{lang}.gz", f"{_M30K}/task1/image_splits/train.txt") for lang in ("en", "de", "fr", "cs")},
)  # fmt: skip
_register(
    "vqa_v2", "vqa",
    "VQA v2 (Goyal et al. 2017) on COCO images: the full release if present, else the 60k-question subset of timbmg/NLP1-2017-VQA",
    LocalFiles(files={s: (f"multimodal/vqa_v2/v2_OpenEnded_mscoco_{o}2014_questions.json|multimodal/vqa_v2_subset/vqa_questions_{sub}.gzip",
                          f"multimodal/vqa_v2/v2_mscoco_{o}2014_annotations.json|multimodal/vqa_v2_subset/vqa_annotatons_{sub}.gzip")
                      for s, o, sub in (("train", "train", "train"), ("dev", "val", "valid"))}, reader=read_vqa_examples),  # fmt: skip
    ("en",), "multimodal/coco/images", "visualqa.org v2 / github.com/timbmg/NLP1-2017-VQA", "CC BY 4.0",
)  # fmt: skip


def load_extra_captions(task_name: str, languages: list[str], data_dir: Path, on_bad_example: str = "error") -> tuple[list[dict], list[str]]:
    """Multi30k task 1 captions of the training images in more languages -> (examples, files)."""
    spec = multimodal_spec(task_name)
    if not languages:
        return [], []
    if spec is None or not spec.extra_caption_files:
        raise ConfigError(f"multimodal.caption_languages: task {task_name} has no multilingual captions (use multi30k_captioning)")
    examples, files = [], []
    for lang in languages:
        if lang not in spec.extra_caption_files:
            raise ConfigError(f"multimodal.caption_languages: no {lang!r} captions (have: {', '.join(spec.extra_caption_files)})")
        caps, imgs = (Path(data_dir) / p for p in spec.extra_caption_files[lang])
        for p in (caps, imgs):
            if not p.is_file():
                raise ConfigError(f"multimodal.caption_languages: {p} not found")
        examples += readers.read_multi30k(caps, imgs, on_bad_example=on_bad_example).examples  # type: ignore[arg-type]
        files.append(str(caps))
    return examples, files


def text_task_for(task_name: str, text_task: str | None) -> Task:
    """The size-matched text control's task: `text_task`, or the captions as paraphrase pairs."""
    if text_task:
        return get_task(text_task)
    if f"{task_name}_paraphrase" in TASKS:
        return get_task(f"{task_name}_paraphrase")
    raise ConfigError(f"multimodal.control=text_matched: set multimodal.text_task for {task_name} (e.g. squad_v1 or mnli)")


__all__ = ["MultimodalTask", "MultimodalSpec", "multimodal_spec", "caption_pairs", "text_task_for", "load_extra_captions"]
