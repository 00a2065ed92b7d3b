"""The first code a worker process of the processes backend runs.

It makes the process safe to lose before anything heavy loads: importing
TensorFlow takes seconds, and a worker must not outlive the training process
in the meantime, nor be stopped by a signal meant for it.

* On Linux the kernel kills the worker when the process that started it dies
  (``PR_SET_PDEATHSIG``), even by ``SIGKILL``; elsewhere the worker ends at
  its next message, which fails once the pipe's other end is gone.
* Ctrl-C and SIGTERM sent to the whole process group are ignored: the
  training process stops its workers itself, after saving. The process
  starts with both blocked (held pending) and ignores them before it
  unblocks them, so none arrives in between.

This module imports nothing from the package beyond the standard library
until the worker starts, so a spawned process reaches these lines first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1
#: The signals a training process handles (save, then exit); its workers ignore them.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def process_main(
    worker_ids: list[int],
    config: dict[str, Any],
    first_episode: int,
    conns: list[Connection],
    parent: int,
    shared: Any,
) -> None:
    """Run remote workers, each over its own connection in ``conns``;
    ``parent`` is the coordinator's pid, ``shared`` its global model in
    shared memory (:class:`~mathy_a3c.parameter_server.SharedState`)."""
    die_with_parent(parent)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # started with them blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    from .quiet import quiet_native_logs

    with quiet_native_logs():  # as in the training process
        from .runtime import configure_for_training

        configure_for_training()
        import tensorflow as tf

        tf.config.list_physical_devices()  # where it probes for CUDA and says so
        from .backends import Channel, run_worker_process
        from .pipes import readable

    try:
        channels = [Channel(conn.send, conn.recv, readable(conn)) for conn in conns]
        run_worker_process(worker_ids, config, first_episode, channels, shared)
    finally:
        for conn in conns:
            conn.close()


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
