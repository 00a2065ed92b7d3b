"""FlatAdam against Keras' Adam, and the global model's flat/Keras hand-over."""

import keras
import numpy as np
import pytest

from mathy_a3c.flat_adam import FlatAdam
from mathy_a3c.model import ActorCritic, GlobalModel


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
    keras_net, flat_net = ActorCritic(model_size=8), ActorCritic(model_size=8)
    flat_net.set_weights(keras_net.get_weights())
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    optimizer.build(keras_net.variables)
    flat = FlatAdam.from_keras(optimizer, keras_net.variables)
    for grad in _gradients(keras_net, 5):
        optimizer.apply_gradients(
            zip(_split(grad, keras_net.variables), keras_net.variables, strict=True)
        )
        weights = flat.apply(grad)
        np.testing.assert_allclose(weights, keras_net.flat_weights(), atol=1e-6)
    assert flat.iterations == int(optimizer.iterations.numpy()) == 5


def test_flat_adam_round_trips_through_keras_and_rejects_bad_shapes():
    net = ActorCritic(model_size=8)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    optimizer.build(net.variables)
    flat = FlatAdam.from_keras(optimizer, net.variables)
    for grad in _gradients(net, 3):
        flat.apply(grad)
    flat.to_keras(optimizer, net.variables)
    again = FlatAdam.from_keras(optimizer, net.variables)
    np.testing.assert_array_equal(again.weights, flat.weights)
    np.testing.assert_array_equal(again.momentum, flat.momentum)
    np.testing.assert_array_equal(again.velocity, flat.velocity)
    assert again.iterations == 3
    with pytest.raises(ValueError, match="gradient has shape"):
        flat.apply(np.zeros(3, np.float32))


def test_global_model_mixes_flat_and_keras_updates_like_keras_alone():
    """Remote updates, then a snapshot or a thread's update, lose nothing."""
    grads = _gradients(ActorCritic(model_size=8), 4, seed=1)
    reference = GlobalModel(ActorCritic(model_size=8), learning_rate=1e-2)
    mixed = GlobalModel(ActorCritic(model_size=8), learning_rate=1e-2)
    mixed.network.set_weights(reference.network.get_weights())
    for grad in grads:
        reference.optimizer.apply_gradients(
            zip(
                _split(grad, reference.network.variables),
                reference.network.variables,
                strict=True,
            )
        )
    for grad in grads[:2]:
        mixed.apply_flat(grad)
    weights, _ = mixed.snapshot()  # hands the state back to Keras
    np.testing.assert_array_equal(
        np.concatenate([w.ravel() for w in weights]), mixed.network.flat_weights()
    )
    for grad in grads[2:]:
        returned = mixed.apply_flat(grad)
    np.testing.assert_array_equal(returned, mixed.flat_weights())
    mixed.sync()
    np.testing.assert_allclose(
        mixed.network.flat_weights(), reference.network.flat_weights(), atol=1e-6
    )
    assert int(mixed.optimizer.iterations.numpy()) == 4


def test_flat_adam_scales_its_step_by_the_learning_rate_factor():
    net = ActorCritic(model_size=8)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    optimizer.build(net.variables)
    grads = _gradients(net, 3)
    full, scaled, frozen = (
        FlatAdam.from_keras(optimizer, net.variables) for _ in "abc"
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
