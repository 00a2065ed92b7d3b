"""The body of a Ray worker actor (see :mod:`mathy_a3c.ray_backend`).

The worker runs in a thread of the actor, behind the message protocol of
:mod:`mathy_a3c.backends`; :meth:`RayWorker.start` and
:meth:`RayWorker.exchange` hand it the driver's answers and return what it
sent up to its next question.

Weights and gradients (float32 vectors) travel in pieces of raw bytes
(:func:`split`): Ray passes an object of less than 100 KiB with the call
itself, while a larger one goes through the node's shared-memory store, whose
process (the raylet) then spent about 2.5 ms of CPU per update on a 2-core
machine.

Like :mod:`mathy_a3c.worker_process`, this module imports nothing heavy until
the worker starts: the actor's process is set up to train (quiet TensorFlow
logs, no oneDNN, one TensorFlow thread) before TensorFlow loads, and nothing
can fail in the actor's constructor, so whatever fails (TensorFlow, the
environment) is reported with its traceback.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from typing import Any

import numpy as np

#: Messages a worker sends without waiting for an answer.
ONE_WAY = ("show", "profile", "report")
#: The worker holds no episode number ahead any more: the driver took it
#: back, or it answered the worker's claim.
REVOKE = -1
#: Float32 values per piece of a weights or gradients vector: 80 KiB, under
#: Ray's default limit for objects passed with a call (100 KiB).
PIECE = 20 * 1024


def pieces_for(size: int) -> int:
    """Pieces a vector of ``size`` floats travels in."""
    return max(1, -(-size // PIECE))


def split(vector: np.ndarray | None, pieces: int) -> list[bytes]:
    """``vector``'s float32 values in ``pieces`` parts of raw bytes (empty
    parts for ``None``). Ray sends bytes as they are; a numpy array costs it
    a pickle on each side (1.9 against 2.6 ms per round trip of this model's
    weights and gradients, on a 2-core machine)."""
    if vector is None:
        return [b""] * pieces
    flat = np.asarray(vector, np.float32)
    return [flat[i * PIECE : (i + 1) * PIECE].tobytes() for i in range(pieces)]


def join(parts: Any) -> np.ndarray:
    """The float32 vector :func:`split` cut up (a new, writable array)."""
    return np.concatenate([np.frombuffer(part, np.float32) for part in parts])


class RayWorker:
    """One worker actor (made a Ray actor by the driver, with its resources).

    Every call returns ``1 + pieces`` objects: the worker's messages, then the
    pieces of the gradients its last message (an ``"update"``) carries.
    """

    def __init__(self) -> None:
        self.inbox: queue.Queue[tuple] = queue.Queue()
        self.outbox: queue.Queue[tuple] = queue.Queue()
        #: An episode number the driver handed out in advance: the next
        #: episode starts without a round trip to the driver.
        self.spare: int | None = None
        self.pieces = 1

    def start(
        self, worker_id: int, config: dict[str, Any], first_episode: int, pieces: int
    ) -> tuple:
        """Start the worker; returns where it runs, then its first messages."""

        from .quiet import quiet_native_logs

        self.pieces = pieces
        with quiet_native_logs():  # as in the training process
            from .runtime import configure_for_training

            configure_for_training()
            import tensorflow as tf

            tf.config.list_physical_devices()  # where it probes for CUDA
            from . import backends

        thread = threading.Thread(
            target=backends.run_remote_worker,
            args=(worker_id, config, first_episode, self.outbox.put, self.inbox.get),
            name=f"a3c-worker-{worker_id}",
            daemon=True,
        )
        thread.start()
        messages = [("hello", self.where()), *self._until_question()]
        return self._outgoing(*_detached(messages))

    def where(self) -> dict[str, Any]:
        """Where this actor runs: its node, host, process and package folder.
        It answers at once, before :meth:`start` loads TensorFlow, so the
        driver learns that the actor was placed."""
        import ray

        return {
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "package": os.path.dirname(os.path.abspath(__file__)),
        }

    def exchange(self, reply: tuple, spare: int | None, *weights: Any) -> tuple:
        """Answer the worker's last question (a ``"weights"`` answer comes in
        pieces), with the next episode's number in advance (``spare``;
        :data:`REVOKE`: it holds none now); returns the worker's next messages."""
        if weights:
            reply = (reply[0], join(weights))
        return self._outgoing(*self._answer(reply, spare))

    def exchange_whole(self, call: tuple) -> tuple:
        """:meth:`exchange` through a compiled graph's channel: ``call`` is
        ``(reply, spare, weights)`` and the result ``(messages, gradients)``,
        the vectors whole (``None`` where there are none)."""
        reply, spare, weights = call
        if weights is not None:  # the channel's buffer is reused: copy it out
            reply = (reply[0], np.array(weights, np.float32))
        return self._answer(reply, spare)

    def _answer(
        self, reply: tuple, spare: int | None
    ) -> tuple[list[tuple], np.ndarray | None]:
        if spare is not None:
            self.spare = None if spare == REVOKE else spare
        self.inbox.put(reply)
        return _detached(self._until_question())

    def _until_question(self) -> list[tuple]:
        """The worker's messages up to its next question for the driver. An
        episode's report that the spare number answers goes along as a
        ``("report", report)`` message."""
        messages = []
        while True:
            message = self.outbox.get()
            if message[0] == "episode" and self.spare is not None:
                message = ("report", message[1])
                self.inbox.put(("episode", self.spare))
                self.spare = None
            messages.append(message)
            if message[0] not in ONE_WAY:
                return messages

    def _outgoing(self, messages: list[tuple], gradients: np.ndarray | None) -> tuple:
        return (messages, *split(gradients, self.pieces))


def _detached(messages: list[tuple]) -> tuple[list[tuple], np.ndarray | None]:
    """The messages, and the gradients their last one (an ``"update"``)
    carries, taken out of it (they travel beside the messages)."""
    if messages[-1][0] != "update":
        return messages, None
    gradients, messages[-1] = messages[-1][1], ("update", None)
    return messages, gradients
