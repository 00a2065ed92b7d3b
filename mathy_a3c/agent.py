"""The A3C agent: a global model, N workers, and the loop that watches them.

::

    agent = A3CAgent(A3CConfig(topics=["poly"], model_dir="output/my_agent"))
    result = agent.train()

Workers run on a backend (:mod:`mathy_a3c.backends`: threads, processes or Ray).
The main thread owns all output and saving: it receives finished episodes,
updates the progress bar and TensorBoard, saves the model every
``save_every_s`` seconds and at the end, and watches for failures:

* a worker that raises stops every worker, and :meth:`A3CAgent.train` raises
  :class:`WorkerError` from the worker's exception (its traceback is kept as
  ``__cause__``);
* Ctrl-C or SIGTERM stops the workers, waits for them, saves the model, prints
  where it went, and raises ``KeyboardInterrupt`` (Ctrl-C) or
  ``SystemExit(143)`` (SIGTERM) (:mod:`mathy_a3c.interrupts`).

While it trains, the run holds the folder's lock (:mod:`mathy_a3c.folder`):
a second run into the same folder is refused at once.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .backends import RemoteWorkerError, check_not_in_worker_process, make_backend
from .callbacks import (
    Callback,
    ConsoleCallback,
    QueueReporter,
    RunStats,
    TensorBoardCallback,
)
from .checkpoint import (
    CheckpointError,
    SaveError,
    add_new_variables,
    check_layout,
    has_checkpoint,
    load_checkpoint,
    load_config,
    save_checkpoint,
    save_config,
    save_profile,
)
from .config import (
    DEFAULT_SIMULATIONS,
    DIFFICULTIES,
    SEARCHES,
    A3CConfig,
    SettingChange,
)
from .envs import MathyTask, Observation, typed_state
from .folder import (
    FolderError,
    check_resume,
    check_space,
    hold_folder,
    inspect_folder,
    refuse_other_files,
)
from .inference import Solution, Step, search_solve, solve
from .interrupts import StopSignals
from .model import network_for
from .numpy_actor import NumpyActor
from .parameter_server import GlobalModel
from .policy import masked_probabilities
from .search import MCTS
from .tasks import task_spec


class WorkerError(RuntimeError):
    """A worker raised; training stopped. The worker's exception is ``__cause__``."""


@dataclass(frozen=True)
class TrainResult:
    """Summary of one :meth:`A3CAgent.train` call."""

    episodes: int
    """Episodes finished in this call."""
    steps: int
    """Environment steps taken in this call."""
    wins: int
    seconds: float
    model_dir: str
    checkpoint: str

    @property
    def win_rate(self) -> float:
        return self.wins / self.episodes if self.episodes else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


