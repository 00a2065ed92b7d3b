"""The actor-critic network: masking, compiled calls, the global model."""

import numpy as np
import pytest
import tensorflow as tf

from mathy_a3c.envs import ACTION_SIZE, MathyTask, stack, typed_state
from mathy_a3c.model import ActorCritic
from mathy_a3c.numpy_actor import NumpyActor
from mathy_a3c.policy import MASKED_LOGIT, masked_probabilities, sample_action


@pytest.fixture(scope="module")
def batch():
    task = MathyTask(["poly", "complex"], "easy", seed=0)
    return stack([task.reset() for _ in range(6)])


def test_invalid_actions_get_zero_probability(batch):
    net = ActorCritic(model_size=8)
    logits, values = net.predict(batch)
    assert logits.shape == (6, ACTION_SIZE) and values.shape == (6,)
    probs = masked_probabilities(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
    assert np.all(probs[batch.mask == 0] == 0.0)
    assert np.all(probs[batch.mask == 1] > 0.0)


def test_masking_replaces_logits_instead_of_scaling_them(batch):
    """A large positive raw logit on an invalid action must still be masked."""
    net = ActorCritic(model_size=8)
    head = net.model.get_layer("policy_head")
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias + 1e6])  # every raw logit huge and positive
    probs = masked_probabilities(net.predict(batch)[0])
    assert np.all(probs[batch.mask == 0] == 0.0)


def test_forward_and_gradients_trace_once_for_any_batch_size(batch):
    net = ActorCritic(model_size=8)
    for size in (1, 3, 6):
        part = type(batch)(*(a[:size] for a in batch))
        net.predict(part)
        actions = [int(np.flatnonzero(m)[0]) for m in part.mask]
        net.gradients(part, actions, np.ones(size), np.ones(size))
    net.step(type(batch)(*(a[0] for a in batch)))
    assert net._functions["forward"].experimental_get_tracing_count() == 1
    assert net.gradient_function.experimental_get_tracing_count() == 1


def test_gradients_are_clipped_and_entropy_counts_valid_actions_only(batch):
    net = ActorCritic(model_size=8, max_grad_norm=0.01)
    actions = [int(np.flatnonzero(m)[0]) for m in batch.mask]
    grads, terms = net.gradients(batch, actions, np.full(6, 5.0), np.full(6, 5.0))
    assert float(tf.linalg.global_norm(grads)) == pytest.approx(0.01, rel=1e-3)
    assert terms.grad_norm > 0.01
    valid = batch.mask.sum(axis=1)
    assert 0.0 < terms.entropy <= float(np.mean(np.log(valid))) + 1e-5


def test_a_model_can_take_its_gradients_from_another_of_the_same_network(batch):
    first = ActorCritic(model_size=8, seed=1)
    second = ActorCritic(model_size=8, seed=2, gradients_from=first)
    alone = ActorCritic(model_size=8, seed=2)  # traces its own
    actions = [int(np.flatnonzero(m)[0]) for m in batch.mask]
    args = (batch, actions, np.linspace(-1, 1, 6), np.ones(6))
    first.compute_gradients(*args)
    second.compute_gradients(*args)  # at its own weights, not first's
    alone.compute_gradients(*args)
    np.testing.assert_allclose(second.flat_gradients(), alone.flat_gradients())
    assert not np.allclose(second.flat_gradients(), first.flat_gradients())
    assert second.gradient_function is first.gradient_function
    assert first.gradient_function.experimental_get_tracing_count() == 1
    for other in (
        ActorCritic(model_size=16),
        ActorCritic(model_size=8, entropy_coef=0.05),
        ActorCritic(model_size=8, max_grad_norm=5.0),
    ):
        with pytest.raises(ValueError, match="same network and loss"):
            ActorCritic(model_size=8, gradients_from=other)


def _random_weights(net, seed=0):
    rng = np.random.default_rng(seed)
    for v in net.variables:
        v.assign(rng.normal(0.0, 0.3, v.shape).astype(np.float32))


