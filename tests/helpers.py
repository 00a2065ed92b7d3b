"""Running the real ``mathy`` command from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from mathy_a3c.callbacks import Callback

#: ``mathy`` as a user runs it, through this interpreter. Ctrl-C gets Python's
#: usual handler even where the test runner was started with it ignored (a
#: background job of a shell), which its child processes would inherit.
MATHY = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from mathy_a3c.cli import app; app(sys.argv[1:], prog_name='mathy')",
]
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


class Recorder(Callback):
    """A training callback that keeps every episode report and ``--show`` line
    (``(worker, text)``)."""

    def __init__(self) -> None:
        self.reports: list[Any] = []
        self.shown: list[tuple[int, str]] = []

    def on_episode(self, report: Any, stats: Any) -> None:
        self.reports.append(report)

    def on_show(self, worker: int, text: str) -> None:
        self.shown.append((worker, text))


class RecordingLearner:
    """A real global model behind the worker's Learner interface; counts updates."""

    def __init__(self, spec: Any = None) -> None:
        from mathy_a3c.model import ActorCritic
        from mathy_a3c.parameter_server import GlobalModel

        network = ActorCritic(model_size=8, spec=spec)
        self.shared = GlobalModel(network.flat_weights(), network.layout, 1e-3)
        self.updates = 0

    def update(self, local: Any) -> Any:
        self.updates += 1
        return self.shared.update(local)

    def copy_to(self, local: Any) -> Any:
        return self.shared.copy_to(local)


class ListReporter:
    """Keeps what a worker reports: episodes, ``--show`` lines, profiles."""

    def __init__(self) -> None:
        self.episodes: list[Any] = []
        self.lines: list[tuple[int, str]] = []
        self.profiles: list[tuple[int, bytes]] = []

    def episode(self, report: Any) -> None:
        self.episodes.append(report)

    def show(self, worker: int, text: str) -> None:
        self.lines.append((worker, text))

    def profile(self, worker: int, stats: bytes) -> None:
        self.profiles.append((worker, stats))


def one_worker(config: Any) -> tuple[Any, RecordingLearner, ListReporter]:
    """Worker 0 of ``config``, driven directly against a real global model."""
    import threading

    from mathy_a3c.counting import EpisodeCounter, StepCounter
    from mathy_a3c.tasks import task_spec
    from mathy_a3c.worker import Worker

    learner, reporter = RecordingLearner(task_spec(config)), ListReporter()
    worker = Worker(
        0,
        config,
        learner,
        reporter,
        EpisodeCounter(config.max_eps),
        StepCounter(),
        threading.Event(),
    )
    return worker, learner, reporter
