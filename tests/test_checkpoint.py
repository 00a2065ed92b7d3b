"""The model folder: atomic writes and clear errors for missing or corrupt files."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mathy_a3c.checkpoint import (
    CheckpointError,
    atomic_write,
    check_layout,
    load_checkpoint,
    load_config,
    save_checkpoint,
    save_config,
)
from mathy_a3c.config import A3CConfig
from mathy_a3c.parameter_server import TrainingState

FIXTURES = Path(__file__).parent / "fixtures"


def _state(value=1.0, iterations=7):
    weights = {"dense/kernel": np.full((2, 2), value, np.float32)}
    moments = {"dense/kernel": np.full((2, 2), 0.5, np.float32)}
    return TrainingState(weights, moments, moments, iterations)


def _save(folder, value=1.0, episodes=3):
    return save_checkpoint(str(folder), _state(value), episodes=episodes, steps=40)


def test_round_trip(tmp_path):
    config = A3CConfig(topics=["complex"], model_dir=str(tmp_path))
    save_config(str(tmp_path), config)
    _save(tmp_path)
    assert load_config(str(tmp_path)) == config
    checkpoint = load_checkpoint(str(tmp_path))
    assert checkpoint.episodes == 3 and checkpoint.steps == 40
    np.testing.assert_array_equal(checkpoint.weights["dense/kernel"], np.ones((2, 2)))
    assert checkpoint.state.iterations == 7
    assert checkpoint.state.momentum["dense/kernel"][0, 0] == 0.5


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


def test_a_state_that_does_not_fit_the_model_is_named():
    layout = [("dense/kernel", 0, 4, (2, 2))]
    check_layout(_state(), layout, "F")
    with pytest.raises(CheckpointError, match="shape"):
        check_layout(_state(), [("dense/kernel", 0, 6, (3, 2))], "F")
    with pytest.raises(CheckpointError, match="missing"):
        check_layout(_state(), [("other/kernel", 0, 4, (2, 2))], "F")


def test_a_version_1_checkpoint_written_before_the_format_was_ours_loads(tmp_path):
    """tests/fixtures/checkpoint_v1 was saved by the code of 2026-11-25, when
    the optimizer state was Keras Adam's variables."""
    import shutil

    from mathy_a3c import A3CAgent

    folder = tmp_path / "v1"
    shutil.copytree(FIXTURES / "checkpoint_v1", folder)
    old = load_checkpoint(str(folder))
    assert (old.episodes, old.state.iterations) == (3, 5)
    assert old.state.momentum.keys() == old.state.weights.keys()
    agent = A3CAgent(load_config(str(folder)).replace(model_dir=str(folder)))
    assert agent.resumed and agent.total_episodes == 3
    assert agent.global_model.iterations == 5
    agent.save()  # written again in today's format, nothing lost
    new = load_checkpoint(str(folder))
    assert new.state.iterations == 5 and new.episodes == 3
    for part in ("weights", "momentum", "velocity"):
        for path, value in getattr(old.state, part).items():
            np.testing.assert_array_equal(getattr(new.state, part)[path], value)
    # The like-term and depth inputs came later: their weights start at zero,
    # so the old model's outputs are kept exactly.
    added = sorted(set(new.state.weights) - set(old.state.weights))
    assert added == ["like_factors/kernel", "like_terms/kernel", "node_depth/kernel"]
    for part in ("weights", "momentum", "velocity"):
        for path in added:
            assert not getattr(new.state, part)[path].any()
    from mathy_a3c.envs import MathyTask, stack

    seen = MathyTask(["poly"], "normal", seed=1).reset()
    assert (seen.like.any() or seen.factors.any()) and seen.depth.any()
    blind = seen._replace(
        like=np.zeros_like(seen.like),
        factors=np.zeros_like(seen.factors),
        depth=np.zeros_like(seen.depth),
    )
    for a, b in zip(
        agent.network.predict(stack([seen])),
        agent.network.predict(stack([blind])),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_only_the_temp_files_of_the_given_writer_are_removed(tmp_path):
    from mathy_a3c.checkpoint import TEMP_TAG, remove_temp_files

    _save(tmp_path)
    (tmp_path / ".checkpoint.npz.0123456789abcdef.x1y2.tmp").write_bytes(b"half")
    (tmp_path / ".config.json.0123456789abcdef.qq_9.tmp").write_bytes(b"{")
    mine_alike = [".checkpoint.npz.abc123", ".checkpoint.npz.fedcba9876543210.z.tmp"]
    for name in mine_alike:  # look like temp files, written by someone else
        (tmp_path / name).write_bytes(b"the user's")
    (tmp_path / "notes.txt").write_text("mine")
    removed = remove_temp_files(str(tmp_path), "0123456789abcdef")
    assert sorted(removed) == [
        ".checkpoint.npz.0123456789abcdef.x1y2.tmp",
        ".config.json.0123456789abcdef.qq_9.tmp",
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["checkpoint.npz", "notes.txt", *mine_alike]
    )
    assert TEMP_TAG not in "".join(os.listdir(tmp_path))  # saves leave none behind


def test_a_save_that_fails_raises_save_error_naming_the_path_and_keeps_the_last(
    tmp_path,
):
    from mathy_a3c.checkpoint import SaveError

    _save(tmp_path, value=1.0, episodes=3)
    with pytest.raises(SaveError, match=r"could not save .*checkpoint.npz: "):
        save_checkpoint(str(tmp_path / "gone"), _state(), 1, 1)
    assert load_checkpoint(str(tmp_path)).episodes == 3


# -- files of any shape: a CheckpointError naming the file, never a crash -------
def _npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


GOOD = {
    "model/dense/kernel": np.ones((2, 2), np.float32),
    "adam/m/dense/kernel": np.ones((2, 2), np.float32),
    "adam/v/dense/kernel": np.ones((2, 2), np.float32),
    "adam/iterations": np.asarray(4),
    "counters/episodes": np.asarray(3),
    "counters/steps": np.asarray(9),
    "format_version": np.asarray(2),
}


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({**GOOD, "format_version": np.asarray(7)}, "has format version 7"),
        ({k: v for k, v in GOOD.items() if k != "format_version"}, "format version -1"),
        ({k: v for k, v in GOOD.items() if k != "adam/v/dense/kernel"}, "second mom"),
        ({**GOOD, "adam/iterations": np.asarray([1, 2])}, "adam/iterations"),
        ({k: v for k, v in GOOD.items() if k != "counters/steps"}, "counters/steps"),
        ({**GOOD, "counters/episodes": np.arange(3)}, "counters/episodes"),
        ({**GOOD, "counters/episodes": np.asarray(2.5)}, "counters/episodes"),
        ({**GOOD, "model/dense/kernel": np.asarray(["a", "b"])}, "holds <U1 values"),
        (
            {**GOOD, "model/dense/kernel": np.asarray([1.0, np.nan], np.float32)},
            "not finite",
        ),
        ({**GOOD, "model/x": np.asarray([object()], dtype=object)}, "numbers only"),
    ],
)
def test_odd_checkpoints_are_named_errors(tmp_path, arrays, message):
    _npz(tmp_path / "checkpoint.npz", **arrays)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(str(tmp_path))
    assert "checkpoint.npz" in str(info.value)
    assert "pickle" not in str(info.value).lower()


