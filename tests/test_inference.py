"""Strategies for choosing actions, on real Mathy states."""

import numpy as np
import pytest

from mathy_a3c.envs import MAX_NODES, MathyTask, observe, typed_state
from mathy_a3c.inference import choose_action, play, solve


def _task(problem):
    task = MathyTask(["poly"], "easy", seed=0)
    return task, task.start(typed_state(task.env, problem))


def test_greedy_takes_the_most_probable_valid_action():
    task, obs = _task("4x + 2y + 3x^2 + x")
    logits = np.zeros(len(obs.mask))
    logits[np.flatnonzero(obs.mask)[-1]] = 5.0
    logits[0] = 100.0  # invalid: must be ignored even if it is the largest
    assert choose_action(task, logits, obs, "greedy") == np.flatnonzero(obs.mask)[-1]


def test_no_revisit_avoids_going_back_while_another_action_exists():
    task, obs = _task("4x + 2y + 3x^2 + x")
    commute = 1 * MAX_NODES + 3
    result = task.step(commute)  # now at "2y + 4x + 3x^2 + x"
    obs = result.observation
    logits = np.zeros(len(obs.mask))
    logits[commute] = 10.0  # the policy wants to swap straight back
    assert choose_action(task, logits, obs, "greedy") == commute
    chosen = choose_action(task, logits, obs, "no-revisit")
    assert chosen != commute and obs.mask[chosen] == 1.0


def test_no_revisit_play_takes_the_transition_it_looked_ahead_to():
    task, obs = _task("4x + 2y + 3x^2 + x")
    commute = 1 * MAX_NODES + 3
    obs = task.step(commute).observation  # back would be a revisit
    logits = np.zeros(len(obs.mask))
    logits[commute] = 10.0
    twin, _ = _task("4x + 2y + 3x^2 + x")
    twin.step(commute)
    expected = twin.step(choose_action(twin, logits, obs, "no-revisit"))
    calls = []
    real = task.env.get_next_state
    task.env.get_next_state = lambda *a: calls.append(a) or real(*a)
    result = play(task, logits, obs, "no-revisit")
    assert len(calls) == 2  # the revisit passed over, then the move it takes
    assert task.state is result.state
    assert result.expression == expected.expression != "4x + 2y + 3x^2 + x"
    np.testing.assert_array_equal(result.observation.mask, expected.observation.mask)


def test_sample_draws_valid_actions_only():
    task, obs = _task("4x + 2y + 3x^2 + x")
    rng = np.random.default_rng(0)
    logits = np.zeros(len(obs.mask))
    draws = {choose_action(task, logits, obs, "sample", rng) for _ in range(200)}
    assert draws <= set(np.flatnonzero(obs.mask)) and len(draws) > 1


def test_unknown_strategy_names_the_choices():
    task, obs = _task("4x + 2x")
    with pytest.raises(ValueError, match="Valid strategies: greedy, no-revisit"):
        choose_action(task, np.zeros(len(obs.mask)), obs, "best")


def test_solve_stops_at_max_steps_and_reports_steps():
    task, obs = _task("4x + 2y + 3x^2 + x + 5y")
    uniform = lambda o: (np.zeros(len(o.mask)), 0.0)  # noqa: E731
    solution = solve(task, obs, uniform, strategy="greedy", max_steps=2)
    assert len(solution.steps) == 2 and not solution.win
    assert solution.final == solution.steps[-1].expression
    assert observe(task.env, task.state).mask.any()
