"""The global model of A3C: the shared weights and the optimizer that updates
them, as flat numpy vectors, behind a lock (no TensorFlow).

Every backend's workers talk to it the same way: "apply my gradients, give me
the weights" (:meth:`GlobalModel.apply_flat`). Threads call it directly;
the processes and Ray coordinators call it for their remote workers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .flat_adam import FlatAdam
from .numpy_actor import Layout


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
        self._adam = FlatAdam.fresh(weights, learning_rate)
        self.lock = threading.Lock()
        #: Factor on the learning rate for the next updates; the agent sets it
        #: from ``A3CConfig.lr_scale`` as the run goes on.
        self.lr_scale = 1.0

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
        with self.lock:
            return self._adam.apply(grads, self.lr_scale)

    def flat_weights(self) -> np.ndarray:
        """The current global weights as one flat vector (a copy)."""
        with self.lock:
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
        with self.lock:
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
        checked their paths and shapes)."""
        weights = self._flat(state.weights)
        with self.lock:
            rate = float(self._adam.learning_rate)
            if with_optimizer:
                self._adam = FlatAdam(
                    weights,
                    self._flat(state.momentum),
                    self._flat(state.velocity),
                    state.iterations,
                    rate,
                )
            else:
                self._adam = FlatAdam.fresh(weights, rate)

    def _by_path(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {path: flat[a:b].reshape(s).copy() for path, a, b, s in self.layout}

    def _flat(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [np.asarray(arrays[path], np.float32).ravel() for path, *_ in self.layout]
        )
