"""The real mathy_envs environments, seen through mathy_a3c.envs."""

import os
import random
import subprocess
import sys

import mathy_core.problems
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mathy_core.util import TermResult, get_term, get_terms
from mathy_envs.envs import ComplexSimplify
from mathy_envs.state import MathyEnvState
from mathy_envs.types import MathyEnvDifficulty, MathyEnvProblemArgs

from mathy_a3c import envs
from mathy_a3c.config import TOPICS
from mathy_a3c.envs import (
    ACTION_SIZE,
    ENV_BY_TOPIC,
    MAX_NODES,
    NUM_RULES,
    MathyTask,
    Observation,
    ProblemSeed,
    make_env,
    observe,
    term_features,
    typed_state,
    valid_moves,
)


def _random_valid_action(observation, rng):
    return int(rng.choice(np.flatnonzero(observation.mask)))


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_plays_to_the_end(topic):
    task = MathyTask([topic], "easy", seed=1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        observation = task.reset()
        assert observation.nodes.shape == (MAX_NODES,)
        assert observation.mask.shape == (ACTION_SIZE,)
        for _ in range(500):
            result = task.step(_random_valid_action(observation, rng))
            observation = result.observation
            if result.done:
                break
        assert result.done
        assert 0.0 <= float(observation.time[0]) <= 1.0


@pytest.mark.parametrize("topic", TOPICS)
def test_transitions_match_mathy_envs_without_its_observation(topic):
    """make_env scores transitions on a copy that skips mathy_envs' own flat
    observation; states, rewards and episode ends must not change."""
    cls, kwargs = ENV_BY_TOPIC[topic]
    plain, env = cls(**kwargs), make_env(topic)
    rng = np.random.default_rng(3)
    random.seed(3)
    for _ in range(4):
        state, _ = env.get_initial_state(
            MathyEnvProblemArgs(difficulty=MathyEnvDifficulty.easy), False
        )
        ours = theirs = state
        for _ in range(60):
            action = _random_valid_action(observe(env, ours), rng)
            rule, node = divmod(action, MAX_NODES)
            ours, step, _ = env.get_next_state(ours, (rule, node))
            theirs, expected, _ = plain.get_next_state(theirs, (rule, node))
            assert ours.agent.problem == theirs.agent.problem
            assert ours.agent.moves_remaining == theirs.agent.moves_remaining
            assert step.reward == expected.reward
            assert step.step_type == expected.step_type
            assert step.observation is None and expected.observation is not None
            assert type(ours) is MathyEnvState  # the copy stays inside make_env
            if expected.step_type[0] == 2:
                break


@pytest.mark.parametrize("topic", TOPICS)
def test_masks_in_one_walk_equal_mathy_envs_masks(topic):
    task = MathyTask([topic], "easy", seed=5)
    rng = np.random.default_rng(5)
    every_rule = [type(rule) for rule in task.env.rules]
    checked = 0
    for _ in range(12):
        observation = task.reset()
        for _ in range(40):
            state = task.state
            expression = task.env.parser.parse(state.agent.problem)
            expected = task.env.get_actions_for_node(expression, every_rule)
            assert valid_moves(task.env, state) == expected
            checked += 1
            result = task.step(_random_valid_action(observation, rng))
            observation = result.observation
            if result.done:
                break
    assert checked >= 20  # states compared


def test_topics_rotate_episode_by_episode():
    task = MathyTask(["poly", "complex", "binomial"], "easy", seed=0, offset=1)
    seen = []
    for _ in range(4):
        task.reset()
        seen.append(task.topic)
    assert seen == ["complex", "binomial", "poly", "complex"]


def test_unknown_topic_lists_valid_names():
    with pytest.raises(ValueError, match="Valid topics: poly, poly-blockers"):
        make_env("polly")


def test_node_features_line_up_with_mask_columns():
    """Mask column i and node feature i must describe the same (inorder) node."""
    env = make_env("poly")
    state = MathyEnvState(problem="4x + 2y + 3x^2 + x", max_moves=20, num_rules=7)
    observation = observe(env, state)
    commute = observation.mask.reshape(NUM_RULES, MAX_NODES)[1]
    assert list(np.flatnonzero(commute)) == [3, 7, 13]
    assert set(observation.nodes[[3, 7, 13]]) == {3}  # "add" type id

    for topic in TOPICS:
        task = MathyTask([topic], "normal", seed=3)
        observation = task.reset()
        expression = task.env.parser.parse(task.state.agent.problem)
        for flat in np.flatnonzero(observation.mask):
            node = int(flat % MAX_NODES)
            token = task.env.get_token_at_index(expression, node)
            assert observation.nodes[node] == token.type_id


def _like_terms_by_mathy_core(expression, nodes):
    """The like-term feature from mathy_core's own term functions (slow)."""
    index = {id(node): i for i, node in enumerate(nodes)}
    keyed = []
    for term in get_terms(expression):
        found = get_term(term)
        if isinstance(found, TermResult):
            keyed.append((term, ("".join(found.variables), found.exponent)))
    counts = {}
    for _, key in keyed:
        counts[key] = counts.get(key, 0) + 1
    like = np.zeros(MAX_NODES, np.float32)
    for term, key in keyed:
        if counts[key] > 1:
            like[[index[id(node)] for node in term.to_list()]] = 1.0
    return like


@pytest.mark.parametrize("topic", TOPICS)
def test_like_term_feature_agrees_with_mathy_core(topic):
    env = make_env(topic)
    for difficulty in ("easy", "normal", "hard"):
        task = MathyTask([topic], difficulty, seed=3)
        for _ in range(15):
            observation = task.reset()
            expression = env.parser.parse(task.problem)
            nodes = expression.to_list("inorder")
            expected = _like_terms_by_mathy_core(expression, nodes)
            assert np.array_equal(_term_features(nodes)[0], expected), task.problem
            assert np.array_equal(observation.like, expected), task.problem


def _term_root(node):
    """The top node of ``node``'s term: its ancestor whose parent is a sum."""
    while node.parent is not None and not isinstance(node.parent, envs._SUMS):
        node = node.parent
    return node


def _term_features(nodes):
    return term_features(nodes, [_term_root(node) for node in nodes])


@pytest.mark.parametrize("topic", TOPICS)
def test_one_walk_lists_nodes_depths_and_terms_as_mathy_core_does(topic):
    # observe() walks each tree once; the walk must list the nodes in
    # to_list("inorder")'s order, with each node's depth and term top.
    rng = np.random.default_rng(0)
    for difficulty in ("easy", "hard"):
        task = MathyTask([topic], difficulty, seed=5)
        observation = task.reset()
        for _ in range(40):
            expression = task.env.parser.parse(task.state.agent.problem)
            walk = envs._inorder(expression)
            assert walk.nodes == expression.to_list("inorder")
            for node, depth, top in zip(*walk, strict=True):
                assert top is _term_root(node)
                steps = 0
                while node.parent is not None:
                    node, steps = node.parent, steps + 1
                assert steps == depth
            result = task.step(_random_valid_action(observation, rng))
            observation = result.observation
            if result.done:
                observation = task.reset()


def test_like_term_feature_marks_whole_terms():
    parsed = envs.ExpressionParser().parse
    for text, marked in [
        ("4x + 2y + 3x", ["4", "4x", "x", "3", "3x", "x"]),
        ("x^2 + 7 + 2x + 4", ["7", "4"]),  # x^2 and 2x are not alike
        (
            "2x^2 + x^2 * 5",
            ["2", "2x^2", "x", "x^2", "2", "x", "x^2", "2", "x^2 * 5", "5"],
        ),
        # A term holding a sum has no key; the sum's own terms do.
        ("7(x + y) + 7(x + y)", ["x", "y", "x", "y"]),
        ("5y * 3z", []),  # one term
    ]:
        nodes = parsed(text).to_list("inorder")
        like = _term_features(nodes)[0]
        assert [str(n) for n, f in zip(nodes, like, strict=False) if f] == marked, text
        assert not like[len(nodes) :].any()


def test_like_factor_feature_marks_factors_a_product_can_combine():
    parsed = envs.ExpressionParser().parse
    for text, marked in [
        # w twice (each with its power), and the constants 2, 3, 11, 12 (not
        # the exponents 3 and 4; the 1 of 1z^4 is a constant factor too).
        (
            "2w^3 * n^3 * 3j^3 * 1z^4 * 11w^3 * 12",
            ["2", "w", "w^3", "3", "3", "1", "11", "w", "w^3", "3", "12"],
        ),
        ("4x + 2y + 3x", []),  # like terms, but no product to combine
        ("x * x^2 + 6y", ["x", "x", "x^2", "2"]),
        ("6x^2", []),
    ]:
        nodes = parsed(text).to_list("inorder")
        factors = _term_features(nodes)[1]
        assert [str(n) for n, f in zip(nodes, factors, strict=False) if f] == marked


def test_node_depth_tells_apart_trees_that_list_the_same_node_types():
    env = make_env("complex")
    parse = envs.ExpressionParser().parse

    def depths(text):
        seen = observe(env, MathyEnvState(problem=text, max_moves=10))
        count = len(parse(text).to_list("inorder"))
        assert not seen.depth[count:].any()  # padding
        return seen, [round(float(d) * envs.DEPTH_SCALE) for d in seen.depth[:count]]

    # (6s^3 * 7b^3) * b^3 against ((6s^3 * 7) * b^3) * b^3: the same node
    # types inorder, so without depths the model cannot tell them apart.
    grouped, grouped_depths = depths("6s^3 * 7b^3 * b^3")
    flat, flat_depths = depths("6s^3 * 7 * b^3 * b^3")
    assert np.array_equal(grouped.nodes, flat.nodes)
    assert grouped_depths != flat_depths
    root = parse("6s^3 * 7b^3 * b^3")
    for node, depth in zip(root.to_list("inorder"), grouped_depths, strict=True):
        steps = 0
        while node.parent is not None:
            node, steps = node.parent, steps + 1
        assert steps == depth
    assert depths("x")[1] == [0]


def test_problem_type_and_raw_type_ids_are_features():
    task = MathyTask(["poly", "complex"], "easy", seed=0)
    poly = task.reset()
    complex_ = task.reset()
    assert not np.allclose(poly.type, complex_.type)
    assert poly.nodes.dtype == np.int32 and poly.nodes.max() >= 26  # a variable id


def test_same_seed_same_problems_whatever_else_uses_global_random():
    first = MathyTask(["poly"], "normal", seed=7)
    second = MathyTask(["poly"], "normal", seed=7)
    other = MathyTask(["poly"], "normal", seed=8)
    a, b, c = [], [], []
    for _ in range(5):
        first.reset()
        a.append(first.problem)
        random.random(), np.random.random()  # noise in the global generators
        other.reset()
        c.append(other.problem)
        second.reset()
        b.append(second.problem)
    assert a == b
    assert a != c


_PROBLEMS_OF_SEED = """
import sys
from mathy_a3c.config import TOPICS
from mathy_a3c.envs import MathyTask
for topic in TOPICS:
    task = MathyTask([topic], sys.argv[1], seed=3)
    for _ in range(4):
        task.reset()
        print(task.problem)
"""


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_same_seed_same_problems_in_every_process(difficulty):
    """mathy_core draws variable names through a set, whose order follows
    string hashing, which differs per process unless PYTHONHASHSEED is fixed."""
    runs = []
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        runs.append(
            subprocess.run(
                [sys.executable, "-c", _PROBLEMS_OF_SEED, difficulty],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    assert runs[0].count("\n") == 4 * len(TOPICS)
    assert runs[0] == runs[1] == runs[2]


def test_sorted_variable_names_are_the_names_mathy_core_draws():
    original = mathy_core.problems.get_rand_vars
    for seed in range(20):
        random.seed(seed)
        expected = set(original(4, ["x"]))
        random.seed(seed)
        got = envs._rand_vars_in_sorted_order(4, ["x"])
        assert set(got) == expected and len(got) == 4 and "x" not in got


def test_problem_seed_leaves_mathy_core_as_it_was():
    before = mathy_core.problems.get_rand_vars
    with ProblemSeed(5).active():
        assert mathy_core.problems.get_rand_vars is not before
    assert mathy_core.problems.get_rand_vars is before


def test_problem_seed_never_touches_the_global_generators():
    random.seed(123)
    np.random.seed(123)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    before = (random.getstate(), np.random.get_state(legacy=False))
    expected = (random.random(), np.random.random(), np.random.standard_normal())
    random.setstate(before[0])
    np.random.set_state(before[1])
    task = MathyTask(list(TOPICS), "easy", seed=5)
    for _ in range(2 * len(TOPICS)):  # every topic draws its problems
        task.reset()
    assert random.getstate() == before[0]
    after = np.random.get_state(legacy=False)
    assert after["has_gauss"] == before[1]["has_gauss"] == 1
    np.testing.assert_array_equal(after["state"]["key"], before[1]["state"]["key"])
    got = (random.random(), np.random.random(), np.random.standard_normal())
    assert got == expected


def test_problem_seed_finds_every_global_draw_of_mathy_and_puts_it_back():
    from mathy_envs.envs import poly_simplify

    held = (
        mathy_core.problems.random,
        poly_simplify.randint,
        poly_simplify.uniform,
    )
    assert held == (random, np.random.randint, np.random.uniform)
    seed = ProblemSeed(5)
    with seed.active():
        assert mathy_core.problems.random is seed.python
        assert poly_simplify.randint == seed.numpy.randint
        assert poly_simplify.uniform == seed.numpy.uniform
    after = (
        mathy_core.problems.random,
        poly_simplify.randint,
        poly_simplify.uniform,
    )
    assert all(a is b for a, b in zip(after, held, strict=True))


def test_haystack_uses_preferred_commute_and_can_be_won():
    task = MathyTask(["poly-like-terms-haystack"], "easy", seed=0)
    assert task.env.rules[1].preferred is True
    rng = np.random.default_rng(0)
    wins = 0
    for _ in range(60):
        observation = task.reset()
        while True:
            result = task.step(_random_valid_action(observation, rng))
            observation = result.observation
            if result.done:
                wins += result.win
                break
    assert wins > 0


def _complex_state(env, problem):
    return MathyEnvState(
        problem=problem,
        max_moves=20,
        num_rules=len(env.rules),
        problem_type=env.get_env_namespace(),
    )


def test_masks_are_not_shared_between_trees_that_print_alike():
    """mathy_envs caches masks by str(expression); two trees print alike here."""
    plain = ComplexSimplify()  # as mathy_envs ships it
    grouped = _complex_state(plain, "5y * 12y * (5b * 4q)")
    flat = _complex_state(plain, "5 * y * 12y * 5b * 4q")
    assert str(plain.parser.parse(grouped.agent.problem)) == str(
        plain.parser.parse(flat.agent.problem)
    )
    plain.get_valid_moves(grouped)  # primes mathy_envs' cache for that string
    assert plain.get_valid_moves(flat)[4][11] == 1  # the stale cached answer...
    with pytest.raises(ValueError):  # ...allows an action that raises
        plain.get_next_state(flat, (4, 11))

    env = make_env("complex")  # masks keyed by the exact problem text
    assert env.get_valid_moves(grouped)[4][11] == 1
    assert env.get_valid_moves(flat)[4][11] == 0
    assert observe(env, flat).mask[4 * MAX_NODES + 11] == 0.0
    assert observe(env, grouped).mask[4 * MAX_NODES + 11] == 1.0


def test_complex_action_that_raises_is_a_losing_terminal_step():
    task = MathyTask(["complex"], "easy", seed=0)
    task.state = _complex_state(task.env, "5 * y * 12y * 5b * 4q")
    result = task.step(4 * MAX_NODES + 11)
    assert result.done and not result.win
    assert result.reward == -1.0
    assert "ValueError applying Associative Group at node 11" in result.error


def test_history_features_mark_revisits_and_the_last_action():
    """Revisits are penalised and end episodes, so the model must see them."""
    task = MathyTask(["poly"], "easy", seed=0)
    env = task.env
    first = task.start(typed_state(env, "4x + 2y + 3x^2 + x"))
    assert not first.history.any() and not first.last.any()

    commute = 1 * MAX_NODES + 3  # commutative swap at the first "+"
    swapped = task.step(commute).observation
    assert swapped.history[0] == 0.0  # a new expression
    assert swapped.history[1 + 1] == 1.0 and swapped.history.sum() == 1.0
    assert list(np.flatnonzero(swapped.last)) == [3]

    back = task.step(commute)  # swapping again returns to the first expression
    assert back.expression == "4x + 2y + 3x^2 + x"
    assert back.observation.history[0] == pytest.approx(1 / 3)
    assert back.reward < 0  # mathy_envs penalises the revisit


def test_typed_problems_are_seen_like_generated_ones():
    task = MathyTask(["poly"], "easy", seed=0)
    generated = task.reset()
    state = typed_state(task.env, "4x + 2y + 3x^2 + x")
    assert state.agent.problem_type == task.state.agent.problem_type
    assert state.num_rules == task.state.num_rules == NUM_RULES
    assert state.max_moves == 4 * 4  # PolySimplify: 4 moves per term
    typed = observe(task.env, state)
    np.testing.assert_array_equal(typed.type, generated.type)
    with pytest.raises(ValueError, match="cannot parse problem '4x \\+\\+'"):
        typed_state(task.env, "4x ++")


def test_mathy_envs_reset_with_input_differs_and_is_not_used():
    """Pin the mathy_envs 0.12.5 behaviour that typed_state works around."""
    import gymnasium as gym
    import mathy_envs.gym  # noqa: F401  (registers the ids)

    wrapper = gym.make("mathy-poly-easy-v0").unwrapped
    wrapper.reset_with_input("4x + 2y + 3x^2 + x")
    theirs = wrapper.state
    assert theirs.agent.problem_type == "mathy.unknown"
    assert theirs.num_rules == 0 and theirs.max_moves == 16

    ours = typed_state(make_env("poly"), "4x + 2y + 3x^2 + x")
    assert ours.agent.problem_type == "mathy.polynomials.simplify"
    assert ours.num_rules == NUM_RULES and ours.max_moves == 16  # 4 terms x 4
    long = typed_state(make_env("poly"), "x + 2y + 3z + 4w + 5v + 6u + 7t")
    assert long.max_moves == 28  # follows the environment's rule, not a fixed 16


# -- typed problems of any kind: a ProblemError, never a crash ------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot parse problem '': Cannot parse an empty function"),
        ("4x ++", "cannot parse problem '4x ++'"),
        ("-", "cannot parse problem '-': Expected"),  # a multi-line parser message
        ("(" * 3000 + "x" + ")" * 3000, "is 6001 characters long; at most 1000"),
        ("(" * 400 + "x" + ")" * 400, "it nests too deeply"),
        (" + ".join(["x"] * 70), "has 139 nodes; the model sees at most 128"),
        ("é + x", "cannot parse problem 'é + x': Invalid token"),
        (b"4x", "a problem must be text; got bytes"),
    ],
)
def test_problems_that_cannot_be_played_are_one_line_problem_errors(text, message):
    from mathy_a3c.envs import ProblemError, parse_problem

    with pytest.raises(ProblemError) as info:
        typed_state(make_env("poly"), text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ProblemError):
        parse_problem(text)


def test_constants_too_large_to_factor_are_refused_or_lose_the_episode():
    from mathy_a3c.envs import ProblemError

    for text in ("9" * 400 + " + x", "12345678901x + 3x", "2^99999999999 + x"):
        with pytest.raises(ProblemError, match="is larger than 1e\\+09, the most"):
            typed_state(make_env("poly"), text)
    task = MathyTask(["poly"], "easy", seed=0)
    task.start(typed_state(task.env, "99999 * 99999 + x"))
    result = task.step(int(np.flatnonzero(task.start(task.state).mask)[0]))
    assert result.done and not result.win  # 9999800001 was computed: a loss
    assert "larger than 1e+09" in result.error


def test_division_by_zero_and_huge_powers_are_playable():
    task = MathyTask(["poly"], "easy", seed=0)
    for text in ("1/0 + 3 + 2", "x^999 + 2x^999 + 1/0"):
        observation = task.start(typed_state(task.env, text))
        assert np.all(np.isfinite(observation.values)), text
        for action in np.flatnonzero(observation.mask):
            task.start(typed_state(task.env, text))
            result = task.step(int(action))  # a loss at worst, never a crash
            assert np.all(np.isfinite(result.observation.values))


_PROBLEM_TEXT = st.one_of(
    st.lists(
        st.sampled_from(list("xyz0123456789+-*/^().= é") + ["2x", "x^2", "9" * 30]),
        max_size=25,
    ).map("".join),
    st.text(max_size=30),
)


@given(_PROBLEM_TEXT, st.integers(min_value=0, max_value=10**6))
def test_any_text_is_a_problem_error_or_plays_to_the_end(text, seed):
    from mathy_a3c.envs import ProblemError

    task = MathyTask(["poly"], "easy", seed=0)
    try:
        state = typed_state(task.env, text)
    except ProblemError as error:
        assert "\n" not in str(error)
        return
    observation = task.start(state)
    rng = np.random.default_rng(seed)
    for _ in range(state.max_moves + 1):
        valid = np.flatnonzero(observation.mask)
        if not len(valid):
            break
        result = task.step(int(rng.choice(valid)))
        if result.done:
            break
        observation = result.observation


@pytest.mark.parametrize("topic", TOPICS)
def test_a_task_that_skips_observing_ends_plays_the_same_episodes(topic):
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    seen = MathyTask([topic], "easy", seed=2)
    skips = MathyTask([topic], "easy", seed=2, observe_ends=False)
    ends = 0
    for _ in range(6):
        obs_a, obs_b = seen.reset(), skips.reset()
        while True:
            a = seen.step(_random_valid_action(obs_a, rng_a))
            b = skips.step(_random_valid_action(obs_b, rng_b))
            assert (a.reward, a.done, a.win, a.expression, a.error) == (
                b.reward,
                b.done,
                b.win,
                b.expression,
                b.error,
            )
            if a.done:
                assert isinstance(a.observation, Observation)
                assert b.observation is None
                ends += 1
                break
            np.testing.assert_array_equal(a.observation.mask, b.observation.mask)
            obs_a, obs_b = a.observation, b.observation
    assert ends == 6
