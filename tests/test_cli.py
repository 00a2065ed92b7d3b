"""The ``mathy`` command, run the way users run it."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import MATHY, TINY, mathy_env, start_training, wait_for_episode
from typer.testing import CliRunner

from mathy_a3c.checkpoint import load_checkpoint
from mathy_a3c.cli import app
from mathy_a3c.config import DIFFICULTIES, TOPICS

runner = CliRunner()


def _mathy(*args, **kwargs):
    return subprocess.run(
        [*MATHY, *args],
        capture_output=True,
        text=True,
        env=mathy_env(),
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
            "Unknown topic 'polly'. Valid topics: " + ", ".join(TOPICS) + ", or gym:",
        ),
        (
            ["train", "a3c", "poly", "out", "--difficulty", "medium"],
            "difficulty must be one of easy, normal, hard, or unset for the "
            "curriculum; got 'medium'",
        ),
        (
            ["train", "a3c", "gym:Pendulum-v1", "out"],
            "gym:Pendulum-v1 has action space Box(-2.0, 2.0, (1,), float32); A3C "
            "here needs a Discrete action space",
        ),
        (
            ["train", "a3c", "gym:NoSuchEnv-v0", "out"],
            "Unknown Gymnasium environment 'NoSuchEnv-v0' in topic 'gym:NoSuchEnv-v0'",
        ),
        (
            ["train", "a3c", "gym:CartPole-v1", "out", "--difficulty", "easy"],
            "difficulty applies to Mathy topics only",
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
        (
            ["train", "a3c", "poly", "out", "--lr-schedule", "cosine"],
            "lr_schedule must be one of linear, constant; got 'cosine'",
        ),
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
    assert "[poly easy]" in out  # the problem worker 0 starts on (curriculum)
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
    proc = start_training(
        folder,
        "--episodes",
        "100000",
        *TINY,
        "--no-progress",
        stderr=subprocess.PIPE,
    )
    wait_for_episode(proc, " w0 ep ")
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted: stopped 2 workers" in err
    assert "Traceback" not in err
    assert load_checkpoint(str(folder)).episodes >= 1


# -- using a trained model -----------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "agent"
    result = runner.invoke(
        app,
        [
            "train",
            "a3c",
            "poly",
            str(folder),
            "--episodes",
            "8",
            *TINY,
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    return str(folder)


def test_train_again_resumes_and_refuses_a_different_model_size(trained):
    again = runner.invoke(
        app,
        [
            "train",
            "a3c",
            "poly",
            trained,
            "--episodes",
            "2",
            "--workers",
            "2",
            "--no-progress",
        ],
    )
    assert again.exit_code == 0, again.output
    assert "Resuming" in again.output and "model_size" not in again.output
    wrong = runner.invoke(app, ["train", "a3c", "poly", trained, "--model-size", "32"])
    assert wrong.exit_code == 2
    assert "Error: --model-size 32 contradicts the model saved in" in wrong.output


def test_transfer_from_a_folder_without_a_model_is_a_clear_error(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "a3c",
            "poly",
            str(tmp_path / "new"),
            "--transfer",
            str(tmp_path / "nothing"),
        ],
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_simplify_prints_every_step_and_exits_by_outcome(trained):
    result = runner.invoke(
        app,
        ["simplify", "4x + 2x + 7y^2 + y^2", "--model", trained, "--max-steps", "20"],
    )
    lines = result.output.strip().splitlines()
    assert lines[0] == "Problem: 4x + 2x + 7y^2 + y^2"
    assert all(" | " in line for line in lines[1:-1]) and len(lines) >= 3
    if result.exit_code == 0:
        assert lines[-1].startswith("Simplified: ")
    else:
        assert result.exit_code == 1 and lines[-1].startswith("Not simplified: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simplify", "4x ++", "--model", "MODEL"], "cannot parse problem '4x ++'"),
        (
            ["simplify", "4x", "--model", "/no/such/folder"],
            "Model folder '/no/such/folder' does not exist",
        ),
        (
            ["simplify", "4x", "--model", "MODEL", "--strategy", "best"],
            "Unknown strategy 'best'",
        ),
        (["evaluate", "/no/such/folder"], "does not exist"),
        (["problems", "polly"], "Unknown topic 'polly'. Valid topics: poly,"),
        (["problems", "poly", "--difficulty", "medium"], "difficulty must be one of"),
    ],
)
def test_bad_input_to_the_model_commands(args, message, trained):
    args = [trained if a == "MODEL" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_corrupt_checkpoint_is_named_not_a_stack_trace(tmp_path, trained):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "checkpoint.npz").write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["simplify", "4x + 2x", "--model", str(broken)])
    assert result.exit_code == 2
    assert "checkpoint.npz is corrupt or unreadable" in result.output
    assert "Traceback" not in result.output


def test_evaluate_prints_a_table_and_json(trained, tmp_path):
    problems = tmp_path / "mine.txt"
    problems.write_text(
        "# my problems\n# group: pairs\n4x + 2x  # easy one\n\n"
        "7y + 3y\n# group: far\n3x + 2y + 4x\n"
    )
    table = runner.invoke(
        app, ["evaluate", trained, "--problems", "10", "--problems-file", str(problems)]
    )
    assert table.exit_code == 0, table.output
    assert "no-revisit" in table.output and "random" in table.output
    assert "file: pairs" in table.output and "file: far" in table.output
    # A curriculum model is measured at every difficulty, a fixed one at one.
    result = runner.invoke(app, ["evaluate", trained, "--problems", "10", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)["results"]
    assert [r["set"] for r in rows] == [f"generated {d}" for d in DIFFICULTIES]
    result = runner.invoke(
        app, ["evaluate", trained, "--problems", "10", "--difficulty", "hard", "--json"]
    )
    (row,) = json.loads(result.output)["results"]
    assert row["topic"] == "poly" and row["problems"] == 10
    assert row["set"] == "generated hard"
    for key in (
        "greedy_win_rate",
        "no_revisit_win_rate",
        "greedy_mean_steps",
        "random_win_rate",
    ):
        assert 0.0 <= row[key] <= 30


def test_problems_prints_generated_problems_with_complexity():
    result = runner.invoke(app, ["problems", "poly", "--number", "5"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:2] == ["complexity", "moves"]
    assert len(lines) == 6
    for line in lines[1:]:
        complexity, moves, problem = line.split(maxsplit=2)
        assert int(moves) == 4 * int(complexity) and "+" in problem


def test_a_gym_topic_trains_shows_profiles_resumes_and_evaluates(tmp_path):
    folder = str(tmp_path / "cartpole")
    args = ["train", "a3c", "gym:CartPole-v1", folder, *TINY, "--no-progress"]
    first = runner.invoke(
        app, [*args, "--episodes", "6", "--backend", "processes", "--show", "--profile"]
    )
    assert first.exit_code == 0, first.output
    assert "[gym:CartPole-v1] CartPole-v1 episode 1" in first.output
    assert "| action " in first.output
    assert os.path.exists(os.path.join(folder, "worker_1.profile"))
    again = runner.invoke(app, [*args, "--episodes", "4"])
    assert again.exit_code == 0, again.output
    assert "Resuming" in again.output
    assert load_checkpoint(folder).episodes == 10
    result = runner.invoke(app, ["evaluate", folder, "--problems", "5", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads(result.output)["results"]}
    assert set(rows) == {"greedy", "random"}
    assert rows["greedy"]["episodes"] == 5 and rows["greedy"]["mean_return"] >= 8
    refused = runner.invoke(app, ["simplify", "2x + x", "--model", folder])
    assert refused.exit_code == 2
    assert "simplify needs one trained on Mathy topics" in refused.output
    mixed = runner.invoke(app, ["train", "a3c", "poly", folder, *TINY])
    assert mixed.exit_code == 2
    assert "holds a model for gym:CartPole-v1" in mixed.output