def test_numpy_actor_matches_the_keras_model():
    net = ActorCritic(model_size=16)
    _random_weights(net)
    actor = NumpyActor(net.layout, net.flat_weights())
    for topic in ("poly", "complex", "poly-commute"):
        task = MathyTask([topic], "normal", seed=2)
        for _ in range(5):
            obs = task.reset()
            keras_logits, keras_value = net.step(obs)
            np_logits, np_value = actor(obs)
            valid = obs.mask > 0
            np.testing.assert_allclose(
                np_logits[valid], keras_logits[valid], rtol=1e-4, atol=1e-4
            )
            assert np.all(np_logits[~valid] == keras_logits[~valid])
            assert np_value == pytest.approx(keras_value, rel=1e-4, abs=1e-4)
    # Expressions shorter than a convolution's dilation (no neighbours at all).
    task = MathyTask(["poly"], "easy", seed=0)
    for text in ("x", "2x", "2x + 3", "4y + 2y"):
        obs = task.start(typed_state(task.env, text))
        valid = obs.mask > 0
        keras_logits, keras_value = net.step(obs)
        np_logits, np_value = actor(obs)
        np.testing.assert_allclose(
            np_logits[valid], keras_logits[valid], rtol=1e-4, atol=1e-4
        )
        assert np_value == pytest.approx(keras_value, rel=1e-4, abs=1e-4)


def test_trimming_padding_nodes_does_not_change_outputs(batch):
    net = ActorCritic(model_size=16)
    _random_weights(net, seed=1)
    trimmed_logits, trimmed_values = net.predict(batch)  # trims to used nodes
    full_logits, full_values = (t.numpy() for t in net._traced("forward")(*batch))
    np.testing.assert_allclose(trimmed_logits, full_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(trimmed_values, full_values, rtol=1e-5, atol=1e-5)


def test_sample_action_only_draws_valid_actions_in_proportion():
    logits = np.full(ACTION_SIZE, -1e9, np.float32)
    mask = np.zeros(ACTION_SIZE, np.float32)
    mask[[3, 10, 500]] = 1
    logits[[3, 10, 500]] = np.log([0.2, 0.3, 0.5])
    rng = np.random.default_rng(0)
    draws = np.array([sample_action(logits, mask, rng) for _ in range(20_000)])
    assert set(np.unique(draws)) == {3, 10, 500}
    for action, p in ((3, 0.2), (10, 0.3), (500, 0.5)):
        assert np.mean(draws == action) == pytest.approx(p, abs=0.015)


def test_flat_weights_round_trip_and_match_the_variables():
    source, target = ActorCritic(model_size=8), ActorCritic(model_size=8)
    flat = source.flat_weights()
    assert flat.shape == (source.size,) and flat.dtype == np.float32
    target.set_flat_weights(flat)
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        flat, np.concatenate([w.ravel() for w in source.get_weights()])
    )


def test_vector_model_numpy_actor_matches_keras_and_masks_actions():
    from mathy_a3c.gym_envs import GymSpec, VectorObservation

    net = ActorCritic(model_size=16, spec=GymSpec("gym:Toy-v0", 5, 4))
    _random_weights(net, seed=3)
    actor = net.numpy_actor()
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs = VectorObservation(
            rng.normal(size=5).astype(np.float32),
            np.array([1, 0, 1, 1], np.float32),
        )
        keras_logits, keras_value = net.step(obs)
        logits, value = actor(obs)
        assert keras_logits[1] == logits[1] == MASKED_LOGIT
        np.testing.assert_allclose(logits, keras_logits, rtol=1e-4, atol=1e-5)
        assert value == pytest.approx(keras_value, rel=1e-4, abs=1e-5)
    batch = VectorObservation(
        rng.normal(size=(6, 5)).astype(np.float32), np.ones((6, 4), np.float32)
    )
    grads, terms = net.gradients(batch, [0, 1, 2, 3, 0, 1], np.ones(6), np.ones(6))
    assert [g.shape for g in grads] == [tuple(v.shape) for v in net.variables]
    assert np.isfinite(terms.total)
    assert net.gradient_function.experimental_get_tracing_count() == 1


