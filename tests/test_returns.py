"""Returns and advantages against cases worked out by hand."""

import numpy as np
import pytest

from mathy_a3c.returns import advantages_and_returns, discounted_returns


def test_terminal_rollout_bootstraps_from_zero():
    # r = [1, 0, 2], gamma 0.5: R2 = 2, R1 = 0 + .5*2 = 1, R0 = 1 + .5*1 = 1.5
    np.testing.assert_allclose(discounted_returns([1, 0, 2], 0.0, 0.5), [1.5, 1, 2])


def test_cut_rollout_bootstraps_from_the_last_value():
    # bootstrap 4: R1 = -1 + .5*4 = 1, R0 = 1 + .5*1 = 1.5
    np.testing.assert_allclose(discounted_returns([1, -1], 4.0, 0.5), [1.5, 1.0])


def test_lambda_one_gives_returns_minus_values():
    rewards = np.array([0.01, -0.01, 1.5], np.float32)
    values = np.array([0.2, 0.4, 0.9], np.float32)
    adv, ret = advantages_and_returns(rewards, values, 0.0, gamma=0.9, gae_lambda=1.0)
    expected = discounted_returns(rewards, 0.0, 0.9)
    np.testing.assert_allclose(ret, expected, rtol=1e-6)
    np.testing.assert_allclose(adv, expected - values, rtol=1e-6)


def test_lambda_zero_gives_one_step_td_errors():
    rewards = np.array([1.0, 2.0], np.float32)
    values = np.array([0.5, 1.0], np.float32)
    adv, ret = advantages_and_returns(rewards, values, 3.0, gamma=0.5, gae_lambda=0.0)
    # delta0 = 1 + .5*1.0 - .5 = 1.0 ; delta1 = 2 + .5*3 - 1 = 2.5
    np.testing.assert_allclose(adv, [1.0, 2.5])
    np.testing.assert_allclose(ret, [1.5, 3.5])


def test_gae_mixes_td_errors_by_gamma_lambda():
    rewards = np.array([1.0, 2.0], np.float32)
    values = np.array([0.5, 1.0], np.float32)
    adv, _ = advantages_and_returns(rewards, values, 3.0, gamma=0.5, gae_lambda=0.5)
    np.testing.assert_allclose(adv, [1.0 + 0.25 * 2.5, 2.5])


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="differ"):
        advantages_and_returns(np.ones(3), np.ones(2), 0.0, 0.9)
