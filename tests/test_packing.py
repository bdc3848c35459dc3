"""Padding-free packing and length buckets (issue 14): same per-example outputs and losses as unpacked batches.

Tiny random XLM-R, eval mode (no dropout): for each head type the packed forward gives the logits of every example
and the loss of the unpacked model within float tolerance; the examples per batch and per epoch are unchanged.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from intertask.config import ExperimentConfig, StageConfig, config_hash, identity_dict
from intertask.data.batching import length_grouped_batches
from intertask.data.loading import load_examples
from intertask.data.packing import BucketedCollator, PackedCollator, bucket_length, normalise_buckets, pack_sequences, padding_ratio
from intertask.models.loading import build_model, load_tokenizer
from intertask.models.packing import enable_packing, position_ids, unpack_tokens
from intertask.tasks import get_task
from intertask.training.packing import batch_examples

ATOL = 2e-5


def _model(tiny_model, task, attn="sdpa"):
    torch.manual_seed(0)
    model = build_model(task, str(tiny_model))
    model.set_attn_implementation(attn)
    return model.eval()


def _features(tiny_model, sample_data, task_name, n, max_length=128, train=True):
    task = get_task(task_name)
    tokenizer = load_tokenizer(tiny_model)
    data = load_examples(task, "dev", "en", sample_data, max_samples=n, seed=0)
    return task, tokenizer, task.head.featurize(data.examples, tokenizer, task.labels, max_length, train=train, doc_stride=32)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_sequence_classification_packed_equals_unpacked(tiny_model, sample_data, attn):
    task, tokenizer, features = _features(tiny_model, sample_data, "xnli", 24)
    rows = features.inputs[:24]
    model = _model(tiny_model, task, attn)
    with torch.no_grad():
        plain = model(**task.head.collate(rows, tokenizer))
    packed_batch = PackedCollator(task.head, tokenizer, 128)(rows)
    assert packed_batch["input_ids"].shape[0] < len(rows)  # several examples per row
    assert batch_examples(packed_batch) == len(rows)
    enable_packing(model)
    with torch.no_grad():
        packed = model(**packed_batch)
        again = model(**task.head.collate(rows, tokenizer))  # unpacked calls still take the usual path
    torch.testing.assert_close(packed.logits, plain.logits, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(packed.loss, plain.loss, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(again.logits, plain.logits)


def test_sequence_classification_packed_gradients_match(tiny_model, sample_data):
    task, tokenizer, features = _features(tiny_model, sample_data, "xnli", 16)
    rows = features.inputs[:16]
    grads = []
    for packed in (False, True):
        model = _model(tiny_model, task)
        if packed:
            enable_packing(model)
            batch = PackedCollator(task.head, tokenizer, 128)(rows)
        else:
            batch = task.head.collate(rows, tokenizer)
        model(**batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-3, msg=name)


def test_tagging_packed_equals_unpacked(tiny_model, sample_data):
    task, tokenizer, features = _features(tiny_model, sample_data, "panx", 32)
    rows = features.inputs[:32]
    model = _model(tiny_model, task)
    plain_batch = task.head.collate(rows, tokenizer)
    with torch.no_grad():
        plain = model(**plain_batch)
    batch = PackedCollator(task.head, tokenizer, 128)(rows)
    assert batch["input_ids"].shape[0] < len(rows)
    assert int((batch["labels"] != -100).sum()) == int((plain_batch["labels"] != -100).sum())
    enable_packing(model)
    with torch.no_grad():
        packed = model(**batch)
    for i, logits in enumerate(unpack_tokens(packed.logits, batch["packed_starts"], batch["packed_lengths"])):
        torch.testing.assert_close(logits, plain.logits[i, : len(rows[i]["input_ids"])], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(packed.loss, plain.loss, atol=ATOL, rtol=1e-4)


def test_span_qa_packed_equals_unpacked(tiny_model, sample_data):
    task, tokenizer, features = _features(tiny_model, sample_data, "squad_v1", 12, max_length=96)
    rows = features.inputs[:12]
    model = _model(tiny_model, task)
    with torch.no_grad():
        padded = model(**task.head.collate(rows, tokenizer))
        alone = [model(**task.head.collate([r], tokenizer)) for r in rows]  # each example without padding
    batch = PackedCollator(task.head, tokenizer, 256)(rows)
    assert batch["input_ids"].shape[0] < len(rows)
    enable_packing(model)
    with torch.no_grad():
        packed = model(**batch)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        torch.testing.assert_close(packed.start_logits[i, :n], padded.start_logits[i, :n], atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(packed.end_logits[i, :n], padded.end_logits[i, :n], atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(packed.start_logits[i, :n], alone[i].start_logits[0], atol=ATOL, rtol=1e-4)
    # the packed loss = the mean of each example's own (unpadded) loss
    expected = torch.stack([o.loss for o in alone]).mean()
    torch.testing.assert_close(packed.loss, expected, atol=ATOL, rtol=1e-4)


def _choice_examples(sample_data, n=6, choices=3):
    lines = (sample_data / "xnli" / "dev-en.tsv").read_text(encoding="utf-8").splitlines()[1:]
    cells = [line.split("\t") for line in lines[: n * (choices + 1)]]
    out = []
    for i in range(n):
        group = cells[i * (choices + 1) : (i + 1) * (choices + 1)]
        out.append({"context": group[0][0], "question": "Which one?", "choices": [g[1] for g in group[1:]], "label": i % choices})
    return out


def test_multiple_choice_packed_equals_unpacked(tiny_model, sample_data):
    task = get_task("copa")
    tokenizer = load_tokenizer(tiny_model)
    examples = _choice_examples(sample_data, choices=2)
    features = task.head.featurize(examples, tokenizer, task.labels, 128, train=True)
    rows = features.inputs
    model = _model(tiny_model, task)
    with torch.no_grad():
        plain = model(**task.head.collate(rows, tokenizer))
    batch = PackedCollator(task.head, tokenizer, 128)(rows)
    assert batch["input_ids"].shape[0] < 2 * len(rows) and batch_examples(batch) == len(rows)
    enable_packing(model)
    with torch.no_grad():
        packed = model(**batch)
    torch.testing.assert_close(packed.logits, plain.logits, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(packed.loss, plain.loss, atol=ATOL, rtol=1e-4)


def test_position_ids_restart_at_padding_idx_plus_one(tiny_model, sample_data):
    task, tokenizer, features = _features(tiny_model, sample_data, "xnli", 8)
    model = _model(tiny_model, task)
    batch = PackedCollator(task.head, tokenizer, 128)(features.inputs[:8])
    pos = position_ids(model, batch["packed_positions"], batch["attention_mask"])
    pad = model.config.pad_token_id
    for (r, c), n in zip(batch["packed_starts"].tolist(), batch["packed_lengths"].tolist()):
        assert pos[r, c : c + n].tolist() == list(range(pad + 1, pad + 1 + n))
    assert (pos[batch["attention_mask"] == 0] == pad).all()


def test_pack_sequences_first_fit_decreasing():
    rows = pack_sequences([5, 3, 8, 2, 7], 10)
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4]
    assert all(sum([5, 3, 8, 2, 7][i] for i in row) <= 10 for row in rows)
    assert rows == [[2, 3], [4, 1], [0]]
    assert pack_sequences([12], 10) == [[0]]  # too long: a row of its own
    assert padding_ratio([4, 4, 2], [[0, 1, 2]]) == pytest.approx(12 / 10)
    assert padding_ratio([4, 4, 2], [[0, 1, 2]], capacity=10) == pytest.approx(1.0)


def test_buckets_only_take_bucket_shapes_and_keep_examples(tiny_model, sample_data):
    task, tokenizer, features = _features(tiny_model, sample_data, "panx", 100, max_length=64)
    buckets = normalise_buckets([16, 32], 64)
    assert buckets == [16, 32, 64] and bucket_length(17, buckets) == 32 and bucket_length(3, buckets) == 16
    collate = BucketedCollator(task.head, tokenizer, [16, 32], 64)
    batches = length_grouped_batches(features.lengths(), 8, seed=0)
    seen, shapes = 0, set()
    model = _model(tiny_model, task)
    for k, idx in enumerate(batches):
        rows = [features.inputs[i] for i in idx]
        batch = collate(rows)
        shapes.add(batch["input_ids"].shape[-1])
        assert batch["labels"].shape == batch["input_ids"].shape == batch["attention_mask"].shape
        seen += batch["input_ids"].shape[0]
        if k < 3:  # right padding to the bucket changes nothing at the real positions
            plain = task.head.collate(rows, tokenizer)
            with torch.no_grad():
                a, b = model(**plain), model(**batch)
            n = plain["input_ids"].shape[-1]
            torch.testing.assert_close(b.logits[:, :n], a.logits, atol=ATOL, rtol=1e-4)
            torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=1e-4)
    assert shapes <= set(buckets)
    assert seen == len(features)  # examples per epoch unchanged


def test_packed_with_buckets_takes_bucket_widths(tiny_model, sample_data):
    task, tokenizer, features = _features(tiny_model, sample_data, "xnli", 64)
    collate = PackedCollator(task.head, tokenizer, 128, buckets=[64, 96])
    for start in range(0, 64, 16):
        batch = collate(features.inputs[start : start + 16])
        assert batch["input_ids"].shape[-1] in (64, 96, 128)
        assert batch_examples(batch) == len(features.inputs[start : start + 16])


def test_switches_off_keep_config_identity():
    assert "packing" not in identity_dict(StageConfig()) and "bucket_lengths" not in identity_dict(StageConfig())
    cfg = ExperimentConfig(target=StageConfig(task="xnli"))
    on = dataclasses.replace(cfg, target=dataclasses.replace(cfg.target, packing=True))
    assert config_hash(identity_dict(cfg)) != config_hash(identity_dict(on))
    assert identity_dict(cfg) == {"target": {"task": "xnli"}}


def test_validate_switches():
    from intertask.config import ModelConfig
    from intertask.errors import ConfigError
    from intertask.training.packing import validate_switches

    validate_switches(StageConfig(task="xnli", packing=True, bucket_lengths=[32, 64]), "target", ModelConfig())
    with pytest.raises(ConfigError, match="sdpa or eager"):
        validate_switches(StageConfig(task="xnli", packing=True), "target", ModelConfig(attn_implementation="flash_attention_2"))
    with pytest.raises(ConfigError, match="single-task text stages only"):
        validate_switches(StageConfig(tasks=["xnli", "panx"], packing=True), "intermediate", ModelConfig())
    with pytest.raises(ConfigError, match="must be positive"):
        validate_switches(StageConfig(task="xnli", bucket_lengths=[0]), "target", ModelConfig())
    with pytest.raises(ConfigError, match="packing supports"):
        validate_switches(StageConfig(task="tatoeba", packing=True), "target", ModelConfig())


@pytest.mark.slow
def test_run_stage_with_packing_and_buckets(tmp_path, tiny_model, sample_data):
    """The recipe with packing / buckets on: same number of steps and examples; a finite loss; the dev metric is
    computed through the usual (unpacked) evaluation path."""
    from intertask.config import ModelConfig
    from intertask.training.recipe import StageContext, run_stage

    ctx = StageContext(model=ModelConfig(name_or_path=str(tiny_model)), seed=1, data_dir=sample_data)
    base = StageConfig(task="panx", max_steps=3, max_train_samples=48, max_eval_samples=16, batch_size=8, learning_rate=1e-3)
    out = {}
    for name, stage in {"off": base, "packed": dataclasses.replace(base, packing=True), "buckets": dataclasses.replace(base, bucket_lengths=[32, 64])}.items():
        out[name] = run_stage(stage, ctx, tmp_path / name, "target")
    for name in ("packed", "buckets"):
        t = out[name]["throughput"]
        assert t["steps"] == 3 and t["examples"] == out["off"]["throughput"]["examples"] == 24
        assert t["tokens"] == out["off"]["throughput"]["tokens"]  # same examples, same real tokens
        assert t["mean_loss"] == pytest.approx(out["off"]["throughput"]["mean_loss"], rel=0.05)


@pytest.mark.parametrize("task_name, attn", [("xnli", "sdpa"), ("xnli", "eager"), ("panx", "sdpa"), ("squad_v1", "sdpa"), ("copa", "sdpa")])
def test_packed_forward_under_bf16_autocast(tiny_model, sample_data, task_name, attn):
    """The GPU setting (bf16 autocast, here on CPU): packed losses run, are finite and near the fp32 ones."""
    if task_name == "copa":
        task, tokenizer = get_task("copa"), load_tokenizer(tiny_model)
        rows = task.head.featurize(_choice_examples(sample_data, choices=2), tokenizer, task.labels, 128, train=True).inputs
    else:
        task, tokenizer, features = _features(tiny_model, sample_data, task_name, 8, max_length=96)
        rows = features.inputs[:8]
    model = enable_packing(_model(tiny_model, task, attn))
    batch = PackedCollator(task.head, tokenizer, 256)(rows)
    with torch.no_grad():
        full = model(**batch).loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(**batch).loss
    assert torch.isfinite(half) and half.dtype == torch.float32
    assert float(half) == pytest.approx(float(full), rel=0.05)
