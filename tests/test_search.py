"""Tree search guided by a model: batched leaf evaluation, transitions from
the environment, early stop on a win, the move budget."""

import numpy as np
import pytest

import mathy_a3c.search as search_module
from mathy_a3c.envs import MathyTask, typed_state
from mathy_a3c.model import ActorCritic
from mathy_a3c.numpy_actor import NumpyActor
from mathy_a3c.search import MCTS


@pytest.fixture(scope="module")
def actor():
    net = ActorCritic(model_size=16, seed=3)
    return NumpyActor(net.layout, net.flat_weights())


def _task(text, topic="poly", difficulty="easy"):
    task = MathyTask([topic], difficulty, seed=0)
    task.start(typed_state(task.env, text, difficulty))
    return task


def test_batched_forward_pass_matches_one_observation_at_a_time(actor):
    observations = []
    for topic in ("poly", "complex", "poly-commute"):
        task = MathyTask([topic], "normal", seed=5)
        observations += [task.reset() for _ in range(4)]
    task = MathyTask(["poly"], "easy", seed=0)
    observations += [task.start(typed_state(task.env, t)) for t in ("x", "2x + 3")]
    logits, values = actor.batch(observations)
    assert logits.shape == (len(observations), observations[0].mask.size)
    for row, obs in enumerate(observations):
        one_logits, one_value = actor(obs)
        valid = obs.mask > 0
        np.testing.assert_allclose(
            logits[row][valid], one_logits[valid], rtol=1e-4, atol=1e-4
        )
        assert np.all(logits[row][~valid] == one_logits[~valid])
        assert values[row] == pytest.approx(one_value, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("text", ["4x + 2x", "7y + 3 + 2y", "2x + 5 + 3x + 1"])
def test_a_found_solution_is_a_win_the_environment_replays(actor, text):
    task = _task(text)
    result = MCTS(actor.batch, simulations=400).solve(task)
    assert result.win, [o.expression for _, o in result.steps]
    assert task.state is result.steps[-1][1].state
    replay = _task(text)  # every step is one the environment itself takes
    for action, outcome in result.steps:
        step = replay.step(action)
        assert step.expression == outcome.expression
        assert step.reward == outcome.reward
    assert step.done and step.win


def test_the_search_stops_at_its_first_win(actor):
    result = MCTS(actor.batch, simulations=5000).solve(_task("4x + 2x"))
    assert result.win
    assert result.stats.simulations < 5000
    assert result.stats.seconds > 0.0


def test_no_transition_is_computed_twice(actor, monkeypatch):
    seen, alive = [], []
    original = search_module.transition

    def counting(env, state, action):
        alive.append(state)  # so that no id is reused while the test runs
        seen.append((id(state), action))
        return original(env, state, action)

    monkeypatch.setattr(search_module, "transition", counting)
    # Too few simulations to solve it at once: it plays move by move.
    result = MCTS(actor.batch, simulations=30).solve(
        _task("2x + 3y + 4x + 5y + 6x + y", difficulty="normal")
    )
    assert len(seen) == len(set(seen)) == result.stats.nodes - 1
    assert result.stats.simulations >= 30


def test_the_move_budget_still_applies(actor):
    task = _task("2x + 3y + 4x + 5y + 6x + y + 7z + z", difficulty="easy")
    budget = task.state.max_moves
    result = MCTS(actor.batch, simulations=2).solve(task)
    assert len(result.steps) <= budget
    assert result.steps[-1][1].done
    if not result.win:  # a lost episode ends where the environment says so
        assert result.steps[-1][1].reward < 0


def test_max_moves_stops_early_without_claiming_a_win(actor):
    result = MCTS(actor.batch, simulations=2).solve(
        _task("2x + 3y + 4x + 5y + 6x + y"), max_moves=1
    )
    assert len(result.steps) == 1
    assert not result.win


def test_simulations_must_be_positive(actor):
    with pytest.raises(ValueError, match="simulations must be >= 1; got 0"):
        MCTS(actor.batch, simulations=0)


def test_a_known_loss_is_never_walked_again_while_other_moves_remain():
    """A value head that rates every state below a loss (an untrained one can)
    must not make the search replay the loss it found instead of exploring."""

    def pessimist(observations):
        logits = np.stack([np.where(o.mask > 0, 0.0, -1e9) for o in observations])
        return logits, np.full(len(observations), -5.0)

    task = _task("4x + 2y + 3x")  # 3 moves at the fewest (test_solvable)
    task.state.max_moves = task.state.agent.moves_remaining = 3  # any other: lost
    result = MCTS(pessimist, simulations=200).solve(task)
    assert result.win, [o.expression for _, o in result.steps]
    assert len(result.steps) == 3
