"""Where workers run: threads in this process, or separate OS processes.

Both backends run the same :class:`~mathy_a3c.worker.Worker`. It only sees
three narrow interfaces (a learner, a reporter and an episode source); a
backend decides what stands behind them:

* ``threads``: the global model itself (gradients applied under a lock), a
  queue to the main thread, and a shared :class:`EpisodeCounter`. The worker
  threads take turns at the interpreter (:mod:`mathy_a3c.turn`);
* ``processes``: the global model and its optimizer in shared memory, under
  a lock shared by the processes (:meth:`GlobalModel.share`): a worker
  process applies its own gradients and copies the new weights, waiting for
  no other process. A pipe per worker to the coordinator in the main
  process carries the rest: the worker asks it for each episode number (so
  ``max_eps`` stays exact across processes) and reports its episodes. There
  are no more worker processes than CPUs (``worker_processes``): more
  workers share them as threads that take turns, as in ``threads``.

The agent's main loop calls :meth:`Backend.poll` repeatedly; the processes
backend answers its workers' requests there and queues their episodes for the
callbacks, exactly like worker threads do.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, Protocol

import numpy as np

from .callbacks import QueueReporter
from .config import A3CConfig
from .counting import EpisodeCounter, StepCounter
from .model import ActorCritic
from .parameter_server import GlobalModel, SharedState
from .pipes import Mailboxes
from .runtime import configure_for_training, freeze_built_objects
from .turn import Turn
from .types import EpisodeReport
from .worker import Worker
from .worker_process import STOP_SIGNALS, process_main

#: Seconds a stopping worker gets to finish its step before it is killed.
JOIN_TIMEOUT_S = 60.0
#: Seconds to wait for a worker process whose pipe closed, for its exit code.
EXIT_CODE_WAIT_S = 1.0
#: How the processes backend's worker processes are named.
WORKER_PROCESS_PREFIX = "a3c-worker-"
#: What a script that trains at its top level must add (a worker process,
#: spawned, imports the script again: multiprocessing's "safe importing of
#: main module").
MAIN_GUARD = (
    "a script that trains with backend 'processes' must start training under "
    '`if __name__ == "__main__":`, since each worker process imports the '
    "script again"
)


class TrainingInWorker(RuntimeError):
    """Training was started inside a worker process of the processes backend:
    the script it imported again trains at its top level."""


def check_not_in_worker_process() -> None:
    """Raise :class:`TrainingInWorker` in a worker process of the processes
    backend (named ``a3c-worker-...``; spawn names it before it imports the
    main script again), before training touches the model folder."""
    if multiprocessing.current_process().name.startswith(WORKER_PROCESS_PREFIX):
        raise TrainingInWorker(
            f"training started inside a worker process: {MAIN_GUARD}"
        )


class RemoteWorkerError(RuntimeError):
    """An exception raised in a worker process; the message is its traceback."""


class Backend(Protocol):
    name: str
    errors: list[tuple[int, BaseException]]

    def start(self) -> None: ...

    def poll(self, timeout: float) -> None:
        """Serve the workers for up to ``timeout`` seconds."""

    def alive(self) -> bool: ...

    def close(self) -> None:
        """Start no more episodes; episodes under way finish."""

    def stop(self) -> None:
        """Stop every worker now and wait for them (kill stragglers)."""


# -- threads -----------------------------------------------------------------


class ThreadBackend:
    """``num_workers`` threads sharing the global model (the classic A3C)."""

    name = "threads"

    def __init__(
        self,
        config: A3CConfig,
        global_model: GlobalModel,
        reporter: QueueReporter,
        first_episode: int,
    ) -> None:
        self.stop_event = threading.Event()
        # One worker takes no turns: it would only hand the interpreter over
        # to nobody after every update.
        self.turn = Turn() if config.num_workers > 1 else None
        self.episodes = EpisodeCounter(config.max_eps)
        self.errors: list[tuple[int, BaseException]] = []
        steps = StepCounter()
        self.workers: list[Worker] = []
        for i in range(config.num_workers):
            self.workers.append(
                Worker(
                    i,
                    config,
                    global_model,
                    reporter,
                    self.episodes,
                    steps,
                    self.stop_event,
                    first_episode=first_episode,
                    turn=self.turn,
                    # Its traced gradients, and where it can its local model.
                    beside=self.workers[0] if self.workers else None,
                )
            )
        self.threads = [
            threading.Thread(
                target=self._run, args=(w,), name=f"a3c-worker-{w.id}", daemon=True
            )
            for w in self.workers
        ]

    def _run(self, worker: Worker) -> None:
        try:
            worker.run()
        except BaseException as error:  # handed to the main thread, re-raised there
            self.errors.append((worker.id, error))
            self.stop_event.set()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def poll(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.02))

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def close(self) -> None:
        self.episodes.close()

    def stop(self) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            print(
                f"warning: workers still running after stop: {stuck}", file=sys.stderr
            )


# -- remote workers (processes, ray): one message protocol --------------------
#
# worker -> coordinator            coordinator -> worker
#   ("claim",)                       ("episode", n) | ("stop",)
#   ("update", flat_gradients)       ("weights", flat_weights) | ("stop",)
#   ("weights",)                     ("weights", flat_weights)
#   ("episode", EpisodeReport)       ("episode", n) | ("stop",): the next claim
#   ("report", EpisodeReport)        -: the next number was handed out
#                                       ahead (ray)
#   ("show", worker, text)           -
#   ("profile", worker, stats)       -: marshalled cProfile statistics
#   ("done",) | ("error", traceback) -
#
# Worker processes send no "update" or "weights": they share the global model
# (GlobalModel.attach) and apply their gradients to it themselves. Nor do they
# wait for answers between episodes: each keeps one claim ahead (two claims
# first, then a claim with every report), so the number it needs next was
# asked for an episode ago.


class Channel(NamedTuple):
    """A remote worker's ends of its channel to the coordinator."""

    send: Callable[[tuple], None]
    recv: Callable[[], tuple]
    #: Whether a reply is waiting, so that ``recv`` returns at once (``None``:
    #: the channel cannot tell).
    ready: Callable[[], bool] | None = None


