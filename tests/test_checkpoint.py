"""The model folder: atomic writes and clear errors for missing or corrupt files."""

import os

import numpy as np
import pytest

from mathy_a3c.checkpoint import (
    CheckpointError,
    assign_by_path,
    atomic_write,
    load_checkpoint,
    load_config,
    save_checkpoint,
    save_config,
)
from mathy_a3c.config import A3CConfig


def _save(folder, value=1.0, episodes=3):
    return save_checkpoint(
        str(folder),
        weights={"dense/kernel": np.full((2, 2), value, np.float32)},
        optimizer={"adam/iteration": np.asarray(7)},
        episodes=episodes,
        steps=40,
    )


def test_round_trip(tmp_path):
    config = A3CConfig(topics=["complex"], model_dir=str(tmp_path))
    save_config(str(tmp_path), config)
    _save(tmp_path)
    assert load_config(str(tmp_path)) == config
    checkpoint = load_checkpoint(str(tmp_path))
    assert checkpoint.episodes == 3 and checkpoint.steps == 40
    np.testing.assert_array_equal(checkpoint.weights["dense/kernel"], np.ones((2, 2)))
    assert int(checkpoint.optimizer["adam/iteration"]) == 7


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    _save(tmp_path, value=1.0)

    def explode(handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(tmp_path / "checkpoint.npz"), explode)
    assert load_checkpoint(str(tmp_path)).weights["dense/kernel"][0, 0] == 1.0
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_config(str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_config(str(tmp_path))
    with pytest.raises(CheckpointError, match="checkpoint.npz is missing"):
        load_checkpoint(str(tmp_path))


def test_corrupt_files_are_named(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="checkpoint.npz is corrupt"):
        load_checkpoint(str(tmp_path))
    (tmp_path / "config.json").write_text("{truncated")
    with pytest.raises(CheckpointError, match="config.json is unreadable"):
        load_config(str(tmp_path))


def test_assign_by_path_rejects_a_different_model(tmp_path):
    class Var:
        def __init__(self, path, shape):
            self.path, self.shape, self.value = path, shape, None

        def assign(self, value):
            self.value = value

    good = Var("dense/kernel", (2, 2))
    assign_by_path([good], {"dense/kernel": np.ones((2, 2))}, "weights")
    assert good.value is not None
    with pytest.raises(CheckpointError, match="shape"):
        assign_by_path(
            [Var("dense/kernel", (3, 2))], {"dense/kernel": np.ones((2, 2))}, "weights"
        )
    with pytest.raises(CheckpointError, match="missing"):
        assign_by_path(
            [Var("other/kernel", (2, 2))], {"dense/kernel": np.ones((2, 2))}, "weights"
        )


def test_stale_temp_files_from_a_killed_save_are_removed(tmp_path):
    from mathy_a3c.checkpoint import remove_stale_temp_files

    _save(tmp_path)
    (tmp_path / ".checkpoint.npz.abc123").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("mine")
    assert remove_stale_temp_files(str(tmp_path)) == [".checkpoint.npz.abc123"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "notes.txt"]
