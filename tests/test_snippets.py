"""Every example in snippets/ runs, as a user would run it."""

import os
import pstats
import re
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


TESTED = {
    "ml/a3c_training.py",
    "ml/a3c_profiling.py",
    "ml/a3c_inference.py",
    "cli/train.sh",
    "cli/use.sh",
    "cli/profile.sh",
    "cli/backends.sh",
    "cli/gym.sh",
    "cli/curriculum.sh",
}


def test_every_snippet_is_tested():
    found = {str(p.relative_to(SNIPPETS)) for p in SNIPPETS.rglob("*") if p.is_file()}
    assert found == TESTED


def test_every_snippet_include_in_the_docs_is_well_formed():
    """``--8<-- "path"`` lines must survive formatters and name real files."""
    docs = SNIPPETS.parent / "docs"
    for page in docs.glob("*.md"):
        for line in page.read_text().splitlines():
            if "8<" in line or "8 <" in line:
                assert re.fullmatch(r'--8<-- "snippets/[\w/.-]+"', line), (page, line)
                assert (SNIPPETS.parent / line.split('"')[1]).is_file(), line


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


def test_inference_snippet(tmp_path):
    out = _run("ml/a3c_inference.py", tmp_path)
    assert "simplified" in out and "greedy action:" in out


def _bash(name, cwd):
    scripts = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-e", str(SNIPPETS / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_cli_snippets_in_order(tmp_path):
    out = _bash("cli/train.sh", tmp_path)
    assert "Trained 300 episodes" in out
    out = _bash("cli/use.sh", tmp_path)
    assert "Problem: 4x + 2x + 7y^2 + y^2" in out and "no-revisit" in out
    out = _bash("cli/profile.sh", tmp_path)
    assert "tottime" in out or "function calls" in out
    out = _bash("cli/backends.sh", tmp_path)
    assert "Trained 200 episodes" in out


def test_gym_snippet_trains_cartpole_past_random_play(tmp_path):
    out = _bash("cli/gym.sh", tmp_path)
    assert "Trained 600 episodes" in out
    rows = {
        line.split()[1]: line.split() for line in out.splitlines() if "gym:" in line
    }
    greedy, random = float(rows["greedy"][3]), float(rows["random"][3])
    assert greedy > 2 * random, out


def test_curriculum_snippet_prints_promotions(tmp_path):
    out = _bash("cli/curriculum.sh", tmp_path)
    assert "promoted on poly: easy -> normal" in out
    assert all(f"generated {d}" in out for d in ("easy", "normal", "hard"))