class _Link:
    """A remote worker's view of the coordinator: learner, reporter, episodes.

    With ``global_model`` (attached to the coordinator's, in shared memory),
    the worker learns through it directly; without, it asks the coordinator
    (Ray).
    """

    def __init__(
        self,
        channel: Channel,
        stop: threading.Event,
        global_model: GlobalModel | None = None,
        turn: Turn | None = None,
    ) -> None:
        self.send, self.recv, self.ready = channel
        self.stop = stop
        self.global_model = global_model
        #: Shared with the other workers of this process: given up while
        #: waiting for the coordinator's reply.
        self.turn = turn
        #: The episode number the last report's reply handed out, not yet used.
        self._next: int | None = None
        #: Replies the coordinator owes, in the order asked. A worker that
        #: shares the global model keeps one claim ahead: it asks for its
        #: next episode's number before it needs it, and sends its reports
        #: without waiting (see :meth:`claim`).
        self._owed = 0

    def _ask(self, *message: Any) -> Any:
        self.send(message)
        return self._answer()

    def _answer(self) -> Any:
        """The coordinator's next reply (``None`` for "stop"). A reply already
        here is read at once; the turn is given up only to wait for one (an
        episode's number is asked for an episode ahead, so between episodes
        the worker keeps its turn for its quantum: ``Turn.between_updates``)."""
        if self.turn is None or (self.ready is not None and self.ready()):
            reply = self.recv()
        else:
            with self.turn.away():
                reply = self.recv()
        if reply[0] == "stop":
            self.stop.set()
            return None
        return reply[1]

    # Learner
    def update(self, local: ActorCritic) -> np.ndarray | None:
        if self.global_model is None:
            return self._take(local, self._ask("update", local.flat_gradients()))
        return None if self._stopped() else self.global_model.update(local)

    def copy_to(self, local: ActorCritic) -> np.ndarray | None:
        if self.global_model is None:
            return self._take(local, self._ask("weights"))
        return None if self._stopped() else self.global_model.copy_to(local)

    def _stopped(self) -> bool:
        """Whether the coordinator stopped training (``stop`` is then set)."""
        if self.global_model is not None and self.global_model.stopping:
            self.stop.set()
        return self.stop.is_set()

    def _take(
        self, local: ActorCritic, weights: np.ndarray | None
    ) -> np.ndarray | None:
        """Weights from the coordinator's reply, given to ``local``."""
        if weights is None or self.stop.is_set():
            return None
        local.set_flat_weights(weights)
        return weights

    # EpisodeSource
    def claim(self) -> int | None:
        if self.stop.is_set():
            return None
        if self.global_model is not None:
            # This number was asked for one episode ago (with the last
            # report), so its reply is here: the worker never waits for the
            # coordinator between episodes. Every number handed out is
            # played unless training stops, so max_eps stays exact.
            while self._owed < 2:  # this episode's number and the next one's
                self.send(("claim",))
                self._owed += 1
            self._owed -= 1
            return self._answer()
        if self._next is not None:  # handed out with the last report's reply
            episode, self._next = self._next, None
            return episode
        return self._ask("claim")

    def finish(self) -> int:
        return 0  # the coordinator counts finished episodes from the reports

    # Reporter
    def episode(self, report: EpisodeReport) -> None:
        if self.global_model is not None:  # its reply answers a later claim
            self.send(("episode", report))
            self._owed += 1
            return
        self._next = self._ask("episode", report)  # one round trip, not two

    def show(self, worker: int, text: str) -> None:
        self.send(("show", worker, text))

    def profile(self, worker: int, stats: bytes) -> None:
        self.send(("profile", worker, stats))


