"""Retrieval (Tatoeba/BUCC-like) end to end: embed N source + N target sentences, then nearest-neighbour search.

Sentences: the Tatoeba sample pairs (5 languages x 1,000), repeated with a numbered suffix up to N per side.
Encoder: ``--model tiny`` (random 2-layer XLM-R, hidden 64) or ``--model default --layers 2`` (the embedded e5-small
truncated to its first layers) -- speed, not accuracy, is measured.

* ours: ``intertask.evaluation.evaluate.embed_sentences`` (tokenise all at once, length-sorted batches of
  ``--batch-size`` (64), mean pooling) + ``intertask.evaluation.retrieval.nearest_neighbours`` (faiss exact inner
  product, batched queries).
* naive: the usual loop -- batches of 32 in dataset order, each tokenised with ``padding=True`` -- and search by a
  full N x N numpy similarity matrix + argmax (skipped where that matrix would exceed ``--naive-limit-gb``).

Every (system, N, repetition) runs in a fresh subprocess, so ``ru_maxrss`` is that case's own peak; reported: peak
RSS minus the RSS after setup (model loaded, sentences built), and tracemalloc's peak (Python/numpy allocations;
torch and faiss allocate outside it).

Usage: python benchmarks/retrieval_throughput.py --model tiny --threads 1 --sizes 10000 100000
The last line is the ratio naive / ours of total time (embedding + search) per size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from common import REPO, SAMPLE_DATA, add_common_args, median, prepare_model, print_table


def sentences(n: int) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for lang, code in [("deu", "deu"), ("fra", "fra"), ("rus", "rus"), ("spa", "spa"), ("ukr", "ukr")]:
        src += (SAMPLE_DATA / "tatoeba" / f"tatoeba.{lang}-eng.{code}").read_text(encoding="utf-8").splitlines()
        tgt += (SAMPLE_DATA / "tatoeba" / f"tatoeba.{lang}-eng.eng").read_text(encoding="utf-8").splitlines()
    reps = -(-n // len(src))
    grow = lambda xs: [s if r == 0 else f"{s} ({r})" for r in range(reps) for s in xs][:n]  # noqa: E731
    return grow(src), grow(tgt)


def case(args) -> dict:
    """One measurement in this (fresh) process."""
    import faiss  # imported before timing (ours imports it lazily)
    import numpy as np
    import torch

    from intertask.evaluation.evaluate import embed_sentences
    from intertask.evaluation.retrieval import nearest_neighbours
    from intertask.models.loading import load_encoder, load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)  # OpenMP spinning on a shared machine costs more than it gains
    encoder = load_encoder(args.model_dir)
    if args.layers:
        encoder.encoder.layer = encoder.encoder.layer[: args.layers]
        encoder.config.num_hidden_layers = args.layers
    encoder.eval()
    tokenizer = load_tokenizer(args.model_dir)
    src, tgt = sentences(args.n)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.case == "ours":
        x = embed_sentences(encoder, tokenizer, src, args.batch_size, args.seq_len, torch.device("cpu"))
        y = embed_sentences(encoder, tokenizer, tgt, args.batch_size, args.seq_len, torch.device("cpu"))
    else:
        x, y = (naive_embed(encoder, tokenizer, texts, args.seq_len) for texts in (src, tgt))
    t1, c1 = time.perf_counter(), time.process_time()
    if args.case == "ours":
        _, ids = nearest_neighbours(x, y, k=1)
        found = ids[:, 0]
        searched = True
    elif args.n * args.n * 4 / 2**30 <= args.naive_limit_gb:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        yn = y / np.linalg.norm(y, axis=1, keepdims=True)
        found = (xn @ yn.T).argmax(axis=1)
        searched = True
    else:
        found, searched = None, False
    t2, c2 = time.perf_counter(), time.process_time()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    accuracy = float((found == np.arange(args.n)).mean()) if found is not None else None
    return {"embed_s": t1 - t0, "embed_cpu_s": c1 - c0, "search_s": (t2 - t1) if searched else None, "search_cpu_s": (c2 - c1) if searched else None,
            "accuracy": accuracy, "rss_added_mb": peak - base_rss, "tracemalloc_peak_mb": traced_peak / 2**20}


def naive_embed(encoder, tokenizer, texts, max_length):
    import numpy as np
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            batch = tokenizer(texts[start : start + 32], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            states = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            out.append(((states * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--layers", type=int, default=None, help="keep only the first L encoder layers (e.g. 2 for --model default)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-limit-gb", type=float, default=4.0)
    parser.add_argument("--case", choices=["ours", "naive"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print("RESULT " + json.dumps(case(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = prepare_model(args, Path(tmp))
        print(
            f"model {model_dir}  layers {args.layers or 'all'}  seq-len {args.seq_len}  threads {args.threads}  ours batch {args.batch_size} "
            "(length-sorted), naive batch 32 (dataset order)"
        )
        rows, ratios = [], {}
        for n in args.sizes:
            runs = {"ours": [], "naive": []}
            for r in range(args.repeats):
                for system in (["ours", "naive"] if r % 2 == 0 else ["naive", "ours"]):
                    cmd = [
                        sys.executable,
                        __file__,
                        "--case",
                        system,
                        "--n",
                        str(n),
                        "--model-dir",
                        model_dir,
                        "--seq-len",
                        str(args.seq_len),
                        "--batch-size",
                        str(args.batch_size),
                        "--naive-limit-gb",
                        str(args.naive_limit_gb),
                    ]
                    cmd += ["--threads", str(args.threads)] if args.threads else []
                    cmd += ["--layers", str(args.layers)] if args.layers else []
                    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                    if line is None:
                        raise SystemExit(f"case {system} n={n} failed:\n{proc.stderr[-3000:]}")
                    out = json.loads(line[7:])
                    runs[system].append(out)
                    print(
                        f"  n={n} run {r} {system:5s}: embed {out['embed_s']:.1f} s  search "
                        f"{out['search_s'] if out['search_s'] is None else round(out['search_s'], 2)} s  peak RSS +{out['rss_added_mb']:.0f} MB  acc "
                        f"{out['accuracy']}",
                        flush=True,
                    )
            for system in ("ours", "naive"):
                med = {k: (median([o[k] for o in runs[system]]) if runs[system][0][k] is not None else None) for k in runs[system][0]}
                total = med["embed_s"] + med["search_s"] if med["search_s"] is not None else None
                rows.append({"n": n, "system": system, **med, "total_s": total, "sentences_per_s": 2 * n / med["embed_s"]})
            ours, naive = rows[-2], rows[-1]
            ratios[n] = {"embed": naive["embed_s"] / ours["embed_s"], "total": (naive["total_s"] / ours["total_s"]) if naive["total_s"] else None}
        print_table(
            rows,
            [
                "n",
                "system",
                "embed_s",
                "embed_cpu_s",
                "sentences_per_s",
                "search_s",
                "search_cpu_s",
                "total_s",
                "accuracy",
                "rss_added_mb",
                "tracemalloc_peak_mb",
            ],
        )
        parts = []
        for n, r in ratios.items():
            total = "naive search skipped" if r["total"] is None else f"{r['total']:.2f}x"
            parts.append(f"n={n}: embed {r['embed']:.2f}x, embed+search {total}")
        print("RATIO naive/ours time: " + "  ".join(parts))


if __name__ == "__main__":
    main()
