"""The ``mathy`` command, run the way users run it."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import MATHY, TINY, mathy_env, start_training, wait_for_episode

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
            "--difficulty must be one of easy, normal, hard, or curriculum; "
            "got 'medium'",
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
            "--difficulty applies to Mathy topics only",
        ),
        (
            ["train", "a3c", "poly", "out", "--workers", "-3"],
            "--workers must be an integer from 1 to 256; got -3",
        ),
        (
            ["train", "a3c", "poly", "out", "--episodes", "0"],
            "--episodes must be an integer from 1 to 1000000000000; got 0",
        ),
        (["train", "a3c", "poly", "out", "--lr", "-1"], "--lr must be in (0.0, 1.0]"),
        (
            ["train", "a3c", "poly", "out", "--lr-schedule", "cosine"],
            "--lr-schedule must be one of linear, constant; got 'cosine'",
        ),
        (
            ["train", "a3c", "poly", "out", "--workers", "4000"],
            "--workers must be an integer from 1 to 256; got 4000",
        ),
        (
            ["train", "a3c", "poly", "out", "--workers", "two"],
            "Invalid value for '--workers': 'two' is not a valid integer.",
        ),
        (
            ["train", "a3c", "poly", "out", "--seed", "-1"],
            "--seed must be an integer from 0 to 4294967295; got -1",
        ),
        (
            ["train", "a3c", "poly", "out", "--seed", "4294967296"],
            "--seed must be an integer from 0 to 4294967295; got 4294967296",
        ),
        (
            ["train", "a3c", "poly", "out", "--max-seconds", "nan"],
            "--max-seconds must be in [0.0, inf); got nan",
        ),
        (
            ["train", "a3c", "poly", "out", "--demote-below", "0.95"],
            "--demote-below must be below --promote-at; got 0.95 and 0.9",
        ),
        (
            ["train", "a3c", "poly,,complex", "out"],
            "TOPICS has an empty item in 'poly,,complex'",
        ),
        (
            ["train", "a3c", "poly,complex,poly", "out"],
            "TOPICS names poly more than once; name each topic once",
        ),
        (["train", "a3c", "", "out"], "TOPICS must name at least one topic"),
        (["train", "a3c", "poly", " "], "FOLDER must be a folder path; got ' '"),
        (
            ["train", "a3c", "poly", "out", "--episdoes", "3"],
            "No such option '--episdoes'",
        ),
        (["train", "a3c", "poly"], "Missing argument 'FOLDER'."),
        (
            ["train", "a3c", "poly", "out", "--backend", "ray"]
            + ["--ray-address", "127.0.0.1:1"],
            "--ray-address 127.0.0.1:1: cannot reach 127.0.0.1:1 (",
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
    assert "Interrupted by SIGINT: stopped 2 workers (threads)" in err
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
    assert "holds a model whose weights fit its saved settings only: --model-size " in (
        wrong.output
    )
    assert "8 -> 32; leave the option out or train into another folder" in wrong.output


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


def test_simplify_without_search_prints_every_step_and_exits_by_outcome(trained):
    result = runner.invoke(
        app,
        ["simplify", "4x + 2x + 7y^2 + y^2", "--model", trained, "--max-steps", "20"]
        + ["--search", "none"],
    )
    lines = result.output.strip().splitlines()
    assert lines[0] == "Problem: 4x + 2x + 7y^2 + y^2"
    assert all(" | " in line for line in lines[1:-1]) and len(lines) >= 3
    if result.exit_code == 0:
        assert lines[-1].startswith("Simplified: ")
    else:
        assert result.exit_code == 1 and lines[-1].startswith("Not simplified: ")


def test_simplify_searches_by_default_and_lists_its_steps_and_cost(trained):
    result = runner.invoke(app, ["simplify", "4x + 2x + 7y + y", "--model", trained])
    assert result.exit_code == 0, result.output  # a search of 100 finds this one
    lines = result.output.strip().splitlines()
    assert lines[0] == "Problem: 4x + 2x + 7y + y"
    assert all(" | " in line for line in lines[1:-2]) and len(lines) >= 4
    assert re.fullmatch(r"Search: \d+ simulations, \d+ states, [\d.]+ s", lines[-2])
    assert lines[-1].startswith("Simplified: ")


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
        (
            ["simplify", "x + " * 400 + "x", "--model", "MODEL"],
            "characters long; at most 1000 are read",
        ),
        (
            ["simplify", " + ".join(["x"] * 70), "--model", "MODEL"],
            "has 139 nodes; the model sees at most 128",
        ),
        (["simplify", "-", "--model", "MODEL"], "cannot parse problem '-': Expected"),
        (
            ["simplify", "123456789012x + x", "--model", "MODEL"],
            "constant 123456789012 is larger than 1e+09",
        ),
        (
            ["simplify", "2x", "--model", "MODEL", "--max-steps", "0"],
            "--max-steps must be from 1 to 10000; got 0",
        ),
        (["simplify", "2x", "--model", "a\x00b"], "Model folder 'a\\x00b' does not"),
        (
            ["evaluate", "MODEL", "--problems", "1000000000"],
            "--problems must be from 1 to 100000; got 1000000000",
        ),
        (["evaluate", "MODEL", "--seed", "-4"], "--seed must be from 0 to"),
        (["evaluate", "MODEL", "--topics", "poly,"], "--topics has an empty item"),
        (["evaluate", "MODEL", "--difficulty", "x"], "--difficulty must be one of"),
        (["problems", "poly", "--number", "0"], "--number must be from 1 to 100000"),
        (["problems", "poly", "--seed", "99999999999"], "--seed must be from 0 to"),
        (["evaluate"], "Missing argument 'FOLDER'."),
        (
            ["simplify", "2x", "--model", "MODEL", "--search", "bfs"],
            "Unknown search 'bfs'. Valid searches: none, mcts",
        ),
        (
            ["evaluate", "MODEL", "--search", "mcts", "--simulations", "0"],
            "--simulations must be from 1 to 100000; got 0",
        ),
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


def test_evaluate_prints_no_native_log_lines(trained):
    env = {k: v for k, v in mathy_env().items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run(
        [*MATHY, "evaluate", trained, "--problems", "3", "--difficulty", "easy"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "greedy" in done.stdout
    # TensorFlow's C++ log lines ("E0000 00:00:17... util.cc:131] oneDNN ...").
    native = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
    assert not [line for line in done.stderr.splitlines() if native.match(line)]


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
    searched = runner.invoke(
        app,
        ["evaluate", trained, "--problems", "4", "--difficulty", "easy"]
        + ["--search", "mcts", "--simulations", "20", "--json"],
    )
    assert searched.exit_code == 0, searched.output
    (row,) = json.loads(searched.output)["results"]
    assert 0.0 <= row["search_win_rate"] <= 1.0
    assert 0.0 < row["search_seconds_median"] <= row["search_seconds_p95"]
    assert row["search_simulations"] == 20


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
    # worker 1 waits 50 ms an action, so worker 0's process, however late it
    # starts, still plays (and shows) an episode of the 6
    first = runner.invoke(
        app,
        [*args, "--episodes", "6", "--backend", "processes", "--worker-wait", "50"]
        + ["--show", "--profile"],
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
    assert "weights fit its saved settings only: TOPICS gym:CartPole-v1 -> poly" in (
        mixed.output
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"4x + 2x\n4x ++\n", "line 2: cannot parse problem '4x ++'"),
        (b"4x + 2x\n\xff\xfe\n", "line 2: not UTF-8 text"),
        (b"x\n" * 10_001, "holds more than 10000 problems"),
        (b"x + " * 400 + b"x\n", "line 1: problem 'x + x + x"),
        (b"# only comments\n\n", None),
    ],
)
def test_problem_files_of_any_content_are_one_line_errors(
    trained, tmp_path, content, message
):
    path = tmp_path / "problems.txt"
    path.write_bytes(content)
    args = ["evaluate", trained, "--problems", "2", "--problems-file", str(path)]
    result = runner.invoke(app, args)
    if message is None:  # nothing to evaluate in it: only the generated sets
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"Error: --problems-file: {path}" in result.output
    assert message in result.output


def test_problem_files_that_never_end_or_are_not_files_are_refused(trained, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would wait forever for a writer
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(11 * 2**20)
    for path, message in (
        ("/dev/zero", "/dev/zero is not a file"),
        (str(fifo), f"{fifo} is not a file"),
        (str(tmp_path), f"{tmp_path} is not a file"),
        (str(tmp_path / "missing.txt"), f"{tmp_path}/missing.txt does not exist"),
        (str(big), f"{big} is larger than 10 MiB"),
    ):
        args = ["evaluate", trained, "--problems", "1", "--problems-file", path]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"Error: --problems-file: {message}" in result.output


def test_train_help_shows_the_ray_extra_and_that_a_model_is_resumed():
    text = runner.invoke(app, ["train", "--help"], terminal_width=200).output
    assert "pip install 'mathy-a3c[ray]'" in text
    assert "If it holds a model, training resumes it" in text
    assert "never overwrites it" in text and "overwrite)" not in text
    assert "--change-settings" in text and "--allow-nonempty" in text
    assert "pickle" not in text.lower()


def test_every_config_field_is_a_train_option_with_its_help():
    import dataclasses

    from mathy_a3c.cli import flag
    from mathy_a3c.config import A3CConfig

    text = " ".join(runner.invoke(app, ["train", "--help"]).output.split())
    for field in dataclasses.fields(A3CConfig):
        assert flag(field.name) in text, field.name  # TOPICS, FOLDER: arguments
        if field.metadata["flag"] is not None:
            help_start = " ".join(A3CConfig.help(field.name).split()[:4])
            assert help_start in text, field.name