class A3CAgent:
    """Trains a shared actor-critic with asynchronous worker threads.

    Args:
        config: the run's settings; see :class:`~mathy_a3c.config.A3CConfig`.
        callbacks: extra :class:`~mathy_a3c.callbacks.Callback` objects, called
            on the main thread after the built-in console and TensorBoard ones.
        console: print episode lines and ``--show`` output (default True).
        progress: show the tqdm progress bar (default True; needs ``console``).
        transfer: a model folder to start from: its weights are copied, while
            the optimizer and the counters start fresh.

    If ``config.model_dir`` already holds a checkpoint, the agent resumes it:
    weights, optimizer state (except the learning rate, which comes from
    ``config``) and the episode and step counters. ``max_eps`` then counts the
    episodes of the new run. Settings that change what is learned (topics,
    difficulty, the loss's and the optimizer's) must match the saved model's
    unless ``change_settings``; ``model_size`` must always match. A folder
    that holds files but no model is refused unless ``allow_nonempty``.
    Problems with the folder raise :class:`~mathy_a3c.checkpoint.CheckpointError`.
    """

    def __init__(
        self,
        config: A3CConfig,
        callbacks: list[Callback] | None = None,
        console: bool = True,
        progress: bool = True,
        transfer: str | None = None,
        change_settings: bool = False,
        allow_nonempty: bool = False,
    ) -> None:
        self.config = config
        folder = inspect_folder(config.model_dir)
        refuse_other_files(folder, allow_nonempty)
        #: The global network: predicts and simplifies with the global weights
        #: (:meth:`train` hands them over when it ends).
        self.network = network_for(config, task_spec(config))
        self.global_model = GlobalModel(
            self.network.flat_weights(), self.network.layout, config.lr
        )
        self.callbacks = list(callbacks or [])
        self.console = console
        self.progress = progress
        self.total_episodes = 0
        self.total_steps = 0
        #: Settings that differ from those of the model this agent resumed.
        self.changes: list[SettingChange] = []
        #: ``(episodes, steps)`` of the checkpoint this agent last read or
        #: wrote, ``None`` if none: :meth:`train` refuses a folder that
        #: another run changed meanwhile.
        self._on_disk: tuple[int, int] | None = None
        self.resumed = folder.has_model
        if self.resumed:
            if transfer is not None:
                raise CheckpointError(
                    f"{config.model_dir} already holds a model; --transfer starts a "
                    f"new one, so give it an empty folder"
                )
            saved = load_config(config.model_dir)
            self.changes = check_resume(
                config.model_dir, saved, config, change_settings
            )
            self._restore(config.model_dir, saved, with_optimizer=True)
        elif transfer is not None:
            self._restore(transfer, load_config(transfer), with_optimizer=False)

    @classmethod
    def load(cls, folder: str) -> A3CAgent:
        """The trained agent saved in ``folder``, ready to ``predict``/``simplify``.

        Raises :class:`~mathy_a3c.checkpoint.CheckpointError`, naming the file,
        when the folder, its ``config.json`` or its ``checkpoint.npz`` is
        missing or unreadable.
        """
        config = load_config(folder).replace(model_dir=folder)
        if not has_checkpoint(folder):
            load_checkpoint(folder)  # raises, naming the missing file
        return cls(config, console=False)

    # -- using the model ------------------------------------------------
    def action_probabilities(self, observation: Observation) -> np.ndarray:
        """The policy's probability for each action (``ACTION_SIZE`` of them for
        Mathy topics; a gym topic's observation is a ``VectorObservation``)."""
        logits, _ = self.network.step(observation)
        return masked_probabilities(logits)

    def predict(self, observation: Observation, greedy: bool = True) -> int:
        """An action for one observation: the most probable, or a sample."""
        probs = self.action_probabilities(observation)
        if greedy:
            return int(np.argmax(probs))
        return int(np.random.default_rng().choice(len(probs), p=probs))

    def simplify(
        self,
        problem: str,
        topic: str | None = None,
        strategy: str = "no-revisit",
        max_steps: int | None = None,
        on_step: Callable[[Step], None] | None = None,
        search: str = "mcts",
        simulations: int = DEFAULT_SIMULATIONS,
    ) -> Solution:
        """Simplify a typed problem step by step; see :mod:`mathy_a3c.inference`.

        The problem is observed exactly like a generated problem of ``topic``
        (default: the first topic the model trained on). By default a tree
        search guided by the model chooses the steps (``simulations`` per
        move), and ``Solution.search`` says what it did; ``search="none"``
        plays the policy with ``strategy`` instead. Raises
        :class:`~mathy_a3c.envs.ProblemError` (a ``ValueError``) for a problem
        that cannot be played: one the parser rejects, or one too large for
        the model.
        """
        if search not in SEARCHES:
            raise ValueError(
                f"Unknown search {search!r}. Valid searches: {', '.join(SEARCHES)}"
            )
        if self.config.is_gym:
            raise ValueError(
                f"simplify needs a model trained on Mathy topics; this one was "
                f"trained on {self.config.topics[0]}"
            )
        topic = topic or self.config.topics[0]
        difficulty = self.config.difficulty or DIFFICULTIES[0]
        task = MathyTask([topic], difficulty, seed=self.config.seed)
        state = typed_state(task.env, problem, difficulty)
        observation = task.start(state)
        if search == "mcts":
            searcher = MCTS(self.search_evaluator(), simulations=simulations)
            return search_solve(task, searcher, max_steps, on_step)
        return solve(task, observation, self.network.step, strategy, max_steps, on_step)

    def search_evaluator(self) -> Callable[[list[Any]], tuple[Any, Any]]:
        """The batched numpy forward pass a search evaluates its leaves with."""
        actor = self.network.numpy_actor()
        assert isinstance(actor, NumpyActor), "search needs a Mathy model"
        return actor.batch

    # ------------------------------------------------------------------
    def _restore(self, folder: str, saved: A3CConfig, with_optimizer: bool) -> None:
        if (saved.topics if saved.is_gym else "mathy") != (
            self.config.topics if self.config.is_gym else "mathy"
        ):
            raise CheckpointError(
                f"{folder} holds a model for {', '.join(saved.topics)}, which does "
                f"not fit topics {', '.join(self.config.topics)}: a gym topic's "
                f"model only fits that environment"
            )
        if saved.model_size != self.config.model_size:
            raise CheckpointError(
                f"{folder} holds a model with model_size {saved.model_size}, but "
                f"model_size {self.config.model_size} was asked for: use "
                f"{saved.model_size} or another folder"
            )
        checkpoint = load_checkpoint(folder)
        add_new_variables(checkpoint.state, self.network.layout)
        check_layout(checkpoint.state, self.network.layout, folder)
        # The learning rate is the config's, never the saved one.
        self.global_model.load(checkpoint.state, with_optimizer=with_optimizer)
        self.network.set_flat_weights(self.global_model.flat_weights())
        if with_optimizer:
            self.total_episodes = checkpoint.episodes
            self.total_steps = checkpoint.steps
            self._on_disk = (checkpoint.episodes, checkpoint.steps)

    # ------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run ``max_eps`` episodes across ``num_workers`` workers, then save.

        Holds the model folder's lock throughout. Raises
        :class:`~mathy_a3c.checkpoint.CheckpointError` before training when
        the folder is taken, unwritable, short of space or changed by another
        run since this agent read it, and
        :class:`~mathy_a3c.checkpoint.SaveError` when training ran but the
        final save failed (the last good checkpoint is kept).
        """
        cfg = self.config
        check_not_in_worker_process()
        with hold_folder(cfg.model_dir):
            self._check_folder_unchanged()
            check_space(cfg.model_dir, checkpoint_bytes(self.network.size))
            with StopSignals(f"saving the model to {cfg.model_dir}") as stop:
                return self._train(stop)

    def _train(self, stop: StopSignals) -> TrainResult:
        cfg = self.config
        reporter = QueueReporter()
        backend = make_backend(cfg, self.global_model, reporter, self.total_episodes)
        try:
            backend.start()
            # Once the workers can start: a run that cannot (a Ray cluster that
            # refuses them) leaves no file behind.
            save_config(cfg.model_dir, cfg)
        except BaseException:  # nothing trained: stop what started, save nothing
            backend.stop()
            raise
        callbacks: list[Callback] = [
            TensorBoardCallback(
                os.path.join(cfg.model_dir, "tensorboard"),
                learning_rate=lambda: self.global_model.learning_rate,
                first_episode=self.total_episodes,
            ),
            *self.callbacks,
        ]
        if self.console:
            callbacks.insert(0, ConsoleCallback(cfg.verbose, progress=self.progress))
        stats = RunStats()
        for cb in callbacks:
            cb.on_start(cfg.max_eps, stats)
        start = time.perf_counter()
        last_save = time.monotonic()
        self.global_model.lr_scale = 1.0
        failure: BaseException | None = None
        try:
            while not (backend.errors or stop.requested) and backend.alive():
                backend.poll(timeout=0.05)
                _drain(reporter, callbacks, stats, cfg.model_dir)
                elapsed = time.perf_counter() - start
                self.global_model.lr_scale = cfg.lr_scale(stats.episodes, elapsed)
                if cfg.max_seconds and elapsed >= cfg.max_seconds:
                    backend.close()
                if time.monotonic() - last_save >= cfg.save_every_s:
                    self._save_periodically(stats)
                    last_save = time.monotonic()
        except KeyboardInterrupt:  # raised, not signalled: a callback, or no handler
            stop.signum = stop.signum or signal.SIGINT
        except BaseException as raised:  # a failing callback: stop, save, re-raise
            failure = raised
        # Stopping and saving run to the end: further signals only say so.
        backend.stop()
        self.network.set_flat_weights(self.global_model.flat_weights())
        ends: list[Callable[[], object]] = [
            partial(cb.on_end, stats) for cb in callbacks
        ]
        if failure is None:  # the last episodes' reports, then the ends
            ends.insert(0, partial(_drain, reporter, callbacks, stats, cfg.model_dir))
        for end in ends:
            try:
                end()
            except KeyboardInterrupt:
                stop.signum = stop.signum or signal.SIGINT
            except BaseException as raised:
                failure = failure or raised
        # The run's episodes now belong to the model, whatever happens next.
        self.total_episodes += stats.episodes
        self.total_steps += stats.steps
        if backend.errors:
            worker_id, error = backend.errors[0]
            if not _is_numerical(error):
                self._save_or_warn()
            raise WorkerError(
                f"worker {worker_id} failed, training stopped: "
                f"{type(error).__name__}: {_summary(error)}"
            ) from error
        if failure is not None:
            self._save_or_warn()
            raise failure
        try:
            path = self._save()
        except SaveError as error:
            raise SaveError(
                f"{error}; training since the last save is lost, and {self._kept()}"
            ) from None
        if stop.requested:
            print(
                f"\nInterrupted by {stop.name}: stopped {cfg.num_workers} workers "
                f"({backend.name}) after {stats.episodes} episodes; saved the model "
                f"({self.total_episodes} episodes in all) to {path}",
                file=sys.stderr,
            )
            if stop.signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(stop.exit_code)
        return TrainResult(
            episodes=stats.episodes,
            steps=stats.steps,
            wins=stats.wins,
            seconds=time.perf_counter() - start,
            model_dir=cfg.model_dir,
            checkpoint=path,
        )

    # ------------------------------------------------------------------
    def save(self) -> str:
        """Write the global model to ``model_dir`` now; returns the checkpoint path."""
        with hold_folder(self.config.model_dir):
            self._check_folder_unchanged()
            save_config(self.config.model_dir, self.config)
            return self._save()

    def _save(self, stats: RunStats | None = None) -> str:
        """Save the global model and the counters (plus those of ``stats``, a
        run under way); raises :class:`SaveError` (the previous checkpoint is
        kept) or ``FloatingPointError``."""
        stats = stats or RunStats()
        state = self.global_model.state()
        if not all(np.all(np.isfinite(w)) for w in state.weights.values()):
            raise FloatingPointError(
                "the global model holds NaN or inf weights; the last good "
                "checkpoint was kept"
            )
        episodes = self.total_episodes + stats.episodes
        steps = self.total_steps + stats.steps
        path = save_checkpoint(self.config.model_dir, state, episodes, steps)
        self._on_disk = (episodes, steps)
        return path

    def _save_periodically(self, stats: RunStats) -> None:
        """A periodic save; if it fails, training goes on and says so."""
        try:
            self._save(stats)
        except SaveError as error:
            print(
                f"warning: {error}; training goes on ({self._kept()}), and the next "
                f"save is tried in {self.config.save_every_s:g} s",
                file=sys.stderr,
            )

    def _kept(self) -> str:
        if self._on_disk is None:
            return "no checkpoint was saved before"
        return f"the last good checkpoint, {self._on_disk[0]} episodes, is kept"

    def _save_or_warn(self) -> None:
        """Save on the way out of a failed run, without hiding its error."""
        try:
            self._save()
        except (SaveError, FloatingPointError) as error:
            print(f"warning: {error}", file=sys.stderr)

    def _check_folder_unchanged(self) -> None:
        """Refuse to overwrite a checkpoint this agent has not seen."""
        folder = self.config.model_dir
        now = None
        if inspect_folder(folder).has_model:
            checkpoint = load_checkpoint(folder)  # a corrupt one raises, naming it
            now = (checkpoint.episodes, checkpoint.steps)
        if now != self._on_disk:
            raise FolderError(
                f"{folder!r} changed since this agent read it: another run saved "
                f"a model there; build the agent again to resume that model, or "
                f"train into another folder"
            )


def checkpoint_bytes(weights: int) -> int:
    """About the size of a checkpoint of a model with ``weights`` weights:
    float32 weights and Adam's two moments, plus the archive's overhead."""
    return 3 * 4 * weights + 64 * 1024


def _is_numerical(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, FloatingPointError) or "FloatingPointError" in text


def _summary(error: BaseException) -> str:
    """The last line of a remote traceback, or the message itself."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if isinstance(error, RemoteWorkerError) and lines else str(error)


def _drain(
    reporter: QueueReporter,
    callbacks: list[Callback],
    stats: RunStats,
    model_dir: str,
) -> None:
    """Dispatch the events queued now to the callbacks, in order; write the
    profiles workers reported into ``model_dir``.

    Events that arrive while draining wait for the next call, so the caller's
    loop keeps control even when workers report faster than callbacks run.
    """
    for _ in range(reporter.events.qsize()):
        try:
            kind, payload = reporter.events.get_nowait()
        except queue.Empty:
            return
        if kind == "episode":
            stats.add(payload)
            for cb in callbacks:
                cb.on_episode(payload, stats)
        elif kind == "profile":
            try:
                save_profile(model_dir, *payload)
            except SaveError as error:  # the model matters more: train on
                print(f"warning: {error}", file=sys.stderr)
        else:
            for cb in callbacks:
                cb.on_show(*payload)
