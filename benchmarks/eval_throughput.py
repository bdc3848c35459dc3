"""Evaluation throughput of a 15-language zero-shot target (XNLI-like): ours vs the Trainer.predict loop.

One fine-tuned-shaped checkpoint (the model with a freshly initialised 3-way head, same seed; the weights do not
matter for speed) is evaluated on 15 "languages": XNLI's 15 language codes, each a file holding the English or
Russian XNLI dev examples (alternating), in a different seeded order per language, ``--max-samples`` each. Different
orders give different content hashes, so the feature cache cannot reuse one language's features for another: every
language is tokenised, as in a real 15-language evaluation.

* ours: ``intertask.evaluation.zero_shot.evaluate_target`` (the pipeline's function): load the checkpoint once,
  per language load + featurise (through the feature cache, forced cold: ``INTERTASK_FEATURE_CACHE=off`` and the
  in-memory memo cleared) and ``predict`` in length-sorted batches of ``--batch-size`` (EvalConfig.batch_size,
  default 64; on CPU ``predict`` caps batches at ``CPU_EVAL_BATCH`` = 8, which is faster there), then the metrics.
* baseline: ``transformers.Trainer.predict`` with defaults (per_device_eval_batch_size=8, SequentialSampler = dataset
  order, DataCollatorWithPadding), per language: the same featurisation into a ``datasets.Dataset``, predict,
  accuracy of the argmax. The checkpoint is loaded once.

Both timings cover the whole 15-language evaluation (checkpoint loading, reading, tokenising, forward passes,
metrics). Wall and process-CPU time, peak RSS added (sampled), accuracy of both (must agree: same model, only the
batching differs).

Usage:
  python benchmarks/eval_throughput.py --model tiny --threads 1
  python benchmarks/eval_throughput.py --model default --threads 1 --max-samples 200
  python benchmarks/eval_throughput.py --device cuda --model-config base --seq-len 256 --precision bf16 --max-samples 2490 --batch-size 256
The last line is the ratio ours / baseline of examples per second.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

from common import PeakRSS, add_common_args, data_dir_for, interleaved, median, prepare_model, print_table, setup_torch

LANGUAGES = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]


def make_data(workdir: Path, max_samples: int, seed: int) -> Path:
    """15 pseudo-language XNLI dev files (en / ru content, a different seeded order and subset per language)."""
    root = workdir / "data"
    (root / "xnli").mkdir(parents=True, exist_ok=True)
    sources = {}
    for lang in ("en", "ru"):
        lines = (data_dir_for("xnli", "dev", lang) / "xnli" / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()
        sources[lang] = lines
    for i, lang in enumerate(LANGUAGES):
        lines = list(sources["en" if i % 2 == 0 else "ru"])
        header = [lines.pop(0)] if lines and lines[0].lower().startswith(("sentence1", "premise", "text_a")) else []
        random.Random(seed + i).shuffle(lines)
        (root / "xnli" / f"dev-{lang}.tsv").write_text("\n".join(header + lines[:max_samples]) + "\n", encoding="utf-8")
    return root


def run_ours(args, model_dir: Path, data_dir: Path) -> dict:
    from intertask.data import cache
    from intertask.evaluation.zero_shot import evaluate_target
    from intertask.tasks import get_task

    cache.clear_memory()
    os.environ["INTERTASK_FEATURE_CACHE"] = "off"
    results = evaluate_target(get_task("xnli"), model_dir, LANGUAGES, data_dir, "dev", batch_size=args.batch_size, max_length=args.seq_len)
    return {"accuracy": sum(r["accuracy"] for r in results.values()) / len(results), "examples": sum(r["examples"] for r in results.values())}


def run_baseline(args, model_dir: Path, data_dir: Path) -> dict:
    import datasets
    import numpy as np
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    from intertask.data.loading import load_examples
    from intertask.models.loading import load_tokenizer
    from intertask.tasks import get_task

    task = get_task("xnli")
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=args.device == "cpu", bf16=args.precision == "bf16"
        )
        trainer = Trainer(model=model, args=training_args, processing_class=tokenizer)
        accuracies, n = [], 0
        for lang in LANGUAGES:
            examples = load_examples(task, "dev", lang, data_dir).examples
            features = task.head.featurize(examples, tokenizer, task.labels, args.seq_len, train=False)
            dataset = datasets.Dataset.from_list(features.inputs)
            output = trainer.predict(dataset)
            predictions = np.argmax(output.predictions, axis=-1)
            accuracies.append(float((predictions == np.array([r["labels"] for r in features.inputs])).mean()))
            n += len(examples)
    return {"accuracy": sum(accuracies) / len(accuracies), "examples": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--max-samples", type=int, default=200, help="examples per language")
    parser.add_argument("--batch-size", type=int, default=64, help="our eval batch size (EvalConfig.batch_size default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    setup_torch(args)
    import time

    import torch
    from accelerate.utils import set_seed

    from intertask.models.loading import build_model, load_tokenizer
    from intertask.tasks import get_task

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        encoder_dir = prepare_model(args, workdir)
        set_seed(args.seed)
        model = build_model(get_task("xnli"), encoder_dir)
        if args.precision == "bf16":
            model = model.to(torch.bfloat16)  # both systems load the bf16 checkpoint
        model_dir = workdir / "xnli-model"
        model.save_pretrained(model_dir)
        load_tokenizer(encoder_dir).save_pretrained(model_dir)
        del model
        data_dir = make_data(workdir, args.max_samples, args.seed)
        print(
            f"model {encoder_dir}  device {args.device}  precision {args.precision}  seq-len {args.seq_len}  15 languages x {args.max_samples}  ours "
            f"batch {args.batch_size if args.device != 'cpu' else min(args.batch_size, 8)} length-sorted, baseline batch 8 dataset order  threads "
            f"{torch.get_num_threads()}"
        )
        runs = {"ours": [], "baseline": []}
        for r, system in interleaved(args.repeats):
            fn = run_ours if system == "ours" else run_baseline
            with PeakRSS() as mem:
                w, c = time.perf_counter(), time.process_time()
                out = fn(args, model_dir, data_dir)
                if torch.cuda.is_available() and torch.cuda.is_initialized():
                    torch.cuda.synchronize()
                out["seconds"], out["cpu_seconds"] = time.perf_counter() - w, time.process_time() - c
            out["examples_per_s"] = out["examples"] / out["seconds"]
            out["cpu_ms_per_example"] = 1000 * out["cpu_seconds"] / out["examples"]
            out["rss_mb"], out["gpu_mb"] = mem.added_mb, mem.gpu_peak
            runs[system].append(out)
            print(
                f"  run {r} {system:8s}: {out['examples_per_s']:8.1f} ex/s  {out['cpu_ms_per_example']:.2f} CPU ms/ex  accuracy {out['accuracy']:.4f} "
                f" ({out['seconds']:.1f} s)",
                flush=True,
            )
    rows = []
    for system in ("ours", "baseline"):
        rows.append({"system": system, **{k: median([o[k] for o in runs[system]]) if runs[system][0][k] is not None else None for k in runs[system][0]}})
    print_table(rows, ["system", "examples_per_s", "cpu_ms_per_example", "accuracy", "seconds", "examples", "rss_mb", "gpu_mb"])
    ratio = rows[0]["examples_per_s"] / rows[1]["examples_per_s"]
    print(f"accuracy ours {rows[0]['accuracy']:.4f} vs baseline {rows[1]['accuracy']:.4f} (same model: must agree)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "median": rows, "ratio": ratio}, indent=1))
    print(
        f"RATIO ours/baseline examples/s (15-language eval): {ratio:.2f}x  (CPU-seconds per example: baseline / ours = "
        f"{rows[1]['cpu_ms_per_example'] / rows[0]['cpu_ms_per_example']:.2f}x)"
    )


if __name__ == "__main__":
    main()
