"""FlatAdam against Keras' Adam (through Keras' public API only)."""

import keras
import numpy as np
import pytest

from mathy_a3c.flat_adam import FlatAdam
from mathy_a3c.model import ActorCritic


def _gradients(net, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(0.0, 0.1, net.size).astype(np.float32) * (1 + i % 3)
        for i in range(steps)
    ]


def _split(flat, variables):
    sizes = [int(np.prod(v.shape)) for v in variables]
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [p.reshape(v.shape) for p, v in zip(parts, variables, strict=True)]


def test_flat_adam_follows_keras_adam_step_for_step():
    keras_net = ActorCritic(model_size=8)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    flat = FlatAdam.fresh(keras_net.flat_weights(), learning_rate=1e-2)
    for grad in _gradients(keras_net, 5):
        optimizer.apply_gradients(
            zip(_split(grad, keras_net.variables), keras_net.variables, strict=True)
        )
        weights = flat.apply(grad)
        np.testing.assert_allclose(weights, keras_net.flat_weights(), atol=1e-6)
    assert flat.iterations == int(optimizer.iterations.numpy()) == 5


def test_flat_adam_rejects_gradients_of_another_shape():
    flat = FlatAdam.fresh(np.zeros(5, np.float32), learning_rate=1e-2)
    with pytest.raises(ValueError, match="gradient has shape"):
        flat.apply(np.zeros(3, np.float32))


def test_flat_adam_scales_its_step_by_the_learning_rate_factor():
    net = ActorCritic(model_size=8)
    grads = _gradients(net, 3)
    full, scaled, frozen = (
        FlatAdam.fresh(net.flat_weights(), learning_rate=1e-2) for _ in "abc"
    )
    start = full.weights.copy()
    for grad in grads[:2]:  # same state before the compared step
        for adam in (full, scaled, frozen):
            adam.apply(grad)
    before = full.weights.copy()
    np.testing.assert_array_equal(before, scaled.weights)
    step_full = full.apply(grads[2]) - before
    step_scaled = scaled.apply(grads[2], lr_scale=0.25) - before
    np.testing.assert_allclose(step_scaled, 0.25 * step_full, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(frozen.apply(grads[2], lr_scale=0.0), before)
    np.testing.assert_array_equal(frozen.momentum, full.momentum)  # moments move
    assert not np.array_equal(before, start)


def test_negligible_moments_become_zero_before_they_are_subnormal():
    """Half the weights stop getting gradients after 10 steps: their first
    moments shrink by 0.9 a step toward float32's subnormal range (slow
    arithmetic). Dropped below 1e-30 every 16 steps, no moment ever gets
    there, and every weight is what Adam without the drop gives."""
    rng = np.random.default_rng(0)
    size = 4096
    weights = rng.normal(0.0, 0.1, size).astype(np.float32)
    dropping = FlatAdam.fresh(weights, learning_rate=1e-3)
    keeping = FlatAdam.fresh(weights, learning_rate=1e-3)
    keeping._drop_negligible_moments = lambda: None  # type: ignore[method-assign]

    tiny = np.finfo(np.float32).tiny

    def subnormal(moment):
        return bool(np.any((moment != 0) & (np.abs(moment) < tiny)))

    kept_subnormal = False
    for step in range(1200):
        gradient = rng.normal(0.0, 1e-3, size).astype(np.float32)
        if step >= 10:
            gradient[: size // 2] = 0.0
        dropping.apply(gradient)
        keeping.apply(gradient)
        assert not subnormal(dropping.momentum) and not subnormal(dropping.velocity)
        kept_subnormal |= subnormal(keeping.momentum)
        np.testing.assert_array_equal(dropping.weights, keeping.weights)
    assert kept_subnormal  # without the drop, the moments do get there
    assert np.all(dropping.momentum[: size // 2] == 0.0)
