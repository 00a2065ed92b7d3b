"""The breadth-first solvability check, on the real poly environment."""

from mathy_a3c.envs import MathyTask, make_env, typed_state
from mathy_a3c.evaluation import evaluate, generated_states
from mathy_a3c.solvable import (
    SOLVABLE,
    UNKNOWN,
    UNSOLVABLE,
    WON_ELSEWHERE,
    breadth_first,
    judge_losses,
)


def _replay(topic, state, actions):
    task = MathyTask([topic], "normal", seed=0)
    task.start(state)
    results = [task.step(action) for action in actions]
    return results


def test_a_shortest_win_is_found_and_the_environment_accepts_it():
    env = make_env("poly")
    # 4x + 2x: factor out x, then add the constants (no single rule wins).
    # 4x + 2y + 3x: the like terms must first be brought together.
    for text, fewest in [("4x + 2x", 2), ("4x + 2y + 3x", 3)]:
        state = typed_state(env, text)
        answer = breadth_first(env, state)
        assert answer.verdict == SOLVABLE and answer.moves == fewest, text
        results = _replay("poly", state, answer.actions)
        assert [r.done for r in results] == [False] * (fewest - 1) + [True]
        assert results[-1].win, results[-1].expression


def test_a_move_budget_too_small_to_win_is_unsolvable():
    env = make_env("poly")
    state = typed_state(env, "4x + 2x")
    state.max_moves = state.agent.moves_remaining = 1
    answer = breadth_first(env, state)
    assert answer.verdict == UNSOLVABLE and answer.actions is None
    assert answer.moves is None and answer.transitions > 0


def test_running_out_of_transitions_is_unknown_not_unsolvable():
    env = make_env("poly")
    state = typed_state(env, "4x + 2y + 3x")
    answer = breadth_first(env, state, max_transitions=3)
    assert answer.verdict == UNKNOWN and answer.transitions == 3


def test_generated_problems_replay_to_a_win():
    for topic in ("poly-commute", "poly-like-terms-haystack"):
        env = make_env(topic)
        for state in generated_states(topic, "normal", 3, seed=5):
            answer = breadth_first(env, state, max_transitions=5000)
            if answer.verdict == SOLVABLE:
                assert _replay(topic, state, answer.actions)[-1].win, topic
            else:
                assert answer.verdict == UNKNOWN, (topic, state.agent.problem)


def test_losses_are_judged_by_other_outcomes_first_then_searched():
    env = make_env("poly")
    states = generated_states("poly", "easy", 12, seed=4)
    random_play = evaluate("poly", states, None, difficulty="easy", seed=0)
    assert 0 < random_play.wins < 12
    nothing_won = (False,) * len(states)
    counts = judge_losses(env, states, nothing_won, 3000, (random_play.won,))
    assert counts[WON_ELSEWHERE] == random_play.wins
    searched = [
        breadth_first(env, s, 3000).verdict
        for s, won in zip(states, random_play.won, strict=True)
        if not won
    ]
    for verdict in (SOLVABLE, UNSOLVABLE, UNKNOWN):
        assert counts[verdict] == searched.count(verdict)
    # Problems that were won are not judged at all.
    everything = judge_losses(env, states, (True,) * len(states), 3000)
    assert sum(everything.values()) == 0
