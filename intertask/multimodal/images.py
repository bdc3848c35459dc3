"""Image sources (a folder of images by id or file name) and the synthetic shapes dataset for tests.

An image is addressed by a *key*: the file name in the caption file (Flickr8k, Multi30k, COCO
``file_name``) or the numeric COCO ``image_id`` (VQA v2). :class:`ImageFolder` resolves both: exact
file name, file stem, or the trailing number of the stem (``COCO_train2014_000000000009.jpg`` is
image 9). Images are returned as ``uint8`` arrays of shape (H, W, 3).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from intertask.errors import ConfigError
from intertask.io import write_json_atomic

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".npy"}
_TRAILING_INT = re.compile(r"(\d+)$")


def load_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); ``.npy`` files hold such an array directly."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = np.load(path)
    else:
        from PIL import Image  # Pillow: installed with matplotlib

        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ConfigError(f"{path}: expected an RGB image, got an array of shape {arr.shape}")
    return arr.astype(np.uint8, copy=False)


class ImageFolder:
    """Images in one folder (and its direct subfolders), looked up by file name, stem or numeric id."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(
                f"image folder {self.directory} not found; set intermediate.multimodal.image_dir "
                "(or use precomputed features with intermediate.multimodal.features)"
            )
        self._index: dict[str, Path] = {}
        files = [p for p in self.directory.iterdir() if p.is_file()]
        files += [p for d in self.directory.iterdir() if d.is_dir() for p in d.iterdir() if p.is_file()]
        for p in sorted(files):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            self._index.setdefault(p.name, p)
            self._index.setdefault(p.stem, p)
            m = _TRAILING_INT.search(p.stem)
            if m:
                self._index.setdefault(str(int(m.group(1))), p)

    def __len__(self) -> int:
        return len({str(p) for p in self._index.values()})

    def path(self, key: str | int) -> Path:
        key = str(key)
        for candidate in (key, Path(key).name, Path(key).stem):
            if candidate in self._index:
                return self._index[candidate]
        m = _TRAILING_INT.search(Path(key).stem)
        if m and str(int(m.group(1))) in self._index:
            return self._index[str(int(m.group(1)))]
        raise ConfigError(f"image {key!r} not found in {self.directory}")

    def missing(self, keys: list[str]) -> list[str]:
        out = []
        for key in keys:
            try:
                self.path(key)
            except ConfigError:
                out.append(key)
        return out

    def load(self, key: str | int) -> np.ndarray:
        return load_image(self.path(key))


# ----------------------------------------------------------------------------- synthetic shapes

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 60, 230), "yellow": (235, 220, 30)}
SHAPES = ("circle", "square", "triangle")
COUNTS = ("one", "two", "three")
SYNTHETIC_DIR = "synthetic_shapes"


def _shape_mask(shape: str, size: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    if shape == "circle":
        return (yy - c) ** 2 + (xx - c) ** 2 <= radius**2
    if shape == "square":
        return (np.abs(yy - c) <= radius * 0.8) & (np.abs(xx - c) <= radius * 0.8)
    # triangle pointing up: inside when below the two slanted edges and above the base
    top, base = c - radius, c + radius * 0.8
    half_width = (yy - top) / (base - top) * radius
    return (yy >= top) & (yy <= base) & (np.abs(xx - c) <= half_width)


def draw_shapes(color: str, shape: str, count: int, image_size: int = 32, rng: np.random.Generator | None = None) -> np.ndarray:
    """`count` shapes of one kind and colour in fixed slots (a random subset of 3) on a dark background."""
    rng = rng or np.random.default_rng(0)
    img = np.full((image_size, image_size, 3), 20, dtype=np.uint8)
    cell = image_size // 3
    radius = max(2, cell // 2 - 1)
    mask = _shape_mask(shape, cell, radius)
    row = (image_size - cell) // 2
    for slot in sorted(rng.choice(3, size=count, replace=False)):
        region = img[row : row + cell, slot * cell : (slot + 1) * cell]
        region[mask] = COLORS[color]
    noise = rng.integers(-10, 11, size=img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def _plural(shape: str, count: int) -> str:
    return shape if count == 1 else shape + "s"


def shape_captions(color: str, shape: str, count: int) -> list[str]:
    n = COUNTS[count - 1]
    article = "a" if count == 1 else n
    return [
        f"{article} {color} {_plural(shape, count)}",
        f"there {'is' if count == 1 else 'are'} {n} {color} {_plural(shape, count)} on a dark background",
        f"a picture of {n} {_plural(shape, count)} coloured {color}",
    ]


def shape_questions(color: str, shape: str, count: int) -> list[tuple[str, str]]:
    return [
        (f"what color is the {shape}?" if count == 1 else f"what color are the {shape}s?", color),
        (f"how many {shape}s are there?", COUNTS[count - 1]),
        ("what shape is shown?", shape),
    ]


def make_shapes_dataset(data_dir: str | Path, n_train: int = 240, image_size: int = 32, seed: int = 0, image_format: str = "png") -> Path:
    """Write a synthetic captioning + VQA dataset in the official COCO / VQA v2 formats.

    ``<data_dir>/synthetic_shapes/``: ``images/<id>.png`` (or ``.npy``), ``captions_{train,dev}.json``
    (COCO captions, 3 per image), ``questions_{split}.json`` + ``annotations_{split}.json`` (VQA v2,
    3 questions per image, 10 answers each, one of them noisy). The dev split holds each of the
    4 colours x 3 shapes x 3 counts once (36 images; chance recall@1 = 1/36).
    """
    root = Path(data_dir) / SYNTHETIC_DIR
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    combos = [(c, s, n) for c in COLORS for s in SHAPES for n in (1, 2, 3)]
    splits = {"dev": combos, "train": [combos[i] for i in rng.integers(0, len(combos), size=n_train)]}
    answer_pool = sorted({a for combo in combos for _, a in shape_questions(*combo)})
    image_id = 0
    for split, items in splits.items():
        images, captions, questions, annotations = [], [], [], []
        for color, shape, count in items:
            image_id += 1
            arr = draw_shapes(color, shape, count, image_size, rng)
            file_name = f"{image_id:06d}.{image_format}"
            if image_format == "npy":
                np.save(root / "images" / file_name, arr)
            else:
                from PIL import Image

                Image.fromarray(arr).save(root / "images" / file_name)
            images.append({"id": image_id, "file_name": file_name})
            for caption in shape_captions(color, shape, count):
                captions.append({"id": len(captions) + 1, "image_id": image_id, "caption": caption})
            for question, answer in shape_questions(color, shape, count):
                qid = image_id * 10 + len(questions) % 3
                answers = [answer] * 9 + [str(rng.choice(answer_pool))]
                questions.append({"image_id": image_id, "question": question, "question_id": qid})
                annotations.append({"question_id": qid, "image_id": image_id, "multiple_choice_answer": answer,
                                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)]})  # fmt: skip
        write_json_atomic(root / f"captions_{split}.json", {"images": images, "annotations": captions})
        write_json_atomic(root / f"questions_{split}.json", {"questions": questions})
        write_json_atomic(root / f"annotations_{split}.json", {"annotations": annotations})
    return root


def synthetic_texts(data_dir: str | Path) -> list[str]:
    """Every caption and question of the synthetic dataset (to train a tiny tokenizer on)."""
    root = Path(data_dir) / SYNTHETIC_DIR
    texts = []
    for split in ("train", "dev"):
        texts += [a["caption"] for a in json.loads((root / f"captions_{split}.json").read_text())["annotations"]]
        texts += [q["question"] for q in json.loads((root / f"questions_{split}.json").read_text())["questions"]]
    return texts
