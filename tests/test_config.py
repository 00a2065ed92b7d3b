import json

import pytest

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
        ("num_workers", -2, "num_workers must be an integer >= 1; got -2"),
        ("num_workers", 0, "num_workers must be an integer >= 1; got 0"),
        ("update_interval", 0, "update_interval must be an integer >= 1"),
        ("max_eps", 2.5, "max_eps must be an integer >= 1; got 2.5"),
        ("worker_wait", -1.0, "worker_wait must be in [0.0, inf); got -1.0"),
        ("gamma", 0.0, "gamma must be in (0.0, 1.0]; got 0.0"),
        ("gamma", 1.5, "gamma must be in (0.0, 1.0]; got 1.5"),
        ("gae_lambda", 2.0, "gae_lambda must be in [0.0, 1.0]"),
        ("lr", 0.0, "lr must be in (0.0, 1.0]"),
        ("lr", float("nan"), "lr must be in (0.0, 1.0]"),
        ("lr_schedule", "cosine", "lr_schedule must be one of linear, constant"),
        ("entropy_coef", -0.1, "entropy_coef must be in [0.0, inf)"),
        ("max_grad_norm", 0, "max_grad_norm must be in (0.0, inf)"),
        ("model_size", 2, "model_size must be an integer >= 4"),
        ("seed", -1, "seed must be an integer >= 0"),
        ("profile", "yes", "profile must be true or false"),
        ("model_dir", " ", "model_dir must be a folder path"),
        ("curriculum_window", 0, "curriculum_window must be an integer >= 1"),
        ("promote_at", 0.0, "promote_at must be in (0.0, 1.0]"),
        ("demote_below", 1.5, "demote_below must be in [0.0, 1.0]"),
        ("demote_below", 0.95, "demote_below must be below promote_at"),
        ("topics", ["gym:"], "names no environment; write gym:ENV_ID"),
        ("topics", ["gym:CartPole-v1", "poly"], "A gym topic trains on its own"),
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
