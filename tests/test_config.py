import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mathy_a3c.config import DIFFICULTIES, TOPICS, A3CConfig, ConfigError


def test_defaults_are_valid_and_every_field_is_documented():
    config = A3CConfig()
    for name in config.to_dict():
        assert len(A3CConfig.help(name)) > 15, name


def test_comma_separated_topics_are_split():
    assert A3CConfig(topics="poly, complex").topics == ["poly", "complex"]
    assert A3CConfig(topics=["poly,binomial"]).topics == ["poly", "binomial"]


def test_unknown_topic_lists_every_valid_name():
    with pytest.raises(ConfigError) as info:
        A3CConfig(topics=["polly"])
    message = str(info.value)
    assert "'polly'" in message
    assert all(topic in message for topic in TOPICS)
    assert "gym:ENV_ID" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("difficulty", "medium", "difficulty must be one of easy, normal, hard"),
        ("num_workers", -2, "num_workers must be an integer from 1 to 256; got -2"),
        ("num_workers", 0, "num_workers must be an integer from 1 to 256; got 0"),
        ("update_interval", 0, "update_interval must be an integer from 1 to"),
        ("max_eps", 2.5, "max_eps must be an integer; got 2.5"),
        ("worker_wait", -1.0, "worker_wait must be in [0.0, 60000.0]; got -1.0"),
        ("gamma", 0.0, "gamma must be in (0.0, 1.0]; got 0.0"),
        ("gamma", 1.5, "gamma must be in (0.0, 1.0]; got 1.5"),
        ("gae_lambda", 2.0, "gae_lambda must be in [0.0, 1.0]"),
        ("lr", 0.0, "lr must be in (0.0, 1.0]"),
        ("lr", float("nan"), "lr must be in (0.0, 1.0]"),
        ("lr_schedule", "cosine", "lr_schedule must be one of linear, constant"),
        ("entropy_coef", -0.1, "entropy_coef must be in [0.0, inf)"),
        ("max_grad_norm", 0, "max_grad_norm must be in (0.0, inf)"),
        ("model_size", 2, "model_size must be an integer from 4 to 1024"),
        ("seed", -1, "seed must be an integer from 0 to 4294967295"),
        ("profile", "yes", "profile must be true or false"),
        ("model_dir", " ", "model_dir must be a folder path"),
        ("curriculum_window", 0, "curriculum_window must be an integer from 1 to"),
        ("promote_at", 0.0, "promote_at must be in (0.0, 1.0]"),
        ("demote_below", 1.5, "demote_below must be in [0.0, 1.0]"),
        ("demote_below", 0.95, "demote_below must be below promote_at"),
        ("topics", ["gym:"], "names no environment; write gym:ENV_ID"),
        ("topics", ["gym:CartPole-v1", "poly"], "A gym topic trains on its own"),
        # bounds that keep a typo from eating the machine
        ("num_workers", 5000, "num_workers must be an integer from 1 to 256"),
        ("model_size", 100_000, "model_size must be an integer from 4 to 1024"),
        ("seed", 2**32, "seed must be an integer from 0 to 4294967295"),
        ("worker_wait", 1e9, "worker_wait must be in [0.0, 60000.0]"),
        ("update_interval", 10**7, "update_interval must be an integer from 1 to"),
        # empty and repeated list items, odd types (config.json may hold any)
        ("topics", "poly,,complex", "topics has an empty item in 'poly,,complex'"),
        ("topics", "poly,", "topics has an empty item"),
        ("topics", ["poly", "poly"], "topics names poly more than once"),
        ("topics", [], "topics must name at least one topic"),
        ("topics", 5, "topics must be a list of names; got 5"),
        ("topics", [1, 2], "topics must be a list of names; got [1, 2]"),
        ("difficulty", 3, "difficulty must be a name or null; got 3"),
        ("num_workers", True, "num_workers must be an integer; got True"),
        ("num_workers", "2", "num_workers must be an integer; got '2'"),
        ("lr", "0.1", "lr must be a number; got '0.1'"),
        ("lr", [0.1], "lr must be a number; got [0.1]"),
        ("backend", None, "backend must be a string; got None"),
        ("model_dir", "a\x00b", "model_dir must be a folder path; got 'a\\x00b'"),
        ("verbose", 1, "verbose must be true or false; got 1"),
        (
            "action_strategy",
            "mcts",
            "action_strategy must be one of a3c, mcts_worker_0, mcts_worker_n",
        ),
        ("mcts_sims", 0, "mcts_sims must be an integer from 1 to 100000; got 0"),
    ],
)
def test_bad_values_name_the_field_and_the_valid_range(field, value, expected):
    with pytest.raises(ConfigError) as info:
        A3CConfig(**{field: value})
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_round_trips_through_json_and_rejects_unknown_fields():
    config = A3CConfig(topics=["poly", "complex"], difficulty="hard", lr=1e-3)
    again = A3CConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ConfigError, match="Unknown config field.*learning_rate"):
        A3CConfig.from_dict({**config.to_dict(), "learning_rate": 1})


