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
* Ctrl-C stops the workers, waits for them, saves the model, prints where it
  went, and re-raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from .backends import RemoteWorkerError, make_backend
from .callbacks import (
    Callback,
    ConsoleCallback,
    QueueReporter,
    RunStats,
    TensorBoardCallback,
)
from .checkpoint import (
    CheckpointError,
    assign_by_path,
    has_checkpoint,
    load_checkpoint,
    load_config,
    remove_stale_temp_files,
    save_checkpoint,
    save_config,
)
from .config import DIFFICULTIES, A3CConfig
from .envs import MathyTask, Observation, typed_state
from .inference import Solution, Step, solve
from .model import GlobalModel, masked_probabilities, network_for
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
    episodes of the new run. The saved model's ``model_size`` must match.
    """

    def __init__(
        self,
        config: A3CConfig,
        callbacks: list[Callback] | None = None,
        console: bool = True,
        progress: bool = True,
        transfer: str | None = None,
    ) -> None:
        self.config = config
        _single_threaded_tensorflow()
        keras.utils.set_random_seed(config.seed)
        self.network = network_for(config, task_spec(config))
        self.global_model = GlobalModel(self.network, config.lr)
        self.callbacks = list(callbacks or [])
        self.console = console
        self.progress = progress
        self.total_episodes = 0
        self.total_steps = 0
        self.resumed = has_checkpoint(config.model_dir)
        if self.resumed:
            if transfer is not None:
                raise CheckpointError(
                    f"{config.model_dir} already holds a model; --transfer starts a "
                    f"new one, so give it an empty folder"
                )
            self._restore(config.model_dir, with_optimizer=True)
        elif transfer is not None:
            self._restore(transfer, with_optimizer=False)

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
    ) -> Solution:
        """Simplify a typed problem step by step; see :mod:`mathy_a3c.inference`.

        The problem is observed exactly like a generated problem of ``topic``
        (default: the first topic the model trained on). Raises ``ValueError``
        for a problem the parser rejects.
        """
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
        return solve(task, observation, self.network.step, strategy, max_steps, on_step)

    # ------------------------------------------------------------------
    def _restore(self, folder: str, with_optimizer: bool) -> None:
        saved = load_config(folder)
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
        assign_by_path(self.network.variables, checkpoint.weights, "weights")
        if with_optimizer:

            def keep(path: str) -> bool:  # the learning rate comes from config
                return not path.endswith("/learning_rate")

            assign_by_path(
                [v for v in self.global_model.optimizer.variables if keep(v.path)],
                {k: v for k, v in checkpoint.optimizer.items() if keep(k)},
                "optimizer state",
            )
            self.total_episodes = checkpoint.episodes
            self.total_steps = checkpoint.steps

    # ------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run ``max_eps`` episodes across ``num_workers`` workers, then save."""
        cfg = self.config
        os.makedirs(cfg.model_dir, exist_ok=True)
        remove_stale_temp_files(cfg.model_dir)
        save_config(cfg.model_dir, cfg)
        reporter = QueueReporter()
        backend = make_backend(cfg, self.global_model, reporter, self.total_episodes)
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
        try:
            backend.start()
            while not backend.errors and backend.alive():
                backend.poll(timeout=0.05)
                _drain(reporter, callbacks, stats)
                elapsed = time.perf_counter() - start
                self.global_model.lr_scale = cfg.lr_scale(stats.episodes, elapsed)
                if cfg.max_seconds and elapsed >= cfg.max_seconds:
                    backend.close()
                if time.monotonic() - last_save >= cfg.save_every_s:
                    self._save(stats)
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            backend.stop()
            self.global_model.sync()
            _drain(reporter, callbacks, stats)
            for cb in callbacks:
                cb.on_end(stats)
            path = self._save(stats)
            print(
                f"\nInterrupted: stopped {cfg.num_workers} workers ({backend.name}) "
                f"after {stats.episodes} episodes; model saved to {path}",
                file=sys.stderr,
            )
            raise
        except BaseException:  # a failing callback: stop the workers, then fail
            backend.stop()
            self.global_model.sync()
            raise
        backend.stop()
        self.global_model.sync()  # remote backends' updates -> Keras
        _drain(reporter, callbacks, stats)
        for cb in callbacks:
            cb.on_end(stats)
        if backend.errors:
            worker_id, error = backend.errors[0]
            if not _is_numerical(error):
                self._save(stats)
            raise WorkerError(
                f"worker {worker_id} failed, training stopped: "
                f"{type(error).__name__}: {_summary(error)}"
            ) from error
        path = self._save(stats)
        self.total_episodes += stats.episodes
        self.total_steps += stats.steps
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
        save_config(self.config.model_dir, self.config)
        return self._save(RunStats())

    def _save(self, stats: RunStats) -> str:
        weights, optimizer = self.global_model.snapshot()
        if not all(np.all(np.isfinite(w)) for w in weights):
            raise FloatingPointError(
                "the global model holds NaN or inf weights; the last good "
                "checkpoint was kept"
            )
        net_vars = self.network.variables
        opt_vars = self.global_model.optimizer.variables
        return save_checkpoint(
            self.config.model_dir,
            weights={v.path: w for v, w in zip(net_vars, weights, strict=True)},
            optimizer={v.path: w for v, w in zip(opt_vars, optimizer, strict=True)},
            episodes=self.total_episodes + stats.episodes,
            steps=self.total_steps + stats.steps,
        )


def _single_threaded_tensorflow() -> None:
    """One TensorFlow thread for this process, if TensorFlow allows it yet.

    An update's graph is small (a rollout of at most ``update_interval``
    states): thread pools only add hand-offs, and the cores belong to the
    workers. Measured on 2 cores with 1 worker thread: 593 env steps/s with
    one TensorFlow thread, 504 with TensorFlow's default of one per core.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process
        pass


def _is_numerical(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, FloatingPointError) or "FloatingPointError" in text


def _summary(error: BaseException) -> str:
    """The last line of a remote traceback, or the message itself."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if isinstance(error, RemoteWorkerError) and lines else str(error)


def _drain(reporter: QueueReporter, callbacks: list[Callback], stats: RunStats) -> None:
    """Dispatch the events queued now to the callbacks, in order.

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
        else:
            for cb in callbacks:
                cb.on_show(*payload)
