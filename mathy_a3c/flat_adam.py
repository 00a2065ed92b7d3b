"""Adam on one flat float32 vector, in numpy: the global model's optimizer.

Every backend hands over a worker's gradients as one vector and gets the new
weights back as one vector. Running Keras' Adam on that means splitting it
into ~30 variables and back, about 1.2 ms per update on one core for this
model; the same arithmetic on the flat vector in numpy takes about 0.2 ms,
and the reply time is what a worker waits for after every rollout.

:class:`FlatAdam` reproduces ``keras.optimizers.Adam`` step for step (same
formulas, same float32 arithmetic; ``tests/test_flat_adam.py`` pins it to
Keras through Keras' public API). Its state is this library's own: the
checkpoint stores the weights and both moments by variable path, and the
step count (:mod:`mathy_a3c.checkpoint`).

Every 16 steps, moments below 1e-30 are set to 0. The first moment of a
weight whose gradient has become 0 shrinks by ``beta_1`` each step, and on
its way to 0 spends about 150 steps below float32's smallest normal number
(1.2e-38), where x86 CPUs take up to a hundred times longer on arithmetic:
after 2,000 updates on poly, 14% of the first moments were there, and Adam
took twice as long. (TensorFlow's CPU kernels avoid it by running with
flush-to-zero, a CPU setting numpy leaves alone.) A moment below 1e-30 moves
its weight by less than ``learning_rate * 1e-23``, nothing in float32, and
in 16 steps it cannot shrink into that range: the first moment by 0.9 a
step, the second by 0.999.
"""

from __future__ import annotations

import numpy as np

#: Moments below this are set to 0 every ``_FLUSH_EVERY`` steps (module doc).
_NEGLIGIBLE = np.float32(1e-30)
_FLUSH_EVERY = 16


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
        count: np.ndarray | None = None,
    ) -> None:
        if count is None:  # copies of the arrays given
            self.weights = np.array(weights, np.float32)
            self.momentum = np.array(momentum, np.float32)
            self.velocity = np.array(velocity, np.float32)
            count = np.array([iterations], np.float64)
        else:  # the arrays themselves (see :meth:`over`)
            self.weights, self.momentum, self.velocity = weights, momentum, velocity
        #: The step count, in a one-element array.
        self.count = count
        self.learning_rate = np.float32(learning_rate)
        self.beta_1, self.beta_2 = np.float32(beta_1), np.float32(beta_2)
        # Keras forms 1 - beta in Python floats, then casts: so do we.
        self._decay_1 = np.float32(1.0 - float(beta_1))
        self._decay_2 = np.float32(1.0 - float(beta_2))
        self.epsilon = np.float32(epsilon)
        self._scratch = np.empty_like(self.weights)
        self._step = np.empty_like(self.weights)
        self._small = np.empty(self.weights.shape, bool)

    @classmethod
    def fresh(cls, weights: np.ndarray, learning_rate: float) -> FlatAdam:
        """A new optimizer for ``weights``: zero moments, no steps yet."""
        zeros = np.zeros_like(weights, dtype=np.float32)
        return cls(weights, zeros, zeros, 0, learning_rate)

    @classmethod
    def over(
        cls,
        weights: np.ndarray,
        momentum: np.ndarray,
        velocity: np.ndarray,
        count: np.ndarray,
        learning_rate: float,
    ) -> FlatAdam:
        """An optimizer whose state *is* the arrays given, updated in place
        (shared memory, for instance): three float32 vectors, and ``count``,
        a one-element float64 array holding the step count."""
        return cls(weights, momentum, velocity, 0, learning_rate, count=count)

    @property
    def iterations(self) -> int:
        """Steps applied so far."""
        return int(self.count[0])

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
        self.count[0] += 1
        if self.iterations % _FLUSH_EVERY == 0:
            self._drop_negligible_moments()
        return self.weights.copy()

    def _drop_negligible_moments(self) -> None:
        """Set moments below ``_NEGLIGIBLE`` to 0, by masked copies (no
        arithmetic on them)."""
        np.abs(self.momentum, out=self._step)
        np.less(self._step, _NEGLIGIBLE, out=self._small)
        np.copyto(self.momentum, 0.0, where=self._small)
        np.less(self.velocity, _NEGLIGIBLE, out=self._small)  # never negative
        np.copyto(self.velocity, 0.0, where=self._small)
