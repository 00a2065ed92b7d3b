"""The ray backend: workers as Ray actors, on this machine or a cluster.

The driver (the training process) owns the global model, the optimizer and
the episode counter, as the processes backend's coordinator does. Each worker
is an actor that runs the same :class:`~mathy_a3c.worker.Worker` in a thread
of its own, behind the same message protocol (:mod:`mathy_a3c.backends`).
The driver drives every actor with one method call at a time, RLlib's A3C
pattern:

* ``start`` and ``exchange(reply)`` return the worker's messages up to its
  next request (its gradients, its weights, an episode number), together
  with the ``--show`` lines and episode reports made on the way;
* each worker's calls are made by its :class:`~mathy_a3c.ray_lines.Line`,
  and the driver waits on all of their outcomes at once, answers the request
  (applies the gradients and sends the new weights, hands out an episode
  number) and has the line call ``exchange`` again with the answer.

A worker on the driver's node talks through a Ray Compiled Graph's
shared-memory channel, the others through ordinary actor calls (see
:mod:`mathy_a3c.ray_lines`); there is no queue actor in between. Profiles
come back as bytes, so nothing is written on a worker's machine.

Each actor reserves ``ray_cpus_per_worker`` CPUs, so that Ray places workers
by free CPUs across the nodes. When an actor is lost with its node or its
process (``RayActorError``), its unfinished episode's number is handed out
again and, with ``ray_lost_worker="recreate"``, a new actor takes its place
where resources allow, while the other workers train on. A worker that
raises is an error: training stops with its traceback.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from .backends import Coordinator, RemoteWorkerError
from .callbacks import QueueReporter
from .config import A3CConfig, ConfigError, field_name
from .parameter_server import GlobalModel
from .ray_lines import Line, Outcome, compiled_graphs_supported, quiet_graph_logs
from .ray_worker import REVOKE, RayWorker, pieces_for
from .worker_process import STOP_SIGNALS

RAY_MISSING = (
    "The ray backend needs Ray, which is an optional extra: "
    "pip install 'mathy-a3c[ray]'"
)
#: Lost workers recreated in one run before the run gives up: a worker whose
#: actor dies every time (out of memory, say) must not loop forever.
MAX_RECREATIONS = 100
#: Seconds after which workers still waiting for resources are reported.
PENDING_WARNING_S = 30.0
#: Seconds a placed worker may take to start (importing TensorFlow, building
#: its model: minutes on a loaded machine) before a run whose episodes are
#: all done stops waiting for it.
STARTING_LIMIT_S = 300.0


class WorkerLost(RuntimeError):
    """A worker's actor died with its node or process (``ray_lost_worker="stop"``,
    or no more recreations allowed)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


