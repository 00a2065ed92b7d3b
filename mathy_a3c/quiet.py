"""TensorFlow's native start-up chatter kept off the user's terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hide TensorFlow's C++ start-up chatter (CUDA probing, CPU features).

    It is written straight to file descriptor 2 while TensorFlow loads, before
    any logging setting applies. Python exceptions raised inside still reach
    the user: they are printed after stderr is restored. Set
    ``MATHY_A3C_TF_LOGS=1`` to see the native logs.
    """
    if os.environ.get("MATHY_A3C_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
