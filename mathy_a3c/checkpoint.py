"""The model folder's files: config.json plus one checkpoint file, always complete.

A folder holds:

* ``config.json``: the :class:`~mathy_a3c.config.A3CConfig` that built the model;
* ``checkpoint.npz``: the training state, in this library's own format
  (version 2), every array keyed by the model variable's path
  (``conv_0/kernel``; :attr:`mathy_a3c.model.ActorCritic.layout`):

  ==========================  ================================================
  ``model/PATH``              the weights (float32)
  ``adam/m/PATH``             Adam's first moment of each weight
  ``adam/v/PATH``             Adam's second moment of each weight
  ``adam/iterations``         Adam's step count (int64)
  ``counters/episodes``       episodes trained, over every run (int64)
  ``counters/steps``          environment steps trained (int64)
  ``format_version``          2
  ==========================  ================================================

  Version 1 checkpoints (2026-11, written through Keras' Adam: its moments
  under ``optimizer/adam/PATH_WITH_UNDERSCORES_momentum`` and ``_velocity``,
  its step under ``optimizer/adam/iteration``) still load.

Every file is written to a temporary name in the same folder, flushed to disk
and then renamed over the old one (``os.replace`` is atomic), so a crash or
Ctrl-C at any moment leaves the previous complete checkpoint in place, and a
reader (``mathy simplify`` while a run trains) never sees half a file.

Reading trusts nothing: a file of any size or shape gives a
:class:`CheckpointError` that names it, never an exception of numpy's or of
the JSON parser's, and never allocates more than the file holds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .config import A3CConfig, ConfigError
from .numpy_actor import Layout
from .parameter_server import TrainingState

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
FORMAT_VERSION = 2
#: Versions this library reads.
READABLE_VERSIONS = (1, 2)
#: Part of every temporary file name this process writes, so that only files
#: it created are ever removed as stale (:func:`remove_temp_files`).
TEMP_TAG = secrets.token_hex(8)
#: A config.json larger than this is not one this library wrote.
MAX_CONFIG_BYTES = 1 << 20


class CheckpointError(RuntimeError):
    """A model folder is missing, incomplete or unreadable; names the file."""


class SaveError(CheckpointError):
    """Writing a file of the model folder failed; the previous one is kept."""


@dataclass
class Checkpoint:
    """The contents of ``checkpoint.npz``."""

    state: TrainingState
    episodes: int
    steps: int

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return self.state.weights


def atomic_write(path: str, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary file and an atomic rename.

    The folder must exist. On any failure the temporary file is removed (if
    it can be) and ``path`` keeps its previous content.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.{TEMP_TAG}.", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the folder may be gone or read-only
            os.unlink(tmp)
        raise


def remove_temp_files(folder: str, tag: str) -> list[str]:
    """Delete the temporary files that a writer with ``tag`` (its
    :data:`TEMP_TAG`) left in ``folder`` when it was killed mid-save; returns
    their names. Files of any other name are never touched."""
    pattern = re.compile(
        rf"^\.({re.escape(CHECKPOINT_FILE)}|{re.escape(CONFIG_FILE)}|worker_\d+\.profile)"
        rf"\.{re.escape(tag)}\.[A-Za-z0-9_]+\.tmp$"
    )
    try:
        stale = [n for n in os.listdir(folder) if pattern.match(n)]
    except OSError:
        return []
    for name in stale:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, name))
    return stale


def has_checkpoint(folder: str) -> bool:
    """True when ``folder`` holds a saved model to resume."""
    return os.path.isfile(os.path.join(folder, CHECKPOINT_FILE))


def save_config(folder: str, config: A3CConfig) -> None:
    """Atomically write ``config.json``; raises :class:`SaveError`."""
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    _save(os.path.join(folder, CONFIG_FILE), lambda f: f.write(text.encode()))


def save_profile(folder: str, worker: int, stats: bytes) -> str:
    """Atomically write a worker's marshalled cProfile statistics (the bytes a
    worker reports, wherever it ran) as ``worker_N.profile``, for ``pstats``
    and snakeviz; raises :class:`SaveError`. Returns the path."""
    path = os.path.join(folder, f"worker_{worker}.profile")
    _save(path, lambda f: f.write(stats))
    return path


def _save(path: str, write: Callable[[IO[bytes]], object]) -> None:
    try:
        atomic_write(path, write)
    except OSError as error:
        why = f"[Errno {error.errno}] {error.strerror}" if error.strerror else error
        raise SaveError(f"could not save {path}: {why}") from None


def load_config(folder: str) -> A3CConfig:
    """The config saved in ``folder``, or :class:`CheckpointError` naming the
    file and what is wrong with it."""
    path = os.path.join(folder, CONFIG_FILE)
    try:
        if not os.path.isdir(folder):
            raise CheckpointError(f"Model folder {folder!r} does not exist")
        if not os.path.isfile(path):
            raise CheckpointError(
                f"{path} is missing: {folder!r} holds no trained model"
            )
        if os.path.getsize(path) > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{path} is {os.path.getsize(path)} bytes, more than any config "
                f"this library writes: not a mathy_a3c config"
            )
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except CheckpointError:
        raise
    except (OSError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{path} is unreadable: {_one_line(error)}") from None
    try:
        return A3CConfig.from_dict(data)
    except ConfigError as error:
        raise CheckpointError(f"{path} is not a valid config: {error}") from None


def save_checkpoint(
    folder: str, state: TrainingState, episodes: int, steps: int
) -> str:
    """Atomically write ``checkpoint.npz``; returns its path. Raises
    :class:`SaveError` (the previous checkpoint is kept)."""
    arrays: dict[str, Any] = {f"model/{k}": v for k, v in state.weights.items()}
    arrays.update({f"adam/m/{k}": v for k, v in state.momentum.items()})
    arrays.update({f"adam/v/{k}": v for k, v in state.velocity.items()})
    arrays["adam/iterations"] = np.asarray(state.iterations, np.int64)
    arrays["counters/episodes"] = np.asarray(episodes, np.int64)
    arrays["counters/steps"] = np.asarray(steps, np.int64)
    arrays["format_version"] = np.asarray(FORMAT_VERSION, np.int64)
    path = os.path.join(folder, CHECKPOINT_FILE)
    _save(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(folder: str) -> Checkpoint:
    """Read ``checkpoint.npz``, or raise :class:`CheckpointError` naming the file."""
    path = os.path.join(folder, CHECKPOINT_FILE)
    try:
        if not os.path.isfile(path):
            raise CheckpointError(
                f"{path} is missing: {folder!r} holds no saved weights"
            )
        with zipfile.ZipFile(path) as archive:
            arrays = {
                info.filename[:-4]: _read_member(archive, info, path)
                for info in archive.infolist()
            }
    except CheckpointError:
        raise
    except Exception as error:  # zipfile, OSError, ValueError: all mean corrupt
        raise CheckpointError(
            f"{path} is corrupt or unreadable: {_one_line(error)}"
        ) from None
    version = _scalar(arrays, "format_version", path, default=-1)
    if version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise CheckpointError(
            f"{path} has format version {version}; this library reads {readable}"
        )
    weights = _prefixed(arrays, "model/")
    if version == 1:  # Keras' Adam: moments under the variable path's underscores
        adam = _prefixed(arrays, "optimizer/adam/")
        moment = {path: path.replace("/", "_") for path in weights}
        momentum = {p: adam.get(f"{k}_momentum") for p, k in moment.items()}
        velocity = {p: adam.get(f"{k}_velocity") for p, k in moment.items()}
        iterations = _scalar(arrays, "optimizer/adam/iteration", path)
    else:
        momentum = dict(_prefixed(arrays, "adam/m/"))
        velocity = dict(_prefixed(arrays, "adam/v/"))
        iterations = _scalar(arrays, "adam/iterations", path)
    for what, saved in (("moments", momentum), ("second moments", velocity)):
        if set(saved) != set(weights) or any(v is None for v in saved.values()):
            raise CheckpointError(
                f"{path}: Adam's {what} do not match the saved weights"
            )
    state = TrainingState(weights, momentum, velocity, iterations)  # type: ignore[arg-type]
    for part in (state.weights, state.momentum, state.velocity):
        for name, value in part.items():
            if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
                raise CheckpointError(
                    f"{path}: {name} holds values that are not finite "
                    f"floating-point numbers"
                )
    return Checkpoint(
        state=state,
        episodes=_scalar(arrays, "counters/episodes", path),
        steps=_scalar(arrays, "counters/steps", path),
    )


def _prefixed(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> Any:
    """One array of the archive, after checking that its header describes
    plain numbers that fit in the bytes the member holds."""
    name = info.filename
    if not name.endswith(".npy"):
        raise CheckpointError(f"{path} holds {name!r}, which is not an array")
    if info.compress_type != zipfile.ZIP_STORED:  # its size could be anything
        raise CheckpointError(
            f"{path}: {name} is compressed; this library writes plain arrays"
        )
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        readers = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }
        if version not in readers:
            raise CheckpointError(f"{path}: {name} has .npy format {version}")
        shape, _, dtype = readers[version](member)
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise CheckpointError(
            f"{path}: {name} holds {dtype} values; a checkpoint holds numbers only"
        )
    if math.prod(shape) * dtype.itemsize > info.file_size:
        raise CheckpointError(f"{path}: {name} declares more data than the file holds")
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _scalar(
    arrays: dict[str, Any], key: str, path: str, default: int | None = None
) -> int:
    value = arrays.get(key)
    if value is None and default is not None:
        return default
    if value is None or value.shape != () or value.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: {key} is missing or not one integer")
    return int(value)


def _one_line(error: BaseException) -> str:
    """An exception as one line of text, prefixed with its type."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: Variables the model gained after checkpoints of this format were first
