"""The model folder under faults: one writer, the user's files safe, failed saves.

Real training processes, real locks, a real full disk (a tiny tmpfs, when the
tests run as root).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from helpers import MATHY, TINY, mathy_env, start_training, wait_for_episode

from mathy_a3c import A3CAgent, A3CConfig
from mathy_a3c.checkpoint import (
    TEMP_TAG,
    CheckpointError,
    load_checkpoint,
    load_config,
)
from mathy_a3c.folder import (
    LOCK_FILE,
    FolderBusy,
    FolderError,
    FolderLock,
    hold_folder,
    inspect_folder,
)

TRAIN = [*TINY, "--no-progress"]


def _mathy(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MATHY, *args],
        capture_output=True,
        text=True,
        env=mathy_env(),
        timeout=timeout,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


def _stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> str:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return err


# -- one writer -------------------------------------------------------------------
def test_a_second_run_into_a_training_folder_exits_2_at_once_naming_the_first(
    tmp_path,
):
    folder = tmp_path / "agent"
    first = start_training(
        folder, "--episodes", "1000000", *TRAIN, stderr=subprocess.PIPE
    )
    try:
        wait_for_episode(first)
        started = time.monotonic()
        second = _mathy("train", "a3c", "poly", str(folder), *TRAIN)
        assert second.returncode == 2
        line = _one_error_line(second)
        holder = f"'{folder}' is being trained by another run (process {first.pid}"
        assert holder in line
        assert f"train a3c poly {folder} --episodes 1000000" in line  # its command
        assert time.monotonic() - started < 15  # refused before TensorFlow loads
        assert first.poll() is None  # the first run goes on
        err = _stop(first)
    finally:
        first.kill()
    assert first.returncode == 143, err
    saved = load_checkpoint(str(folder)).episodes
    assert f"saved the model ({saved} episodes in all)" in err  # none lost


def test_readers_never_see_half_a_checkpoint_while_a_run_saves_it(tmp_path):
    folder = tmp_path / "agent"
    run = start_training(
        folder, "--episodes", "1000000", "--save-every", "0.01", *TRAIN
    )
    try:
        wait_for_episode(run)
        deadline = time.monotonic() + 60  # the first save may follow the episode
        while not (folder / "checkpoint.npz").exists():
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.01)
        seen = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # ~100 saves a second meanwhile
            seen.add(load_checkpoint(str(folder)).episodes)
            load_config(str(folder))
        assert len(seen) > 3
        done = _mathy("simplify", "4x + 2x", "--model", str(folder))
        assert done.returncode in (0, 1), done.stderr  # read while it trains
    finally:
        run.kill()
        run.wait(timeout=60)


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    folder = str(tmp_path / "agent")
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with hold_folder(folder):
                pass
        except BaseException as error:
            errors.append(error)

    with hold_folder(folder) as outer, hold_folder(folder) as inner:
        assert inner is outer
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        with pytest.raises(FolderBusy):
            FolderLock(folder).acquire()  # another lock in this process
    assert isinstance(errors[0], FolderBusy)
    FolderLock(folder).acquire()  # released: free again


def test_an_agent_refuses_a_folder_another_run_saved_into_since_it_read_it(tiny):
    waiting = A3CAgent(A3CConfig(**tiny), console=False)
    A3CAgent(A3CConfig(**tiny), console=False).train()  # another run, meanwhile
    with pytest.raises(FolderError, match="changed since this agent read it"):
        waiting.train()
    assert load_checkpoint(tiny["model_dir"]).episodes == tiny["max_eps"]


# -- the user's files -------------------------------------------------------------
def test_a_folder_of_user_files_is_refused_and_left_alone(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    files = {
        "notes.txt": "my notes",
        ".checkpoint.npz.abc123": "looks like a temp file of a killed save",
        ".config.json.0123456789abcdef.x.tmp": "looks like one too",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    done = _mathy("train", "a3c", "poly", str(folder), *TRAIN)
    assert done.returncode == 2
    line = _one_error_line(done)
    assert f"'{folder}' is not empty and holds no mathy_a3c model" in line
    assert "--allow-nonempty" in line
    assert sorted(os.listdir(folder)) == sorted(files)
    done = _mathy(
        "train", "a3c", "poly", str(folder), "--episodes", "2", "--allow-nonempty",
        *TRAIN,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name, text in files.items():  # beside the model, untouched
        assert (folder / name).read_text() == text
    assert inspect_folder(str(folder)).has_model


def test_a_config_json_that_is_not_ours_is_never_overwritten(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"my": "settings"}')
    done = _mathy(
        "train", "a3c", "poly", str(folder), "--allow-nonempty", *TRAIN
    )  # fmt: skip
    assert done.returncode == 2
    assert "config.json is not a mathy_a3c config and training would overwrite" in (
        _one_error_line(done)
    )
    assert (folder / "config.json").read_text() == '{"my": "settings"}'


def test_only_the_temp_files_of_the_run_that_held_the_lock_are_removed(tmp_path):
    folder = tmp_path / "agent"
    folder.mkdir()
    killed = "0123456789abcdef"  # the tag a killed run wrote in the lock file
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "temp_tag": killed}))
    stale = f".checkpoint.npz.{killed}.k2j3.tmp"
    alike = ".checkpoint.npz.fedcba9876543210.k2j3.tmp"
    (folder / stale).write_bytes(b"half a checkpoint")
    (folder / alike).write_bytes(b"not ours to delete")
    lock = FolderLock(str(folder))
    lock.acquire()
    try:
        assert sorted(os.listdir(folder)) == sorted([LOCK_FILE, alike])
        record = json.loads((folder / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["temp_tag"] == TEMP_TAG
    finally:
        lock.release()


# -- resuming means the same run ----------------------------------------------------
def test_resume_refuses_changed_learning_settings_and_keeps_the_saved_ones(tmp_path):
    from click.testing import CliRunner

    from mathy_a3c.cli import app

    folder = str(tmp_path / "agent")
    train = [*TRAIN, "--episodes", "3"]

    def in_process(*args: str):  # the same command, without a new TensorFlow
        return CliRunner().invoke(app, ["train", "a3c", *args])

    first = in_process("poly", folder, *train, "--difficulty", "normal")
    assert first.exit_code == 0, first.output
    before = load_config(folder)
    done = _mathy("train", "a3c", "complex", folder, "--lr", "0.003", *TRAIN)
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "holds a model trained with other settings: TOPICS poly -> complex, " in line
    assert "--lr 0.001 -> 0.003" in line and "--change-settings" in line
    assert load_config(folder) == before  # nothing written
    # Left out, settings keep their saved values (difficulty stays normal);
    # run settings may change, and are shown.
    again = in_process("poly", folder, *train, "--workers", "1")
    assert again.exit_code == 0, again.output
    assert "Changed since the last run: --workers 2 -> 1" in again.output
    assert load_config(folder).difficulty == "normal"
    assert load_checkpoint(folder).episodes == 6
    changed = in_process("complex", folder, *train, "--change-settings")
    assert changed.exit_code == 0, changed.output
    assert "TOPICS poly -> complex" in changed.output
    assert load_config(folder).topics == ["complex"]


# -- failures at save time ------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("a file"), "is not a folder"),
        (lambda p: None, None),  # a path under a file: see below
    ],
)
def test_paths_that_cannot_be_a_model_folder_are_one_line_errors(
    tmp_path, make, message
):
    path = tmp_path / "target"
    make(path)
    if message is None:
        (tmp_path / "file").write_text("x")
        path, message = tmp_path / "file" / "sub", "cannot create model folder"
    done = _mathy("train", "a3c", "poly", str(path), *TRAIN)
    assert done.returncode == 2
    assert message in _one_error_line(done)


def test_paths_of_every_kind_are_one_line_errors_before_anything_is_written(
    tmp_path,
):
    from click.testing import CliRunner

    from mathy_a3c.cli import app

    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        str(tmp_path / "dangling"): "is not a folder",
        str(tmp_path / ("x" * 300)): "[Errno 36] File name too long",
        "a\x00b": "FOLDER must be a folder path; got 'a\\x00b'",
        "/proc/version": "is not a folder",
    }
    for path, message in cases.items():
        result = CliRunner().invoke(app, ["train", "a3c", "poly", path, *TRAIN])
        assert result.exit_code == 2, (path, result.output)
        assert message in result.output and len(result.output.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling"]


@contextlib.contextmanager
def _tmpfs(path, size: str):
    """A small tmpfs at ``path`` (needs root); skips the test otherwise."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill a disk needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _saved(folder) -> int:
    try:
        return load_checkpoint(str(folder)).episodes
    except CheckpointError:
        return 0


