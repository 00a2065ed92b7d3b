"""Who may write a model folder, and what else may be in it.

* :func:`inspect_folder` says what a path holds before anything is written:
  nothing yet, a model, a model whose run never saved, or someone else's
  files, which a run refuses unless asked (``--allow-nonempty``).
* :class:`FolderLock` is held by the one run that trains into a folder: an
  exclusive OS lock (``flock``) on ``FOLDER/.mathy-a3c.lock``, which the
  operating system releases when the process ends, however it ends. A second
  run finds it taken and stops at once, naming the process that holds it.
  :func:`hold_folder` takes it re-entrantly within a thread, so the CLI can
  take it before TensorFlow loads and ``A3CAgent.train`` again inside.

The lock file also records the holder's temporary-file tag
(:data:`mathy_a3c.checkpoint.TEMP_TAG`), so the next holder deletes the
temporary files a killed save left behind, and only those: files this library
created. No file is ever deleted because of its name alone.

Locks are advisory and local: every run of this library honours them; a
network file system that does not support ``flock`` gets no protection.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    TEMP_TAG,
    CheckpointError,
    load_config,
    remove_temp_files,
)
from .config import A3CConfig, SettingChange

LOCK_FILE = ".mathy-a3c.lock"
#: Names a training run creates in its folder.
_OURS = re.compile(
    r"^(config\.json|checkpoint\.npz|tensorboard|worker_\d+\.profile|"
    + re.escape(LOCK_FILE)
    + r")$"
)


class FolderError(CheckpointError):
    """A model folder cannot be used: not a folder, not writable, or not ours."""


class FolderBusy(FolderError):
    """Another run holds the folder's lock."""


@dataclass(frozen=True)
class FolderState:
    """What :func:`inspect_folder` found."""

    path: str
    exists: bool
    has_model: bool
    """``checkpoint.npz`` is there: training resumes it."""
    others: tuple[str, ...]
    """Entries this library did not create (the user's files)."""


def inspect_folder(path: str) -> FolderState:
    """What ``path`` holds, without writing anything.

    Raises :class:`FolderError` for a path that cannot be a model folder (a
    file, an unreadable folder, a name the system rejects).
    """
    try:
        if not os.path.lexists(path):
            return FolderState(path, False, False, ())
        if not os.path.isdir(path):
            raise FolderError(f"{path!r} is not a folder; give a folder for the model")
        names = sorted(os.listdir(path))
    except (OSError, ValueError) as error:
        raise FolderError(
            f"cannot use {path!r} as a model folder: {_why(error)}"
        ) from None
    has_model = os.path.isfile(os.path.join(path, CHECKPOINT_FILE))
    others = [n for n in names if not _OURS.match(n) and not _is_temp(n)]
    if CONFIG_FILE in names and not has_model:
        try:  # a config.json that is not ours would be overwritten
            load_config(path)
        except CheckpointError:
            others.append(CONFIG_FILE)
    return FolderState(path, True, has_model, tuple(others))


def refuse_other_files(state: FolderState, allow_nonempty: bool) -> None:
    """Raise :class:`FolderError` when training would mix a new model with
    files this library did not write: always for a ``config.json`` of
    someone else's (it would be overwritten), and for any other file unless
    ``allow_nonempty`` (they are then left alone)."""
    if state.has_model or not state.others:
        return
    listed = ", ".join(state.others[:3]) + (" ..." if len(state.others) > 3 else "")
    if CONFIG_FILE in state.others:
        raise FolderError(
            f"{state.path}/{CONFIG_FILE} is not a mathy_a3c config and training "
            f"would overwrite it; move it away or train into another folder"
        )
    if not allow_nonempty:
        raise FolderError(
            f"{state.path!r} is not empty and holds no mathy_a3c model (found "
            f"{listed}); train into a new or empty folder, or pass "
            f"--allow-nonempty to add the model beside those files"
        )


class ResumeConflict(FolderError):
    """The settings asked for contradict the model a run would resume."""

    def __init__(self, folder: str, conflicts: list[SettingChange]) -> None:
        self.folder = folder
        self.conflicts = conflicts
        super().__init__(self.render())

    def render(
        self, name: Callable[[str], str] = str, option: str = "change_settings=True"
    ) -> str:
        """The message, each field written as ``name(field)``."""
        listed = ", ".join(c.describe(name) for c in self.conflicts)
        fixed = [c for c in self.conflicts if c.kind == "model"]
        if fixed:
            return (
                f"{self.folder!r} holds a model whose weights fit its saved settings "
                f"only: {listed}; leave the option out or train into another folder"
            )
        return (
            f"{self.folder!r} holds a model trained with other settings: {listed}; "
            f"leave them out to resume with the saved ones, train into another "
            f"folder, or pass {option} to continue it with the new ones"
        )