#: written, each with when and why. A checkpoint without one loads with it
#: set to zero, and zero Adam moments: a zero weight on a new input
#: reproduces the older model's outputs exactly.
ADDED_VARIABLES = {
    "like_terms/kernel": "2026-12: the like-term input, envs.Observation.like",
    "like_factors/kernel": "2026-12: the like-factor input, Observation.factors",
    "node_depth/kernel": "2026-12: the node-depth input, Observation.depth",
}


def add_new_variables(state: TrainingState, layout: Layout) -> None:
    """Give ``state`` (a saved model) the :data:`ADDED_VARIABLES` of
    ``layout`` that it lacks, as zeros."""
    for path, _, _, shape in layout:
        if path in ADDED_VARIABLES and path not in state.weights:
            for part in (state.weights, state.momentum, state.velocity):
                part[path] = np.zeros(shape, np.float32)


def check_layout(state: TrainingState, layout: Layout, folder: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` holds exactly the
    variables of ``layout`` (a model's), with their shapes."""
    paths = [path for path, *_ in layout]
    missing = [p for p in paths if p not in state.weights]
    if missing or len(state.weights) != len(paths):
        raise CheckpointError(
            f"{folder}/{CHECKPOINT_FILE} does not match this model: missing "
            f"{missing[:3]}, {len(state.weights)} saved weights vs {len(paths)} "
            f"expected"
        )
    for path, _, _, shape in layout:
        for part in (state.weights, state.momentum, state.velocity):
            if tuple(part[path].shape) != tuple(shape):
                raise CheckpointError(
                    f"{folder}/{CHECKPOINT_FILE}: {path} has shape "
                    f"{part[path].shape}; the model expects {tuple(shape)}"
                )
