"""The A3C agent: a global model, N worker threads, and the loop that watches them.

::

    agent = A3CAgent(A3CConfig(topics=["poly"], model_dir="output/my_agent"))
    result = agent.train()

The main thread owns all output and saving. Workers send it finished episodes
through a queue; it updates the progress bar and TensorBoard, saves the model
every ``save_every_s`` seconds and at the end, and watches for failures:

* a worker that raises sets the shared stop event; every worker finishes its
  current step and exits, and :meth:`A3CAgent.train` raises :class:`WorkerError`
  from the worker's exception (its traceback is kept as ``__cause__``);
* Ctrl-C stops the workers, joins them, saves the model, prints where it went,
  and re-raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass

import keras
import numpy as np

from .callbacks import (
    Callback,
    ConsoleCallback,
    QueueReporter,
    RunStats,
    TensorBoardCallback,
)
from .checkpoint import save_checkpoint, save_config
from .config import A3CConfig
from .counting import EpisodeCounter, StepCounter
from .model import ActorCritic, GlobalModel
from .worker import Worker

#: Seconds to wait for a worker to finish its current step after a stop.
JOIN_TIMEOUT_S = 60.0


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
    """

    def __init__(
        self,
        config: A3CConfig,
        callbacks: list[Callback] | None = None,
        console: bool = True,
        progress: bool = True,
    ) -> None:
        self.config = config
        keras.utils.set_random_seed(config.seed)
        self.network = ActorCritic(
            config.model_size,
            entropy_coef=config.entropy_coef,
            value_coef=config.value_coef,
            max_grad_norm=config.max_grad_norm,
        )
        self.global_model = GlobalModel(self.network, config.lr)
        self.callbacks = list(callbacks or [])
        self.console = console
        self.progress = progress
        self.total_episodes = 0
        self.total_steps = 0

    # ------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run ``max_eps`` episodes across ``num_workers`` threads, then save."""
        cfg = self.config
        os.makedirs(cfg.model_dir, exist_ok=True)
        save_config(cfg.model_dir, cfg)
        stop = threading.Event()
        episodes = EpisodeCounter(cfg.max_eps)
        steps = StepCounter()
        reporter = QueueReporter()
        workers = [
            Worker(i, cfg, self.global_model, reporter, episodes, steps, stop)
            for i in range(cfg.num_workers)
        ]
        errors: list[tuple[int, BaseException]] = []
        threads = [
            threading.Thread(
                target=_run_worker,
                args=(w, stop, errors),
                name=f"a3c-worker-{w.id}",
                daemon=True,
            )
            for w in workers
        ]
        callbacks: list[Callback] = [
            TensorBoardCallback(
                os.path.join(cfg.model_dir, "tensorboard"),
                learning_rate=cfg.lr,
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
        for t in threads:
            t.start()
        try:
            while not errors and any(t.is_alive() for t in threads):
                _drain(reporter, callbacks, stats, timeout=0.1)
                elapsed = time.perf_counter() - start
                if cfg.max_seconds and elapsed >= cfg.max_seconds:
                    episodes.close()
                if time.monotonic() - last_save >= cfg.save_every_s:
                    self._save(stats)
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            stop.set()
            _join(threads)
            _drain(reporter, callbacks, stats, timeout=0.0)
            for cb in callbacks:
                cb.on_end(stats)
            path = self._save(stats)
            print(
                f"\nInterrupted: stopped {len(threads)} workers after "
                f"{stats.episodes} episodes; model saved to {path}",
                file=sys.stderr,
            )
            raise
        except BaseException:  # a failing callback: stop the workers, then fail
            stop.set()
            _join(threads)
            raise
        stop.set()
        _join(threads)
        _drain(reporter, callbacks, stats, timeout=0.0)
        for cb in callbacks:
            cb.on_end(stats)
        if errors:
            worker_id, error = errors[0]
            if not isinstance(error, FloatingPointError):
                self._save(stats)
            raise WorkerError(
                f"worker {worker_id} failed, training stopped: "
                f"{type(error).__name__}: {error}"
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


def _run_worker(
    worker: Worker, stop: threading.Event, errors: list[tuple[int, BaseException]]
) -> None:
    try:
        worker.run()
    except BaseException as error:  # handed to the main thread, re-raised there
        errors.append((worker.id, error))
        stop.set()


def _join(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        print(f"warning: workers still running after stop: {stuck}", file=sys.stderr)


def _drain(
    reporter: QueueReporter,
    callbacks: list[Callback],
    stats: RunStats,
    timeout: float,
) -> None:
    """Dispatch the events queued now; wait up to ``timeout`` for the first one.

    Events that arrive while draining wait for the next call, so the caller's
    loop keeps control even when workers report faster than callbacks run.
    """
    block = timeout > 0
    for _ in range(max(1, reporter.events.qsize())):
        try:
            kind, payload = reporter.events.get(block=block, timeout=timeout or None)
        except queue.Empty:
            return
        block = False
        if kind == "episode":
            stats.add(payload)
            for cb in callbacks:
                cb.on_episode(payload, stats)
        else:
            for cb in callbacks:
                cb.on_show(*payload)
