"""Training throughput: our recipe's training loop vs a plain transformers ``Trainer`` with its default settings.

Both train the same model (same seed, same initial weights), on the same featurised examples, for the same number
of optimiser steps, with the same batch size, sequence length cap, precision and hyperparameters (Trainer's
defaults: lr 5e-5, linear decay, no warmup, no weight decay, max_grad_norm 1.0, AdamW; ours is told the same).

* ours: ``intertask.training.recipe.run_stage`` (length-grouped batches, dynamic padding, fused AdamW, the feature
  cache) with evaluation only at the last step on an 8-example dev set. What is timed is the training loop only: the
  recipe's own meter (summary["throughput"]) runs from the first batch to the last optimiser step and excludes
  evaluation and checkpoint writing; setup (loading, featurisation, model construction) is not timed.
* baseline: ``transformers.Trainer`` with TrainingArguments defaults except output_dir, per_device_train_batch_size,
  max_steps, learning_rate, seed, report_to="none", save_strategy="no", disable_tqdm, use_cpu (CPU) / bf16 (when
  --precision bf16). Its default collator, given a tokenizer as processing_class, is DataCollatorWithPadding (dynamic
  padding to the longest row of each batch); batches are drawn by a RandomSampler (train_sampling_strategy="random",
  no length grouping); its default optimiser is adamw_torch_fused. Tagging needs labels padded too, so there it gets
  DataCollatorForTokenClassification (what transformers' run_ner.py passes). Timed: on_train_begin .. on_train_end
  (its training loop; optimiser/dataloader creation excluded).

Real tokens = non-padding tokens (attention_mask sum) of the batches each system actually trained on. The two
systems see different batches (different sampling orders), so their mean training losses agree only within
sampling noise; test_performance_equivalence.py checks each optimisation exactly.

Usage:
  python benchmarks/train_throughput.py --model tiny --steps 30                      # quick check
  python benchmarks/train_throughput.py --model default --steps 12 --batch-size 32   # e5-small on CPU
  python benchmarks/train_throughput.py --device cuda --model-config base --seq-len 256 --precision bf16 --steps 200 --batch-size 32
The last line is the ratio ours / baseline of real tokens per second (median over --repeats interleaved runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from common import (  # noqa: E402 (common puts the repo on sys.path)
    PeakRSS,
    add_common_args,
    data_dir_for,
    interleaved,
    median,
    mfu,
    non_embedding_params,
    prepare_model,
    print_table,
    setup_torch,
)

TASKS = {"xnli": "sentence pair (XNLI en, dev file used as training data)", "panx": "tagging (PAN-X en train)"}


def bench_task(name: str):
    """The task to train: PAN-X as is; for XNLI a copy whose 'train' split is the English dev file (XNLI has no
    training file of its own; its train task is MNLI)."""
    from intertask.tasks import TASKS, get_task, register

    task = get_task(name)
    if name != "xnli":
        return task
    alias = "bench_xnli"
    if alias not in TASKS:
        files = dict(task.local.files, train=task.local.files["dev"])
        register(dataclasses.replace(task, name=alias, train_task=None, local=dataclasses.replace(task.local, files=files)))
    return get_task(alias)


def run_ours(args, task, model_dir: str, data_dir: Path, workdir: Path, tag: str, switches: dict | None = None) -> dict:
    """Our recipe; `switches`: extra StageConfig fields (e.g. packing=True, bucket_lengths=[...]) / model fields
    (attn_implementation, torch_compile: keys of ModelConfig)."""
    from intertask.config import ModelConfig, StageConfig
    from intertask.training.recipe import StageContext, run_stage

    switches = dict(switches or {})
    model_fields = {k: switches.pop(k) for k in list(switches) if k in ("attn_implementation", "torch_compile")}
    ctx = StageContext(
        model=ModelConfig(name_or_path=model_dir, max_seq_length=args.seq_len, **model_fields),
        seed=args.seed,
        data_dir=data_dir,
        mixed_precision="bf16" if args.precision == "bf16" else "no",
    )
    stage = StageConfig(
        task=task.name, language="en", learning_rate=args.lr, batch_size=args.batch_size, max_steps=args.steps, warmup_ratio=0.0,
        weight_decay=0.0, max_grad_norm=1.0, max_train_samples=args.max_train_samples, max_eval_samples=8, eval_every_steps=args.steps,
        eval_batch_size=8, **switches,
    )
    with PeakRSS() as mem:
        summary = run_stage(stage, ctx, workdir / f"ours-{tag}", "target")
    t = summary["throughput"]
    return {
        "seconds": t["seconds"],
        "cpu_seconds": t["cpu_seconds"],
        "tokens": t["tokens"],
        "examples": t["examples"],
        "loss": t["mean_loss"],
        "rss_mb": mem.added_mb,
        "gpu_mb": mem.gpu_peak,
    }


def run_baseline(args, task, model_dir: str, data_dir: Path, workdir: Path, tag: str) -> dict:
    import time

    import datasets
    from accelerate.utils import set_seed
    from transformers import DataCollatorForTokenClassification, Trainer, TrainerCallback, TrainingArguments

    from intertask.data.loading import load_examples
    from intertask.models.loading import build_model, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    examples = load_examples(task, "train", "en", data_dir, max_samples=args.max_train_samples, seed=args.seed).examples
    features = task.head.featurize(examples, tokenizer, task.labels, args.seq_len, train=True)
    train_dataset = datasets.Dataset.from_list(features.inputs)
    set_seed(args.seed)
    model = build_model(task, model_dir)

    clock: dict = {}

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            _sync()
            clock["start"] = (time.perf_counter(), time.process_time())

        def on_train_end(self, *a, **k):
            _sync()
            clock["stop"] = (time.perf_counter(), time.process_time())

    counted = {"tokens": 0, "examples": 0}

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, rows):
            batch = self.inner(rows)
            counted["tokens"] += int(batch["attention_mask"].sum())
            counted["examples"] += int(batch["input_ids"].shape[0])
            return batch

    training_args = TrainingArguments(
        output_dir=str(workdir / f"trainer-{tag}"), per_device_train_batch_size=args.batch_size, max_steps=args.steps, learning_rate=args.lr,
        seed=args.seed, report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=args.device == "cpu", bf16=args.precision == "bf16",
    )
    collator = DataCollatorForTokenClassification(tokenizer) if task.head.name == "token_classification" else None
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer, data_collator=collator, callbacks=[Timer()])
    trainer.data_collator = Counting(trainer.data_collator)
    with PeakRSS() as mem:
        result = trainer.train()
    wall = clock["stop"][0] - clock["start"][0]
    cpu = clock["stop"][1] - clock["start"][1]
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "tokens": counted["tokens"],
        "examples": counted["examples"],
        "loss": result.training_loss,
        "rss_mb": mem.added_mb,
        "gpu_mb": mem.gpu_peak,
    }


def _sync():
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--task", choices=[*TASKS, "both"], default="both")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per run (both systems)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5, help="Trainer's default")
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    setup_torch(args)
    import torch

    from intertask.data import cache
    from intertask.models.loading import build_model

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    task_names = list(TASKS) if args.task == "both" else [args.task]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = prepare_model(args, workdir)
        print(
            f"model {model_dir}  device {args.device}  precision {args.precision}  seq-len {args.seq_len}  batch {args.batch_size}  steps "
            f"{args.steps}  threads {torch.get_num_threads()}"
        )
        for name in task_names:
            task = bench_task(name)
            data_dir = data_dir_for(name, "dev" if name == "xnli" else "train", "en")
            params = non_embedding_params(build_model(task, model_dir))
            print(f"\n== {name}: {TASKS[name]}  (data {data_dir}, non-embedding params {params / 1e6:.1f} M)")
            runs = {"ours": [], "baseline": []}
            for r, system in interleaved(args.repeats):
                cache.clear_memory()
                fn = run_ours if system == "ours" else run_baseline
                out = fn(args, task, model_dir, data_dir, workdir, f"{name}-{r}")
                out["tokens_per_s"] = out["tokens"] / out["seconds"]
                out["examples_per_s"] = out["examples"] / out["seconds"]
                out["cpu_s_per_1k_tokens"] = 1000 * out["cpu_seconds"] / out["tokens"]
                out["mfu_%"] = 100 * mfu(out["tokens_per_s"], params, args.peak_tflops) if args.device == "cuda" else None
                runs[system].append(out)
                print(
                    f"  run {r} {system:8s}: {out['tokens_per_s']:9.1f} tok/s  {out['examples_per_s']:7.2f} ex/s  {out['cpu_s_per_1k_tokens']:.3f} "
                    f"CPU s/1k tok  loss {out['loss']:.4f}  ({out['seconds']:.1f} s, {out['tokens']} tokens)",
                    flush=True,
                )
            rows = []
            for system in ("ours", "baseline"):
                med = {
                    k: median([o[k] for o in runs[system] if o[k] is not None]) if any(o[k] is not None for o in runs[system]) else None
                    for k in runs[system][0]
                }
                rows.append({"system": system, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in med.items()}})
            print_table(rows, ["system", "tokens_per_s", "examples_per_s", "cpu_s_per_1k_tokens", "loss", "seconds", "tokens", "rss_mb", "gpu_mb", "mfu_%"])
            ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
            cpu_ratio = rows[1]["cpu_s_per_1k_tokens"] / rows[0]["cpu_s_per_1k_tokens"]
            results[name] = {"ours": runs["ours"], "baseline": runs["baseline"], "median": rows, "ratio_tokens_per_s": ratio, "ratio_cpu_efficiency": cpu_ratio}
            print(f"{name}: loss ours {rows[0]['loss']:.4f} vs baseline {rows[1]['loss']:.4f} (different batch order: same within sampling noise)")
            print(f"{name}: ratio ours / baseline tokens/s = {ratio:.2f}x  (CPU-seconds per token: baseline / ours = {cpu_ratio:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    print("RATIO ours/baseline tokens/s: " + "  ".join(f"{n} {r['ratio_tokens_per_s']:.2f}x" for n, r in results.items()))


if __name__ == "__main__":
    main()
