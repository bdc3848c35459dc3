"""Executors run grid jobs (:class:`Job`, executed by :func:`execute_job`): in this process, in local worker
processes, or on a cluster (submitit). Imports run grid -> executors -> pipeline; the executor's configuration
(:class:`~intertask.config.ExecutorConfig`) lives with the rest of the configuration.

Every executor has the same interface: ``run(jobs, on_start)`` yields ``(job, result, error)`` as
jobs finish (error is a traceback string or None), so one failing run never stops the grid.
submitit is imported lazily: install it (``pip install 'intertask[cluster]'``) only for clusters.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from intertask.config import ExecutorConfig, ExperimentConfig, from_dict
from intertask.errors import ConfigError
from intertask.io import stage_lock, stage_summary


@dataclass
class Job:
    kind: Literal["intermediate", "run"]
    label: str
    config: dict[str, Any]  # to_dict(ExperimentConfig): plain, picklable
    run_id: str | None = None

    @property
    def description(self) -> str:
        return f"intermediate {self.label}" if self.kind == "intermediate" else f"run {self.label}"


def execute_job(job: Job) -> dict[str, Any]:
    """Run one job in this process (the executors call this, possibly on another machine)."""
    from intertask.threads import apply_thread_policy

    apply_thread_policy()  # idempotent; first thing on a cluster node (submitit), before torch is imported
    started = time.time()
    cfg = from_dict(ExperimentConfig, job.config)
    if job.kind == "intermediate":
        from intertask import pipeline
        assert cfg.intermediate is not None
        inter_dir = pipeline.intermediate_dir(cfg)
        with stage_lock(inter_dir):
            if stage_summary(inter_dir)[0] is None:
                pipeline.run_intermediate_stage(cfg.intermediate, pipeline.stage_context(cfg), inter_dir)  # text, multi-task, MLM or multimodal
        return {"kind": job.kind, "label": job.label, "dir": str(inter_dir), "seconds": round(time.time() - started, 1)}
    from intertask.pipeline import run_experiment

    records = run_experiment(cfg)
    return {"kind": job.kind, "label": job.label, "run_ids": [r["run_id"] for r in records], "seconds": round(time.time() - started, 1)}


Outcome = tuple[Job, "dict[str, Any] | None", "str | None"]
OnStart = Callable[[Job], None]


def visible_gpus() -> list[str]:
    """GPU ids this process may use (CUDA_VISIBLE_DEVICES, else every device torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - torch without CUDA runtime
        return []


class LocalExecutor:
    """One job after another in this process (simplest; best for debugging)."""

    def describe(self) -> str:
        return "local, sequential"

    def run(self, jobs: list[Job], on_start: OnStart = lambda j: None) -> Iterator[Outcome]:
        for job in jobs:
            on_start(job)
            try:
                result = execute_job(job)
            except Exception as exc:  # noqa: BLE001 - reported per job
                if _is_interrupt(exc):
                    raise  # Ctrl-C / SIGTERM stops the grid (exit 130), not just this job
                yield job, None, traceback.format_exc()
            else:
                yield job, result, None


def _is_interrupt(exc: BaseException) -> bool:
    """A stage stopped by SIGINT/SIGTERM (after writing its checkpoint)."""
    import sys

    checkpoint = sys.modules.get("intertask.training.checkpoint")
    return checkpoint is not None and isinstance(exc, checkpoint.StageInterrupted)


_GPU_QUEUE: Any = None


_MEMORY_CHECK: tuple[float, float] | None = None  # (min free GiB, seconds to wait) in a worker pinned to a GPU


def _init_worker(gpu_queue: Any, threads: int, memory_check: tuple[float, float] | None = None) -> None:
    """Runs first in each fresh (spawned) worker, before torch is imported: pin one GPU, apply the thread policy
    with this worker's share of the CPUs (passive OpenMP waiting, faiss aligned; the parent printed the policy)."""
    global _MEMORY_CHECK
    from intertask.threads import apply_thread_policy, mark_announced

    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
        _MEMORY_CHECK = memory_check
    mark_announced()
    apply_thread_policy(threads)
    if sys.stderr.isatty():  # the parent's grid bar is the one live display; in a log each worker's lines go there too
        os.environ["INTERTASK_PROGRESS"] = "0"


class DeviceMemoryError(RuntimeError):
    pass


def device_memory_gib() -> tuple[float, float] | None:
    """(free, total) GiB of this process's current GPU (all processes' use counted), or None without CUDA."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return free / 2**30, total / 2**30


def wait_for_device_memory(
    min_free_gib: float,
    wait_seconds: float,
    probe: Callable[[], tuple[float, float] | None] = device_memory_gib,
    poll: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the GPU has `min_free_gib` free (jobs sharing it may still be loading or finishing); after
    `wait_seconds` raise DeviceMemoryError naming the device, what is free and the settings to change."""
    waited = 0.0
    while True:
        info = probe()
        if info is None or info[0] >= min_free_gib:
            return
        if waited >= wait_seconds:
            free, total = info
            raise DeviceMemoryError(
                f"GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '?')}: {free:.1f} GiB free of {total:.1f} GiB after waiting {waited:.0f} s, "
                f"a job needs executor.min_free_memory_gb={min_free_gib:g}; other jobs (or other users) hold the rest. "
                f"Lower executor.jobs_per_device, or executor.min_free_memory_gb if the job fits in less"
            )
        sleep(poll)
        waited += poll


def _execute_safely(job: Job) -> tuple[dict[str, Any] | None, str | None]:
    try:
        if _MEMORY_CHECK is not None:
            wait_for_device_memory(*_MEMORY_CHECK)
        return execute_job(job), None
    except Exception:  # noqa: BLE001
        return None, traceback.format_exc()


class ProcessExecutor:
    """N worker processes on this machine: `jobs_per_device` per GPU (each pinned with CUDA_VISIBLE_DEVICES, GPUs
    filled round-robin), else CPU workers that split the cores between them. Workers are spawned fresh (no forked
    torch state). On GPUs each job first waits for `min_free_memory_gb` free on its device (see
    :func:`wait_for_device_memory`)."""

    job_function: Callable[[Job], tuple[dict[str, Any] | None, str | None]] = staticmethod(_execute_safely)

    def __init__(self, workers: int = 0, jobs_per_device: int = 1, min_free_memory_gb: float = 2.0, memory_wait_seconds: float = 300.0):
        if jobs_per_device < 1:
            raise ConfigError(f"executor.jobs_per_device must be >= 1, got {jobs_per_device}")
        self.gpus = visible_gpus()
        self.jobs_per_device = jobs_per_device
        self.slots = [g for _ in range(jobs_per_device) for g in self.gpus]  # round-robin over the GPUs
        self.workers = workers or (len(self.slots) if self.gpus else (jobs_per_device if jobs_per_device > 1 else 2))
        if self.gpus and self.workers > len(self.slots):
            raise ConfigError(
                f"executor.workers={self.workers} but only {len(self.gpus)} GPUs are visible ({','.join(self.gpus)}) with "
                f"jobs_per_device={jobs_per_device}; one worker per GPU slot (raise executor.jobs_per_device to run several jobs on one GPU)"
            )
        self.memory_check = (min_free_memory_gb, memory_wait_seconds)
        from intertask.threads import apply_thread_policy

        self.threads = max(1, apply_thread_policy().intra_op // self.workers)  # CPUs this process may use, shared

    def describe(self) -> str:
        if self.gpus:
            used = sorted(set(self.slots[: self.workers]), key=self.gpus.index)
            where = f"GPUs {','.join(used)}" + (f", up to {self.jobs_per_device} jobs per GPU" if self.jobs_per_device > 1 else "")
        else:
            where = f"CPU, {self.threads} threads each"
        return f"{self.workers} worker processes ({where})"

    def run(self, jobs: list[Job], on_start: OnStart = lambda j: None) -> Iterator[Outcome]:
        ctx = mp.get_context("spawn")
        queue = None
        workers = min(self.workers, len(jobs))
        if self.gpus:
            queue = ctx.Queue()
            for gpu in self.slots[:workers]:
                queue.put(gpu)
        initargs = (queue, self.threads, self.memory_check if self.gpus else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=initargs) as pool:
            pending: dict[Future, Job] = {}
            backlog = list(jobs)
            # Submit only as many jobs as there are workers, so "in flight" means running.
            while backlog or pending:
                while backlog and len(pending) < self.workers:
                    job = backlog.pop(0)
                    on_start(job)
                    pending[pool.submit(self.job_function, job)] = job
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    try:
                        result, error = fut.result()
                    except Exception:  # noqa: BLE001 - worker died (e.g. out of memory)
                        result, error = None, traceback.format_exc()
                    yield job, result, error


class SubmititExecutor:
    """Jobs on a cluster through submitit: SLURM job arrays (or submitit's local/debug backends).

    The submitting process stays up and polls; if it is killed, the cluster jobs keep running and
    write their records to the shared results store, and re-running the grid skips them.
    """

    def __init__(self, config: ExecutorConfig, output_dir: Path):
        try:
            import submitit  # noqa: F401
        except ImportError as exc:
            raise ConfigError("executor.kind=submitit needs the submitit package: pip install 'intertask[cluster]' (or pip install submitit)") from exc
        self.config = config
        self.folder = Path(config.folder or Path(output_dir) / "submitit")

    def describe(self) -> str:
        return f"submitit ({self.config.cluster}), logs in {self.folder}"

    def _executor(self) -> Any:
        import submitit

        cfg, s = self.config, self.config.slurm
        executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cfg.cluster)
        params: dict[str, Any] = {"timeout_min": s.timeout_min, "name": "intertask"}
        if cfg.cluster == "slurm":
            params.update(
                slurm_partition=s.partition, slurm_account=s.account, slurm_qos=s.qos, slurm_constraint=s.constraint,
                gpus_per_node=s.gpus_per_node, cpus_per_task=s.cpus_per_task, mem_gb=s.mem_gb,
                slurm_array_parallelism=s.max_parallel, slurm_setup=list(s.setup),
            )  # fmt: skip
            params = {k: v for k, v in params.items() if v is not None}
        executor.update_parameters(**params)
        return executor

    def run(self, jobs: list[Job], on_start: OnStart = lambda j: None) -> Iterator[Outcome]:
        executor = self._executor()
        if self.config.cluster == "debug":  # runs in this process at result(): one by one
            for job in jobs:
                on_start(job)
                sub = executor.submit(execute_job, job)
                try:
                    yield job, sub.result(), None
                except Exception:  # noqa: BLE001
                    yield job, None, traceback.format_exc()
            return
        with executor.batch():
            subs = [executor.submit(execute_job, job) for job in jobs]
        pending = dict(zip(subs, jobs))
        started: set[int] = set()
        while pending:
            for sub, job in list(pending.items()):
                if id(sub) not in started and sub.state in ("RUNNING", "COMPLETED", "FINISHED", "DONE"):
                    started.add(id(sub))
                    on_start(job)
                if sub.done():
                    pending.pop(sub)
                    if id(sub) not in started:
                        on_start(job)
                    try:
                        yield job, sub.result(), None
                    except Exception:  # noqa: BLE001
                        yield job, None, traceback.format_exc()
            if pending:
                time.sleep(self.config.poll_seconds)


def make_executor(config: ExecutorConfig, output_dir: Path) -> Any:
    if config.kind == "local":
        return LocalExecutor()
    if config.kind == "processes":
        return ProcessExecutor(config.workers, config.jobs_per_device, config.min_free_memory_gb, config.memory_wait_seconds)
    if config.kind == "submitit":
        return SubmititExecutor(config, output_dir)
    raise ConfigError(f"executor.kind: unknown executor {config.kind!r}")  # pragma: no cover
