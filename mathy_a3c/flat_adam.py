"""Adam on one flat float32 vector, in numpy: the remote backends' optimizer.

The processes and Ray coordinators receive each worker's gradients as one
vector and answer with the new weights as one vector. Running Keras' Adam on
that means splitting it into ~30 variables and back, about 1.2 ms per update on
one core for this model; the same arithmetic on the flat vector in numpy takes
about 0.2 ms, and the coordinator's reply time is what a remote worker waits
for after every rollout.

:class:`FlatAdam` reproduces ``keras.optimizers.Adam`` step for step (same
formulas, same float32 arithmetic; ``tests/test_flat_adam.py`` pins it to
Keras). It starts from, and writes back to, a Keras model and its Adam, so
checkpoints and the threads backend see one optimizer whichever backend ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class FlatAdam:
    """Adam state (weights, first and second moments, step) as flat vectors."""

    def __init__(
        self,
        weights: np.ndarray,
        momentum: np.ndarray,
        velocity: np.ndarray,
        iterations: int,
        learning_rate: float,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        self.weights = np.array(weights, np.float32)
        self.momentum = np.array(momentum, np.float32)
        self.velocity = np.array(velocity, np.float32)
        self.iterations = int(iterations)
        self.learning_rate = np.float32(learning_rate)
        self.beta_1, self.beta_2 = np.float32(beta_1), np.float32(beta_2)
        # Keras forms 1 - beta in Python floats, then casts: so do we.
        self._decay_1 = np.float32(1.0 - float(beta_1))
        self._decay_2 = np.float32(1.0 - float(beta_2))
        self.epsilon = np.float32(epsilon)
        self._scratch = np.empty_like(self.weights)
        self._step = np.empty_like(self.weights)

    @classmethod
    def from_keras(cls, optimizer: Any, variables: Sequence[Any]) -> FlatAdam:
        """The state of a built ``keras.optimizers.Adam`` over ``variables``."""
        if getattr(optimizer, "amsgrad", False):
            raise ValueError("FlatAdam does not implement amsgrad")
        moments = _moments(optimizer, variables)
        return cls(
            weights=_concat(variables),
            momentum=_concat([m for m, _ in moments]),
            velocity=_concat([v for _, v in moments]),
            iterations=int(np.asarray(optimizer.iterations)),
            learning_rate=float(np.asarray(optimizer.learning_rate)),
            beta_1=optimizer.beta_1,
            beta_2=optimizer.beta_2,
            epsilon=optimizer.epsilon,
        )

    def to_keras(self, optimizer: Any, variables: Sequence[Any]) -> None:
        """Write weights, moments and step count back into Keras."""
        moments = _moments(optimizer, variables)
        for flat, targets in (
            (self.weights, list(variables)),
            (self.momentum, [m for m, _ in moments]),
            (self.velocity, [v for _, v in moments]),
        ):
            for target, part in zip(targets, _split(flat, targets), strict=True):
                target.assign(part)
        optimizer.iterations.assign(self.iterations)

    def apply(self, gradient: np.ndarray, lr_scale: float = 1.0) -> np.ndarray:
        """One Adam step with ``gradient`` at ``lr_scale`` times the learning
        rate; returns a copy of the new weights."""
        g = np.asarray(gradient, np.float32)
        if g.shape != self.weights.shape:
            raise ValueError(
                f"gradient has shape {g.shape}, the weights {self.weights.shape}"
            )
        one = np.float32(1.0)
        step = np.float32(self.iterations + 1)
        alpha = (
            self.learning_rate
            * np.float32(lr_scale)
            * np.sqrt(one - self.beta_2**step)
            / (one - self.beta_1**step)
        )
        tmp, update = self._scratch, self._step
        np.subtract(g, self.momentum, out=tmp)
        tmp *= self._decay_1
        self.momentum += tmp
        np.multiply(g, g, out=tmp)
        tmp -= self.velocity
        tmp *= self._decay_2
        self.velocity += tmp
        np.sqrt(self.velocity, out=tmp)
        tmp += self.epsilon
        np.multiply(self.momentum, alpha, out=update)
        update /= tmp
        self.weights -= update
        self.iterations += 1
        return self.weights.copy()


def _moments(optimizer: Any, variables: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(momentum, velocity) optimizer variables for each model variable."""
    index = optimizer._get_variable_index  # keras 3: position in the var list
    return [
        (optimizer._momentums[index(v)], optimizer._velocities[index(v)])
        for v in variables
    ]


def _concat(variables: Sequence[Any]) -> np.ndarray:
    return np.concatenate([np.asarray(v).reshape(-1) for v in variables]).astype(
        np.float32
    )


def _split(flat: np.ndarray, like: Sequence[Any]) -> list[np.ndarray]:
    sizes = [int(np.prod(v.shape)) for v in like]
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [p.reshape(v.shape) for p, v in zip(parts, like, strict=True)]