def test_difficulties_match_mathy_envs():
    from mathy_envs.types import MathyEnvDifficulty

    assert set(DIFFICULTIES) == {d.value for d in MathyEnvDifficulty}


def test_no_difficulty_means_curriculum_and_a_difficulty_fixes_it():
    assert A3CConfig().difficulty is None
    assert A3CConfig().curriculum
    assert not A3CConfig(difficulty="normal").curriculum
    gym = A3CConfig(topics=["gym:CartPole-v1"])
    assert gym.is_gym and not gym.curriculum


def test_a_gym_topic_takes_no_difficulty():
    with pytest.raises(ConfigError) as info:
        A3CConfig(topics=["gym:CartPole-v1"], difficulty="easy")
    assert "difficulty applies to Mathy topics only" in str(info.value)
    assert "gym:CartPole-v1" in str(info.value)


def test_linear_lr_schedule_anneals_to_zero_over_the_runs_budget():
    by_episodes = A3CConfig(max_eps=200)
    assert by_episodes.lr_schedule == "linear"
    assert by_episodes.lr_scale(0, 0.0) == 1.0
    assert by_episodes.lr_scale(50, 999.0) == pytest.approx(0.75)
    assert by_episodes.lr_scale(200, 0.0) == 0.0
    assert by_episodes.lr_scale(260, 0.0) == 0.0
    # with a time budget, whichever budget is used up faster counts
    by_time = A3CConfig(max_eps=1000, max_seconds=100.0)
    assert by_time.lr_scale(100, 40.0) == pytest.approx(0.6)
    assert by_time.lr_scale(700, 40.0) == pytest.approx(0.3)
    constant = A3CConfig(max_eps=200, lr_schedule="constant")
    assert constant.lr_scale(150, 1e6) == 1.0


def test_curriculum_is_a_difficulty_users_can_type():
    assert A3CConfig(difficulty="curriculum").difficulty is None
    assert A3CConfig(difficulty="curriculum").curriculum


def test_errors_can_name_fields_the_way_the_cli_spells_them():
    with pytest.raises(ConfigError) as info:
        A3CConfig(demote_below=0.95)
    assert info.value.fields == ("demote_below", "promote_at")
    assert str(info.value).startswith("demote_below must be below promote_at;")
    flags = info.value.render(lambda name: "--" + name.replace("_", "-"))
    assert flags.startswith("--demote-below must be below --promote-at;")


def test_every_field_says_how_it_may_change_when_a_model_is_resumed():
    import dataclasses

    from mathy_a3c.config import RESUME_KINDS

    kinds = {f.name: f.metadata["resume"] for f in dataclasses.fields(A3CConfig)}
    assert set(kinds.values()) <= set(RESUME_KINDS)
    assert kinds["model_size"] == "model"
    assert {kinds[n] for n in ("topics", "difficulty", "lr", "gamma")} == {"learning"}
    assert {kinds[n] for n in ("num_workers", "backend", "max_eps")} == {"run"}
    assert kinds["print_training"] == "session"
    new = A3CConfig(topics=["complex"], num_workers=3, verbose=True)
    changes = {c.field: c for c in new.changes_from(A3CConfig())}
    assert set(changes) == {"topics", "num_workers"}  # session fields never count
    assert changes["topics"].describe() == "topics poly -> complex"
    assert A3CConfig(difficulty="hard").changes_from(A3CConfig())[0].describe() == (
        "difficulty curriculum -> hard"
    )


# -- property-based: any input is a config or a ConfigError, never a crash -----
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.one_of(st.text(max_size=12), st.integers()), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_FIELDS = [f.name for f in __import__("dataclasses").fields(A3CConfig)]


@given(st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6))
def test_any_field_values_give_a_config_or_a_one_line_config_error(values):
    try:
        config = A3CConfig(**values)
    except ConfigError as error:
        assert "\n" not in str(error) and str(error)
        return
    config.validate()  # what was built stays valid
    assert A3CConfig.from_dict(config.to_dict()) == config


@given(
    st.recursive(
        _VALUES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from([*_FIELDS, "x"]), inner, max_size=4),
        ),
        max_leaves=8,
    )
)
def test_any_json_value_gives_a_config_or_a_config_error(data):
    try:
        A3CConfig.from_dict(data)
    except ConfigError as error:
        assert "\n" not in str(error)


def test_a_search_strategy_needs_mathy_topics():
    with pytest.raises(ConfigError, match="action_strategy mcts_worker_0 needs Mathy"):
        A3CConfig(topics=["gym:CartPole-v1"], action_strategy="mcts_worker_0")
