"""Multi-task intermediate training: several tasks, one shared encoder (intertask.models.multitask), one head each.

* A sampler (intertask.data.samplers.MultiTaskBatches) draws the task of each batch (uniform, proportional,
  temperature, capped) and takes that task's next length-grouped batch.
* Every evaluation scores each task's English dev set; the best checkpoint is the one with the highest mean of the
  tasks' main metrics (``mean_main``). History entries carry per-task mean losses and batch counts.
* Hand-off: ``model/`` is the bare shared encoder (``config.json`` + ``model.safetensors`` without a prefix) and the
  tokenizer, so ``init_encoder_from=stage_dir`` works unchanged; ``heads/<task>.safetensors`` hold each head's own
  weights and ``heads/<task>.json`` its labels, for anyone who wants the task models back.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from intertask.config import SamplingConfig, StageConfig
from intertask.data.cache import featurize_cached
from intertask.data.loading import load_examples
from intertask.data.samplers import MultiTaskBatches, task_probabilities
from intertask.errors import ConfigError
from intertask.evaluation.evaluate import evaluate_examples
from intertask.io import write_json_atomic
from intertask.models.loading import MODEL_DIR, build_model
from intertask.models.multitask import MultiTaskModel
from intertask.tasks import get_task
from intertask.tasks.multimodal import multimodal_spec
from intertask.training.objectives.base import Objective, configure_model, fit_task_to_data
from intertask.training.objectives.single import check_task_stage

MULTITASK = "multitask"
HEADS_DIR = "heads"
_NOT_TRAINABLE = ("retrieval", "masked_lm")


class TaskRows:
    """The training rows of every task, end to end (the sampler's global indices); each row knows its task."""

    def __init__(self, features: dict[str, Any]):
        self.tasks, self.inputs, self.starts, total = list(features), [features[t].inputs for t in features], [], 0
        for t in self.tasks:
            self.starts.append(total)
            total += len(features[t])
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, i: int) -> tuple[str, Any]:
        k = bisect.bisect_right(self.starts, i) - 1
        return self.tasks[k], self.inputs[k][i - self.starts[k]]


class _Collate:
    def __init__(self, tasks: dict[str, Any], tokenizer: Any):
        self.tasks, self.tokenizer = tasks, tokenizer

    def __call__(self, rows: list[tuple[str, Any]]) -> dict[str, Any]:
        name = rows[0][0]
        return {"task": name, **self.tasks[name].head.collate([r for _, r in rows], self.tokenizer)}


