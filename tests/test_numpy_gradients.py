"""The numpy gradient of the A3C loss against TensorFlow's, on real rollouts."""

import numpy as np
import pytest

from mathy_a3c.envs import MathyTask, stack
from mathy_a3c.model import ActorCritic
from mathy_a3c.numpy_gradients import NumpyGradients
from mathy_a3c.policy import sample_action


def _rollouts(net, topic, difficulty, count, length, seed):
    """``count`` rollouts of up to ``length`` states, played by ``net``."""
    actor = net.numpy_actor()
    task = MathyTask([topic], difficulty, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        observations, actions = [task.reset()], []
        while len(actions) < length:
            logits, _ = actor(observations[-1])
            actions.append(sample_action(logits, observations[-1].mask, rng))
            result = task.step(actions[-1])
            if result.done:
                break
            observations.append(result.observation)
        size = len(actions)
        yield (
            observations[:size],
            np.array(actions),
            rng.normal(size=size).astype(np.float32),
            rng.normal(size=size).astype(np.float32),
        )


def _perturbed(net, seed, scale=0.05):
    rng = np.random.default_rng(seed)
    flat = net.flat_weights()
    flat += rng.normal(0.0, scale, flat.size).astype(np.float32)
    net.set_flat_weights(flat)
    return flat


def _same(net, flat, rollout):
    """The numpy and TensorFlow losses and clipped gradients agree, and numpy's
    are the same from the observations as from the actor's traces of them."""
    observations, actions, advantages, returns = rollout
    expected = net.compute_gradients(stack(observations), actions, advantages, returns)
    want = net.flat_gradients().copy()
    terms = net.numpy_gradients(observations, actions, advantages, returns)
    got = net.flat_gradients().copy()
    np.testing.assert_allclose(terms, expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
    actor = net.numpy_actor()
    traces = [actor.trace(o) for o in observations]
    traced = net.numpy_gradients(traces, actions, advantages, returns)
    np.testing.assert_allclose(traced, terms, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        net.flat_gradients(), got, rtol=0, atol=1e-6 * np.abs(got).max()
    )
    return got


@pytest.mark.parametrize(
    "topic,difficulty",
    [("poly", "easy"), ("complex", "normal"), ("binomial", "normal")],
)
def test_numpy_gradients_match_tensorflow_on_played_rollouts(topic, difficulty):
    net = ActorCritic(model_size=16, seed=1)
    flat = _perturbed(net, seed=2)
    rollouts = list(_rollouts(net, topic, difficulty, count=4, length=7, seed=3))
    assert max(len(r[0]) for r in rollouts) > 1
    for rollout in rollouts:
        _same(net, flat, rollout)


def test_one_state_rollouts_and_clipping_on_and_off():
    loose = ActorCritic(model_size=8, seed=4, max_grad_norm=1e6)
    tight = ActorCritic(model_size=8, seed=4, max_grad_norm=1e-3)
    for net in (loose, tight):
        flat = _perturbed(net, seed=5)
        for rollout in _rollouts(net, "poly", "easy", count=2, length=1, seed=6):
            got = _same(net, flat, rollout)
            norm = float(np.linalg.norm(got))
            assert (norm < 1e6) if net is loose else norm == pytest.approx(1e-3)


def test_tied_maxima_share_the_gradient_as_tensorflow_does():
    """With the policy layer's units dead at every node but one feature, the
    value head's max over nodes ties everywhere: TensorFlow splits its
    gradient equally between the tied nodes, and so must numpy."""
    net = ActorCritic(model_size=8, seed=7)
    flat = net.flat_weights()
    for path, start, end, _ in net.layout:
        if path == "policy_hidden/kernel":
            flat[start:end] = 0.0
        if path == "policy_hidden/bias":
            flat[start:end] = np.linspace(-0.2, 0.3, end - start)
    net.set_flat_weights(flat)
    for rollout in _rollouts(net, "poly", "normal", count=2, length=4, seed=8):
        got = _same(net, flat, rollout)
        assert np.any(got)


def test_numpy_gradients_are_for_mathy_networks_only():
    from mathy_a3c.gym_envs import GymSpec

    net = ActorCritic(model_size=8, spec=GymSpec("gym:CartPole-v1", 4, 2))
    assert not net.has_numpy_gradients
    with pytest.raises(TypeError, match="Mathy networks only"):
        net.numpy_gradients([], np.array([]), np.array([]), np.array([]))


def test_a_gradient_needs_no_model_only_its_layout():
    net = ActorCritic(model_size=8, seed=9, entropy_coef=0.05, value_coef=0.25)
    flat = _perturbed(net, seed=10)
    rollout = next(_rollouts(net, "poly", "easy", count=1, length=5, seed=11))
    gradients = NumpyGradients(net.layout, 0.25, 0.05, 0.5)
    terms, gradient = gradients(flat, *rollout)
    expected = net.compute_gradients(stack(rollout[0]), *rollout[1:])
    np.testing.assert_allclose(terms, expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(gradient, net.flat_gradients(), atol=1e-6)


def test_a_reused_gradient_vector_keeps_nothing_of_the_last_call():
    """The returned vector is the object's own, written anew by every call:
    after another rollout's gradient it holds exactly a fresh object's."""
    net = ActorCritic(model_size=8, seed=12)
    flat = _perturbed(net, seed=13)
    first, second = _rollouts(net, "poly", "easy", count=2, length=5, seed=14)
    reused = NumpyGradients(net.layout, 0.5, 0.01, 0.5)
    _, before = reused(flat, *first)
    before[:] = np.nan  # whatever a call leaves unwritten would stay NaN
    _, after = reused(flat, *second)
    _, fresh = NumpyGradients(net.layout, 0.5, 0.01, 0.5)(flat, *second)
    assert after is before  # the same vector ...
    np.testing.assert_array_equal(after, fresh)  # ... holding only this call's
