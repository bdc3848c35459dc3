"""The results store: one SQLite file holding every run's self-describing result record.

Each record is also written as JSON next to the run's checkpoints; the store makes them queryable
(tables and plots are computed from it, never by hand). SQLite in WAL mode lets several grid
workers append at once; each insert is one transaction, so a kill never leaves half a record.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

import intertask
from intertask.errors import IntertaskError

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


RUN_COLUMNS = ["run_id", "experiment", "arm", "intermediate", "target", "seed", "config_hash", "git_hash", "created", "record"]
SCORE_COLUMNS = ["run_id", "task", "language", "metric", "value"]


class StoreError(IntertaskError):
    """The results store cannot be opened, read or written (names the file and what to do)."""


def _lock_timeout() -> float:
    try:
        return float(os.environ.get("INTERTASK_LOCK_TIMEOUT", "60"))
    except ValueError:
        return 60.0


def store_holders(path: Path) -> str:
    """Processes of this user that have the store open (Linux /proc), e.g. 'pid 123 (intertask run ...)'."""
    names = {str(path.resolve()), str(path.resolve()) + "-wal", str(path.resolve()) + "-shm"}
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return "another process"
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) in names for fd in (entry / "fd").iterdir()):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"pid {entry.name} ({cmd[:80]})")
        except OSError:
            continue
        if len(found) >= 3:
            break
    return ", ".join(found) if found else "another process"


class ResultsStore:
    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"results store {self.path}: is a directory, expected a SQLite file (results.sqlite)")
        # readonly: never create or change the store (report, results, select); the connection itself is read-only
        # only when the file is not writable (a writable connection removes SQLite's -wal / -shm files on close).
        self.readonly = readonly or (self.path.is_file() and not os.access(self.path, os.W_OK))
        self._ro_connection = self.path.is_file() and not os.access(self.path, os.W_OK)
        if self.readonly and not self.path.is_file():
            raise StoreError(f"results store not found: {self.path}")
        if not self.readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"results store {self.path}: cannot create its directory: {exc.strerror or exc}") from None
        self._check_header()
        with self._guard("open"), closing(self._connect()) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables and not self.readonly:  # a new store (a foreign database is never written to)
                with con:
                    con.executescript(SCHEMA)
            else:
                self._check_schema(con)
            if not self.readonly and con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection uses it

    def _check_header(self) -> None:
        """A file that is not SQLite (or cut short) is refused before SQLite touches it (no -wal / -shm beside it)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return  # an empty file is an empty database
        with self._guard("read"), open(self.path, "rb") as fh:
            header = fh.read(100)
        if not header.startswith(b"SQLite format 3\x00") or len(header) < 100:
            raise StoreError(
                f"results store {self.path}: not a readable SQLite results store ({'truncated' if header.startswith(b'SQLite') else 'not SQLite'}); "
                "move it aside (each run's result.json can refill a new one)"
            )
        page = int.from_bytes(header[16:18], "big")
        page = 65536 if page == 1 else page
        pages = int.from_bytes(header[28:32], "big")
        if page and pages and size < page * pages and not Path(str(self.path) + "-wal").exists():
            raise StoreError(f"results store {self.path}: truncated ({size} bytes, its header says {page * pages}); move it aside or restore it")

    def _connect(self, timeout: float | None = None) -> sqlite3.Connection:
        if self._ro_connection:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=_lock_timeout() if timeout is None else timeout)
        else:
            con = sqlite3.connect(self.path, timeout=_lock_timeout() if timeout is None else timeout)
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def _check_schema(self, con: sqlite3.Connection) -> None:
        for table, expected in (("runs", RUN_COLUMNS), ("scores", SCORE_COLUMNS)):
            columns = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            if columns != expected:
                got = ", ".join(columns) if columns else "no such table"
                raise StoreError(
                    f"results store {self.path}: table {table!r} is not intertask's (columns: {got}; expected {', '.join(expected)}); "
                    "use another output_dir or --store"
                )

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """sqlite3 / OS errors -> StoreError naming the file and the likely cause."""
        try:
            yield
        except StoreError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"results store {self.path}: locked by {store_holders(self.path)} for more than {_lock_timeout():.0f} s while trying to {action}; "
                    "run again when it has finished (INTERTASK_LOCK_TIMEOUT sets the wait)"
                ) from None
            if "readonly" in text or "read-only" in text:
                raise StoreError(f"results store {self.path}: read-only (cannot {action}); make it writable or use another output_dir") from None
            if "unable to open" in text:
                raise StoreError(f"results store {self.path}: cannot open it (missing folder or no permission)") from None
            if "disk" in text and "full" in text:
                raise StoreError(f"results store {self.path}: the disk is full (cannot {action})") from None
            raise StoreError(f"results store {self.path}: cannot {action}: {text}") from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise StoreError(
                f"results store {self.path}: not a readable SQLite results store ({exc}); move it aside (each run's result.json can refill a new one)"
            ) from None
        except OSError as exc:
            raise StoreError(f"results store {self.path}: cannot {action}: {exc.strerror or exc}") from None

    def _loads(self, text: Any, run_id: Any = None) -> dict[str, Any]:
        try:
            record = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"results store {self.path}: run {run_id!r} holds a broken JSON record ({exc}); delete that row or re-run it") from None
        if not isinstance(record, dict):
            raise StoreError(f"results store {self.path}: run {run_id!r} holds a {type(record).__name__}, expected a JSON object")
        return record

    def check_writable(self) -> None:
        """Fail before the work when a result could not be stored at the end."""
        if self.readonly:
            raise StoreError(f"results store {self.path}: read-only; make it writable or use another output_dir")
        with self._guard("write"), closing(self._connect(timeout=2)) as con:
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                print(f"results store {self.path} is locked by {store_holders(self.path)}; storing the result will wait for it", file=sys.stderr)

    def add(self, record: dict[str, Any]) -> None:
        """Insert or replace one run record and its flattened scores, atomically."""
        rows = [
            (record["run_id"], task, lang, metric, float(value))
            for task, per_lang in record["scores"].items()
            for lang, metrics in per_lang.items()
            for metric, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        if self.readonly:
            raise StoreError(f"results store {self.path}: read-only; cannot store run {record['run_id']}")
        with self._guard(f"store run {record['run_id']}"), closing(self._connect()) as con, con:
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
        with self._guard("read"), closing(self._connect()) as con:
            return [self._loads(r[0], r[1]) for r in con.execute(query.replace("SELECT record", "SELECT record, run_id") + " ORDER BY created", args)]

    def scores(self) -> Iterator[tuple]:
        with self._guard("read"), closing(self._connect()) as con:
            yield from con.execute(
                "SELECT r.experiment, r.arm, r.intermediate, r.target, r.seed, s.task, s.language, s.metric, s.value "
                "FROM scores s JOIN runs r USING (run_id) ORDER BY r.experiment, r.arm, s.task, s.language"
            )

    # ------------------------------------------------------------------ queries (grids, reports)

    def run_ids(self) -> set[str]:
        """Every stored run_id (the grid runner skips these)."""
        with self._guard("read"), closing(self._connect()) as con:
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
        query = "SELECT record, run_id FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created, run_id"
        with self._guard("read"), closing(self._connect()) as con:
            return [self._loads(r[0], r[1]) for r in con.execute(query, args)]
