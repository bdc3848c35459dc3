"""Kill-safe training state: periodic checkpoints, resume, and signal handling.

Layout inside a stage directory::

    checkpoints/step-000120/state.pt   model (trainable tensors), optimiser, scheduler, sampler
                                       position, RNG states, best-so-far bookkeeping
    checkpoints/LATEST                 name of the newest complete checkpoint (atomically replaced)
    best.pt                            trainable tensors of the best model on English dev

A checkpoint directory becomes visible only through LATEST, which is replaced after the state file
is fully written and fsynced; a crash or a full disk while writing leaves the previous one intact.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from intertask.errors import IntertaskError
from intertask.io import atomic_path, write_text_atomic

CHECKPOINTS = "checkpoints"
LATEST = "LATEST"
BEST = "best.pt"


class StageInterrupted(IntertaskError):
    """Training stopped by SIGTERM/SIGINT after writing a checkpoint; re-run the command to resume."""


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Tensors that training changes (frozen ones are rebuilt identically from the pretrained model)."""
    params = dict(model.named_parameters())
    keep = lambda k: k not in params or params[k].requires_grad  # noqa: E731  (buffers are always kept)
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if keep(k)}


def rng_state() -> dict[str, Any]:
    """Every RNG state as plain data (tensors, lists, ints, floats): loadable with ``torch.load(weights_only=True)``."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_torch_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(stage_dir: Path, step: int, state: dict[str, Any], keep: int = 1) -> Path:
    """Write a complete checkpoint, then point LATEST at it, then drop older ones."""
    root = Path(stage_dir) / CHECKPOINTS
    directory = root / f"step-{step:07d}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        save_torch_atomic(state, directory / "state.pt")
        write_text_atomic(root / LATEST, directory.name + "\n")
    except OSError as exc:  # e.g. a full disk: the previous checkpoint (if any) stays the one LATEST names
        reason = exc.strerror or exc
        raise IntertaskError(f"{directory}: cannot write the checkpoint ({reason}); the previous checkpoint is kept, free space and re-run to resume") from None
    older = sorted(p for p in root.iterdir() if p.is_dir() and p.name != directory.name)
    for stale in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return directory


def load_latest_checkpoint(stage_dir: Path) -> dict[str, Any] | None:
    pointer = Path(stage_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    # Data only: weights_only=True never runs code from the file (a crafted state.pt cannot execute anything);
    # a checkpoint that needs more than tensors and plain containers is refused with a message.
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IntertaskError(f"{pointer}: unreadable checkpoint pointer ({exc}); delete {pointer.parent} to restart the stage") from None
    if not name or "/" in name or name.startswith("."):
        raise IntertaskError(f"{pointer}: expected the name of a checkpoint directory, got {name!r}; delete {pointer.parent} to restart the stage")
    path = pointer.parent / name / "state.pt"
    if not path.is_file():
        raise IntertaskError(f"{pointer} points at {path}, which does not exist; delete {pointer.parent} to restart the stage")
    try:  # numeric NumPy arrays (NumPy's RNG state) are data too; object arrays' items stay unallowed
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    arrays = [np.ndarray, _reconstruct, np.dtype, *(type(np.dtype(t)) for t in (np.uint32, np.int64, np.int32, np.float64, np.float32, np.uint8, np.bool_))]
    try:
        with torch.serialization.safe_globals(arrays):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign, or not data-only
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise IntertaskError(
            f"{path}: not a readable data-only checkpoint ({first}); delete {pointer.parent} to restart the stage from its beginning"
        ) from None
    if not isinstance(state, dict):
        raise IntertaskError(f"{path}: expected a checkpoint dictionary, got {type(state).__name__}; delete {pointer.parent} to restart the stage")
    return state


def remove_checkpoints(stage_dir: Path) -> None:
    shutil.rmtree(Path(stage_dir) / CHECKPOINTS, ignore_errors=True)


@contextmanager
def stop_requests() -> Iterator[dict[str, Any]]:
    """Turn SIGTERM/SIGINT into a flag the training loop checks after each optimiser step."""
    flag: dict[str, Any] = {"signal": None}

    def handler(signum, frame):  # noqa: ARG001
        flag["signal"] = signal.Signals(signum).name

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: signals stay with their owner
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def fault_point(name: str) -> None:
    """Test hook: with INTERTASK_FAULT=<name>, the process kills itself here (SIGKILL, like a pre-emption)."""
    if os.environ.get("INTERTASK_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
