"""Frozen vision encoders and the on-disk feature cache.

* :class:`HFVisionEncoder`: any Hugging Face vision model (CLIP / SigLIP vision towers, ViT, ...),
  loaded with its image processor; pooled vector = the model's ``pooler_output`` (CLS / attention
  pool), patch features = ``last_hidden_state``. Default ``openai/clip-vit-base-patch32`` (needs the
  hub or a local copy).
* :class:`PixelEncoder` (``vision_model: pixels``): a fixed random projection of downsampled pixels.
  Trivially informative about colour and layout; used for the offline learnability tests, where a
  random tiny ViT carries too little signal.
* :func:`build_tiny_vision_model`: a tiny randomly initialised CLIP vision tower (image 32, patch 8)
  saved as a normal model directory, to exercise the HF code path offline.
* :class:`FeatureCache`: features are computed once per (encoder id, image key) and stored as
  ``<cache>/<encoder id>/{pooled,patches}/<key>.npy``; the encoder is only called for missing keys.
* :func:`load_feature_file`: precomputed features (a folder of ``<key>.npy``, or one ``.npz`` /
  ``.safetensors`` with ids).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from intertask.errors import ConfigError
from intertask.progress import progress_bar


@dataclass
class ImageFeatures:
    """Features of a list of images, row i = keys[i]."""

    keys: list[str]
    pooled: np.ndarray  # (N, D) float32
    patches: np.ndarray | None = None  # (N, P, Dp) float32, or None

    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}


class VisionEncoder(Protocol):
    encoder_id: str  # stable identity for the cache: name + configuration (+ weights fingerprint)
    calls: int  # forward calls made (the cache test counts them)

    def embed(self, images: Sequence[np.ndarray], patches: bool) -> tuple[np.ndarray, np.ndarray | None]: ...


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class PixelEncoder:
    """Downsample to `grid` x `grid` (area average), then a fixed Gaussian random projection.

    pooled = P @ pixels (dim), patches = per-cell projections of 4x4-pixel cells of the
    downsampled image (patch_dim each). Deterministic given the seed.
    """

    def __init__(self, grid: int = 16, dim: int = 256, patch_dim: int = 64, seed: int = 0):
        self.grid, self.dim, self.patch_dim, self.cell = grid, dim, patch_dim, 4
        rng = np.random.default_rng(seed)
        self.proj = rng.normal(0, 1 / np.sqrt(grid * grid * 3), size=(grid * grid * 3, dim)).astype(np.float32)
        self.patch_proj = rng.normal(0, 1 / np.sqrt(self.cell * self.cell * 3), size=(self.cell * self.cell * 3, patch_dim)).astype(np.float32)
        self.encoder_id = _safe(f"pixels-g{grid}-d{dim}-p{patch_dim}-s{seed}")
        self.calls = 0

    def _small(self, image: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 255.0
        return torch.nn.functional.interpolate(t, size=(self.grid, self.grid), mode="area")[0].permute(1, 2, 0).numpy()

    def embed(self, images: Sequence[np.ndarray], patches: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += 1
        small = np.stack([self._small(im) for im in images]) - 0.5  # (N, g, g, 3)
        pooled = small.reshape(len(images), -1) @ self.proj
        if not patches:
            return pooled.astype(np.float32), None
        n, g, c = len(images), self.grid, self.cell
        cells = small.reshape(n, g // c, c, g // c, c, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, (g // c) ** 2, c * c * 3)
        return pooled.astype(np.float32), (cells @ self.patch_proj).astype(np.float32)


class HFVisionEncoder:
    """A frozen Hugging Face vision model (CLIP / SigLIP vision tower, ViT, ...) and its image processor."""

    def __init__(self, name_or_path: str, device: torch.device | str = "cpu"):
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        self.device = torch.device(device)
        config = AutoConfig.from_pretrained(name_or_path)
        model_type = getattr(config, "model_type", "")
        if model_type in ("clip", "clip_vision_model"):
            from transformers import CLIPVisionModel as cls
        elif model_type in ("siglip", "siglip_vision_model"):
            from transformers import SiglipVisionModel as cls
        else:
            cls = AutoModel
        self.model = cls.from_pretrained(name_or_path).to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.processor = AutoImageProcessor.from_pretrained(name_or_path)
        first = next(iter(self.model.state_dict().values()))
        fingerprint = float(first.float().sum()) if first.numel() else 0.0
        self.encoder_id = _safe(f"{Path(name_or_path).name}-{_digest(str(name_or_path), self.model.config.to_dict(), fingerprint)}")
        self.calls = 0

    @torch.no_grad()
    def embed(self, images: Sequence[np.ndarray], patches: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += 1
        inputs = self.processor(images=list(images), return_tensors="pt")
        out = self.model(pixel_values=inputs["pixel_values"].to(self.device))
        hidden = out.last_hidden_state
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = hidden.mean(dim=1)
        return pooled.float().cpu().numpy(), (hidden.float().cpu().numpy() if patches else None)


def build_tiny_vision_model(
    directory: str | Path, image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """A tiny random CLIP vision tower + image processor saved to `directory` (no download)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    directory = Path(directory)
    config = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=hidden_size,
    )
    torch.manual_seed(seed)
    CLIPVisionModel(config).save_pretrained(directory)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(directory)
    return directory


