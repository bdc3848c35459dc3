"""A fixed small workload idle and next to K CPU-bound competitor processes, without and with the thread policy.

The workload (one fresh process per measurement, so that the OpenMP environment is decided before torch loads):

* embed: mean-pooled sentence embeddings of ``--sentences`` Tatoeba sentences (default 2,000: the German and
  English sides of tatoeba.deu-eng from the shared data; the sample data's rus-eng otherwise) with
  ``intertask.evaluation.evaluate.embed_sentences``, batch 64, max length 128;
* train: ``--steps`` (30) optimiser steps of the recipe's training loop (``intertask.training.recipe.run_stage``)
  on PAN-X en, batch ``--batch-size`` (16), evaluation only at the last step on 8 dev sentences. Timed: the
  recipe's own meter (first batch .. last optimiser step; featurisation, model loading, evaluation and checkpoint
  writing excluded), or the whole call if the meter is missing.

Model: the default model (embedded multilingual-e5-small, 12 x 384); if it cannot be prepared on this machine the
benchmark falls back to the tiny random model (2 x 64, sample tokenizer) and says so. ``--quick`` uses the tiny
model, 64 sentences, 3 steps, K = 1 only and no warm-up (a smoke test of the benchmark itself).

Two behaviours, run side by side for every K:

* old: what the tool did before the thread policy: torch imported first with its defaults (as many intra-op
  threads as cores, OpenMP's active waiting: OMP_WAIT_POLICY / KMP_BLOCKTIME / OMP_NUM_THREADS removed from the
  environment);
* new: ``intertask.threads.apply_thread_policy()`` before torch is imported (passive waiting, threads from the
  usable CPUs, 1 inter-op thread).

Competitors are ``python -c "while True: pass"`` processes, started before and killed after each measurement. One
untimed warm-up (both parts, shortened, new behaviour, idle) fills the file cache and the feature cache first; the order of
old / new alternates between K.

Slowdown = time(K) / time(idle) of the same behaviour. Fair share: with c usable CPUs, w work threads and K
competitors, each runnable thread gets c / (K + w) of a CPU when K + w > c, so fair = max(1, (K + w) / c) (w = the
policy's intra-op threads; on 2 cores with 2 threads: K=1 1.5x, K=2 2x, K=4 3x). Target: new slowdown <= 1.5 x fair.
The last column, new/old, compares total wall times at the same K (< 1: the policy is faster; at K=0 it is the idle
speed ratio). The load average printed with each row shows other load on a shared machine.

Usage:
  python benchmarks/under_load.py                 # full: K = 0, 1, 2, 4 (about 10-15 minutes on 2 cores)
  python benchmarks/under_load.py --quick         # seconds: tiny model, K = 0, 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OMP_VARS = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "INTERTASK_THREADS", "GOMP_SPINCOUNT")


def child(args) -> None:
    """One measurement in this fresh process; prints a JSON line."""
    if args.child == "old":
        import torch  # noqa: F401  (first: torch's OpenMP starts with its defaults, as before the policy)
    else:
        sys.path.insert(0, str(HERE.parent))
        from intertask.threads import apply_thread_policy

        apply_thread_policy(announce=False)
    import torch

    if args.child == "new":
        apply_thread_policy()  # as the library entry points do once torch is imported: inter-op threads
    sys.path.insert(0, str(HERE))
    from common import SAMPLE_DATA, SHARED_DATA, data_dir_for  # noqa: E402

    from intertask.config import ModelConfig, StageConfig
    from intertask.evaluation.evaluate import embed_sentences
    from intertask.models.loading import load_encoder, load_tokenizer
    from intertask.training.recipe import StageContext, run_stage

    out: dict = {"threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads()}
    sentences: list[str] = []
    for base, pair in ((SHARED_DATA, "deu-eng"), (SAMPLE_DATA, "rus-eng")):
        for side in pair.split("-"):
            f = base / "tatoeba" / f"tatoeba.{pair}.{side}"
            if f.is_file():
                sentences += [s for s in f.read_text(encoding="utf-8").splitlines() if s.strip()]
        if len(sentences) >= args.sentences:
            break
    sentences = sentences[: args.sentences]
    if args.sentences and len(sentences) < args.sentences:
        sentences = (sentences * (args.sentences // max(1, len(sentences)) + 1))[: args.sentences]
    if sentences:
        encoder, tokenizer = load_encoder(args.model_dir), load_tokenizer(args.model_dir)
        with torch.inference_mode():
            embed_sentences(encoder, tokenizer, sentences[:16], 16, 128, torch.device("cpu"))  # first-call allocation, untimed
            w, c = time.perf_counter(), time.process_time()
            embed_sentences(encoder, tokenizer, sentences, 64, 128, torch.device("cpu"))
            out["embed"] = (time.perf_counter() - w, time.process_time() - c)
        del encoder
    if args.steps:
        ctx = StageContext(model=ModelConfig(name_or_path=args.model_dir, max_seq_length=128), seed=42, data_dir=data_dir_for("panx", "train", "en"))
        stage = StageConfig(
            task="panx", language="en", batch_size=args.batch_size, max_steps=args.steps, warmup_ratio=0.0, max_train_samples=args.batch_size * 40,
            max_eval_samples=8, eval_every_steps=args.steps, eval_batch_size=8,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            w, c = time.perf_counter(), time.process_time()
            summary = run_stage(stage, ctx, Path(tmp) / "stage", "target")
            whole = (time.perf_counter() - w, time.process_time() - c)
        meter = summary.get("throughput") or {}
        out["train"] = (meter["seconds"], meter["cpu_seconds"]) if "seconds" in meter and "cpu_seconds" in meter else whole
        out["train_meter"] = "recipe" if "seconds" in meter else "whole call"
    print("RESULT " + json.dumps(out), flush=True)


def run_child(mode: str, args, model_dir: str, sentences: int, steps: int, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    env["INTERTASK_PROGRESS"] = "0"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--model-dir", model_dir, "--sentences", str(sentences), "--steps", str(steps)]
    cmd += ["--batch-size", str(args.batch_size)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "elapsed": time.perf_counter() - started}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{mode} measurement failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def competitors(k: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def prepare_model(quick: bool, workdir: Path) -> tuple[str, str]:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from common import sample_texts

    if not quick:
        try:
            from intertask.models.loading import resolve_model

            return resolve_model("default"), "default (multilingual-e5-small, 12 x 384)"
        except Exception as exc:  # noqa: BLE001 - documented fallback
            print(f"default model unavailable ({exc}); falling back to the tiny model", file=sys.stderr)
    from intertask.models.tiny import build_tiny_model

    return str(build_tiny_model(workdir / "tiny", sample_texts(), hidden_size=64, layers=2, heads=2)), "tiny (random 2 x 64)"


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, small workload, K = 0, 1, no warm-up")
    parser.add_argument("--competitors", default="1,2,4", help="comma-separated K values (K = 0, idle, is always run)")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per measurement; a slower one is reported as > timeout")
    parser.add_argument("--repeats", type=int, default=1, help="measurements per (K, behaviour), alternating old / new; the median is shown")
    parser.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return []
    if args.quick:
        args.sentences, args.steps, args.competitors, args.timeout = 64, 3, "1", 120
    ks = [0] + [int(k) for k in args.competitors.split(",") if k.strip() and int(k) > 0]
    sys.path.insert(0, str(HERE.parent))
    from intertask.threads import decide

    policy = decide()
    cores, work = policy.cpus, policy.intra_op
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, model_name = prepare_model(args.quick, Path(tmp))
        print(f"under_load: model {model_name}; {args.sentences} sentences embedded + {args.steps} training steps (batch {args.batch_size}); "
              f"{cores} usable CPUs ({policy.limits}); new policy: {policy.describe()}", flush=True)  # fmt: skip
        if not args.quick:
            print("warm-up (untimed) ...", flush=True)
            run_child("new", args, model_dir, min(args.sentences, 200), min(args.steps, 2), args.timeout)  # same training rows: fills the feature cache
        rows: list[dict] = []
        turn = 0
        for k in ks:
            for _ in range(args.repeats):
                order = ["old", "new"] if turn % 2 == 0 else ["new", "old"]
                turn += 1
                for mode in order:
                    procs = competitors(k)
                    try:
                        time.sleep(0.5 if k else 0)
                        load = os.getloadavg()[0]
                        r = run_child(mode, args, model_dir, args.sentences, args.steps, args.timeout)
                    finally:
                        stop(procs)
                    row = {"K": k, "mode": mode, "load": load, **r}
                    rows.append(row)
                    print(f"  K={k} {mode}: {json.dumps(r)} (load {load:.1f})", flush=True)
    print_table(median_rows(rows), ks, cores, work, args.timeout)
    return rows


def median_rows(rows: list[dict]) -> list[dict]:
    """Per (K, behaviour), the measurement with the median total wall time (timeouts count as the slowest)."""
    out = []
    for key in dict.fromkeys((r["K"], r["mode"]) for r in rows):
        group = sorted((r for r in rows if (r["K"], r["mode"]) == key), key=lambda r: _total(r)[0] or float("inf"))
        out.append(group[(len(group) - 1) // 2])
    return out


def _total(row: dict) -> tuple[float | None, float | None]:
    if row.get("timeout"):
        return None, None
    parts = [row[p] for p in ("embed", "train") if p in row]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def print_table(rows: list[dict], ks: list[int], cores: int, work: int, timeout: float) -> None:
    by = {(r["K"], r["mode"]): r for r in rows}
    print()
    print(f"fair-share slowdown = max(1, (K + w) / c) with c = {cores} usable CPUs, w = {work} work threads")
    header = ["K", "fair", "mode", "load", "embed s", "embed cpu", "train s", "train cpu", "total s", "cpu s", "slowdown", "/ fair", "new/old"]
    lines = [header]
    for k in ks:
        fair = max(1.0, (k + work) / cores)
        for mode in ("old", "new"):
            r = by.get((k, mode))
            if r is None:
                continue
            wall, cpu = _total(r)
            idle = _total(by.get((0, mode), {}))[0]
            slow = wall / idle if wall and idle else None
            other = _total(by.get((k, "old"), {}))[0]
            ratio = wall / other if mode == "new" and wall and other else None
            e, t = r.get("embed", (None, None)), r.get("train", (None, None))
            lines.append([
                str(k), f"{fair:.2f}", mode, f"{r['load']:.1f}", fmt(e[0]), fmt(e[1]), fmt(t[0]), fmt(t[1]),
                fmt(wall) if wall else f"> {timeout:.0f}", fmt(cpu), fmt(slow, 2) + ("x" if slow else ""),
                fmt(slow / fair if slow else None, 2), fmt(ratio, 2),
            ])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths)))
    new_ok = all(
        (_total(by[(k, "new")])[0] or 0) and (_total(by[(k, "new")])[0] / _total(by[(0, "new")])[0]) <= 1.5 * max(1.0, (k + work) / cores)
        for k in ks if k and (k, "new") in by and _total(by[(0, "new")])[0]
    )  # fmt: skip
    print(f"target (new slowdown <= 1.5 x fair share for every K): {'met' if new_ok else 'NOT met'}")


if __name__ == "__main__":
    main()