def test_gradients_from_the_flat_vector_match_a_tape_over_the_variables(batch):
    """The stateless gradient equals the textbook one: a GradientTape over the
    Keras variables, with the loss written out here."""
    net = ActorCritic(model_size=8, entropy_coef=0.01, value_coef=0.5)
    _random_weights(net, seed=3)
    actions = np.array([int(np.flatnonzero(m)[-1]) for m in batch.mask])
    advantages = np.linspace(-1.0, 2.0, 6).astype(np.float32)
    returns = np.linspace(0.5, 1.5, 6).astype(np.float32)
    terms = net.compute_gradients(batch, actions, advantages, returns)
    from mathy_a3c.networks import masked_policy_logits, trimmed

    inputs = trimmed(batch)
    with tf.GradientTape() as tape:
        per_node, value = net.model(list(inputs[:-1]), training=True)
        log_probs = tf.nn.log_softmax(masked_policy_logits(per_node, batch.mask))
        chosen = tf.gather(log_probs, actions, batch_dims=1)
        probs = tf.exp(log_probs)
        entropy = -tf.reduce_sum(
            tf.where(batch.mask > 0, probs * log_probs, 0.0), axis=-1
        )
        total = (
            -tf.reduce_mean(chosen * advantages)
            + 0.5 * tf.reduce_mean(tf.square(returns - value))
            - 0.01 * tf.reduce_mean(entropy)
        )
    expected = np.concatenate(
        [
            tf.convert_to_tensor(g).numpy().ravel()
            for g in tape.gradient(total, net.variables)
        ]
    )
    assert terms.total == pytest.approx(float(total), rel=1e-5)
    norm = float(np.linalg.norm(expected))
    assert terms.grad_norm == pytest.approx(norm, rel=1e-4)
    scale = min(1.0, 0.5 / norm)  # the default max_grad_norm clips here
    np.testing.assert_allclose(net.flat_gradients(), expected * scale, atol=1e-6)


def test_a_seed_gives_the_same_weights_and_builds_touch_no_global_random_state():
    import random

    import keras

    before = (random.getstate(), np.random.get_state()[1].copy())
    a, b = ActorCritic(model_size=8, seed=5), ActorCritic(model_size=8, seed=5)
    np.testing.assert_array_equal(a.flat_weights(), b.flat_weights())
    other = ActorCritic(model_size=8, seed=6)
    assert not np.array_equal(a.flat_weights(), other.flat_weights())
    assert random.getstate() == before[0]
    np.testing.assert_array_equal(np.random.get_state()[1], before[1])
    keras.utils.set_random_seed(1)  # a program's own seeding changes nothing here
    np.testing.assert_array_equal(
        ActorCritic(model_size=8, seed=5).flat_weights(), a.flat_weights()
    )


def test_handed_over_weights_are_used_and_reach_the_keras_variables_when_read(batch):
    source, local = ActorCritic(model_size=8), ActorCritic(model_size=8)
    _random_weights(source, seed=4)
    flat = source.flat_weights()
    actions = [int(np.flatnonzero(m)[0]) for m in batch.mask]
    args = (batch, actions, np.ones(6), np.ones(6))
    source.compute_gradients(*args)
    local.set_flat_weights(flat)
    # Not assigned yet: the Keras variables still hold the old weights ...
    assert not np.array_equal(local._traced("flat_weights")().numpy(), flat)
    # ... but gradients already come from the handed-over ones,
    local.compute_gradients(*args)
    np.testing.assert_array_equal(local.flat_gradients(), source.flat_gradients())
    # and anything that reads the Keras model sees them.
    np.testing.assert_allclose(local.predict(batch)[1], source.predict(batch)[1])
    np.testing.assert_array_equal(local._traced("flat_weights")().numpy(), flat)
    with pytest.raises(ValueError, match="expected"):
        local.set_flat_weights(flat[:-1])


def test_a_program_that_builds_many_models_gets_no_retracing_warning(caplog, batch):
    # Benchmarks and loops over model folders build one model after another;
    # TensorFlow warns once six first calls of the same code traced.
    with caplog.at_level("WARNING", logger="tensorflow"):
        for seed in range(7):
            model = ActorCritic(model_size=8, seed=seed)
            model.flat_weights()
            model.get_weights()
            model.set_flat_weights(model.flat_weights())
            model.predict(batch)  # each function is traced at its first use
            actions = [int(np.flatnonzero(m)[0]) for m in batch.mask]
            model.gradients(batch, actions, np.ones(6), np.ones(6))
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
