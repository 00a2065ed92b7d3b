"""SIGKILL at random moments, mid-save included, never loses the model."""

import os
import random
import signal
import subprocess
import time

import numpy as np
from helpers import MATHY, TINY, start_training, wait_for_episode

from mathy_a3c import A3CAgent
from mathy_a3c.checkpoint import load_checkpoint

TRAIN = [*TINY, "--no-progress"]


def test_sigkill_at_random_moments_leaves_a_folder_that_loads_and_resumes(tmp_path):
    folder = tmp_path / "agent"
    rng = random.Random(7)
    kills, episodes = 0, []
    for _ in range(4):
        proc = start_training(
            folder,
            "--episodes",
            "1000000",
            "--save-every",
            "0.02",
            *TRAIN,
            stderr=subprocess.DEVNULL,
        )
        wait_for_episode(proc)
        time.sleep(rng.uniform(0.0, 1.5))  # saves happen every 20 ms
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills += 1
        checkpoint = load_checkpoint(str(folder))  # complete, never half-written
        assert all(np.all(np.isfinite(w)) for w in checkpoint.weights.values())
        episodes.append(checkpoint.episodes)
        agent = A3CAgent.load(str(folder))
        assert agent.total_episodes == checkpoint.episodes
    assert kills == 4
    # Every run resumed the one before: a killed run's folder lock was
    # released by the operating system (mathy_a3c.folder).
    assert episodes == sorted(episodes)
    done = subprocess.run(
        [*MATHY, "train", "a3c", "poly", str(folder), "--episodes", "4", *TRAIN],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Resuming" in done.stdout
    assert load_checkpoint(str(folder)).episodes == episodes[-1] + 4
    assert not [n for n in os.listdir(folder) if n.startswith(".checkpoint")]
