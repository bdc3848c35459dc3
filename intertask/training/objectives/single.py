"""One task, one head: the fine-tuning of every target stage and of ordinary intermediate stages."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from intertask.config import StageConfig
from intertask.data.cache import featurize_cached
from intertask.data.loading import has_data, load_examples
from intertask.data.samplers import EpochBatches
from intertask.errors import ConfigError
from intertask.evaluation.evaluate import evaluate_examples
from intertask.models.loading import build_model
from intertask.tasks import get_task
from intertask.tasks.retrieval import RetrievalTask
from intertask.training.objectives.base import Objective, configure_model, fit_task_to_data
from intertask.training.packing import training_collate


def check_task_stage(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> None:
    """The checks every stage trained on one task's data passes: role, kind of task, language, data files."""
    task = get_task(stage.task)
    if not task.can_play(role):
        raise ConfigError(f"{role}.task: task {task.name} cannot be used as {role} task (roles: {', '.join(sorted(task.roles))})")
    if isinstance(task, RetrievalTask):
        raise ConfigError(f"{role}.task: {task.name} is a retrieval task (no training); list it in evaluation.retrieval_tasks")
    if stage.language not in task.languages:
        raise ConfigError(f"{role}.language: task {task.name} has no language {stage.language!r}")
    if check_data and data_source == "local":
        for split_task, split in ((task.training_task(), "train"), (task, "dev")):
            if not has_data(split_task, split, stage.language, data_dir):
                local = split_task.local
                paths = local.paths(data_dir, split, stage.language) if local and split in local.files else ["(no local layout)"]
                raise ConfigError(f"{role}: {split_task.name} {split} data for {stage.language!r} not found: {', '.join(map(str, paths))}")


def _collate(head: Any, tokenizer: Any, rows: list[dict]) -> dict:
    return head.collate(rows, tokenizer)  # a module-level function: picklable for data-loader workers


class SingleTask(Objective):
    def __init__(self, stage: StageConfig, ctx: Any, role: str, summary_override: dict[str, Any] | None = None):
        super().__init__(stage, ctx, role)
        self.task = get_task(stage.task)
        if not self.task.can_play(role):
            raise ConfigError(f"task {self.task.name} cannot be used as {role} task (roles: {', '.join(sorted(self.task.roles))})")
        self.name, self.main_metric = self.task.name, self.task.main_metric
        self.summary_override = summary_override or {}

    @staticmethod
    def validate(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
        if stage.multimodal is not None:
            raise ConfigError(f"{role}.multimodal is set but task {stage.task} is not multimodal (captioning / VQA tasks only)")
        check_task_stage(stage, role, data_dir, data_source, check_data)
        return []

    def load(self, tokenizer: Any) -> None:
        stage, ctx = self.stage, self.ctx
        self.tokenizer = tokenizer
        self.train_task = self.task.training_task()
        self.train = load_examples(
            self.train_task, "train", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_train_samples, ctx.seed
        )
        self.dev = load_examples(self.task, "dev", stage.language, ctx.data_dir, ctx.data_source, stage.on_bad_example, stage.max_eval_samples, ctx.seed)
        self.task = fit_task_to_data(self.task, self.train, self.dev)  # CCG: supertag set from the training data
        # Tokenise once: cached on disk by (tokenizer, task, split, language, lengths, examples) -- see intertask/data/cache.py
        self.features = featurize_cached(
            self.task, self.train.examples, tokenizer, self.max_length, True, stage.doc_stride, "train", stage.language, self.train.files
        )
        if len(self.features) == 0:
            raise ConfigError(f"{self.role} stage {self.task.name}: no training examples after featurisation")

    def build_model(self):
        model = build_model(self.task, self.ctx.model.name_or_path, self.stage.init_encoder_from, self.ctx.model.freeze_embeddings)
        self.model = configure_model(model, self.ctx.model)  # train_data may switch its forward to packed rows
        return self.model

    def train_data(self):
        # The batch geometry of the stage: the sampler decides which rows form a batch, the collate function pads them.
        sampler = EpochBatches(self.features.lengths(), self.stage.batch_size, self.ctx.seed)
        default = functools.partial(_collate, self.task.head, self.tokenizer)
        # packing / bucket_lengths (docs/performance.md): packing switches the model's forward in place, before prepare()
        collate = training_collate(self.task.head, self.tokenizer, self.stage, self.max_length, self.model, default)
        return self.features.inputs, sampler, collate

    def evaluate(self, model, device) -> dict[str, Any]:
        s = self.stage
        return evaluate_examples(
            model, self.tokenizer, self.task, self.dev.examples, s.language, self.max_length, s.eval_batch_size, device, s.doc_stride, f"{self.task.name} dev"
        )

    def describe(self) -> str:
        return f"{self.task.name}: {len(self.train.examples)} train examples ({len(self.features)} rows), {len(self.dev.examples)} dev"

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.task.name,
            "task_version": self.task.version,
            "train_task": self.train_task.name,
            "data": {"train": self.train.report(), "dev": self.dev.report(), "train_rows": len(self.features)},
        }