def build_vision_encoder(name: str, device: torch.device | str = "cpu") -> VisionEncoder:
    if name == "pixels":
        return PixelEncoder()
    try:
        return HFVisionEncoder(name, device)
    except OSError as exc:
        raise ConfigError(
            f"vision model {name!r} could not be loaded ({exc.__class__.__name__}); give a local model directory, "
            f"precomputed features (multimodal.features), or vision_model: pixels for offline smoke runs"
        ) from None


# ----------------------------------------------------------------------------- cache


class FeatureCache:
    """Per-(encoder, image) feature files under `root`; the vision encoder runs only for missing images."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, encoder_id: str, kind: str, key: str) -> Path:
        return self.root / encoder_id / kind / f"{_safe(str(key))}.npy"

    def features(
        self, encoder: VisionEncoder, keys: Sequence[str], load: Callable[[str], np.ndarray], patches: bool = False, batch_size: int = 64
    ) -> ImageFeatures:
        """Features of `keys` (deduplicated, in order): read from the cache, the rest computed and stored.

        Each cached file is opened once; an unreadable one (empty or truncated after a crash) counts as missing."""
        keys = list(dict.fromkeys(str(k) for k in keys))
        kinds = ("pooled", "patches") if patches else ("pooled",)
        found = {kind: {k: _try_load(self._path(encoder.encoder_id, kind, k)) for k in keys} for kind in kinds}
        missing = [k for k in keys if any(found[kind][k] is None for kind in kinds)]
        if missing:
            with progress_bar(f"image features ({encoder.encoder_id})", total=len(missing)) as advance:
                for start in range(0, len(missing), batch_size):
                    chunk = missing[start : start + batch_size]
                    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # image decoding releases the GIL
                        images = list(pool.map(load, chunk))
                    computed = dict(zip(kinds, encoder.embed(images, patches)))
                    for kind in kinds:
                        for i, key in enumerate(chunk):
                            found[kind][key] = self._save(self._path(encoder.encoder_id, kind, key), computed[kind][i])
                    advance(len(chunk))
        pooled = np.stack([found["pooled"][k] for k in keys]).astype(np.float32)
        patch_arr = np.stack([found["patches"][k] for k in keys]).astype(np.float32) if patches else None
        return ImageFeatures(keys, pooled, patch_arr)

    @staticmethod
    def _save(path: Path, array: np.ndarray) -> np.ndarray:
        """Write-then-rename: a reader never sees a partial file. No fsync per file (a cache of ~10^5 files
        would spend minutes in fsync); after a power loss an empty or truncated entry is recomputed (np.load rejects it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        stored = np.asarray(array, dtype=np.float16 if array.ndim > 1 else np.float32)
        with open(tmp, "wb") as fh:
            np.save(fh, stored)
        os.replace(tmp, path)
        return stored  # exactly what a later read returns


def _try_load(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError):  # absent, empty or truncated (np.load checks the length)
        return None


def _complete(path: Path) -> bool:
    """The file exists and is as long as its .npy header says (a crash can leave an empty or short file)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            return size >= fh.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize
    except (OSError, ValueError, EOFError):
        return False


# ----------------------------------------------------------------------------- precomputed features


def load_feature_file(path: str | Path, keys: Sequence[str], patches: bool = False) -> ImageFeatures:
    """Precomputed features for `keys`.

    * a folder of ``<key>.npy`` (key = file name stem; looked up like images: file name, stem or
      trailing number): a 1-D array is the pooled vector, a 2-D (P, D) array is patch features
      (pooled = their mean);
    * one ``.npz`` or ``.safetensors`` file with ``pooled`` (N, D) (or ``features``), optionally
      ``patches`` (N, P, D), and the ids: an ``ids`` array in the .npz, or ``{"ids": [...]}`` as JSON
      in the safetensors metadata under the key ``ids``.
    """
    path = Path(path)
    keys = [str(k) for k in dict.fromkeys(str(k) for k in keys)]
    if path.is_dir():
        from intertask.multimodal.images import ImageFolder

        folder = ImageFolder(path)
        pooled, patch_list = [], []
        for key in keys:
            arr = np.load(folder.path(key)).astype(np.float32)
            if arr.ndim == 1:
                if patches:
                    raise ConfigError(f"{path}: fusion=prefix needs patch features, but {key}.npy is a pooled vector")
                pooled.append(arr)
            else:
                pooled.append(arr.mean(axis=0))
                patch_list.append(arr)
        return ImageFeatures(keys, np.stack(pooled), np.stack(patch_list) if patches else None)
    if not path.is_file():
        raise ConfigError(f"feature file {path} not found")
    if path.suffix == ".npz":
        data = np.load(path, allow_pickle=False)
        ids = [str(i) for i in data["ids"].tolist()]
        arrays = {k: data[k] for k in data.files if k != "ids"}
    elif path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.numpy import load_file

        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
        if "ids" not in meta:
            raise ConfigError(f"{path}: safetensors features need the image ids as JSON in the metadata key 'ids'")
        ids = [str(i) for i in json.loads(meta["ids"])]
        arrays = load_file(str(path))
    else:
        raise ConfigError(f"{path}: precomputed features must be a folder of .npy, a .npz or a .safetensors file")
    pooled_all = arrays.get("pooled", arrays.get("features"))
    if pooled_all is None:
        if "patches" not in arrays:
            raise ConfigError(f"{path}: expected an array 'pooled' (or 'features') and/or 'patches'")
        pooled_all = arrays["patches"].mean(axis=1)
    if patches and "patches" not in arrays:
        raise ConfigError(f"{path}: fusion=prefix needs an array 'patches' (N, P, D)")
    where = {k: i for i, k in enumerate(ids)}
    by_int = {str(int(m.group(1))): i for k, i in where.items() if (m := re.search(r"(\d+)$", Path(k).stem))}
    rows = []
    for key in keys:
        row = where.get(key, where.get(Path(key).stem))
        if row is None:
            m = re.search(r"(\d+)$", Path(key).stem)
            row = by_int.get(str(int(m.group(1)))) if m else None
        if row is None:
            raise ConfigError(f"{path}: no features for image {key!r}")
        rows.append(row)
    return ImageFeatures(keys, np.asarray(pooled_all, dtype=np.float32)[rows], np.asarray(arrays["patches"], dtype=np.float32)[rows] if patches else None)
