"""Learning curves of a stage through accelerate's experiment trackers (TensorBoard, Weights & Biases).

The training loop calls four hooks (marked ``# tracking`` there)::

    tracker = StageTracker(ctx.logging)                                  # before the Accelerator
    accelerator = Accelerator(..., **tracker.accelerator_kwargs(stage_dir))
    tracker.start(accelerator, run_name, config)                         # once the model is prepared
    tracker.batch(loss, batch)                                           # every micro-batch (no host sync)
    tracker.step(step, lr, grad_norm)                                    # every optimiser step
    tracker.evaluation(step, scores)                                     # after every dev evaluation
    tracker.close()                                                      # after the loop (finishes the trackers)

Scalars (all against the optimiser step): ``train/loss`` (mean micro-batch loss since the last point),
``train/learning_rate``, ``train/grad_norm`` (mean pre-clipping norm), ``train/tokens_per_second`` (real,
non-padding tokens), ``train/examples_per_second`` — every ``logging.every_steps`` steps — and ``dev/<metric>``
for every numeric metric of every English dev evaluation. Losses, norms and token counts stay on the device
between logging points: reading them is the only host synchronisation the tracker adds. Time spent in dev
evaluations is left out of the throughput. Under DDP the main process writes, and the loss and throughput are
its own share (per process).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import torch

from intertask.config import LoggingConfig
from intertask.errors import ConfigError
from intertask.progress import log
from intertask.training.packing import batch_examples

TENSORBOARD_DIR = "tensorboard"  # inside the stage directory
# tracker -> the packages that provide it (any one is enough; accelerate's TensorBoard tracker takes either)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}
_warned: set[str] = set()


def package_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return False


def available_trackers(cfg: LoggingConfig) -> list[str]:
    """The trackers `cfg` asks for whose package is installed; a one-line message (once) for each missing one."""
    kinds = []
    for kind in ("tensorboard", "wandb"):
        if not getattr(cfg, kind):
            continue
        if any(package_available(p) for p in PACKAGES[kind]):
            kinds.append(kind)
        elif kind not in _warned:
            _warned.add(kind)
            log(f"[yellow]logging.{kind}: the {PACKAGES[kind][0]} package is not installed, so {kind} logging is off (pip install 'intertask[tracking]'); training goes on[/yellow]")
    return kinds


class StageTracker:
    """One stage's learning curves; a no-op (no syncs, no files) when no tracker is on or installed."""

    def __init__(self, cfg: LoggingConfig | None):
        self.cfg = cfg or LoggingConfig()
        if self.cfg.every_steps < 1:
            raise ConfigError(f"logging.every_steps: expected a positive integer, got {self.cfg.every_steps}")
        self.kinds = available_trackers(self.cfg)
        self.active = bool(self.kinds)
        self.accelerator: Any = None
        self._reset()

    def _reset(self) -> None:
        self._loss: torch.Tensor | None = None  # device sums since the last logging point
        self._grad: torch.Tensor | None = None
        self._tokens: torch.Tensor | None = None
        self._batches = self._grads = self._examples = 0
        self._seconds = 0.0
        self._clock = time.perf_counter()
        self._last: dict[str, float] = {}
        self._pending_step: int | None = None

    # ------------------------------------------------------------------ set-up

    def accelerator_kwargs(self, stage_dir: str | Path) -> dict[str, Any]:
        """Keyword arguments for ``Accelerator(...)``: the trackers and their folder (empty when off)."""
        if not self.active:
            return {}
        from accelerate.utils import ProjectConfiguration

        stage_dir = Path(stage_dir)
        return {"log_with": list(self.kinds), "project_config": ProjectConfiguration(project_dir=str(stage_dir), logging_dir=str(stage_dir / TENSORBOARD_DIR))}

    def start(self, accelerator: Any, run_name: str, config: dict[str, Any] | None = None) -> None:
        """``init_trackers``: TensorBoard writes under <stage dir>/tensorboard/<project>/, W&B names the run `run_name`."""
        if not self.active:
            return
        self.accelerator = accelerator
        init_kwargs: dict[str, Any] = {}
        if "wandb" in self.kinds:
            init_kwargs["wandb"] = {"name": run_name, "dir": str(Path(accelerator.logging_dir).parent)}
        accelerator.init_trackers(self.cfg.project, config=_scalars(config or {}), init_kwargs=init_kwargs)
        self._reset()

    # ------------------------------------------------------------------ the loop's hooks

    def batch(self, loss: torch.Tensor, batch: dict[str, Any]) -> None:
        """Every micro-batch: accumulate its loss and real tokens on the device (no host synchronisation)."""
        if not self.active:
            return
        value = loss.detach().float()
        self._loss = value if self._loss is None else self._loss + value
        mask = batch.get("attention_mask")
        if mask is not None:
            n = mask.sum()
            self._tokens = n if self._tokens is None else self._tokens + n
        self._examples += batch_examples(batch) if "input_ids" in batch else 0  # packed rows hold several examples
        self._batches += 1

    def step(self, step: int, lr: float | None = None, grad_norm: torch.Tensor | float | None = None) -> None:
        """Every optimiser step; the scalars are read and written every `every_steps` steps."""
        if not self.active:
            return
        now = time.perf_counter()
        self._seconds += now - self._clock
        self._clock = now
        if grad_norm is not None:
            g = grad_norm.detach().float() if isinstance(grad_norm, torch.Tensor) else torch.tensor(float(grad_norm))
            self._grad = g if self._grad is None else self._grad + g.to(self._grad.device)
            self._grads += 1
        if lr is not None:
            self._last["train/learning_rate"] = float(lr)
        self._pending_step = step
        if step % self.cfg.every_steps == 0:
            self._flush()

    def evaluation(self, step: int, scores: dict[str, Any]) -> None:
        """After a dev evaluation: its numeric metrics as ``dev/<metric>``; its time is left out of the throughput."""
        if not self.active:
            return
        values = {f"dev/{k}": float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if values:
            self.accelerator.log(values, step=step)
        self._clock = time.perf_counter()

    def close(self) -> None:
        """Write what is left since the last logging point and end the trackers (flushes the event files)."""
        if not self.active or self.accelerator is None:
            return
        if self._batches:
            self._flush()
        # What accelerator.end_training() does for the trackers, without its other effect (destroying the process
        # group under DDP): the stage's cleanup, and later stages of the same process, still need it.
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers = []
        self.accelerator = None

    # ------------------------------------------------------------------ internals

    def _flush(self) -> None:
        step = self._pending_step
        if self.accelerator is None or step is None or not self._batches:
            return
        values = dict(self._last)
        if self.accelerator.is_main_process:  # the only host reads, once per logging point
            values["train/loss"] = float(self._loss.item()) / self._batches  # type: ignore[union-attr]
            if self._grad is not None and self._grads:
                values["train/grad_norm"] = float(self._grad.item()) / self._grads
            if self._seconds > 0:
                if self._tokens is not None:
                    values["train/tokens_per_second"] = float(self._tokens.item()) / self._seconds
                values["train/examples_per_second"] = self._examples / self._seconds
            self.accelerator.log(values, step=step)
        last = self._last
        self._reset()
        self._last = last


def _scalars(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A flat dict of bool/int/float/str values (what TensorBoard's hparams and W&B's config take)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_scalars(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        elif v is not None:
            out[key] = str(v)
    return out