def _reporting(send: Callable[[tuple], None], body: Callable[[], Any]) -> None:
    """Run ``body``, then tell the coordinator how it ended."""
    try:
        body()
        send(("done",))
    except BaseException:
        try:
            send(("error", traceback.format_exc()))
        except Exception:  # the coordinator is gone: nobody left to tell
            pass


def _remote_worker(
    worker_id: int,
    config: A3CConfig,
    first_episode: int,
    channel: Channel,
    global_model: GlobalModel | None,
    turn: Turn | None = None,
    beside: Worker | None = None,
) -> Worker:
    stop = threading.Event()
    link = _Link(channel, stop, global_model, turn)
    return Worker(
        worker_id,
        config,
        link,
        link,
        link,
        StepCounter(),
        stop,
        first_episode=first_episode,
        turn=turn,
        beside=beside,
    )


def run_remote_worker(
    worker_id: int,
    config: dict[str, Any],
    first_episode: int,
    send: Callable[[tuple], None],
    recv: Callable[[], tuple],
    shared: SharedState | None = None,
) -> None:
    """The body of a Ray worker actor: one worker, alone in its process."""
    run_worker_process(
        [worker_id], config, first_episode, [Channel(send, recv)], shared
    )


def run_worker_process(
    worker_ids: list[int],
    config: dict[str, Any],
    first_episode: int,
    channels: Sequence[Channel],
    shared: SharedState | None,
) -> None:
    """The body of a worker process: its workers, each reporting how it ended
    on its own channel. Several workers run as threads that take turns (one
    core's worth of Python), like the threads backend's. ``shared``: the
    global model in shared memory (worker processes; Ray's have none)."""
    turn = Turn() if len(worker_ids) > 1 else None
    building = threading.Lock()
    # The workers after the first share its traced gradient function and,
    # where they can, its local model (Worker's ``beside``).
    first: list[Worker] = []
    # One view of the global model for all: its optimizer's scratch space is
    # used under the model's lock, and the turn runs one worker at a time.
    global_model = None if shared is None else GlobalModel.attach(shared)

    def body(worker_id: int, channel: Channel) -> None:
        with building:  # one at a time: the first is built before the others
            # One core per worker: TensorFlow's own thread pools would only
            # fight the other workers for the same cores.
            configure_for_training()
            worker = _remote_worker(
                worker_id,
                A3CConfig.from_dict(config),
                first_episode,
                channel,
                global_model,
                turn=turn,
                beside=first[0] if first else None,
            )
            if not first:
                first.append(worker)
                # Once, before any worker plays (the workers built after
                # this one add little: an environment each).
                freeze_built_objects()
        worker.run()

    runs = [
        (channel.send, functools.partial(body, worker_id, channel))
        for worker_id, channel in zip(worker_ids, channels, strict=True)
    ]
    if len(runs) == 1:
        _reporting(*runs[0])
        return
    threads = [
        threading.Thread(target=_reporting, args=run, name=f"a3c-worker-{worker_id}")
        for worker_id, run in zip(worker_ids, runs, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Coordinator:
    """Answers remote workers: owns the episode counter, applies gradients."""

    def __init__(
        self, config: A3CConfig, global_model: GlobalModel, reporter: QueueReporter
    ) -> None:
        self.global_model = global_model
        self.reporter = reporter
        self.episodes = EpisodeCounter(config.max_eps)
        self.errors: list[tuple[int, BaseException]] = []
        self.stopping = False
        self.open: set[int] = set(range(config.num_workers))

    def handle(
        self, worker: int, message: tuple, reply: Callable[[tuple], None]
    ) -> None:
        kind = message[0]
        if kind in ("episode", "report"):
            self.episodes.finish()
            self.reporter.episode(message[1])
            if kind == "episode":  # a report that asks for the next number
                self._claim(reply)
        elif kind == "show":
            self.reporter.show(message[1], message[2])
        elif kind == "profile":
            self.reporter.profile(message[1], message[2])
        elif kind == "claim":
            self._claim(reply)
        elif kind == "update":
            if self.stopping:
                reply(("stop",))
                return
            reply(("weights", self.global_model.apply_flat(message[1])))
        elif kind == "weights":
            reply(("weights", self.global_model.flat_weights()))
        elif kind == "done":
            self.open.discard(worker)
        elif kind == "error":
            self.open.discard(worker)
            self.errors.append((worker, RemoteWorkerError(message[1])))

    def _claim(self, reply: Callable[[tuple], None]) -> None:
        episode = None if self.stopping else self.episodes.claim()
        reply(("stop",) if episode is None else ("episode", episode))

    def lost(self, worker: int, why: str) -> None:
        """A worker vanished without saying goodbye."""
        if worker in self.open:
            self.open.discard(worker)
            if not self.stopping:
                self.errors.append((worker, RemoteWorkerError(why)))

    def alive(self) -> bool:
        return bool(self.open)

    def close(self) -> None:
        self.episodes.close()

    def poll(self, timeout: float) -> None:
        raise NotImplementedError

    def wind_down(self) -> float:
        """Answer every request with "stop" until each worker has said goodbye
        (or ``JOIN_TIMEOUT_S`` passed); returns the deadline used."""
        self.stopping = True
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while self.open and time.monotonic() < deadline:
            self.poll(timeout=0.1)
        return deadline


# -- processes ---------------------------------------------------------------
@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Block Ctrl-C and SIGTERM for the calling thread (held pending, not lost)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class ProcessBackend(Coordinator):
    """``num_workers`` workers in spawned processes (:func:`worker_hosts`)
    sharing the global model, which this process owns (it reads it to save,
    and takes its lock back from a worker process that dies holding it)."""

    name = "processes"

    def __init__(
        self,
        config: A3CConfig,
        global_model: GlobalModel,
        reporter: QueueReporter,
        first_episode: int,
    ) -> None:
        super().__init__(config, global_model, reporter)
        context = multiprocessing.get_context("spawn")
        self.conns: dict[int, Connection] = {}
        self._children: dict[int, Connection] = {}
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}
        #: Workers that have spoken: the others are still starting up.
        self.started: set[int] = set()
        # Workers update the global model in shared memory themselves: an
        # update that waited for this process's reply cost a worker 9% of
        # its time on 2 busy cores.
        self.shared = global_model.share(context)
        global_model.holder_gone = self._gone
        #: The workers of each process.
        self.hosts = worker_hosts(
            config.num_workers, config.worker_processes or usable_cpus()
        )
        #: The process each worker runs in (an index into :attr:`hosts`).
        self.host_of = {i: p for p, ids in enumerate(self.hosts) for i in ids}
        #: The workers' pipes, watched for messages while they are open.
        self.mailboxes = Mailboxes()
        for p, ids in enumerate(self.hosts):
            for i in ids:
                self.conns[i], self._children[i] = context.Pipe()
                self.mailboxes.add(i, self.conns[i])
            self.processes[p] = context.Process(
                target=process_main,
                args=(
                    ids,
                    config.to_dict(),
                    first_episode,
                    [self._children[i] for i in ids],
                    os.getpid(),
                    self.shared,
                ),
                name=WORKER_PROCESS_PREFIX + "-".join(map(str, ids)),
                daemon=True,
            )

    def start(self) -> None:
        # Children start with Ctrl-C and SIGTERM blocked (a thread's signal
        # mask passes to the processes it starts), and ignore them from their
        # first lines on: a signal to the process group while they start up
        # (importing TensorFlow) cannot kill them. The coordinator stops them.
        # The first start also starts multiprocessing's resource tracker,
        # which unblocks both signals when it is done: so it goes first.
        resource_tracker.ensure_running()
        with signals_blocked():
            for process in self.processes.values():
                process.start()
        for child in self._children.values():
            child.close()

    def poll(self, timeout: float) -> None:
        for worker in self.mailboxes.ready(timeout):
            if worker not in self.open:  # said goodbye, or given up on
                self.mailboxes.discard(worker)
                continue
            conn = self.conns[worker]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self.lost(worker, self._exit_reason(worker))
                self.mailboxes.discard(worker)
                continue
            self.started.add(worker)
            self.handle(worker, message, functools.partial(_reply, conn))

    def _exit_reason(self, worker: int) -> str:
        """Why ``worker``'s pipe closed: its process's exit, with its code
        (waited for briefly: the pipe closes just before the process ends)."""
        process = self.processes[self.host_of[worker]]
        process.join(timeout=EXIT_CODE_WAIT_S)
        reason = f"worker process exited (code {process.exitcode})"
        if self.started.intersection(self.hosts[self.host_of[worker]]):
            return reason
        return (
            f"{reason} while starting up; its error is printed above. "
            f"Note: {MAIN_GUARD}"
        )

    def _gone(self, pid: int) -> bool:
        """Whether the worker process ``pid`` has died."""
        return any(p.pid == pid and not p.is_alive() for p in self.processes.values())

    def lost(self, worker: int, why: str) -> None:
        pid = self.processes[self.host_of[worker]].pid
        if pid is not None:  # it may have died holding the global model's lock
            self.global_model.free_lock_of(pid)
        super().lost(worker, why)

    def stop(self) -> None:
        """Stop the workers, wait for them, kill stragglers. A worker still
        starting up has nothing to lose: it is killed at once."""
        self.stopping = True
        self.global_model.stopping = True  # workers apply no more updates
        for p, ids in enumerate(self.hosts):
            if not self.started.intersection(ids):
                if self.processes[p].pid is not None:  # start() may have failed
                    self.processes[p].kill()
                self.open.difference_update(ids)
        deadline = self.wind_down()
        for process in self.processes.values():
            if process.pid is None:  # never started
                continue
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for conn in self.conns.values():
            conn.close()


def _reply(conn: Connection, message: tuple) -> None:
    """Answer a worker process. A worker keeps a claim ahead (see
    :meth:`_Link.claim`), so the answer to its last one may find it gone:
    told to stop, it has left without reading it."""
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        pass


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the OS says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_hosts(num_workers: int, processes: int) -> list[list[int]]:
    """The worker ids each of ``processes`` processes runs (no more processes
    than workers): workers dealt out in turn, ``[[0, 2], [1, 3]]`` for 4 in 2."""
    count = max(1, min(num_workers, processes))
    return [list(range(p, num_workers, count)) for p in range(count)]


def make_backend(
    config: A3CConfig,
    global_model: GlobalModel,
    reporter: QueueReporter,
    first_episode: int,
) -> Backend:
    """The backend ``config.backend`` names."""
    if config.backend == "ray":  # Ray is optional: imported only when asked for
        from .ray_backend import RayBackend

        return RayBackend(config, global_model, reporter, first_episode)
    kinds: dict[str, Any] = {"threads": ThreadBackend, "processes": ProcessBackend}
    return kinds[config.backend](config, global_model, reporter, first_episode)
