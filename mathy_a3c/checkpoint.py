"""The model folder: config.json plus one checkpoint file, always complete.

A folder holds:

* ``config.json``: the :class:`~mathy_a3c.config.A3CConfig` that built the model;
* ``checkpoint.npz``: model weights and optimizer variables, each keyed by its
  Keras variable path, plus the episode and step counters.

Every file is written to a temporary name in the same folder, flushed to disk
and then renamed over the old one (``os.replace`` is atomic), so a crash or
Ctrl-C at any moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .config import A3CConfig

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A model folder is missing, incomplete or unreadable; names the file."""


@dataclass
class Checkpoint:
    """The contents of ``checkpoint.npz``."""

    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    episodes: int
    steps: int


def atomic_write(path: str, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary file and an atomic rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(folder: str) -> list[str]:
    """Delete temporary files a killed save left behind; returns their names."""
    if not os.path.isdir(folder):
        return []
    prefixes = (f".{CHECKPOINT_FILE}.", f".{CONFIG_FILE}.")
    stale = [n for n in os.listdir(folder) if n.startswith(prefixes)]
    for name in stale:
        os.unlink(os.path.join(folder, name))
    return stale


def has_checkpoint(folder: str) -> bool:
    """True when ``folder`` holds a saved model to resume."""
    return os.path.isfile(os.path.join(folder, CHECKPOINT_FILE))


def save_config(folder: str, config: A3CConfig) -> None:
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write(os.path.join(folder, CONFIG_FILE), lambda f: f.write(text.encode()))


def load_config(folder: str) -> A3CConfig:
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isdir(folder):
        raise CheckpointError(f"Model folder {folder!r} does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is missing: {folder!r} holds no trained model")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is unreadable: {error}") from error
    return A3CConfig.from_dict(data)


def save_checkpoint(
    folder: str,
    weights: dict[str, np.ndarray],
    optimizer: dict[str, np.ndarray],
    episodes: int,
    steps: int,
) -> str:
    """Atomically write ``checkpoint.npz``; returns its path."""
    arrays: dict[str, Any] = {f"model/{k}": v for k, v in weights.items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer.items()})
    arrays["counters/episodes"] = np.asarray(episodes, np.int64)
    arrays["counters/steps"] = np.asarray(steps, np.int64)
    arrays["format_version"] = np.asarray(FORMAT_VERSION, np.int64)
    path = os.path.join(folder, CHECKPOINT_FILE)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(folder: str) -> Checkpoint:
    """Read ``checkpoint.npz``, or raise :class:`CheckpointError` naming the file."""
    path = os.path.join(folder, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is missing: {folder!r} holds no saved weights")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as error:  # zipfile, OSError, ValueError: all mean corrupt
        raise CheckpointError(f"{path} is corrupt or unreadable: {error}") from error
    version = int(arrays.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}; this library reads {FORMAT_VERSION}"
        )
    return Checkpoint(
        weights={k[6:]: v for k, v in arrays.items() if k.startswith("model/")},
        optimizer={k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")},
        episodes=int(arrays["counters/episodes"]),
        steps=int(arrays["counters/steps"]),
    )


def assign_by_path(
    variables: list[Any], arrays: dict[str, np.ndarray], what: str
) -> None:
    """Assign saved arrays to Keras variables matched by ``variable.path``."""
    paths = [v.path for v in variables]
    missing = [p for p in paths if p not in arrays]
    if missing or len(arrays) != len(paths):
        raise CheckpointError(
            f"saved {what} does not match this model: missing {missing[:3]}, "
            f"{len(arrays)} saved vs {len(paths)} expected"
        )
    for variable in variables:
        value = arrays[variable.path]
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"saved {what} {variable.path} has shape {value.shape}; "
                f"the model expects {tuple(variable.shape)}"
            )
        variable.assign(value)
