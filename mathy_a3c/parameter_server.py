"""The global model of A3C: the shared weights and the optimizer that updates
them, as flat numpy vectors, behind a lock (no TensorFlow).

Every backend's workers talk to it the same way: "apply my gradients, give me
the weights" (:meth:`GlobalModel.update`). Threads call it directly, and so
do worker processes: the processes backend moves it into shared memory
(:meth:`GlobalModel.share`) and each worker process attaches to it
(:meth:`GlobalModel.attach`), so an update waits for no other process. The
Ray coordinator calls it for its remote workers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from .flat_adam import FlatAdam
from .numpy_actor import Layout

# What ``GlobalModel._meta`` holds, by index.
_STEPS, _SCALE, _HOLDER, _STOPPING = range(4)
#: How often a process waiting for the lock checks whether its holder died.
LOCK_CHECK_S = 1.0
#: A lock held this long by nobody known (its holder died between saying it
#: was done and letting go) is taken back: an update holds it for about 0.2 ms.
LOCK_STUCK_S = 10.0


class SharedState(NamedTuple):
    """A :class:`GlobalModel` in shared memory, for worker processes to
    :meth:`~GlobalModel.attach` to (it pickles into a spawned process's
    arguments)."""

    arrays: Any
    """``RawArray("f", 3 * size)``: the weights, Adam's first and second moments."""
    meta: Any
    """``RawArray("d", 4)``: Adam's step count, the learning-rate scale, the
    pid of the process holding the lock (0: none), 1 once training stops."""
    lock: Any
    """The ``multiprocessing`` lock every process takes to read or update."""
    learning_rate: float
    layout: Layout


class LocalModel(Protocol):
    """What the global model needs of a worker's local model."""

    def flat_gradients(self) -> np.ndarray: ...

    def set_flat_weights(self, flat: np.ndarray) -> None: ...


@dataclass
class TrainingState:
    """Weights and Adam's moments by variable path, and Adam's step count:
    what a checkpoint stores of the global model."""

    weights: dict[str, np.ndarray]
    momentum: dict[str, np.ndarray]
    velocity: dict[str, np.ndarray]
    iterations: int