def _fill(disk) -> None:
    with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


def test_a_full_disk_never_costs_the_last_good_checkpoint(tmp_path):
    with _tmpfs(tmp_path / "disk", "400k") as disk:
        folder = disk / "agent"
        run = start_training(
            folder, "--episodes", "1000000", "--save-every", "0.2", *TRAIN,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for_episode(run)
            while not _saved(folder):  # a checkpoint that holds episodes
                time.sleep(0.05)
            _fill(disk)
            time.sleep(1.0)  # periodic saves fail meanwhile; training goes on
            assert run.poll() is None
            err = _stop(run)
        finally:
            run.kill()
        assert run.returncode == 1, err
        assert "Traceback" not in err
        assert "warning: could not save" in err and "training goes on" in err
        last = [line for line in err.splitlines() if line.startswith("Error: ")]
        assert len(last) == 1
        assert "[Errno 28] No space left on device" in last[0]
        kept = load_checkpoint(str(folder)).episodes  # complete and loadable
        assert f"the last good checkpoint, {kept} episodes, is kept" in last[0]
        assert kept >= 1
        # A disk that is already full is refused before training starts.
        done = _mathy("train", "a3c", "poly", str(folder), *TRAIN)
        assert done.returncode == 2
        assert "free some space or train into another folder" in (_one_error_line(done))


def test_a_read_only_folder_is_refused_before_training(tmp_path):
    with _tmpfs(tmp_path / "disk", "1m") as disk:
        (disk / "existing").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for target, message in (
            (disk / "new", "cannot create model folder"),
            (disk / "existing", "cannot write to model folder"),
        ):
            done = _mathy("train", "a3c", "poly", str(target), *TRAIN)
            assert done.returncode == 2
            line = _one_error_line(done)
            assert message in line and "[Errno 30] Read-only file system" in line


def test_a_folder_removed_during_training_ends_in_one_line_and_exit_1(tmp_path):
    folder = tmp_path / "agent"
    run = start_training(
        folder, "--episodes", "1000000", *TRAIN, stderr=subprocess.PIPE
    )
    try:
        wait_for_episode(run)
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        err = _stop(run)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: could not save {folder}/checkpoint.npz: [Errno 2] No such file or "
        f"directory; training since the last save is lost, and no checkpoint was "
        f"saved before"
    ]


