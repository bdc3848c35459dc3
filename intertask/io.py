"""Atomic file writes: a reader never sees a half-written file, a crash never destroys the old one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from intertask.errors import IntertaskError

STAGE_FILE = "stage.json"  # a stage directory's summary, written last: its presence means the stage is complete


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is fsynced and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | Path, what: str = "") -> Any:
    """Parse a JSON file; an unreadable, non-UTF-8 or broken file is an IntertaskError naming it (and `what` it is)."""
    from intertask.errors import IntertaskError

    path = Path(path)
    label = f"{path}" + (f" ({what})" if what else "")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IntertaskError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise IntertaskError(f"{label}: is a directory, expected a JSON file") from None
    except PermissionError:
        raise IntertaskError(f"{label}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise IntertaskError(f"{label}: not UTF-8 text (byte {exc.start}); delete it to rebuild it") from None
    except json.JSONDecodeError as exc:
        raise IntertaskError(f"{label}: broken JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); delete it to rebuild it") from None
    except OSError as exc:
        raise IntertaskError(f"{label}: cannot read: {exc.strerror or exc}") from None


def stage_summary(stage_dir: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None) for a complete stage directory; (None, why not) otherwise (None, None: no stage.json yet).

    Complete = stage.json is a JSON object with a task name, a step count and dev metrics, and model/config.json
    exists beside it. Anything else (empty, truncated, another shape) is not taken as a finished stage.
    """
    stage_dir = Path(stage_dir)
    done = stage_dir / STAGE_FILE
    if not done.exists():
        return None, None
    try:
        summary = read_json(done)
    except Exception as exc:  # noqa: BLE001 - IntertaskError from read_json
        return None, str(exc)
    if not isinstance(summary, dict):
        return None, f"{done}: expected a JSON object, got {type(summary).__name__}"
    for key, kind in (("task", str), ("steps", int), ("dev_metrics", dict)):
        if not isinstance(summary.get(key), kind) or isinstance(summary.get(key), bool):
            return None, f"{done}: {key!r} missing or not a {kind.__name__}"
    if not (stage_dir / "model" / "config.json").is_file():
        return None, f"{done}: {stage_dir / 'model' / 'config.json'} is missing"
    return summary, None


def cache_base() -> Path:
    """Root of intertask's caches: $INTERTASK_CACHE, else $XDG_CACHE_HOME/intertask, else ~/.cache/intertask."""
    if os.environ.get("INTERTASK_CACHE"):
        return Path(os.environ["INTERTASK_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "intertask"


def check_output_file(path: str | Path, what: str = "--output") -> Path:
    """Fail before any work when `path` cannot become a file: a directory, a parent that is a file, no permission."""
    from intertask.errors import IntertaskError

    path = Path(path)
    if path.is_dir():
        raise IntertaskError(f"{what} {path}: is a directory, expected a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise IntertaskError(f"{what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise IntertaskError(f"{what} {path}: not writable (permission denied)")
    return path


def check_output_dir(path: str | Path, what: str = "--output") -> Path:
    """Fail before any work when `path` cannot be (or become) a writable directory."""
    from intertask.errors import IntertaskError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise IntertaskError(f"{what} {path}: is a file, expected a directory")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise IntertaskError(f"{what} {path}: {parent} is a file, expected a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise IntertaskError(f"{what} {path}: {parent} is not writable (permission denied)")
    return path


def lock_holder(lock_path: str | Path) -> str:
    """Who holds a lock file, as far as this machine can tell: 'pid N (command)' written by the holder, else 'another process'."""
    try:
        text = Path(lock_path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0][:200] if text else "another process"


class StageLocked(IntertaskError, TimeoutError):
    """A stage's lock is held by another process longer than the timeout allows."""


@contextmanager
def stage_lock(stage_dir: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive lock for training one stage: fcntl.flock on `<parent>/.<name>.lock`.

    Two workers (processes, or jobs on a cluster sharing the file system) asking for the same
    checkpoint serialise here; the second then finds stage.json and reuses the checkpoint. The
    lock is released when the holder exits, even on SIGKILL.
    """
    stage_dir = Path(stage_dir)
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = stage_dir.parent / f".{stage_dir.name}.lock"
    if timeout is None and os.environ.get("INTERTASK_LOCK_TIMEOUT"):
        try:
            timeout = float(os.environ["INTERTASK_LOCK_TIMEOUT"])
        except ValueError:
            from intertask.errors import ConfigError

            raise ConfigError(f"INTERTASK_LOCK_TIMEOUT: expected seconds, got {os.environ['INTERTASK_LOCK_TIMEOUT']!r}") from None
    with open(lock_path, "a+") as fh:
        started = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if timeout is not None and waited >= timeout:
                    raise StageLocked(
                        f"stage {stage_dir} is locked by another worker: {lock_holder(lock_path)} (lock {lock_path}); gave up after {waited:.0f} s "
                        "(INTERTASK_LOCK_TIMEOUT); run again when it has finished, and this run reuses it"
                    ) from None
                if not told and waited >= 2:
                    import sys

                    print(
                        f"waiting for stage {stage_dir}: {lock_holder(lock_path)} is training it (lock {lock_path}); "
                        "this run reuses it when done (set INTERTASK_LOCK_TIMEOUT=SECONDS to give up instead)",
                        file=sys.stderr, flush=True,
                    )  # fmt: skip
                    told = True
                time.sleep(0.2)
        try:
            _write_holder(fh)
            yield
        finally:
            with contextlib.suppress(OSError):
                fh.truncate(0)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_holder(fh) -> None:
    """Record the lock holder in the lock file (read by lock_holder in the waiting process)."""
    import socket
    import sys

    with contextlib.suppress(OSError):
        fh.seek(0)
        fh.truncate(0)
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv[:3])[:120]}) since {time.strftime('%H:%M:%S')}\n")
        fh.flush()