class GlobalModel:
    """The shared weights and the one Adam optimizer that updates them.

    Every method takes the lock, so gradients from different workers are
    applied one at a time and a worker never copies half-updated weights.
    ``layout`` is the weights' layout in a flat vector
    (:attr:`mathy_a3c.model.ActorCritic.layout`).
    """

    def __init__(self, weights: np.ndarray, layout: Layout, learning_rate: float):
        self.layout = layout
        self._meta = np.zeros(4, np.float64)
        self._meta[_SCALE] = 1.0
        zeros = np.zeros_like(weights, dtype=np.float32)
        self._adam = FlatAdam.over(
            np.array(weights, np.float32),
            zeros,
            zeros.copy(),
            self._meta[_STEPS : _STEPS + 1],
            learning_rate,
        )
        self.lock: Any = threading.Lock()
        self._pid = os.getpid()
        #: Whether the process of a pid died (it then holds the lock no
        #: more): the processes backend tells, for its workers.
        self.holder_gone: Callable[[int], bool] = lambda pid: False
        #: Only the coordinator, after :meth:`share`, takes the lock back
        #: from a dead worker process (so it is never released twice).
        self._frees_dead_holders = False

    # -- shared memory ------------------------------------------------------------
    def share(self, context: Any) -> SharedState:
        """Move this model into shared memory made by ``context`` (a
        ``multiprocessing`` context); returns what worker processes attach to."""
        size = self._adam.weights.size
        shared = SharedState(
            context.RawArray("f", 3 * size),
            context.RawArray("d", len(self._meta)),
            context.Lock(),
            float(self._adam.learning_rate),
            self.layout,
        )
        old = self.lock
        with old:  # no worker exists yet; the lock keeps this consistent anyway
            adam, meta = self._adam, self._meta.copy()
            self.use_shared(shared)
            for mine, theirs in zip(
                (self._adam.weights, self._adam.momentum, self._adam.velocity),
                (adam.weights, adam.momentum, adam.velocity),
                strict=True,
            ):
                mine[...] = theirs
            self._meta[...] = meta
            self._meta[_HOLDER] = 0
            self.stopping = False
            self.lock = shared.lock
            self._frees_dead_holders = True
        return shared

    @classmethod
    def attach(cls, shared: SharedState) -> GlobalModel:
        """The global model a worker process shares with its coordinator."""
        model = cls(np.zeros(0, np.float32), shared.layout, shared.learning_rate)
        model.use_shared(shared)
        model.lock = shared.lock
        return model

    def use_shared(self, shared: SharedState) -> None:
        """Keep this model's state in ``shared`` from now on, as it is there
        (nothing is copied; :meth:`share` copies first)."""
        weights, momentum, velocity = np.split(
            np.frombuffer(shared.arrays, dtype=np.float32), 3
        )
        self._meta = np.frombuffer(shared.meta, dtype=np.float64)
        self._adam = FlatAdam.over(
            weights,
            momentum,
            velocity,
            self._meta[_STEPS : _STEPS + 1],
            shared.learning_rate,
        )

    @contextmanager
    def _held(self) -> Iterator[None]:
        """The lock, taken back from a worker process that died holding it."""
        since = time.monotonic()
        while not self.lock.acquire(timeout=LOCK_CHECK_S):
            if not self._frees_dead_holders:
                continue  # the coordinator frees it if its holder died
            holder = int(self._meta[_HOLDER])
            stuck = time.monotonic() - since > LOCK_STUCK_S
            if (holder and self.holder_gone(holder)) or (not holder and stuck):
                self.free_lock_of(holder)
                since = time.monotonic()
        self._meta[_HOLDER] = self._pid
        try:
            yield
        finally:
            self._meta[_HOLDER] = 0
            self.lock.release()

    def free_lock_of(self, pid: int) -> None:
        """Release the lock if process ``pid``, dead (the caller knows),
        holds it; ``pid`` 0: whoever holds it with no pid recorded. For the
        coordinator of worker processes only."""
        if not self._frees_dead_holders or int(self._meta[_HOLDER]) != pid:
            return
        if self.lock.acquire(False):  # nobody held it after all
            self.lock.release()
            return
        self._meta[_HOLDER] = 0
        self.lock.release()

    @property
    def stopping(self) -> bool:
        """True once training stops: workers then apply nothing more."""
        return bool(self._meta[_STOPPING])

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._meta[_STOPPING] = float(value)

    # -- the optimizer --------------------------------------------------------------
    @property
    def lr_scale(self) -> float:
        """Factor on the learning rate for the next updates; the agent sets it
        from ``A3CConfig.lr_scale`` as the run goes on."""
        return float(self._meta[_SCALE])

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        self._meta[_SCALE] = value

    @property
    def learning_rate(self) -> float:
        """The learning rate updates use now (the base rate times the scale)."""
        return float(self._adam.learning_rate) * self.lr_scale

    @property
    def iterations(self) -> int:
        """Updates applied so far (Adam's step count)."""
        return self._adam.iterations

    def apply_flat(self, grads: np.ndarray) -> np.ndarray:
        """Apply a flat gradient vector; returns the new flat weights."""
        with self._held():
            return self._adam.apply(grads, self.lr_scale)

    def flat_weights(self) -> np.ndarray:
        """The current global weights as one flat vector (a copy)."""
        with self._held():
            return self._adam.weights.copy()

    def update(self, local: LocalModel) -> np.ndarray:
        """Apply ``local``'s last gradients, then resync ``local``; returns the
        new weights (the worker's numpy actor reads them from it)."""
        flat = self.apply_flat(local.flat_gradients())
        local.set_flat_weights(flat)
        return flat

    def copy_to(self, local: LocalModel) -> np.ndarray:
        """Overwrite a local model's weights with the global ones; returns them."""
        flat = self.flat_weights()
        local.set_flat_weights(flat)
        return flat

    # -- checkpoints ------------------------------------------------------------
    def state(self) -> TrainingState:
        """The training state, read consistently."""
        with self._held():
            adam = self._adam
            return TrainingState(
                self._by_path(adam.weights),
                self._by_path(adam.momentum),
                self._by_path(adam.velocity),
                adam.iterations,
            )

    def load(self, state: TrainingState, with_optimizer: bool = True) -> None:
        """Take the weights (and, ``with_optimizer``, Adam's moments and step
        count) of a saved state; arrays must fit :attr:`layout` (the caller
        checked their paths and shapes). Written in place: a model in shared
        memory stays there."""
        weights = self._flat(state.weights)
        with self._held():
            adam = self._adam
            adam.weights[...] = weights
            if with_optimizer:
                adam.momentum[...] = self._flat(state.momentum)
                adam.velocity[...] = self._flat(state.velocity)
                adam.count[0] = state.iterations
            else:
                adam.momentum[...] = 0.0
                adam.velocity[...] = 0.0
                adam.count[0] = 0

    def _by_path(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {path: flat[a:b].reshape(s).copy() for path, a, b, s in self.layout}

    def _flat(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [np.asarray(arrays[path], np.float32).ravel() for path, *_ in self.layout]
        )