class MultiTask(Objective):
    name, main_metric = MULTITASK, "mean_main"
    find_unused_parameters = True  # a step trains one task's head

    @staticmethod
    def validate(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
        if role != "intermediate":
            raise ConfigError(f"{role}: multi-task training is for the intermediate stage only")
        if stage.task not in ("", MULTITASK):
            raise ConfigError(f"{role}.task: with {role}.tasks set, leave task empty or set it to {MULTITASK!r} (got {stage.task!r})")
        if len(stage.tasks) < 2:
            raise ConfigError(f"{role}.tasks: multi-task training needs at least two tasks, got {stage.tasks}")
        if len(set(stage.tasks)) != len(stage.tasks):
            raise ConfigError(f"{role}.tasks: a task is listed twice: {stage.tasks}")
        for name in stage.tasks:
            task = get_task(name)
            if not task.can_play("intermediate"):
                raise ConfigError(f"{role}.tasks: task {name} cannot be used as intermediate task (roles: {', '.join(sorted(task.roles))})")
            if task.head.name in _NOT_TRAINABLE or multimodal_spec(name) is not None:
                raise ConfigError(f"{role}.tasks: {name} ({task.head.name}) cannot be part of multi-task training")
            check_task_stage(StageConfig(task=name, language=stage.language), role, data_dir, data_source, check_data)
        sampling = stage.sampling or SamplingConfig()
        task_probabilities({t: 1 for t in stage.tasks}, sampling)  # checks temperature / cap
        return [f"multi-task intermediate: {', '.join(stage.tasks)} (sampling: {sampling.strategy})"]

    def load(self, tokenizer: Any) -> None:
        stage, ctx = self.stage, self.ctx
        self.tokenizer = tokenizer
        self.tasks, self.data, self.features = {}, {}, {}
        for name in stage.tasks:
            task = get_task(name)
            train = load_examples(
                task.training_task(), "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed
            )
            dev = load_examples(task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
            task = fit_task_to_data(task, train, dev)
            feats = featurize_cached(task, train.examples, tokenizer, self.max_length, True, stage.doc_stride, "train", stage.language, train.files)
            if len(feats) == 0:
                raise ConfigError(f"{self.role} stage {MULTITASK}: task {name} has no training examples after featurisation")
            self.tasks[name], self.data[name], self.features[name] = task, (train, dev), feats
        self.sizes = {t: len(self.data[t][0].examples) for t in self.tasks}
        self.probabilities = task_probabilities(self.sizes, stage.sampling)
        self.load_state({})

    def build_model(self):
        model = MultiTaskModel(
            {t: build_model(self.tasks[t], self.ctx.model.name_or_path, self.stage.init_encoder_from, self.ctx.model.freeze_embeddings) for t in self.tasks}
        )
        for head_model in model.models.values():
            configure_model(head_model, self.ctx.model)  # attention kernel / torch.compile
        return model

    def train_data(self):
        sampler = MultiTaskBatches({t: self.features[t].lengths() for t in self.tasks}, self.stage.batch_size, self.probabilities, self.ctx.seed)
        return TaskRows(self.features), sampler, _Collate(self.tasks, self.tokenizer)

    def loss(self, model, batch):
        return model(batch["task"], **{k: v for k, v in batch.items() if k != "task"}).loss

    def observe(self, batch, loss) -> None:
        k = list(self.tasks).index(batch["task"])
        if self.loss_sum.device != loss.device:
            self.loss_sum = self.loss_sum.to(loss.device)
        self.loss_sum[k] += loss.detach().double()
        self.batches[k] += 1

    def evaluate(self, model, device) -> dict[str, Any]:
        s = self.stage

        def one(t: str) -> dict[str, Any]:
            data, size = self.data[t][1].examples, s.eval_batch_size
            return evaluate_examples(model.models[t], self.tokenizer, self.tasks[t], data, s.language, self.max_length, size, device, s.doc_stride, f"{t} dev")

        dev = {t: one(t) for t in self.tasks}
        return {"mean_main": sum(dev[t][self.tasks[t].main_metric] for t in self.tasks) / len(self.tasks), "dev": dev}

    def history_extras(self) -> dict[str, Any]:
        sums, n = self.loss_sum.tolist(), self.batches
        extras = {
            "loss": sum(sums) / max(1, sum(n)),
            "task_losses": {t: sums[k] / n[k] for k, t in enumerate(self.tasks) if n[k]},
            "task_batches": dict(zip(self.tasks, n)),
        }
        self.load_state({})
        return extras

    def state(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum.tolist(), "batches": list(self.batches)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.loss_sum = torch.tensor(state.get("loss_sum", [0.0] * len(self.tasks)), dtype=torch.float64)
        self.batches = list(state.get("batches", [0] * len(self.tasks)))

    def describe(self) -> str:
        return f"{MULTITASK}: " + ", ".join(f"{t} {self.sizes[t]} ({self.probabilities[t]:.3f})" for t in self.tasks)

    def save(self, model, stage_dir, tokenizer) -> None:
        model.encoder.save_pretrained(stage_dir / MODEL_DIR)
        tokenizer.save_pretrained(stage_dir / MODEL_DIR)
        (stage_dir / HEADS_DIR).mkdir(parents=True, exist_ok=True)
        for t, task in self.tasks.items():
            save_file({k: v.contiguous() for k, v in model.head_state(t).items()}, str(stage_dir / HEADS_DIR / f"{t}.safetensors"))
            write_json_atomic(
                stage_dir / HEADS_DIR / f"{t}.json",
                {"task": t, "head": task.head.name, "labels": list(task.labels), "model_class": type(model.models[t]).__name__},
            )

    def dev_metrics(self, best):
        if best is None:
            return None
        out: dict[str, float] = {"mean_main": best["mean_main"]}
        for t, scores in best["dev"].items():
            out.update({f"{t}/{k}": v for k, v in scores.items()})
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "task": MULTITASK,
            "tasks": list(self.tasks),
            "task_versions": {t: task.version for t, task in self.tasks.items()},
            "sampling": {"strategy": (self.stage.sampling or SamplingConfig()).strategy, "sizes": self.sizes, "probabilities": self.probabilities},
            "main_metrics": {t: task.main_metric for t, task in self.tasks.items()},
            "data": {t: {"train": self.data[t][0].report(), "dev": self.data[t][1].report(), "train_rows": len(self.features[t])} for t in self.tasks},
            "notes": [
                "model/ holds the bare shared encoder (encoder-only hand-off); heads/<task>.safetensors hold each task's head",
                "best checkpoint by the mean of the tasks' main dev metrics (English dev)",
            ],
        }