class RayBackend(Coordinator):
    """``num_workers`` Ray actors; this process (the driver) owns the global model.

    With ``ray_address`` the actors run on an existing cluster; without it a
    local Ray runtime starts and stops with the run.
    """

    name = "ray"

    def __init__(
        self,
        config: A3CConfig,
        global_model: GlobalModel,
        reporter: QueueReporter,
        first_episode: int,
    ) -> None:
        super().__init__(config, global_model, reporter)
        self.config = config
        self.first_episode = first_episode
        self.ray = _import_ray()
        self.started_ray = False
        #: Each worker's current actor.
        self.actors: dict[int, Any] = {}
        #: Each worker's line to its current actor, and where the outcomes
        #: of their calls arrive.
        self.lines: dict[int, Line] = {}
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        #: The driver's node (workers there talk through compiled graphs).
        self.node = ""
        #: Pieces weights and gradients travel in (under Ray's inline limit).
        self.pieces = pieces_for(global_model.flat_weights().size)
        #: Workers whose actor Ray has placed (it answered ``where``), and
        #: since when.
        self.placed: dict[int, float] = {}
        #: Workers whose actor is running (it answered ``start``).
        self.started: set[int] = set()
        #: The episode number (from the counter) each worker is playing.
        self.playing: dict[int, int] = {}
        #: The number each worker holds for its next episode (one round trip
        #: less per episode: the worker starts it without asking).
        self.spares: dict[int, int] = {}
        #: Actors started again after their node or process was lost.
        self.recreated = 0
        self._asked_at: dict[int, float] = {}
        self._warned_pending = False
        #: What :meth:`stop` undoes of :meth:`start`: the compiled graphs'
        #: logs quieted for the run.
        self._run_scope = contextlib.ExitStack()

    # -- start ----------------------------------------------------------------
    def start(self) -> None:
        ray = self.ray
        self._run_scope.enter_context(quiet_graph_logs())
        runtime_env = None
        if self.config.ray_ship_code:  # Ray uploads a folder for a whole job only
            if ray.is_initialized():
                raise ConfigError(
                    f"{field_name('ray_ship_code')} needs this run to connect to "
                    f"Ray, but this program called ray.init itself: pass "
                    f"runtime_env={{'py_modules': [mathy_a3c]}} to that call instead"
                )
            import mathy_a3c

            package = os.path.dirname(os.path.abspath(mathy_a3c.__file__))
            runtime_env = {"py_modules": [package], "excludes": ["__pycache__"]}
        if not ray.is_initialized():
            # "local": a runtime of the run's own, even where a cluster that
            # `ray start` began runs on this machine (address None joins it).
            address = (
                self.config.ray_address or os.environ.get("RAY_ADDRESS") or "local"
            )
            # A local runtime gets a logical CPU for every worker, as processes
            # would share the cores; a cluster has the CPUs it has.
            cpus = None
            if address == "local":
                wanted = self.config.num_workers * self.config.ray_cpus_per_worker
                cpus = max(os.cpu_count() or 1, math.ceil(wanted))
            try:
                with _stop_signals_kept():
                    ray.init(
                        address=address,
                        num_cpus=cpus,
                        include_dashboard=False,
                        log_to_driver=True,
                        runtime_env=runtime_env,
                    )
            except Exception as error:  # no cluster there, or not a Ray one
                why = " ".join(str(error).split())[:300] or type(error).__name__
                if address == "local":
                    raise ConfigError(
                        f"{field_name('backend')} ray: cannot start a local Ray "
                        f"runtime ({why})"
                    ) from None
                raise ConfigError(
                    f"{field_name('ray_address')} {address!r}: cannot join a Ray "
                    f"cluster there ({why})"
                ) from None
            self.started_ray = True
        self.node = ray.get_runtime_context().get_node_id()
        self._check_feasible()
        options: dict[str, Any] = {
            "num_cpus": self.config.ray_cpus_per_worker,
            "scheduling_strategy": "SPREAD",
            "max_restarts": 0,  # a lost actor is replaced here, state and all
        }
        self.ship = runtime_env is not None
        self.actor_class = ray.remote(RayWorker).options(**options)
        for worker in range(self.config.num_workers):
            self._launch(worker)

    def _check_feasible(self) -> None:
        """Refuse CPUs per worker that no node of the cluster has."""
        need = self.config.ray_cpus_per_worker
        largest = max(
            (
                node.get("Resources", {}).get("CPU", 0.0)
                for node in self.ray.nodes()
                if node.get("Alive")
            ),
            default=0.0,
        )
        if need > largest:
            raise ConfigError(
                f"{field_name('ray_cpus_per_worker')} {need:g}: no node of the Ray "
                f"cluster has that many CPUs (the largest has {largest:g})"
            )

    def _launch(self, worker: int) -> None:
        """Start an actor for ``worker``; it runs once Ray has placed it."""
        actor = self.actor_class.remote()
        self.actors[worker] = actor
        line = Line(self.ray, worker, actor, self.pieces, self.outcomes)
        self.lines[worker] = line
        line.start(worker, self.config.to_dict(), self.first_episode, self.pieces)
        self._asked_at[worker] = time.monotonic()

    # -- serve ------------------------------------------------------------------
    def poll(self, timeout: float) -> None:
        try:
            outcomes = [self.outcomes.get(timeout=timeout)]
        except queue.Empty:
            outcomes = []
        while True:  # and whatever else is ready by now
            try:
                outcomes.append(self.outcomes.get_nowait())
            except queue.Empty:
                break
        for outcome in outcomes:
            self._receive(outcome)
        self._drop_unneeded_pending()
        self._warn_pending()

    def _receive(self, outcome: Outcome) -> None:
        worker = outcome.line.worker
        if self.lines.get(worker) is not outcome.line:
            return  # from an actor that was forgotten or replaced
        if isinstance(outcome.error, self.ray.exceptions.RayActorError):
            self._lost(worker, outcome.error)
            return
        if outcome.error is not None or outcome.messages is None:
            error = outcome.error
            if isinstance(error, self.ray.exceptions.RayError):  # the call raised
                why = str(error)
            else:  # the driver's side of the call failed
                why = "".join(traceback.format_exception(error)) if error else ""
            self._fail(worker, RemoteWorkerError(why))
            return
        messages = outcome.messages
        if messages[-1] == ("update", None):  # its gradients came alongside
            messages[-1] = ("update", outcome.gradients)
        replies: list[tuple] = []
        spent = False  # the number it held ahead answered its claim
        for message in messages:
            kind = message[0]
            if kind == "placed":
                self._placed(worker, message[1])
                continue
            if kind == "hello":  # it started
                self.started.add(worker)
                continue
            if kind in ("episode", "report"):  # its episode is over
                self.playing.pop(worker, None)
            if kind == "report":  # answered with the spare: it plays that now
                self.playing[worker] = self.spares.pop(worker)
            elif kind == "claim" and self._spare_answers(worker):
                # Its first claim, made while it holds the number handed out
                # with its first weights: that number answers it (a worker is
                # never told to stop while it holds one nobody else may play).
                replies.append(("episode", self.spares.pop(worker)))
                spent = True
                continue
            self.handle(worker, message, replies.append)
        if replies and worker in self.open:
            (reply,) = replies  # one question per call
            if reply[0] == "episode":
                self.playing[worker] = reply[1]
            spare = self._spare(worker)
            if spent and spare is None:  # none to take its place: it holds none
                spare = REVOKE
            self.lines[worker].exchange(reply, spare)

    def _spare_answers(self, worker: int) -> bool:
        """True when ``worker`` claims an episode number while it holds one
        that may still start."""
        closed = self.stopping or self.episodes.closed
        return worker in self.spares and not closed

    def _spare(self, worker: int) -> int | None:
        """What to tell ``worker`` about its next episode's number: a new one
        in advance, :data:`REVOKE` once no more episodes may start, or
        ``None``: nothing changes."""
        held = self.spares.get(worker)
        if self.stopping or self.episodes.closed:
            if held is None:
                return None
            self.episodes.release(self.spares.pop(worker))
            return REVOKE
        if held is not None:
            return None
        episode = self.episodes.claim()
        if episode is not None:
            self.spares[worker] = episode
        return episode

    def _placed(self, worker: int, where: dict[str, Any]) -> None:
        """Ray placed ``worker``'s actor: say where, and how it will talk."""
        self.placed[worker] = time.monotonic()
        compiled = (
            where["node"] == self.node
            and not self.config.ray_ordinary_calls
            and compiled_graphs_supported(self.ray.__version__)
        )
        if compiled:  # made once its start returns: the line calls in order
            self.lines[worker].compile()
        shipped = f"; its mathy_a3c: {where['package']}" if self.ship else ""
        print(
            f"ray: worker {worker} runs on node {where['node'][:12]} "
            f"({where['host']}, pid {where['pid']}); talks through "
            f"{'a compiled graph' if compiled else 'actor calls'}{shipped}",
            file=sys.stderr,
        )

    def _fail(self, worker: int, error: BaseException) -> None:
        self.open.discard(worker)
        self.started.discard(worker)
        self.placed.pop(worker, None)
        if not self.stopping:
            self.errors.append((worker, error))

    def _lost(self, worker: int, error: Any) -> None:
        """A worker's actor died: give its episode back, then recreate it, or
        stop the run."""
        self.started.discard(worker)
        self.placed.pop(worker, None)
        episode = self.playing.pop(worker, None)
        for unplayed in (episode, self.spares.pop(worker, None)):
            if unplayed is not None:
                self.episodes.release(unplayed)
        self.ray.kill(self.actors[worker], no_restart=True)
        self.lines[worker].close(timeout=0)
        if self.stopping:
            self.open.discard(worker)
            return
        why = _first_line(error)
        if getattr(error, "actor_init_failed", False):  # not a loss: an error
            self._fail(worker, RemoteWorkerError(f"{why}\n{error}"))
            return
        again = (
            f"episode {self.first_episode + episode} will be played again"
            if episode is not None
            else "it was not playing an episode"
        )
        if self.config.ray_lost_worker == "stop":
            self._fail(
                worker,
                WorkerLost(
                    f"its actor was lost ({why}); ray_lost_worker is stop "
                    f"(--ray-lost-worker), so training stopped and saved"
                ),
            )
            return
        if self.recreated >= MAX_RECREATIONS:
            self._fail(
                worker,
                WorkerLost(
                    f"its actor was lost ({why}) after {self.recreated} workers "
                    f"had been recreated in this run"
                ),
            )
            return
        self.recreated += 1
        print(
            f"ray: worker {worker} lost ({why}); {again}; recreating it where "
            f"resources allow, the other workers train on",
            file=sys.stderr,
        )
        self._launch(worker)

    def _drop_unneeded_pending(self) -> None:
        """Workers that have not started once no episode is left to play
        would keep the run open forever. Stop waiting for one still waiting
        for a node after ``PENDING_WARNING_S``, and for one placed but still
        starting after ``STARTING_LIMIT_S``."""
        waiting = self.open - self.started
        if not waiting or self.open & self.started or not self.episodes.exhausted:
            return
        now = time.monotonic()
        for worker in sorted(waiting):
            placed = self.placed.get(worker)
            if placed is None and now - self._asked_at[worker] > PENDING_WARNING_S:
                why = (
                    f"never found a node with {self.config.ray_cpus_per_worker:g} "
                    f"free CPUs"
                )
            elif placed is not None and now - placed > STARTING_LIMIT_S:
                why = f"did not start within {STARTING_LIMIT_S:g} s of being placed"
            else:
                continue
            print(
                f"ray: worker {worker} {why}; every episode is done without it",
                file=sys.stderr,
            )
            self._forget(worker)

    def _forget(self, worker: int) -> None:
        """Stop a worker whose actor has not started (nothing to lose)."""
        line = self.lines.pop(worker, None)
        if worker in self.actors:  # none yet if start() failed
            self.ray.kill(self.actors[worker], no_restart=True)
        if line is not None:
            line.close(timeout=0)
        self.open.discard(worker)

    def _warn_pending(self) -> None:
        if self._warned_pending or self.stopping:
            return
        now = time.monotonic()
        late = sorted(
            w
            for w in self.open - self.started - set(self.placed)
            if now - self._asked_at[w] > PENDING_WARNING_S
        )
        if late:
            self._warned_pending = True
            print(
                f"ray: workers {late} have waited {PENDING_WARNING_S:g} s for a "
                f"node with {self.config.ray_cpus_per_worker:g} free CPUs "
                f"(--ray-cpus-per-worker); "
                f"{len(self.open & self.started)} workers are training",
                file=sys.stderr,
            )

    # -- stop -----------------------------------------------------------------
    def stop(self) -> None:
        """Stop every worker (an actor not yet started is dropped at once),
        wait for them to say goodbye, then end the actors (and the local Ray
        runtime, if this run started it)."""
        self.stopping = True
        for worker in sorted(self.open - self.started):
            self._forget(worker)
        if self.actors:  # none if start() failed
            self.wind_down()
        for worker, line in self.lines.items():
            # A line whose worker said goodbye is idle: its compiled graph is
            # taken down while the actor lives. Others go with their actor.
            line.close(timeout=0 if worker in self.open else 10.0)
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        if self.started_ray:
            self.ray.shutdown()
        self._run_scope.close()


@contextlib.contextmanager
def _stop_signals_kept() -> Iterator[None]:
    """Keep this process's Ctrl-C and SIGTERM handlers through the block.

    ``ray.init`` replaces the SIGTERM handler with one that exits at once
    (and Ray's native crash handler sits under it); the run's own handler
    (save first, :mod:`mathy_a3c.interrupts`) is put back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:
                signal.signal(signum, handler)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
