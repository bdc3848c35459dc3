"""Image feature cache: time to get the features of N images without the cache (load + frozen vision model +
write) and with it (read the cached .npy files), for the same FeatureCache call the multimodal stage makes.

The vision model is a randomly initialised CLIP vision tower of ViT-B/32 shape (224 px, patch 32, 12 layers,
hidden 768 -- the compute of ``openai/clip-vit-base-patch32``, no download) or, with ``--model tiny``, the tiny
test tower; the images are the synthetic shapes (upscaled by the image processor). Each mode is timed
``--repeats`` times (median); the uncached runs use a fresh cache directory each time.

Usage: python benchmarks/feature_cache.py [--images 64] [--model base|tiny] [--patches] [--threads 2]
The last line printed is the ratio cached / uncached (smaller is better).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--model", choices=["base", "tiny"], default="base")
    parser.add_argument("--patches", action="store_true", help="also cache patch features (visual prefix fusion)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from intertask.multimodal.images import ImageFolder, make_shapes_dataset
    from intertask.multimodal.vision import FeatureCache, HFVisionEncoder, build_tiny_vision_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_shapes_dataset(root / "data", n_train=max(0, args.images - 36), image_size=64)
        folder = ImageFolder(root / "data" / "synthetic_shapes" / "images")
        keys = [f"{i:06d}.png" for i in range(1, args.images + 1)]
        if args.model == "tiny":
            model_dir = build_tiny_vision_model(root / "vision")
        else:
            model_dir = root / "vision"
            torch.manual_seed(0)
            config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=32)
            CLIPVisionModel(config).save_pretrained(model_dir)
            CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(model_dir)
        encoder = HFVisionEncoder(str(model_dir))
        encoder.embed([folder.load(keys[0])], args.patches)  # warm-up (lazy init, allocator)

        uncached, cached = [], []
        for r in range(args.repeats):
            cache = FeatureCache(root / f"cache{r}")
            start = time.perf_counter()
            cache.features(encoder, keys, folder.load, patches=args.patches, batch_size=32)
            uncached.append(time.perf_counter() - start)
            calls = encoder.calls
            start = time.perf_counter()
            feats = cache.features(encoder, keys, folder.load, patches=args.patches, batch_size=32)
            cached.append(time.perf_counter() - start)
            assert encoder.calls == calls, "the cached run called the vision model"
        u, c = statistics.median(uncached), statistics.median(cached)
        print(
            f"vision model: CLIP vision tower, {args.model} ({sum(p.numel() for p in encoder.model.parameters()) / 1e6:.1f} M parameters), "
            f"threads={torch.get_num_threads()}"
        )
        print(f"images: {args.images}, pooled dim {feats.pooled.shape[1]}" + (f", patches {tuple(feats.patches.shape[1:])}" if args.patches else ""))
        print(f"uncached (load + encode + write): {u:.3f} s  ({1000 * u / args.images:.2f} ms/image)")
        print(f"cached (read .npy):               {c:.3f} s  ({1000 * c / args.images:.2f} ms/image)")
        print(f"ratio cached / uncached: {c / u:.4f}")


if __name__ == "__main__":
    main()
