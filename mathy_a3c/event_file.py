"""TensorBoard event files of scalars, written without TensorFlow.

Training writes its curves from the process that drives the workers: with
the threads backend, the same interpreter the workers run in. TensorFlow's
summary writer costs that interpreter about 0.3 ms of Python per write plus
a TensorFlow call; this writer builds the protocol buffers (TensorBoard's
own, from the ``tensorboard`` package) and appends one record per write.

The file is what ``tf.summary.scalar`` writes in TensorFlow 2: a version
event, then events whose values are float32 scalar tensors of the
``scalars`` plugin (the plugin named with a tag's first value only), each
record framed as a TFRecord (length, masked CRC-32C of the length, data,
masked CRC-32C of the data). TensorBoard, ``EventAccumulator`` and
``tf.data.TFRecordDataset`` read it.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import (
    DATA_CLASS_SCALAR,
    Summary,
    SummaryMetadata,
)
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.types_pb2 import DT_FLOAT


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The CRC as TFRecords store it: rotated right by 15 bits, plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


_FILES = itertools.count()


class ScalarWriter:
    """Appends scalars to a new event file in ``logdir``; each write is
    flushed, so TensorBoard sees it at once. Raises ``OSError`` as the file
    system does (a full disk, a removed folder)."""

    def __init__(self, logdir: str) -> None:
        os.makedirs(logdir, exist_ok=True)
        now = time.time()
        name = (
            f"events.out.tfevents.{int(now)}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_FILES)}.v2"
        )
        #: The event file's path.
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "wb")  # noqa: SIM115 (open until close())
        #: Tags written so far: the plugin is named with a tag's first value.
        self._described: set[str] = set()
        try:
            self._append(Event(wall_time=now, file_version="brain.Event:2"))
        except OSError:
            self._file.close()
            raise

    def scalars(self, values: dict[str, float], step: int) -> None:
        """One event holding each tag's value at ``step``."""
        summary = Summary()
        for tag, value in values.items():
            entry = summary.value.add(
                tag=tag,
                tensor=TensorProto(dtype=DT_FLOAT, float_val=[value]),
            )
            if tag not in self._described:
                entry.metadata.CopyFrom(_SCALARS)
                self._described.add(tag)
        self._append(Event(wall_time=time.time(), step=int(step), summary=summary))

    def _append(self, event: Event) -> None:
        self._file.write(record(event.SerializeToString()))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


_SCALARS = SummaryMetadata(
    plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=DATA_CLASS_SCALAR,
)
