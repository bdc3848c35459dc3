"""Thread policy: how many threads torch, faiss, tokenizers and OpenMP use, decided in one place.

Shared machines (a lab server, a CI runner, a SLURM node with other jobs, a laptop) are where this tool runs. There
the defaults of torch's OpenMP runtime cost a lot: its worker threads busy-wait ("spin") between parallel regions,
and a spinning thread burns the core that a descheduled team-mate or another process needs. Measured on a 2-core
machine next to two CPU-bound processes: 15x slower than idle instead of the fair-share 2x
(``benchmarks/under_load.py``, docs/performance.md "Shared machines: the thread policy").

The policy (:func:`decide`, applied by :func:`apply_thread_policy`):

* intra-op threads = the CPUs this process may actually use: the affinity mask (``os.sched_getaffinity``:
  taskset, SLURM's cpu binding, docker ``--cpuset-cpus``) capped by the cgroup CPU quota (v2 ``cpu.max``, v1
  ``cpu.cfs_quota_us / cpu.cfs_period_us``, every level up to the root; docker ``--cpus``, Kubernetes limits),
  rounded up; ``--threads N`` / ``INTERTASK_THREADS=N`` override it, and a user's ``OMP_NUM_THREADS`` is respected;
* OpenMP workers wait passively (``OMP_WAIT_POLICY=PASSIVE``; ``KMP_BLOCKTIME=0`` for Intel's runtime) after a
  short spin (``GOMP_SPINCOUNT=1000``, about 10 us, for GNU libgomp, whose passive policy otherwise sleeps at once)
  unless the user set these variables. libgomp's default spins ~3 ms before sleeping, which wastes the cores under
  contention; sleeping at once costs a futex wake-up per parallel region, 10-15 % on an idle machine; the short spin
  gave back half of that and kept the fair share under load (~10 % idle remains; docs/performance.md);
* torch inter-op threads: 1 (eager models do not use that pool; it is created lazily, but smaller is safer);
* faiss (its own OpenMP) gets the same number of threads as torch;
* tokenizers: ``TOKENIZERS_PARALLELISM=false`` unless set (featurisation runs once and is cached; parallel Rust
  threads would compete with torch's and warn after a fork); ``RAYON_NUM_THREADS`` = intra-op threads if the user
  turns it on;
* data-loader workers stay as configured (``dataloader_workers``, default 0): torch gives each worker process one
  intra-op thread.

Environment variables only take effect if they are set before the OpenMP runtime is loaded, i.e. before ``import
torch`` (torch loads libgomp) or ``import faiss``. Therefore ``import intertask`` already sets the wait-policy
defaults (:func:`prepare_environment`: cheap, imports nothing), the CLI applies the whole policy in its callback,
before any command imports torch, and the executors' worker processes apply it first thing. A program that imports
torch before intertask keeps torch's active waiting (the thread counts are still applied through
``torch.set_num_threads``, which works at any time); :func:`describe` then says ``wait=ACTIVE (torch loaded
first)``. Set ``OMP_WAIT_POLICY=PASSIVE`` in the environment, or import intertask first, to avoid that.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_THREADS = "INTERTASK_THREADS"
_WAIT_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
# libgomp's GOMP_SPINCOUNT overrides the spin that OMP_WAIT_POLICY implies: only ours to set when the wait policy is
# ours too (a user's OMP_WAIT_POLICY=ACTIVE must keep spinning).
_SPIN_DEFAULT = {"GOMP_SPINCOUNT": "1000"}
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadPolicy:
    intra_op: int
    inter_op: int
    cpus: int  # CPUs this process may use (affinity, cgroup quota)
    source: str  # where intra_op came from: --threads, INTERTASK_THREADS, OMP_NUM_THREADS or "cpus"
    wait_policy: str
    limits: str  # e.g. "affinity 8, cgroup quota 2.5"

    def describe(self) -> str:
        return (
            f"threads: {self.intra_op} intra-op ({self.source}; {self.limits}), {self.inter_op} inter-op, "
            f"faiss {self.intra_op}, OpenMP wait={self.wait_policy}, tokenizers parallelism="
            f"{os.environ.get('TOKENIZERS_PARALLELISM', 'default')}"
        )


def affinity_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def _cgroup_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """(v2 path, v1 cpu-controller path) of this process from /proc/self/cgroup's text."""
    v2 = v1 = None
    for line in proc_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(root: Path, rel: str) -> list[Path]:
    """root/rel, its parents up to root (a quota anywhere above limits us too); root alone when rel is not mounted
    here (inside a container the process's cgroup is usually the namespace's root)."""
    parts = [p for p in rel.strip("/").split("/") if p and p != ".."]
    dirs = [root.joinpath(*parts[:i]) for i in range(len(parts), 0, -1)] + [root]
    existing = [d for d in dirs if d.is_dir()]
    return existing or [root]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota in CPUs (e.g. 2.5), the smallest along the hierarchy; None when unlimited or unknown."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup")) or ""
    v2, v1 = _cgroup_paths(proc_cgroup)
    quotas: list[float] = []
    if v2 is not None and (root / "cgroup.controllers").is_file():
        for d in _ancestors(root, v2):
            text = _read(d / "cpu.max")
            if not text:
                continue
            fields = text.split()
            try:
                if fields[0] != "max" and len(fields) >= 2 and float(fields[1]) > 0:
                    quotas.append(float(fields[0]) / float(fields[1]))
            except ValueError:
                continue
    if v1 is not None:
        for base in (root / "cpu,cpuacct", root / "cpu", root / "cpuacct,cpu"):
            if not base.is_dir():
                continue
            for d in _ancestors(base, v1):
                q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                try:
                    if q is not None and p and int(q) > 0 and int(p) > 0:
                        quotas.append(int(q) / int(p))
                except ValueError:
                    continue
            break
    return min(quotas) if quotas else None


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> tuple[int, str]:
    """(CPUs this process may use, a description of the limits that decided it)."""
    aff = affinity_cpus()
    total = os.cpu_count() or 1
    quota = cgroup_quota(root, proc_cgroup)
    n = aff if aff is not None else total
    limits = [f"affinity {aff} of {total}" if aff is not None else f"{total} cores"]
    if quota is not None:
        limits.append(f"cgroup quota {quota:g}")
        n = min(n, max(1, math.ceil(quota - 1e-9)))
    return max(1, n), ", ".join(limits)