def test_corrupt_model_files_are_one_line_errors_for_every_command(tmp_path):
    folder = tmp_path / "agent"
    done = _mathy("train", "a3c", "poly", str(folder), "--episodes", "2", *TRAIN)
    assert done.returncode == 0, done.stderr
    (folder / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    for args in (
        ["train", "a3c", "poly", str(folder), *TRAIN],
        ["simplify", "2x + x", "--model", str(folder)],
        ["evaluate", str(folder), "--problems", "2"],
    ):
        done = _mathy(*args)
        assert done.returncode == 2, done.stderr
        assert "checkpoint.npz is corrupt or unreadable" in _one_error_line(done)
    (folder / "config.json").write_text('{"topics": ["poly"], "lr": "fast"}')
    done = _mathy("simplify", "2x + x", "--model", str(folder))
    assert done.returncode == 2
    assert "config.json is not a valid config: lr must be a number; got 'fast'" in (
        _one_error_line(done)
    )


def test_the_api_raises_library_errors_for_a_bad_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is not a folder"):
        A3CAgent(A3CConfig(model_dir=str(tmp_path / "file")), console=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    config = A3CConfig(model_dir=str(tmp_path / "mine"), model_size=8)
    with pytest.raises(FolderError, match="holds no mathy_a3c model"):
        A3CAgent(config, console=False)
    A3CAgent(config, console=False, allow_nonempty=True)  # asked for: fine
