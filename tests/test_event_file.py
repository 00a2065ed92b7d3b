import struct

import numpy as np
import pytest

from mathy_a3c.event_file import ScalarWriter, crc32c, masked_crc32c, record


def test_crc32c_matches_the_castagnoli_check_values():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4: 32 bytes of zeros
    assert crc32c(b"\xff" * 32) == 0x62A8AB43


def test_a_record_is_framed_as_tfrecord_reads_it():
    data = b"an event, serialized"
    framed = record(data)
    (length,) = struct.unpack("<Q", framed[:8])
    assert length == len(data)
    assert struct.unpack("<I", framed[8:12])[0] == masked_crc32c(framed[:8])
    assert framed[12:-4] == data
    assert struct.unpack("<I", framed[-4:])[0] == masked_crc32c(data)


def test_tensorflow_reads_every_record_and_checks_its_crc(tmp_path):
    import tensorflow as tf

    writer = ScalarWriter(str(tmp_path))
    writer.scalars({"a": 1.0}, step=1)
    writer.close()
    read = list(tf.data.TFRecordDataset(writer.path).as_numpy_iterator())
    assert len(read) == 2  # the version event, then the scalars
    # A flipped byte in the data fails TensorFlow's CRC check.
    blob = bytearray(open(writer.path, "rb").read())
    blob[-6] ^= 0xFF
    broken = tmp_path / "broken.tfevents"
    broken.write_bytes(bytes(blob))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(broken)).as_numpy_iterator())


def test_tensorboard_reads_the_scalars_as_tf_summary_writes_them(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )
    from tensorboard.util.tensor_util import make_ndarray

    writer = ScalarWriter(str(tmp_path))
    writer.scalars({"loss/total": 0.25, "episode/reward": 1.5}, step=10)
    writer.scalars({"loss/total": 0.125, "episode/reward": -1.0}, step=20)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert set(events.Tags()["tensors"]) == {"loss/total", "episode/reward"}
    expected_values = {"loss/total": [0.25, 0.125], "episode/reward": [1.5, -1.0]}
    for tag, expected in expected_values.items():
        seen = events.Tensors(tag)
        assert [e.step for e in seen] == [10, 20]
        values = [make_ndarray(e.tensor_proto) for e in seen]
        assert all(v.dtype == np.float32 and v.shape == () for v in values)
        assert [float(v) for v in values] == expected
        metadata = events.SummaryMetadata(tag)
        assert metadata.plugin_data.plugin_name == "scalars"


def test_two_writers_in_one_folder_write_two_files(tmp_path):
    first, second = ScalarWriter(str(tmp_path)), ScalarWriter(str(tmp_path))
    assert first.path != second.path
    assert first.path.split("/")[-1].startswith("events.out.tfevents.")
    first.close()
    second.close()
