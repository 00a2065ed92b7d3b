"""A library is a good guest: using a trained model changes nothing in the
program that uses it; only training configures the process, when asked."""

import gc
import subprocess
import sys
import textwrap

from mathy_a3c import A3CAgent, A3CConfig

USE_A_MODEL = textwrap.dedent(
    """
    import gc, json, os, random, sys
    import numpy as np
    import tensorflow as tf

    def settings():
        return {
            "environment": dict(os.environ),
            "random": repr(random.getstate()),
            "numpy": np.random.get_state()[1].tolist(),
            "tensorflow": tf.random.get_global_generator().state.numpy().tolist(),
            "collector": [gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()],
            "threads": [
                tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads(),
            ],
        }

    before = settings()
    import mathy_a3c
    from mathy_a3c import A3CAgent, A3CConfig
    from mathy_a3c.envs import MathyTask

    A3CConfig(topics=["poly", "complex"], model_dir=sys.argv[1])
    agent = A3CAgent.load(sys.argv[1])
    agent.simplify("4x + 2x + 7y^2 + y^2")
    observation = MathyTask(["poly"], "easy", seed=3).reset()
    agent.predict(observation)
    agent.predict(observation, greedy=False)
    after = settings()
    changed = sorted(k for k in before if before[k] != after[k])
    print(json.dumps(changed))
    """
)


def test_loading_a_model_predicting_and_simplifying_change_no_setting(tmp_path):
    folder = str(tmp_path / "model")
    config = A3CConfig(model_dir=folder, max_eps=2, model_size=8, num_workers=1)
    A3CAgent(config, console=False).train()
    assert gc.get_freeze_count() == 0  # training with threads freezes nothing here
    done = subprocess.run(
        [sys.executable, "-c", USE_A_MODEL, folder],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_training_configures_the_process_only_when_asked():
    code = (
        "import os, sys\n"
        "from mathy_a3c.runtime import configure_for_training\n"
        "assert 'TF_ENABLE_ONEDNN_OPTS' not in os.environ\n"
        "assert configure_for_training()\n"
        "import tensorflow as tf\n"
        "assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == '0'\n"
        "assert tf.config.threading.get_intra_op_parallelism_threads() == 1\n"
        "from threadpoolctl import threadpool_info\n"
        "blas = [i['num_threads'] for i in threadpool_info()\n"
        "        if i['user_api'] == 'blas']\n"
        "assert blas and set(blas) == {1}, blas  # numpy's BLAS found and limited\n"
        "tf.constant(1.0) + 1.0\n"
        "assert configure_for_training()  # the same settings: nothing to change\n"
    )
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("TF_ENABLE_ONEDNN_OPTS",)
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
