"""Checks of a model reference before anything loads it (no torch import): a clear message instead of a hub
retry loop or a library traceback for a mistyped name, a file, or a truncated checkpoint."""

from __future__ import annotations

import json
import os
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from intertask.errors import ConfigError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def _rebuild_hint(directory: Path) -> str:
    from intertask.models.embedded import MODEL_DIR_NAME

    if directory.name == MODEL_DIR_NAME:
        return "rebuild it with `intertask model prepare --force`"
    if directory.name == "model" and (directory.parent / "stage.json").exists():
        return f"delete the stage directory {directory.parent} to train it again"
    return "copy or download the model again"


def check_safetensors(path: Path) -> str | None:
    """Why a .safetensors file is unreadable (truncated, not safetensors), or None when its header and size agree."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path}: truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                return f"{path}: not a safetensors file, or truncated (header of {n} bytes in a file of {size})"
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path}: unreadable safetensors header ({exc})"
    if not isinstance(header, dict):
        return f"{path}: not a safetensors file"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end > size:
        return f"{path}: truncated ({size} bytes, its header needs {8 + n + end})"
    return None


def check_model_dir(directory: Path, what: str) -> None:
    """A model directory: config.json that parses, and weights that are complete (safetensors checked)."""
    config = directory / "config.json"
    if not config.is_file():
        raise ConfigError(f"{what} {directory}: not a model or stage directory (no config.json)")
    try:
        conf = json.loads(config.read_text(encoding="utf-8"))
        if not isinstance(conf, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: {config} is broken ({exc}); {_rebuild_hint(directory)}") from None
    present = [name for name in WEIGHT_FILES if (directory / name).is_file()]
    if not present:
        raise ConfigError(f"{what} {directory}: no weights ({' or '.join(WEIGHT_FILES)}); {_rebuild_hint(directory)}")
    if "model.safetensors" in present:
        problem = check_safetensors(directory / "model.safetensors")
        if problem:
            raise ConfigError(f"{what}: {problem}; {_rebuild_hint(directory)}")


def check_model_source(name_or_path: str | Path, what: str = "model") -> None:
    """Fail at once, with a message, for a reference that cannot be loaded: a missing path, a file, a broken local
    model, or a hub id that is neither a local directory nor in the local hub cache while offline / unreachable."""
    name = str(name_or_path)
    if "\x00" in name or not name.strip():
        raise ConfigError(f"{what}: expected a model directory, stage directory, hub id or 'default', got {name!r}")
    if name == "default":
        from intertask.models.embedded import MODEL_DIR_NAME, default_cache_dir

        directory = default_cache_dir() / MODEL_DIR_NAME
        if directory.is_dir() and (directory / "config.json").exists():
            check_model_dir(directory, f"{what} default ({directory})")
        return
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{what} {path}: is a file, expected a model directory (with config.json) or a stage directory")
        check_model_dir(path / "model" if (path / "model" / "config.json").exists() else path, what)
        return
    looks_like_path = name.startswith((".", "/", "~")) or name.endswith("/") or name.count("/") > 1 or "\\" in name
    if looks_like_path:
        raise ConfigError(f"{what} {name}: no such directory (expected a model directory, a stage directory, a hub id or 'default')")
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        validate_repo_id(name)
    except HFValidationError:
        raise ConfigError(f"{what} {name!r}: no such directory, and not a valid Hugging Face model id") from None
    except ImportError:  # pragma: no cover
        return
    if _in_hub_cache(name):
        return
    offline = any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if offline:
        raise ConfigError(f"{what} {name!r}: neither a local directory nor a cached hub model (offline: HF_HUB_OFFLINE is set); check the name")
    problem = _hub_problem(name)
    if problem:
        raise ConfigError(f"{what} {name!r}: neither a local directory nor a cached hub model, and {problem}; check the name")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(found, str)
    except Exception:  # noqa: BLE001 - any cache problem: let the loader try
        return False


def _hub_problem(repo_id: str) -> str | None:
    """Why the hub cannot give `repo_id` (no such model, unreachable), asked once with a short timeout; None: fine."""
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

        HfApi().model_info(repo_id, timeout=float(os.environ.get("INTERTASK_HUB_TIMEOUT", "8")))
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        return f"the Hugging Face Hub has no accessible model of that name ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, timeout, proxy
        return f"the Hugging Face Hub cannot be reached ({type(exc).__name__})"
    return None


@contextmanager
def model_errors(source: str | Path, what: str = "model") -> Iterator[None]:
    """Library errors while loading a model (OSError, ValueError, safetensors, JSON) -> ConfigError naming it."""
    try:
        yield
    except ConfigError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        if type(exc).__name__ == "OutOfMemoryError":
            raise
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        path = Path(str(source))
        hint = f"; {_rebuild_hint(path)}" if path.is_dir() else ""
        raise ConfigError(f"{what} {source}: cannot be loaded: {first}{hint}") from None
    except Exception as exc:
        if type(exc).__name__ == "SafetensorError":
            path = Path(str(source))
            raise ConfigError(f"{what} {source}: broken weights file ({exc}); {_rebuild_hint(path)}") from None
        raise
