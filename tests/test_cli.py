"""The ``mathy`` command, run the way users run it."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from mathy_a3c.checkpoint import load_checkpoint
from mathy_a3c.cli import app
from mathy_a3c.config import TOPICS

runner = CliRunner()
TINY = ["--workers", "2", "--model-size", "8", "--update-interval", "8"]


def _mathy(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "mathy_a3c", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kwargs,
    )


def test_console_script_is_installed():
    scripts = os.path.dirname(sys.executable)
    assert shutil.which("mathy", path=scripts) or shutil.which("mathy")


def test_help_lists_commands_without_importing_tensorflow():
    code = (
        "import sys\n"
        "from mathy_a3c.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("mathy-a3c ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "zero", "poly", "out"], "Unknown agent 'zero'. Valid agents: a3c"),
        (
            ["train", "a3c", "polly", "out"],
            "Unknown topic 'polly'. Valid topics: " + ", ".join(TOPICS),
        ),
        (
            ["train", "a3c", "poly", "out", "--difficulty", "medium"],
            "difficulty must be one of easy, normal, hard; got 'medium'",
        ),
        (
            ["train", "a3c", "poly", "out", "--workers", "-3"],
            "num_workers must be an integer >= 1; got -3",
        ),
        (
            ["train", "a3c", "poly", "out", "--episodes", "0"],
            "max_eps must be an integer >= 1; got 0",
        ),
        (["train", "a3c", "poly", "out", "--lr", "-1"], "lr must be in (0.0, 1.0]"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(args, message, tmp_path):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"Error: {message}" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_train_two_workers_with_show_and_profile(tmp_path):
    folder = tmp_path / "my_agent"
    done = _mathy(
        "train",
        "a3c",
        "poly",
        str(folder),
        "--episodes",
        "6",
        *TINY,
        "--show",
        "--profile",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "[poly]" in out  # the problem worker 0 starts on
    assert " w0 ep " in out and ("WIN" in out or "LOSE" in out)
    assert " | +" in out or " | -" in out  # per-step lines with rewards
    assert "Trained 6 episodes" in out
    for name in (
        "config.json",
        "checkpoint.npz",
        "worker_0.profile",
        "worker_1.profile",
    ):
        assert (folder / name).is_file(), name
    assert load_checkpoint(str(folder)).episodes == 6


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    folder = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mathy_a3c",
            "train",
            "a3c",
            "poly",
            str(folder),
            "--episodes",
            "100000",
            *TINY,
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until training is under way
        if " w0 ep " in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted: stopped 2 workers" in err
    assert "Traceback" not in err
    assert load_checkpoint(str(folder)).episodes >= 1
