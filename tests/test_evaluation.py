"""Measuring a policy on generated problems, on the real environments."""

from mathy_a3c.envs import make_env
from mathy_a3c.evaluation import evaluate, evaluate_search, generated_states
from mathy_a3c.model import ActorCritic
from mathy_a3c.numpy_actor import NumpyActor
from mathy_a3c.search import MCTS
from mathy_a3c.solvable import UNSOLVABLE, breadth_first


def test_each_problem_outcome_is_recorded_in_order():
    states = generated_states("poly", "easy", 30, seed=1)
    result = evaluate("poly", states, None, difficulty="easy", seed=0)
    assert len(result.won) == result.problems == 30
    assert sum(result.won) == result.wins
    assert 0 < result.wins < 30  # random play wins some poly easy problems
    # A problem random play won can be won: the search never says otherwise.
    env = make_env("poly")
    for state, won in zip(states, result.won, strict=True):
        if won:
            assert breadth_first(env, state, 3000).verdict != UNSOLVABLE


def test_the_same_seed_gives_the_same_outcomes():
    states = generated_states("poly", "easy", 10, seed=2)
    first = evaluate("poly", states, None, difficulty="easy", seed=7)
    states_again = generated_states("poly", "easy", 10, seed=2)
    again = evaluate("poly", states_again, None, difficulty="easy", seed=7)
    assert first.won == again.won


def test_a_search_records_each_problem_outcome_in_order():
    net = ActorCritic(model_size=16, seed=3)
    searcher = MCTS(NumpyActor(net.layout, net.flat_weights()).batch, simulations=30)
    states = generated_states("poly", "easy", 8, seed=3)
    result = evaluate_search("poly", states, searcher, difficulty="easy")
    assert len(result.won) == len(result.seconds) == result.problems == 8
    assert sum(result.won) == result.wins > 0  # 30 simulations win some easy ones
    # Each recorded outcome is that problem's own: solving it alone agrees.
    for state, won in zip(states, result.won, strict=True):
        alone = evaluate_search("poly", [state], searcher, difficulty="easy")
        assert alone.won == (won,)
