"""Retrieval at scale without an encoder: time and peak memory of nearest-neighbour search and margin mining.

Synthetic sentence vectors: random unit vectors, where the first half of the "target" side are planted near-
duplicates of the "source" rows (x + noise, shuffled) and the rest are unrelated. For n in {10k, 100k} and dim in
{384, 768} (e5-small / base-size encoders) we run

* ours:  ``intertask.evaluation.retrieval.nearest_neighbours`` (exact cosine, faiss IndexFlatIP, batched
  queries) and ``mine_bitext`` (ratio margin, k=4, both directions);
* naive: the same computations from a full n x n numpy similarity matrix (what a straightforward
  implementation does). Skipped where the matrix alone would exceed ``--naive-limit-gb`` (default 8 GB).

Each case runs in a fresh subprocess so that ``ru_maxrss`` (process peak RSS) belongs to that case alone; the
reported "peak RSS" is the peak minus the RSS after the inputs were generated (i.e. what the operation added).
``tracemalloc`` sees numpy's allocations but not faiss' C++ ones, so both are printed.

Usage: python benchmarks/retrieval_memory.py [--sizes 10000 100000] [--dims 384 768] [--naive-limit-gb 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np


def make_data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.standard_normal((n, dim), dtype=np.float32)
    half = n // 2
    y[:half] = x[:half] + 0.5 / np.sqrt(dim) * rng.standard_normal((half, dim), dtype=np.float32)  # near-duplicates
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    perm = rng.permutation(n)
    y = np.ascontiguousarray(y[perm])
    gold = np.empty(n, dtype=np.int64)  # gold[i] = row of y holding x[i]'s duplicate (-1: none)
    gold[:] = -1
    inverse = np.argsort(perm)
    gold[:half] = inverse[:half]
    return x, y, gold


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------------------- naive baselines


def naive_knn(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = x @ y.T  # the full n x n matrix
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sims, idx, axis=1)
    order = np.argsort(-part, axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(idx, order, axis=1)


def naive_mine(x: np.ndarray, y: np.ndarray, k: int = 4) -> list[tuple[int, int, float]]:
    """Ratio-margin mining (same rule as mine_bitext) from one dense similarity matrix."""
    sims = x @ y.T
    fwd_idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    fwd_sim = np.take_along_axis(sims, fwd_idx, axis=1)
    bwd_idx = np.argpartition(-sims.T, k - 1, axis=1)[:, :k]
    bwd_sim = np.take_along_axis(sims.T, bwd_idx, axis=1)
    fwd_mean, bwd_mean = fwd_sim.mean(1), bwd_sim.mean(1)
    fwd_scores = fwd_sim / ((fwd_mean[:, None] + bwd_mean[fwd_idx]) / 2)
    bwd_scores = bwd_sim / ((bwd_mean[:, None] + fwd_mean[bwd_idx]) / 2)
    n_x, n_y = len(x), len(y)
    src = np.concatenate([np.arange(n_x), bwd_idx[np.arange(n_y), bwd_scores.argmax(1)]])
    tgt = np.concatenate([fwd_idx[np.arange(n_x), fwd_scores.argmax(1)], np.arange(n_y)])
    scores = np.concatenate([fwd_scores.max(1), bwd_scores.max(1)])
    seen_s, seen_t, out = set(), set(), []
    for i in np.argsort(-scores, kind="stable"):
        s, t = int(src[i]), int(tgt[i])
        if s in seen_s or t in seen_t:
            continue
        seen_s.add(s)
        seen_t.add(t)
        out.append((s, t, float(scores[i])))
    return out


# ---------------------------------------------------------------------------------------------- one case


def run_case(op: str, impl: str, n: int, dim: int) -> dict:
    import faiss  # noqa: F401  (imported before timing: the import is not part of the search)

    from intertask.evaluation.retrieval import mine_bitext, nearest_neighbours

    x, y, gold = make_data(n, dim)
    base_rss = _rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    if op == "knn":
        sims, idx = (naive_knn(x, y, 4) if impl == "naive" else nearest_neighbours(x, y, 4))
        has = gold >= 0
        quality = float(np.mean(idx[has, 0] == gold[has]))
    else:
        mined = naive_mine(x, y) if impl == "naive" else mine_bitext(x, y, list(range(n)), list(range(n)), k=4, min_score=None)
        top = mined[: n // 2]  # the n/2 best-scoring pairs should be the planted ones
        quality = float(np.mean([gold[s] == t for s, t, _ in top]))
    seconds = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss  # Linux: KiB
    return {"op": op, "impl": impl, "n": n, "dim": dim, "seconds": seconds, "tracemalloc_peak_mb": py_peak / 2**20,
            "peak_rss_mb": max(peak_rss, 0) / 2**20, "quality": quality}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--ops", nargs="+", default=["knn", "mine"], choices=["knn", "mine"])
    parser.add_argument("--naive-limit-gb", type=float, default=8.0)
    parser.add_argument("--case", nargs=4, metavar=("OP", "IMPL", "N", "DIM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        op, impl, n, dim = args.case
        print(json.dumps(run_case(op, impl, int(n), int(dim))))
        return
    import faiss

    print(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}, numpy {np.__version__}, cpus {os.cpu_count()}")
    header = f"{'op':5s} {'n':>7s} {'dim':>4s} {'impl':6s} {'seconds':>8s} {'peakRSS MB':>10s} {'tracemalloc MB':>14s} {'quality':>7s}"
    print(header)
    rows: list[dict] = []
    for n in args.sizes:  # small sizes first, then each dimension's search and mining together
        for dim in args.dims:
            for op in args.ops:
                for impl in ("ours", "naive"):
                    if impl == "naive" and n * n * 4 / 1e9 > args.naive_limit_gb:
                        print(
                            f"{op:5s} {n:7d} {dim:4d} naive  skipped: the {n}x{n} float32 matrix alone is {n * n * 4 / 1e9:.0f} GB (> "
                            f"{args.naive_limit_gb:g} GB)"
                        )
                        continue
                    cmd = [sys.executable, os.path.abspath(__file__), "--case", op, impl, str(n), str(dim)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(f"{op:5s} {n:7d} {dim:4d} {impl:6s} failed: {proc.stderr.strip().splitlines()[-1:]}")
                        continue
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    rows.append(r)
                    print(
                        f"{op:5s} {n:7d} {dim:4d} {impl:6s} {r['seconds']:8.2f} {r['peak_rss_mb']:10.0f} {r['tracemalloc_peak_mb']:14.0f} {r['quality']:7.3f}",
                        flush=True,
                    )
    print("\nours / naive (where both ran):")
    for r in rows:
        if r["impl"] != "ours":
            continue
        base = next((b for b in rows if b["impl"] == "naive" and (b["op"], b["n"], b["dim"]) == (r["op"], r["n"], r["dim"])), None)
        if base:
            print(f"  {r['op']:5s} n={r['n']:<7d} dim={r['dim']:<4d} time x{r['seconds'] / base['seconds']:.2f}  "
                  f"peak RSS x{r['peak_rss_mb'] / max(base['peak_rss_mb'], 1e-9):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
