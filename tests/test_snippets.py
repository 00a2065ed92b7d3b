"""Every example in snippets/ runs, as a user would run it."""

import os
import pstats
import subprocess
import sys
from pathlib import Path

SNIPPETS = Path(__file__).resolve().parents[1] / "snippets"


def _run(name, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(SNIPPETS / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_snippet_is_tested():
    tested = {"ml/a3c_training.py", "ml/a3c_profiling.py"}
    found = {str(p.relative_to(SNIPPETS)) for p in SNIPPETS.rglob("*.py")}
    assert found == tested


def test_training_snippet(tmp_path):
    out = _run("ml/a3c_training.py", tmp_path)
    assert "10 episodes" in out
    assert (tmp_path / "output/my_agent/checkpoint.npz").is_file()


def test_profiling_snippet_writes_loadable_profiles(tmp_path):
    out = _run("ml/a3c_profiling.py", tmp_path)
    for worker in (0, 1):
        path = tmp_path / f"output/profiled_agent/worker_{worker}.profile"
        assert path.is_file()
        assert pstats.Stats(str(path)).total_calls > 0
    assert "cumulative" in out or "function calls" in out
