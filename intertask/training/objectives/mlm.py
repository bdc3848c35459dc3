"""Continued masked-language modelling as an intermediate stage (the paper's MLM baseline; task ``mlm``).

Text: the task's plain-text files (``mlm/{lang}.train.txt`` / ``mlm/{lang}.txt``, or the hub corpus) for every language
of ``mlm.languages``, concatenated. Dev: ``mlm/{lang}.dev.txt`` where it exists, else ``mlm.dev_lines`` lines held out
from the training file (seeded), per language.

Masking (intertask.data.mlm): training masks are drawn anew for every batch from a generator seeded by the run seed
and the batch's rows (so a resumed run masks exactly as an uninterrupted one); dev masks are drawn once with a fixed
seed, so dev metrics are comparable across evaluations.

The head (intertask.models.masked_lm): the embedded default model (and any bare encoder) has no pretrained MLM head.
The decoder is tied to the input word embeddings; the rest is initialised fresh, listed in ``stage.json`` under
``notes`` / ``mlm_head``. Only the encoder is handed to the next stage.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from intertask.config import MLMConfig, StageConfig
from intertask.data.batching import length_sorted_batches
from intertask.data.loading import has_data, load_examples
from intertask.data.mlm import featurize_lines, mask_batch, plain_lines
from intertask.data.samplers import EpochBatches
from intertask.errors import ConfigError
from intertask.models.loading import build_model
from intertask.models.masked_lm import evaluate_mlm, head_init_notes, masked_logits
from intertask.tasks import get_task
from intertask.training.objectives.base import Objective, configure_model


def mlm_languages(stage: StageConfig) -> list[str]:
    return list((stage.mlm or MLMConfig()).languages) or [stage.language]


class _MaskingCollate:
    """Pads and masks a batch; the masks' generator is seeded by the run seed and the batch's row indices."""

    def __init__(self, tokenizer: Any, cfg: MLMConfig, seed: int):
        self.tokenizer, self.cfg, self.seed = tokenizer, cfg, seed

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        key = zlib.crc32(",".join(str(r["index"]) for r in rows).encode()) ^ (self.seed * 2_654_435_761 % 2**32)
        return mask_batch(rows, self.tokenizer, self.cfg, torch.Generator().manual_seed(key))


class MaskedLM(Objective):
    main_metric = "accuracy"

    def __init__(self, stage: StageConfig, ctx: Any, role: str):
        super().__init__(stage, ctx, role)
        self.task = get_task(stage.task)
        self.name = self.task.name
        self.cfg = stage.mlm or MLMConfig()

    @staticmethod
    def validate(stage: StageConfig, role: str, data_dir: Path, data_source: str, check_data: bool) -> list[str]:
        task = get_task(stage.task)
        if task.head.name != "masked_lm":
            raise ConfigError(f"{role}.mlm is set but task {stage.task} is not a masked-LM task (task: mlm)")
        if role != "intermediate":
            raise ConfigError(f"{role}: continued MLM (task {task.name}) is an intermediate stage only")
        cfg = stage.mlm or MLMConfig()
        if not 0.0 < cfg.mask_probability < 1.0:
            raise ConfigError(f"{role}.mlm.mask_probability must be in (0, 1), got {cfg.mask_probability}")
        langs = mlm_languages(stage)
        for lang in langs:
            if lang not in task.languages:
                raise ConfigError(f"{role}.mlm.languages: task {task.name} has no language {lang!r}")
            if check_data and data_source == "local" and not has_data(task, "train", lang, data_dir):
                raise ConfigError(f"{role}: {task.name} text for {lang!r} not found: {', '.join(map(str, task.local.paths(data_dir, 'train', lang)))}")
        return [f"continued MLM ({cfg.masking} masking, p={cfg.mask_probability}) on {', '.join(langs)}"]

    def _text(self, lang: str) -> tuple[list[str], list[str], dict[str, Any]]:
        """(train lines, dev lines, report) of one language."""
        stage, ctx, cfg, task = self.stage, self.ctx, self.cfg, self.task
        train = load_examples(task, "train", lang, ctx.data_dir, ctx.data_source, stage.on_bad_example, None, ctx.seed)
        lines = plain_lines(train.examples)
        rng = random.Random(ctx.seed)
        if ctx.data_source == "local" and has_data(task, "dev", lang, ctx.data_dir):
            dev_data = load_examples(task, "dev", lang, ctx.data_dir, ctx.data_source, stage.on_bad_example, None, ctx.seed)
            dev, dev_source = plain_lines(dev_data.examples), dev_data.files
        else:
            n_dev = min(cfg.dev_lines, max(1, len(lines) // 10))
            order = list(range(len(lines)))
            rng.shuffle(order)
            held = set(order[:n_dev])
            dev = [lines[i] for i in sorted(held)]
            lines = [line for i, line in enumerate(lines) if i not in held]
            dev_source = [f"{n_dev} lines held out from {', '.join(train.files)}"]
        cap = cfg.max_lines_per_language or stage.max_train_samples
        if cap is not None and len(lines) > cap:
            lines = [lines[i] for i in sorted(rng.sample(range(len(lines)), cap))]
        if stage.max_eval_samples is not None and len(dev) > stage.max_eval_samples:
            dev = [dev[i] for i in sorted(rng.sample(range(len(dev)), stage.max_eval_samples))]
        if not lines or not dev:
            raise ConfigError(f"{task.name} {lang}: not enough text ({len(lines)} train lines, {len(dev)} dev lines)")
        return lines, dev, {"train_files": train.files, "dev": dev_source, "train_lines": len(lines), "dev_lines": len(dev), "skipped": len(train.skipped)}

    def load(self, tokenizer: Any) -> None:
        if tokenizer.mask_token_id is None:
            raise ConfigError(f"{self.ctx.model.name_or_path}: the tokenizer has no mask token")
        self.tokenizer, self.rows, dev_rows, self.reports = tokenizer, [], [], {}
        for lang in mlm_languages(self.stage):
            train_lines, dev_lines, self.reports[lang] = self._text(lang)
            self.rows += featurize_lines(train_lines, tokenizer, self.max_length, lang)
            dev_rows += featurize_lines(dev_lines, tokenizer, self.max_length, lang)
        for i, row in enumerate(self.rows):
            row["index"] = i
        dev_gen = torch.Generator().manual_seed(self.ctx.seed + 1)  # fixed dev masks
        dev_order = length_sorted_batches([len(r["input_ids"]) for r in dev_rows], self.stage.eval_batch_size)
        self.dev_batches = [mask_batch([dev_rows[i] for i in idx], tokenizer, self.cfg, dev_gen) for idx in dev_order]
        self.dev_langs = [[dev_rows[i]["lang"] for i in idx] for idx in dev_order]
        self.n_dev = len(dev_rows)

    def build_model(self):
        model = build_model(self.task, self.ctx.model.name_or_path, self.stage.init_encoder_from, self.ctx.model.freeze_embeddings)
        self.head_notes = head_init_notes(model, self.ctx.model.name_or_path)
        return configure_model(model, self.ctx.model)  # the MLM loss calls the encoder directly (no compiled forward)

    def train_data(self):
        sampler = EpochBatches([len(r["input_ids"]) for r in self.rows], self.stage.batch_size, self.ctx.seed)
        return self.rows, sampler, _MaskingCollate(self.tokenizer, self.cfg, self.ctx.seed)

    def loss(self, model, batch):
        logits, gold = masked_logits(getattr(model, "module", model), batch)
        return F.cross_entropy(logits.float(), gold)

    def evaluate(self, model, device) -> dict[str, Any]:
        return evaluate_mlm(model, self.dev_batches, self.dev_langs, device)

    def describe(self) -> str:
        return f"{self.name}: {len(self.rows)} lines ({', '.join(self.reports)}), {self.n_dev} dev, {self.cfg.masking} masking"

    def summary(self) -> dict[str, Any]:
        notes = self.head_notes
        return {
            "task": self.name,
            "task_version": self.task.version,
            "train_task": self.name,
            "languages": mlm_languages(self.stage),
            "data": self.reports,
            "mlm_head": notes,
            "notes": [
                f"MLM head: freshly initialised {', '.join(notes['fresh']) or 'nothing'} (not in the pretrained checkpoint); "
                + ("decoder weight tied to the input word embeddings" if notes["decoder_tied_to_word_embeddings"] else "decoder not tied"),
                f"masking: {self.cfg.masking}, p={self.cfg.mask_probability}, 80/10/10 replacement; dev masks fixed (seed {self.ctx.seed + 1})",
                "only the encoder is handed to the next stage",
            ],
        }
