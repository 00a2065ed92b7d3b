"""The ray backend's line to one worker actor: one call at a time, made from a
thread of its own, its outcome put on a queue that the driver reads.

An ordinary actor call costs about 3 ms per update with this model's
weights and gradients (2.8 to 3.3 ms), of which 1.2 to 1.4 ms is Ray's own
cost per call, and 1.7 ms of the driver's CPU (``benchmarks/ray_calls.py``,
2 cores). For an actor on the driver's own node, a line compiles a Ray
Compiled Graph of the one call the worker makes again and again
(:meth:`~mathy_a3c.ray_worker.RayWorker.exchange_whole`), and the updates
then go through a shared-memory channel: 0.70 ms each, 0.66 ms of the
driver's CPU. Calls to actors on other nodes stay ordinary ones: their first
compiled call hung in testing (Ray 2.60, a cluster of raylets on one
machine), and an update that crosses the network costs that network's time
anyway.

Each line runs a thread because the driver waits on every worker at once,
and ``ray.wait`` takes ordinary object refs only.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .ray_worker import join, split

#: The oldest Ray whose compiled graphs this module uses (Ray's docs advise
#: 2.44 or later; older ones fetch results differently): with an older Ray,
#: every call is an ordinary one.
COMPILED_GRAPHS_SINCE = (2, 44)


def compiled_graphs_supported(version: str) -> bool:
    """Whether Ray ``version`` (``ray.__version__``) is one whose compiled
    graphs the lines use."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= COMPILED_GRAPHS_SINCE


#: The logger of Ray's compiled graphs. It logs four INFO lines for every
#: graph taken down (at every run's end, for every worker), and the
#: traceback of a graph's last call when its actor died (the ray backend
#: reports that loss itself, in one line).
GRAPH_LOGGER = "ray.dag.compiled_dag_node"
#: The message of that traceback.
DEAD_ACTOR_TEARDOWN = "Error cancelling worker task"


class _GraphLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        return record.getMessage() != DEAD_ACTOR_TEARDOWN


@contextlib.contextmanager
def quiet_graph_logs() -> Iterator[None]:
    """The compiled graphs' INFO lines, and their tracebacks for actors that
    died, left out of the log in the block (a filter of the block's own)."""
    logger = logging.getLogger(GRAPH_LOGGER)
    quiet = _GraphLogs()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class Outcome(NamedTuple):
    """What one call to a worker's actor came to."""

    line: Line
    #: The worker's messages; ``None`` when the call failed.
    messages: list[tuple] | None
    #: The gradients its last message (an ``"update"``) carries, whole.
    gradients: np.ndarray | None
    #: Why the call failed: a ``RayActorError`` when the actor is lost.
    error: BaseException | None = None


class Line:
    """Calls to one worker's actor, made in order by a thread of the line."""

    def __init__(
        self, ray: Any, worker: int, actor: Any, pieces: int, outcomes: queue.Queue
    ) -> None:
        self.ray = ray
        self.worker = worker
        self.actor = actor
        #: Pieces the vectors travel in through ordinary calls.
        self.pieces = pieces
        self.outcomes = outcomes
        #: The compiled graph of ``exchange_whole``, once compiled.
        self.compiled: Any = None
        #: A call failed: the actor is lost or the run stops; nothing to
        #: compile for.
        self.failed = False
        self._jobs: queue.Queue[tuple | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name=f"a3c-ray-line-{worker}", daemon=True
        )
        self._thread.start()

    def start(self, *args: Any) -> None:
        """Ask the actor where it runs, then call its ``start``; the outcomes
        come to the queue, the first as a ``("placed", where)`` message as
        soon as Ray has placed the actor."""
        self._jobs.put(("where", ()))
        self._jobs.put(("start", args))

    def exchange(self, reply: tuple, spare: int | None) -> None:
        """Call the actor's exchange with ``reply`` (a ``"weights"`` reply
        carries the vector whole) and ``spare``."""
        self._jobs.put(("exchange", (reply, spare)))

    def compile(self) -> None:
        """Make the next exchanges through a compiled graph (or keep them
        ordinary calls if Ray cannot compile it, and say why)."""
        self._jobs.put(("compile", ()))

    def close(self, timeout: float = 10.0) -> None:
        """End the line's thread after its calls, and its compiled graph."""
        self._jobs.put(None)
        self._thread.join(timeout)

    # -- the line's thread ---------------------------------------------------
    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            kind, args = job
            if kind == "compile":
                if not self.failed:
                    self._compile()
            else:
                outcome = self._call(kind, args)
                self.failed = self.failed or outcome.error is not None
                self.outcomes.put(outcome)
        if self.compiled is not None:
            # Its actor is about to be killed, or dead, or Ray stopped: a
            # graph that cannot be taken down goes with them.
            with contextlib.suppress(Exception):
                self.compiled.teardown()

    def _compile(self) -> None:
        try:
            from ray.dag import InputNode

            with InputNode() as call:
                graph = self.actor.exchange_whole.bind(call)
            self.compiled = graph.experimental_compile()
        except Exception as error:  # an older Ray, or one that cannot here
            why = " ".join(str(error).split())[:200] or type(error).__name__
            print(
                f"ray: worker {self.worker} talks through ordinary actor calls "
                f"(no compiled graph: {why})",
                file=sys.stderr,
            )

    def _call(self, kind: str, args: tuple) -> Outcome:
        ray = self.ray
        try:
            if kind == "where":
                where = ray.get(self.actor.where.remote())
                return Outcome(self, [("placed", where)], None)
            if kind == "start":
                return self._ordinary(self.actor.start, *args)
            reply, spare = args
            weights = None
            if reply[0] == "weights":  # the vector travels beside the reply
                reply, weights = ("weights", None), reply[1]
            if self.compiled is None:
                pieces: list[bytes] = []
                if weights is not None:
                    pieces = split(weights, self.pieces)
                return self._ordinary(self.actor.exchange, reply, spare, *pieces)
            messages, gradients = ray.get(
                self.compiled.execute((reply, spare, weights)), timeout=-1
            )
            if gradients is not None:  # out of the channel's buffer
                gradients = np.array(gradients, np.float32)
            return Outcome(self, messages, gradients)
        except Exception as error:  # the call failed: the driver decides
            return Outcome(self, None, None, error)

    def _ordinary(self, method: Any, *args: Any) -> Outcome:
        """An ordinary actor call: the messages, then the gradients' pieces."""
        refs = method.options(num_returns=1 + self.pieces).remote(*args)
        messages, *parts = self.ray.get(refs)
        gradients = join(parts) if messages[-1] == ("update", None) else None
        return Outcome(self, messages, gradients)
