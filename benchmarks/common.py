"""Shared helpers of the throughput benchmarks: models, data, timing, memory, MFU."""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("INTERTASK_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLE_DATA = REPO / "data" / "sample"
SHARED_DATA = REPO.parent / "shared" / "data"
H100_BF16_DENSE_TFLOPS = 989.0  # NVIDIA H100 SXM, bf16 dense tensor-core peak


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="tiny", help="tiny (random 2-layer XLM-R + sample-trained tokenizer), default (embedded multilingual-e5-small) or a model directory"
    )
    parser.add_argument(
        "--model-config",
        choices=["base", "large"],
        default=None,
        help="random-init XLM-R base/large from config (XLM-R's 250k tokenizer from the default model); overrides --model",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length cap (truncation)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (ours, baseline, baseline, ours, ...); medians reported")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS, help="accelerator peak for MFU (default: H100 bf16 dense)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer directory for --model-config (default: the embedded default model's, converted on first use)"
    )


def setup_torch(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def data_dir_for(task_name: str, split: str, language: str) -> Path:
    """The shared data directory when it has the file (bigger), else the sample data."""
    from intertask.data.loading import has_data
    from intertask.tasks import get_task

    task = get_task(task_name)
    if SHARED_DATA.is_dir() and has_data(task, split, language, SHARED_DATA):
        return SHARED_DATA
    return SAMPLE_DATA


def sample_texts() -> list[str]:
    texts = []
    for name in ("tatoeba/tatoeba.rus-eng.rus", "tatoeba/tatoeba.rus-eng.eng", "xnli/dev-en.tsv", "xnli/dev-ru.tsv"):
        texts += (SAMPLE_DATA / name).read_text(encoding="utf-8").splitlines()
    return texts


def prepare_model(args, workdir: Path) -> str:
    """A model directory (encoder + tokenizer) for --model / --model-config."""
    if args.model_config:
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaModel

        from intertask.models.loading import load_tokenizer

        tokenizer = load_tokenizer(getattr(args, "tokenizer", None) or "default")  # XLM-R's 250k SentencePiece vocabulary
        size = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
                "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)}[args.model_config]
        config = XLMRobertaConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=514,
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=0,
            eos_token_id=2,
            **size,
        )
        torch.manual_seed(0)
        directory = workdir / f"xlmr-{args.model_config}"
        XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return str(directory)
    if args.model == "tiny":
        from intertask.models.tiny import build_tiny_model

        return str(build_tiny_model(workdir / "tiny", sample_texts(), hidden_size=64, layers=2, heads=2))
    if args.model == "default":
        from intertask.models.loading import resolve_model

        return resolve_model("default")
    return args.model


def non_embedding_params(model) -> int:
    """Parameters that do matmul work per token (everything but the embedding tables)."""
    emb = model.get_input_embeddings()
    skip = {id(p) for p in emb.parameters()}
    base = getattr(model, "base_model", model)
    for name in ("position_embeddings", "token_type_embeddings"):
        table = getattr(getattr(base, "embeddings", None), name, None)
        if table is not None:
            skip |= {id(p) for p in table.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def mfu(tokens_per_second: float, params: int, peak_tflops: float, training: bool = True) -> float:
    """Model FLOP utilisation: (6 train / 2 inference) x non-embedding params x tokens/s / peak (attention FLOPs ignored)."""
    return (6 if training else 2) * params * tokens_per_second / (peak_tflops * 1e12)


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    @contextmanager
    def measure(self) -> Iterator[Clock]:
        sync()
        w, c = time.perf_counter(), time.process_time()
        try:
            yield self
        finally:
            sync()
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c


def sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() else None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def collect() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(widths[c]) for c in columns))


def interleaved(repeats: int) -> list[tuple[int, str]]:
    """(repeat, system) in A B B A A B ... order: neither system always runs first on a shared machine."""
    order = []
    for r in range(repeats):
        pair = ["ours", "baseline"] if r % 2 == 0 else ["baseline", "ours"]
        order += [(r, s) for s in pair]
    return order


class PeakRSS:
    """Peak resident memory of this process during a block, sampled every `interval` s by a thread, minus the RSS
    at entry (what the block added). ru_maxrss is process-wide and monotone, so with two systems interleaved in one
    process only sampling separates their peaks; the GPU peak comes from torch.cuda.max_memory_allocated."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.start, self.peak = interval, 0.0, 0.0

    def __enter__(self) -> PeakRSS:
        import threading

        collect()
        reset_gpu_peak()
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.gpu_peak = gpu_peak_mb()

    @property
    def added_mb(self) -> float:
        return self.peak - self.start
