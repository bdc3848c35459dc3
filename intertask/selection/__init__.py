"""Intermediate-task selection before fine-tuning (Poth et al., EMNLP 2021, arXiv 2104.08247).

Three ways to rank candidate intermediate tasks for a target task, cheapest last:

* ``logme``: LogME (:mod:`intertask.selection.logme`) of the target's English training data
  (features of the frozen encoder, the target's labels) under an encoder already trained on each
  candidate -- given with ``encoders={task: dir}`` or found in an output_dir's
  ``intermediate/<task>-<hash>/`` (e.g. from an earlier grid). Candidates without a trained
  encoder cannot be scored by LogME; the ranking then falls back to the embedding similarity for
  them (and says so). Applicable to targets with a classification or tagging head.
* ``embedding``: cosine similarity between the mean sentence embedding of the target's texts and
  of each candidate's texts (Poth et al.'s SEmb, with this project's encoder).
* ``vocab``: vocabulary overlap of the subword token distributions: weighted (sum over tokens of
  the smaller relative frequency, 1 = same distribution) with the Jaccard index of the token sets
  alongside.

When the results store holds measured transfer results for the target, each method's ranking is
scored with NDCG and Regret@k (:mod:`intertask.selection.ranking`).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from intertask.errors import ConfigError
from intertask.progress import progress_bar
from intertask.results.store import BASELINE
from intertask.selection.logme import logme
from intertask.selection.ranking import ndcg_at_k, regret_at_k

METHODS = ("logme", "embedding", "vocab")
TEXT_FIELDS = ("text_a", "text_b", "question", "context", "premise", "hypothesis", "sentence", "text")

__all__ = ["logme", "ndcg_at_k", "regret_at_k", "run_selection", "select", "SelectionResult", "METHODS"]


@dataclass
class MethodResult:
    method: str
    scores: dict[str, float]  # candidate -> score (higher = better predicted transfer)
    seconds: float
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ranking(self) -> list[str]:
        return sorted(self.scores, key=lambda c: -self.scores[c])


@dataclass
class SelectionResult:
    target: str
    candidates: list[str]
    methods: list[MethodResult]
    measured: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> {ndcg, regret@k}

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "candidates": self.candidates,
            "methods": [
                {"method": m.method, "ranking": m.ranking, "scores": m.scores, "seconds": m.seconds, "notes": m.notes, "details": m.details}
                for m in self.methods
            ],
            "measured": self.measured,
            "evaluation": self.evaluation,
        }


# ----------------------------------------------------------------------------- data


def example_texts(example: dict) -> list[str]:
    """The text(s) of one example, whatever the task format."""
    out = [example[k] for k in TEXT_FIELDS if isinstance(example.get(k), str) and example[k]]
    if isinstance(example.get("tokens"), list):
        out.append(" ".join(map(str, example["tokens"])))
    return out


def _train_examples(task_name: str, data_dir: Path, max_samples: int, seed: int) -> tuple[Any, list[dict]]:
    from intertask.data.loading import has_data, load_examples
    from intertask.tasks import get_task

    task = get_task(task_name)
    train_task = task.training_task()
    for t, split in ((train_task, "train"), (task, "dev")):  # dev only when no train data is local
        if has_data(t, split, t.train_language, data_dir):
            return task, load_examples(t, split, t.train_language, data_dir, max_samples=max_samples, seed=seed).examples
    raise ConfigError(f"{task_name}: no English train (or dev) data under {data_dir}")


def dataset_texts(task_name: str, data_dir: Path, max_samples: int, seed: int = 0) -> list[str]:
    _, examples = _train_examples(task_name, data_dir, max_samples, seed)
    texts = [t for ex in examples for t in example_texts(ex)]
    if not texts:
        raise ConfigError(f"{task_name}: no text fields found in its examples")
    return texts


# ----------------------------------------------------------------------------- methods


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def mean_embedding(texts: Sequence[str], model: str | Path, max_length: int = 128, batch_size: int = 32, what: str = "") -> np.ndarray:
    from intertask.evaluation.evaluate import embed_sentences
    from intertask.models.loading import load_encoder, load_tokenizer

    encoder, tokenizer = load_encoder(model).to(_device()), load_tokenizer(model)
    import torch

    with torch.no_grad():
        emb = embed_sentences(encoder, tokenizer, list(texts), batch_size, max_length, _device(), description=f"embed {what}".strip())
    return emb.mean(axis=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def token_counts(texts: Sequence[str], tokenizer: Any) -> Counter:
    counts: Counter = Counter()
    for ids in tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=512)["input_ids"]:
        counts.update(ids)
    return counts


def vocab_overlap(a: Counter, b: Counter) -> tuple[float, float]:
    """(weighted overlap = sum_t min(p_a(t), p_b(t)), Jaccard of the token sets)."""
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return 0.0, 0.0
    weighted = sum(min(a[t] / na, b[t] / nb) for t in a.keys() & b.keys())
    jaccard = len(a.keys() & b.keys()) / len(a.keys() | b.keys())
    return weighted, jaccard


def target_features(
    task_name: str, encoder_path: str | Path, data_dir: Path, max_samples: int, max_length: int = 128, seed: int = 0, max_tokens: int = 5000
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen-encoder features and labels of the target's English training data, for LogME.

    Classification: the mean-pooled sentence (pair) representation and its label. Tagging: the
    first sub-token of each word and the word's tag (at most `max_tokens` words).
    """
    import torch

    from intertask.models.heads import SequenceClassificationHead, TokenClassificationHead
    from intertask.models.loading import load_encoder, load_tokenizer

    task, examples = _train_examples(task_name, data_dir, max_samples, seed)
    classify = isinstance(task.head, SequenceClassificationHead)
    if not classify and not isinstance(task.head, TokenClassificationHead):
        raise ConfigError(f"LogME needs a classification or tagging target; {task_name} has a {task.head.name} head")
    device = _device()
    encoder, tokenizer = load_encoder(encoder_path).to(device).eval(), load_tokenizer(encoder_path)
    label2id = {lab: i for i, lab in enumerate(task.labels)}
    feats, labels = [], []
    batch = 32
    with torch.no_grad():
        for start in range(0, len(examples), batch):
            chunk = examples[start : start + batch]
            if classify:
                text_b = [e.get("text_b") for e in chunk]
                enc = tokenizer(
                    [e["text_a"] for e in chunk],
                    text_b if any(t is not None for t in text_b) else None,
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                states = encoder(**{k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}).last_hidden_state
                mask = enc["attention_mask"].to(device).unsqueeze(-1).to(states.dtype)
                feats.append(((states * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy())
                labels += [label2id[e["label"]] for e in chunk]
            else:
                enc = tokenizer(
                    [e["tokens"] for e in chunk], is_split_into_words=True, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
                )
                states = encoder(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).last_hidden_state.float().cpu().numpy()
                for i, ex in enumerate(chunk):
                    previous = None
                    for pos, w in enumerate(enc.word_ids(i)):
                        if w is not None and w != previous:
                            feats.append(states[i, pos][None])
                            labels.append(label2id[ex["tags"][w]])
                        previous = w
            if len(labels) >= max_tokens:
                break
    return np.concatenate(feats)[:max_tokens], np.asarray(labels[:max_tokens])


def find_encoders(output_dir: Path, candidates: Sequence[str]) -> dict[str, list[Path]]:
    """Complete intermediate checkpoints per candidate under `<output_dir>/intermediate/`."""
    found: dict[str, list[Path]] = {}
    root = Path(output_dir) / "intermediate"
    for cand in candidates:
        dirs = sorted(p.parent for p in root.glob(f"{cand}-*/stage.json")) if root.is_dir() else []
        dirs = [d for d in dirs if d.name.rsplit("-", 1)[0] == cand]
        if dirs:
            found[cand] = dirs
    return found


def measured_scores(store_path: Path, target: str) -> dict[str, float]:
    """Mean over runs (seeds) of the target's main metric averaged over languages, per intermediate task."""
    from intertask.results.report import _task_avg
    from intertask.results.store import ResultsStore

    per_arm: dict[str, list[float]] = {}
    for r in ResultsStore(store_path, readonly=True).query(task=target):
        if r["target"] != target or r["arm"] == BASELINE or target not in r["scores"]:
            continue
        value, _ = _task_avg(r["scores"][target], target)
        if value is not None:
            per_arm.setdefault(r["arm"], []).append(value)
    return {arm: statistics.fmean(v) for arm, v in per_arm.items()}


def select(
    target: str,
    candidates: Sequence[str],
    model: str | Path = "default",
    data_dir: str | Path = "../shared/data",
    max_samples: int = 500,
    methods: Sequence[str] = METHODS,
    encoders: dict[str, str | Path | list] | None = None,
    store: str | Path | None = None,
    k: int = 1,
    seed: int = 0,
) -> SelectionResult:
    from intertask.tasks import get_task

    data_dir = Path(data_dir)
    get_task(target)
    candidates = list(dict.fromkeys(candidates))
    if not candidates:
        raise ConfigError("--candidates: give at least one candidate intermediate task")
    for c in candidates:
        if not get_task(c).can_play("intermediate"):
            raise ConfigError(f"candidate {c} cannot be used as an intermediate task")
    for m in methods:
        if m not in METHODS:
            from intertask.errors import unknown_name_message

            raise ConfigError(unknown_name_message("selection method", m, METHODS))
    store_path = None
    if store is not None:
        from intertask.results.report import resolve_store

        store_path = resolve_store(store)
    enc: dict[str, list[Path]] = {c: ([Path(p) for p in v] if isinstance(v, list) else [Path(v)]) for c, v in (encoders or {}).items()}
    if store_path is not None:
        for c, dirs in find_encoders(store_path.parent, candidates).items():
            enc.setdefault(c, dirs)

    results: list[MethodResult] = []
    texts: dict[str, list[str]] = {}

    def get_texts(name: str) -> list[str]:
        if name not in texts:
            texts[name] = dataset_texts(name, data_dir, max_samples, seed)
        return texts[name]

    embedding_result: MethodResult | None = None
    if "embedding" in methods or "logme" in methods:
        t0 = time.time()
        with progress_bar("selection: embedding similarity", total=len(candidates) + 1, unit="datasets") as advance:
            target_emb = mean_embedding(get_texts(target), model, what=target)
            advance()
            scores = {}
            for c in candidates:
                scores[c] = cosine(target_emb, mean_embedding(get_texts(c), model, what=c))
                advance()
        embedding_result = MethodResult(
            "embedding", scores, round(time.time() - t0, 2), [f"cosine of mean embeddings ({model}), {max_samples} examples per dataset"]
        )
    if "logme" in methods:
        t0 = time.time()
        scores, notes, details = {}, [], {}
        try:
            with progress_bar("selection: LogME", total=1 + sum(len(enc[c]) for c in candidates if c in enc), unit="encoders") as advance:
                base_f, base_y = target_features(target, model, data_dir, max_samples, seed=seed)
                details["pretrained"] = logme(base_f, base_y)
                advance()
                for c in candidates:
                    if c in enc:
                        vals = []
                        for d in enc[c]:
                            f, y = target_features(target, d, data_dir, max_samples, seed=seed)
                            vals.append(logme(f, y))
                            advance()
                        scores[c] = float(np.mean(vals))
                        details[c] = {"encoders": [str(d) for d in enc[c]], "logme": vals}
            missing = [c for c in candidates if c not in scores]
            if missing:
                notes.append(f"no trained encoder for {', '.join(missing)}: ranked after the scored candidates by embedding similarity (fallback)")
            notes.append(f"LogME of {target} features under each candidate's encoder (pretrained encoder: {details['pretrained']:.4f})")
        except ConfigError as exc:
            missing = list(candidates)
            notes.append(f"LogME not applicable ({exc}); embedding-similarity ranking used instead")
        result = MethodResult("logme", scores, 0.0, notes, details)
        if missing and embedding_result is not None:
            # Fallback: unscored candidates go after every LogME-scored one, in embedding order.
            floor = min(scores.values(), default=0.0) - 1.0
            for c in missing:
                result.scores[c] = floor - (1.0 - embedding_result.scores[c])
            result.details["fallback"] = missing
        result.seconds = round(time.time() - t0 + (embedding_result.seconds if missing and embedding_result else 0.0), 2)
        results.append(result)
    if "embedding" in methods and embedding_result is not None:
        results.append(embedding_result)
    if "vocab" in methods:
        t0 = time.time()
        from intertask.models.loading import load_tokenizer

        tok = load_tokenizer(model)
        tc = token_counts(get_texts(target), tok)
        scores, jacc = {}, {}
        with progress_bar("selection: vocabulary overlap", total=len(candidates), unit="datasets") as advance:
            for c in candidates:
                scores[c], jacc[c] = vocab_overlap(tc, token_counts(get_texts(c), tok))
                advance()
        results.append(
            MethodResult("vocab", scores, round(time.time() - t0, 2), ["weighted subword overlap (sum of min relative frequencies)"], {"jaccard": jacc})
        )

    out = SelectionResult(target, candidates, results)
    if store_path is not None:
        out.measured = measured_scores(store_path, target)
        usable = [c for c in candidates if c in out.measured]
        if len(usable) >= 1:
            for m in results:
                ranked = [c for c in m.ranking if c in out.measured]
                out.evaluation[m.method] = {
                    "ndcg": ndcg_at_k(ranked, out.measured),
                    f"ndcg@{k}": ndcg_at_k(ranked, out.measured, k),
                    f"regret@{k}": regret_at_k(ranked, out.measured, k),
                }
    return out


def format_selection(res: SelectionResult, k: int = 1) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    console = Console(record=True, width=160, file=io.StringIO())
    table = Table(title=f"intermediate-task ranking for target {res.target}")
    table.add_column("rank", justify="right")
    for m in res.methods:
        table.add_column(f"{m.method}\n({m.seconds:.1f} s)")
    rankings = [m.ranking for m in res.methods]
    for i in range(len(res.candidates)):
        row = [str(i + 1)]
        for m, ranking in zip(res.methods, rankings):
            c = ranking[i]
            fallback = c in m.details.get("fallback", [])
            row.append(f"{c}  {'(fallback)' if fallback else f'{m.scores[c]:.4f}'}")
        table.add_row(*row)
    console.print(table)
    for m in res.methods:
        for note in m.notes:
            console.print(f"[dim]{m.method}: {note}[/dim]")
    if res.measured:
        console.print("measured (store): " + ", ".join(f"{c}={100 * v:.1f}" for c, v in sorted(res.measured.items(), key=lambda x: -x[1])))
        for method, ev in res.evaluation.items():
            console.print(f"  {method}: " + ", ".join(f"{name}={value:.3f}" for name, value in ev.items()))
    elif res.evaluation == {} and res.measured == {}:
        console.print("[dim]no measured transfer results for this target in the store (give --store to score the rankings)[/dim]")
    return console.export_text()


def run_selection(target: str, candidates: Sequence[str], model: str = "default", data_dir: Path = Path("../shared/data"),
                  max_samples: int = 500, methods: Sequence[str] = METHODS, encoders: dict | None = None, store: Path | None = None,
                  k: int = 1, seed: int = 0, as_json: bool = False) -> str:  # fmt: skip
    """`intertask select`: the rankings as text (or JSON)."""
    res = select(target, candidates, model, data_dir, max_samples, methods, encoders, store, k, seed)
    return json.dumps(res.as_dict(), indent=2) if as_json else format_selection(res, k)