def _positive_int(value: str | None, name: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        from intertask.errors import ConfigError

        raise ConfigError(f"{name}={value!r}: expected a whole number of threads >= 1")
    return n


def _openmp_loaded() -> bool:
    return "torch" in sys.modules or "faiss" in sys.modules


def decide(threads: int | None = None, root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> ThreadPolicy:
    """The policy for this process: `threads` (--threads) > INTERTASK_THREADS > OMP_NUM_THREADS > usable CPUs."""
    cpus, limits = usable_cpus(root, proc_cgroup)
    if threads is not None:
        if threads < 1:
            from intertask.errors import ConfigError

            raise ConfigError(f"--threads {threads}: expected a whole number of threads >= 1")
        n, source = threads, "--threads"
    elif (env := _positive_int(os.environ.get(ENV_THREADS), ENV_THREADS)) is not None:
        n, source = env, ENV_THREADS
    elif (omp := _omp_num_threads()) is not None:
        n, source = omp, "OMP_NUM_THREADS"
    else:
        n, source = cpus, "cpus"
    wait = os.environ.get("OMP_WAIT_POLICY", "ACTIVE (default)").upper()
    if os.environ.get("GOMP_SPINCOUNT"):
        wait += f", spin {os.environ['GOMP_SPINCOUNT']}"
    if _state.get("wait_env_late") and os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" and not _state.get("wait_user"):
        wait = "ACTIVE (torch loaded first)"
    return ThreadPolicy(intra_op=n, inter_op=1, cpus=cpus, source=source, wait_policy=wait, limits=limits)


def _omp_num_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "")
    if _state.get("omp_set_by_us") or not value.strip():
        return None
    first = value.split(",")[0].strip()  # OpenMP allows a per-nesting-level list
    return int(first) if first.isdigit() and int(first) > 0 else None


_state: dict = {}


def prepare_environment() -> None:
    """Set the OpenMP wait defaults (and tokenizers') unless the user set them; imports nothing. Effective only
    before torch / faiss load their OpenMP runtime, so `import intertask` calls it."""
    if _state.get("prepared"):
        return
    _state["prepared"] = True
    _state["wait_user"] = "OMP_WAIT_POLICY" in os.environ
    late = _openmp_loaded()
    defaults = _WAIT_DEFAULTS if _state["wait_user"] else _WAIT_DEFAULTS | _SPIN_DEFAULT
    for key, value in defaults.items():
        if key not in os.environ:
            os.environ[key] = value
            if late:
                _state["wait_env_late"] = True
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def apply_thread_policy(threads: int | None = None, announce: bool = False, force: bool = False) -> ThreadPolicy:
    """Decide and apply the policy; idempotent (the first decision holds unless `force`, e.g. --threads given).

    Before torch is imported it sets OMP_NUM_THREADS / MKL_NUM_THREADS (torch and faiss then start with that many);
    once torch / faiss are imported it also calls ``torch.set_num_threads`` / ``set_num_interop_threads`` /
    ``faiss.omp_set_num_threads`` (later calls finish that part; torch is never imported here). `announce` prints
    the one-line description to stderr once per process."""
    prepare_environment()
    policy: ThreadPolicy | None = _state.get("policy")
    if policy is None or force or threads is not None:
        policy = decide(threads)
        if _state.get("policy") != policy:
            _state.pop("torch_done", None)
            _state.pop("faiss_done", None)
        _state["policy"] = policy
        n = str(policy.intra_op)
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if policy.source != "OMP_NUM_THREADS" or key not in os.environ:
                os.environ[key] = n
        _state["omp_set_by_us"] = policy.source != "OMP_NUM_THREADS"
        if os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("true", "1"):
            os.environ.setdefault("RAYON_NUM_THREADS", n)
    if "torch" in sys.modules and not _state.get("torch_done"):
        torch = sys.modules["torch"]
        torch.set_num_threads(policy.intra_op)
        try:
            if torch.get_num_interop_threads() != policy.inter_op:
                torch.set_num_interop_threads(policy.inter_op)
        except RuntimeError:  # inter-op work already started: its size is fixed for this process
            pass
        _state["torch_done"] = True
    if "faiss" in sys.modules and not _state.get("faiss_done"):
        faiss = sys.modules["faiss"]
        if hasattr(faiss, "omp_set_num_threads"):
            faiss.omp_set_num_threads(policy.intra_op)
        _state["faiss_done"] = True
    if announce and not _state.get("announced"):
        _state["announced"] = True
        print(policy.describe(), file=sys.stderr, flush=True)
    return policy


def mark_announced() -> None:
    """Do not print the policy in this process (an executor's worker: the parent printed it)."""
    _state["announced"] = True


def reset_for_tests() -> None:
    _state.clear()
