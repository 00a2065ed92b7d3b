"""Gym topics: observations, action masks, time limits and clear errors.

The toy environments below are fakes for exact checks of masking and
bootstrapping; learning is tested on the real CartPole in test_agent.py.
"""

import gymnasium as gym
import numpy as np
import pytest
from helpers import one_worker

from mathy_a3c.config import A3CConfig
from mathy_a3c.gym_envs import GymTask, GymTopicError, gym_spec


class MaskedToy(gym.Env):
    """Four actions; only the actions in the mask are allowed (else it raises).

    ``via`` says how the mask is given: ``info`` or ``method``.
    """

    def __init__(self, via="info", terminate_after=6):
        self.via, self.terminate_after = via, terminate_after
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.t = 0

    def _mask(self):
        return np.array([self.t % 2 == 0, True, False, self.t % 3 == 0], np.int8)

    def _info(self):
        return {"action_mask": self._mask()} if self.via == "info" else {}

    def action_masks(self):
        if self.via != "method":
            raise AttributeError("no masks this way")
        return self._mask()

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.full(3, 0.5, np.float32), self._info()

    def step(self, action):
        if not self._mask()[action]:
            raise ValueError(f"invalid action {action} at t={self.t}")
        self.t += 1
        done = self.terminate_after is not None and self.t >= self.terminate_after
        obs = np.full(3, self.t / 10, np.float32)
        return obs, 1.0, done, False, self._info()


gym.register("MaskedToyInfo-v0", entry_point=MaskedToy, kwargs={"via": "info"})
gym.register("MaskedToyMethod-v0", entry_point=MaskedToy, kwargs={"via": "method"})
gym.register(
    "TimeLimitedToy-v0",
    entry_point=MaskedToy,
    kwargs={"terminate_after": None},
    max_episode_steps=4,
)


def test_cartpole_observations_are_flat_vectors_with_every_action_valid():
    task = GymTask("gym:CartPole-v1", seed=0)
    obs = task.reset()
    assert obs.vector.shape == (4,) and obs.vector.dtype == np.float32
    np.testing.assert_array_equal(obs.mask, [1.0, 1.0])
    result = task.step(0)
    assert result.reward == 1.0 and not result.truncated
    assert gym_spec("gym:CartPole-v1").n_actions == 2
    # The same seed gives the same first observation.
    again = GymTask("gym:CartPole-v1", seed=0).reset()
    np.testing.assert_array_equal(again.vector, obs.vector)


@pytest.mark.parametrize("env_id", ["MaskedToyInfo-v0", "MaskedToyMethod-v0"])
def test_action_masks_come_from_info_or_the_action_masks_method(env_id):
    task = GymTask(f"gym:{env_id}", seed=0)
    obs = task.reset()
    np.testing.assert_array_equal(obs.mask, [1, 1, 0, 1])
    obs = task.step(1).observation
    np.testing.assert_array_equal(obs.mask, [0, 1, 0, 0])


def test_a_discrete_observation_space_becomes_a_one_hot():
    task = GymTask("gym:FrozenLake-v1", seed=0)
    obs = task.reset()
    assert obs.vector.shape == (16,) and obs.vector.sum() == 1.0


def test_a_time_limit_is_truncation_not_the_end_of_the_task():
    task = GymTask("gym:TimeLimitedToy-v0", seed=0)
    task.reset()
    results = [task.step(1) for _ in range(4)]
    assert [r.done for r in results] == [False, False, False, True]
    assert results[-1].truncated and results[-1].win  # lasted to the limit
    ended = GymTask("gym:MaskedToyInfo-v0", seed=0)
    ended.reset()
    last = [ended.step(1) for _ in range(6)][-1]
    assert last.done and not last.truncated and not last.win


def test_non_discrete_and_unknown_environments_are_clear_errors():
    with pytest.raises(GymTopicError) as info:
        gym_spec("gym:Pendulum-v1")
    assert "Box" in str(info.value) and "Discrete action space" in str(info.value)
    with pytest.raises(GymTopicError, match="Unknown Gymnasium environment 'Nope-v0'"):
        gym_spec("gym:Nope-v0")


def _worker(tmp_path, topic, episodes, **overrides):
    config = A3CConfig(
        topics=[topic],
        model_dir=str(tmp_path),
        model_size=8,
        max_eps=episodes,
        update_interval=3,
        **overrides,
    )
    worker, _, reporter = one_worker(config)
    return worker, reporter


@pytest.mark.parametrize("env_id", ["MaskedToyInfo-v0", "MaskedToyMethod-v0"])
def test_a_worker_only_plays_valid_actions(tmp_path, env_id):
    worker, reports = _worker(tmp_path, f"gym:{env_id}", 20, print_training=True)
    worker.run()  # the toy raises on any invalid action
    assert len(reports.episodes) == 20
    assert all(r.steps == 6 and r.reward == 6.0 for r in reports.episodes)
    assert reports.lines[0] == (0, f"[gym:{env_id}] {env_id} episode 1")
    assert "| action " in reports.lines[1][1] and "return 1.00" in reports.lines[1][1]


def test_a_worker_bootstraps_at_a_time_limit_but_not_at_the_end(tmp_path, monkeypatch):
    seen = {}
    for env_id in ("TimeLimitedToy-v0", "MaskedToyInfo-v0"):
        worker, _ = _worker(tmp_path, f"gym:{env_id}", 3)
        calls = []
        original = worker.update
        monkeypatch.setattr(
            worker,
            "update",
            lambda rollout, bootstrap, original=original, calls=calls: (
                calls.append(bootstrap) or original(rollout, bootstrap)
            ),
        )
        worker.run()
        seen[env_id] = calls
    # 4 steps with update_interval 3: a cut rollout, then the truncated end;
    # both bootstrap from V(s'), which is never exactly 0 here.
    assert all(b != 0.0 for b in seen["TimeLimitedToy-v0"])
    # 6 steps: a cut rollout (bootstraps), then the real end (does not).
    ends = seen["MaskedToyInfo-v0"]
    assert ends[0] != 0.0 and ends[1] == 0.0
