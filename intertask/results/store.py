"""The results store: one SQLite file holding every run's self-describing result record.

Each record is also written as JSON next to the run's checkpoints; the store makes them queryable
(tables and plots are computed from it, never by hand). SQLite in WAL mode lets several grid
workers append at once; each insert is one transaction, so a kill never leaves half a record.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import intertask

STORE_FILE = "results.sqlite"  # the store's file name in an output directory
BASELINE = "baseline"  # the arm label of runs without an intermediate task

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    arm TEXT NOT NULL,
    intermediate TEXT,
    target TEXT NOT NULL,
    seed INTEGER,
    config_hash TEXT NOT NULL,
    git_hash TEXT,
    created TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    language TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, task, language, metric)
);
"""


def git_hash() -> str:
    """Commit of the intertask source that produced a result ("+dirty" if it had local changes)."""
    root = Path(intertask.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class ResultsStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def add(self, record: dict[str, Any]) -> None:
        """Insert or replace one run record and its flattened scores, atomically."""
        rows = [
            (record["run_id"], task, lang, metric, float(value))
            for task, per_lang in record["scores"].items()
            for lang, metrics in per_lang.items()
            for metric, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM runs WHERE run_id = ?", (record["run_id"],))
            con.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record["run_id"], record["experiment"], record["arm"], record.get("intermediate"), record["target"],
                    record.get("seed"), record["config_hash"], record.get("git_hash"), record["created"], json.dumps(record),
                ),
            )  # fmt: skip
            con.executemany("INSERT INTO scores VALUES (?,?,?,?,?)", rows)

    def records(self, experiment: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT record FROM runs", ()
        if experiment is not None:
            query, args = query + " WHERE experiment = ?", (experiment,)
        with closing(self._connect()) as con:
            return [json.loads(r[0]) for r in con.execute(query + " ORDER BY created", args)]

    def scores(self) -> Iterator[tuple]:
        with closing(self._connect()) as con:
            yield from con.execute(
                "SELECT r.experiment, r.arm, r.intermediate, r.target, r.seed, s.task, s.language, s.metric, s.value "
                "FROM scores s JOIN runs r USING (run_id) ORDER BY r.experiment, r.arm, s.task, s.language"
            )

    # ------------------------------------------------------------------ queries (grids, reports)

    def run_ids(self) -> set[str]:
        """Every stored run_id (the grid runner skips these)."""
        with closing(self._connect()) as con:
            return {r[0] for r in con.execute("SELECT run_id FROM runs")}

    def query(
        self,
        experiment: str | None = None,
        task: str | None = None,
        arm: str | None = None,
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records filtered by experiment (exact name, or a prefix: "grid" matches "grid/..."),
        target or scored task, arm (intermediate task or "baseline") and seed."""
        where, args = [], []
        if experiment is not None:
            where.append("(experiment = ? OR experiment LIKE ? ESCAPE '\\')")
            escaped = experiment.rstrip("/").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args += [experiment, escaped + "/%"]
        if task is not None:
            where.append("(target = ? OR run_id IN (SELECT run_id FROM scores WHERE task = ?))")
            args += [task, task]
        if arm is not None:
            where.append("arm = ?")
            args.append(arm)
        if seed is not None:
            where.append("seed = ?")
            args.append(seed)
        query = "SELECT record FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created, run_id"
        with closing(self._connect()) as con:
            return [json.loads(r[0]) for r in con.execute(query, args)]
