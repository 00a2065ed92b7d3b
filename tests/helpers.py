"""Running the real ``mathy`` command from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

#: ``mathy`` as a user runs it, through this interpreter.
MATHY = [sys.executable, "-m", "mathy_a3c"]
#: Options that make training tiny and quiet.
TINY = ["--workers", "2", "--model-size", "8", "--update-interval", "8"]


def mathy_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def start_training(folder: Any, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """``mathy train a3c poly FOLDER ...`` in the background, stdout piped."""
    return subprocess.Popen(
        [*MATHY, "train", "a3c", "poly", str(folder), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=mathy_env(),
        **popen,
    )


def wait_for_episode(proc: subprocess.Popen[str], marker: str = " ep ") -> None:
    """Read the process's output until a finished-episode line appears."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return