def test_an_archive_that_is_not_a_checkpoint_is_refused_without_reading_it(tmp_path):
    import zipfile

    path = tmp_path / "checkpoint.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="'notes.txt', which is not an array"):
        load_checkpoint(str(tmp_path))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/a.npy", b"\x00" * 1000)
    with pytest.raises(CheckpointError, match="compressed"):
        load_checkpoint(str(tmp_path))
    # a header that promises a terabyte in a few bytes is not allocated
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (2**38,)
    with zipfile.ZipFile(path, "w") as archive, archive.open("model/a.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="declares more data than the file holds"):
        load_checkpoint(str(tmp_path))


@given(st.binary(max_size=400))
def test_any_bytes_as_a_checkpoint_give_a_checkpoint_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("bytes")
    (folder / "checkpoint.npz").write_bytes(b"PK\x03\x04" + data)
    with pytest.raises(CheckpointError):
        load_checkpoint(str(folder))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "a config must be a JSON object of fields; got list"),
        ('{"topics": 5}', "topics must be a list of names; got 5"),
        ('{"nope": 1}', "Unknown config field(s) 'nope'"),
        ("[" * 100_000, "is unreadable"),
        ('{"lr": NaN}', "lr must be in (0.0, 1.0]; got nan"),
        ("\udcff", "is unreadable"),
    ],
)
def test_odd_configs_are_named_errors(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text, errors="surrogateescape")
    with pytest.raises(CheckpointError) as info:
        load_config(str(tmp_path))
    assert message in str(info.value)
    assert "config.json" in str(info.value) and "\n" not in str(info.value)


def test_a_huge_config_is_not_read(tmp_path):
    (tmp_path / "config.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(CheckpointError, match="more than any config"):
        load_config(str(tmp_path))


@given(
    st.recursive(
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(["topics", "lr", "num_workers", "difficulty", "x"]),
                inner,
                max_size=4,
            ),
        ),
        max_leaves=10,
    )
)
def test_any_json_as_config_json_gives_a_config_or_a_checkpoint_error(
    tmp_path_factory, data
):
    import json

    folder = tmp_path_factory.mktemp("json")
    (folder / "config.json").write_text(json.dumps(data))
    try:
        load_config(str(folder))
    except CheckpointError as error:
        assert "\n" not in str(error)
