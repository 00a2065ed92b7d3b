"""Process-wide settings for a process that trains: the ``mathy`` command and
worker processes apply them; a library never does on its own.

Importing ``mathy_a3c``, building a config, building or loading an agent,
``predict`` and ``simplify`` change no process-wide setting (environment
variables, TensorFlow's threads, global random state): a program that uses a
trained model keeps its own. A program that trains from Python may call
:func:`configure_for_training` first, as ``mathy train`` does, for the same
speed.
"""

from __future__ import annotations

import gc
import os
import sys


def configure_for_training() -> bool:
    """Set this process up to train as the ``mathy`` command does; returns
    False where TensorFlow had run already and its threads could not be set.

    * TensorFlow's start-up logs quiet, and no oneDNN kernels (they make this
      model's small convolutions and matrix products slower on CPU), if
      TensorFlow is not imported yet and the variables are not set;
    * one TensorFlow thread per pool: an update's graph is small, so thread
      pools only add hand-offs, and the cores belong to the workers (with 1
      worker thread on 2 cores: 593 env steps/s with one TensorFlow thread,
      504 with TensorFlow's default of one per core). This works only before
      TensorFlow runs its first operation;
    * one BLAS thread for numpy (through ``threadpoolctl``): a worker's
      matrix products (its numpy gradients) are small, and OpenBLAS's
      threads spin while they wait, taking the cores from the other workers
      (2 worker processes on 2 cores ran at 0.21x the raw gymnasium env
      with OpenBLAS's default of one thread per core, 0.84x with one).
    """
    quiet_fast_tensorflow()
    import numpy  # noqa: F401  (loads its BLAS, which threadpoolctl only sees then)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an operation here
        return False
    return True


def quiet_fast_tensorflow() -> None:
    """TensorFlow's start-up logs quiet, and no oneDNN kernels (slower for
    this model's small convolutions and matrix products on CPU; on CPUs
    without AVX-512 they also log an error line at the first masked call),
    where TensorFlow is not imported yet and the variables are not set. For
    the ``mathy`` commands' own processes, which also use it to play."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def freeze_built_objects() -> None:
    """Exempt every object alive now from the garbage collector's scans: for
    a worker process (its own process, never the user's), once its model is
    built and before it plays.

    Nearly all of them (TensorFlow, Keras, the network, the modules: about
    340,000 objects) live as long as the process, yet every full collection
    walked them all again. Frozen, they are skipped, and the objects made
    later (mathy_core's expression trees among them, cycles that only the
    collector frees) are collected as before. Unfrozen, a process of two
    workers walked them more often than a process of one (more young objects
    survive) and spent 2.4% more CPU per step; frozen, no more than one
    (``benchmarks/collector.py``, docs/benchmarks.md). Garbage that exists
    now is collected first, so that none of it is kept for good
    (:func:`gc.freeze`).
    """
    gc.collect()
    gc.freeze()