def check_resume(
    folder: str, saved: A3CConfig, new: A3CConfig, change_settings: bool
) -> list[SettingChange]:
    """The settings of ``new`` that differ from ``saved``, the config of the
    model in ``folder`` it resumes. Raises :class:`ResumeConflict` listing
    every change that cannot be made: ``model`` ones always, ``learning`` ones
    unless ``change_settings`` (see :data:`mathy_a3c.config.RESUME_KINDS`)."""
    changes = new.changes_from(saved)
    fixed = [c for c in changes if c.kind == "model"]
    learning = [c for c in changes if c.kind == "learning"]
    if fixed or (learning and not change_settings):
        raise ResumeConflict(folder, fixed or learning)
    return changes


def check_space(folder: str, needed: int) -> None:
    """Raise :class:`FolderError` when ``folder``'s file system has less than
    ``needed`` bytes free: a checkpoint is written beside the previous one
    before it replaces it, so found now rather than at the first save."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the save will say
    if free < needed:
        raise FolderError(
            f"{folder!r} has {free // 1024} KiB free, and a checkpoint of this "
            f"model needs about {needed // 1024} KiB; free some space or train "
            f"into another folder"
        )


def _is_temp(name: str) -> bool:
    ours = name.startswith((f".{CHECKPOINT_FILE}.", f".{CONFIG_FILE}.", ".worker_"))
    return ours and name.endswith(".tmp")


class FolderLock:
    """The exclusive lock of one model folder (see the module docstring).

    :meth:`acquire` creates the folder if needed (and :attr:`created` says
    so), which also proves early that it can be written.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self.created = False
        self._fd: int | None = None

    def acquire(self) -> None:
        folder = self.folder
        try:
            self.created = not os.path.lexists(folder)
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:
            raise FolderError(
                f"{folder!r} is not a folder; give a folder for the model"
            ) from None
        except (OSError, ValueError) as error:
            raise FolderError(
                f"cannot create model folder {folder!r}: {_why(error)}"
            ) from None
        if not os.path.isdir(folder):
            raise FolderError(
                f"{folder!r} is not a folder; give a folder for the model"
            )
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise FolderError(
                f"cannot write to model folder {folder!r}: {_why(error)}"
            ) from None
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderBusy(
                f"{folder!r} is being trained by another run ({holder}); wait for "
                f"it to finish or stop it, or train into another folder"
            )
        previous = _read_record(fd)
        try:
            stale = previous.get("temp_tag")
            if isinstance(stale, str) and stale != TEMP_TAG:
                remove_temp_files(folder, stale)
            _write_record(fd)
        except OSError as error:
            os.close(fd)
            raise FolderError(
                f"cannot write to model folder {folder!r}: {_why(error)}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the lock file stays: removing it would let two
        runs lock two different files)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def discard_if_unused(self) -> None:
        """Release, and remove the folder again if :meth:`acquire` created it
        and nothing but the lock file was written since."""
        self.release()
        if not self.created:
            return
        with contextlib.suppress(OSError):
            if os.listdir(self.folder) == [LOCK_FILE]:
                os.unlink(self.path)
                os.rmdir(self.folder)


# A thread that holds a folder may take it again (the CLI, then train()).
_held: dict[str, tuple[int, FolderLock, int]] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def hold_folder(folder: str) -> Iterator[FolderLock]:
    """Hold ``folder``'s lock for the block; re-entrant within one thread.

    Another thread or process that asks for it meanwhile gets
    :class:`FolderBusy`.
    """
    key = os.path.abspath(folder)
    me = threading.get_ident()
    with _held_lock:
        owner, lock, depth = _held.get(key, (me, FolderLock(folder), 0))
        if owner != me:
            raise FolderBusy(
                f"{folder!r} is being trained by another thread of this process; "
                f"train into another folder"
            )
        if depth == 0:
            lock.acquire()
        _held[key] = (me, lock, depth + 1)
    try:
        yield lock
    finally:
        with _held_lock:
            _, lock, depth = _held[key]
            if depth == 1:
                del _held[key]
                lock.release()
            else:
                _held[key] = (me, lock, depth - 1)


def _why(error: BaseException) -> str:
    """An OS error without the path it repeats: ``[Errno 30] Read-only file system``."""
    if isinstance(error, OSError) and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}"
    return str(error)


# -- the lock itself ------------------------------------------------------------
def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False if taken."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_record(fd: int) -> dict[str, object]:
    """What the lock file says of its holder (empty if unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_holder(fd: int) -> str:
    record = _read_record(fd)
    if not isinstance(record.get("pid"), int):
        return "another process"
    host = record.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    started = f", started {record['started']}" if record.get("started") else ""
    command = f": {record['command']}" if record.get("command") else ""
    return f"process {record['pid']}{where}{started}{command}"


def _command_line() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv else "python"
    if program == "__main__.py":  # python -m mathy_a3c
        program = "mathy"
    elif program == "-c":
        program = "python -c"
    return " ".join([program, *sys.argv[1:]])


def _write_record(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": _command_line()[:300],
        "temp_tag": TEMP_TAG,
    }
    data = (json.dumps(record) + "\n").encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
