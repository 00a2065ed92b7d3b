"""The curriculum: promotion, demotion, the fixed case, and a worker using it."""

import pytest
from helpers import one_worker

from mathy_a3c.config import DIFFICULTIES, A3CConfig
from mathy_a3c.curriculum import Curriculum


def test_promotes_when_the_window_reaches_the_threshold():
    c = Curriculum(window=4, promote_at=0.75, demote_below=0.25)
    assert c.difficulty("poly") == "easy"
    changes = [c.record("poly", win) for win in (True, True, False)]
    assert changes == [None, None, None]  # the window is not full yet
    change = c.record("poly", True)  # 3 of 4
    assert change is not None and change.promoted
    assert (change.old, change.new, change.win_rate) == ("easy", "normal", 0.75)
    assert c.difficulty("poly") == "normal"
    assert c.difficulty("complex") == "easy"  # per topic
    assert "worker 3 promoted on poly: easy -> normal (win rate 0.75 over 4" in (
        change.describe(3)
    )


def test_demotes_below_the_threshold_and_starts_a_new_window():
    c = Curriculum(window=2, promote_at=1.0, demote_below=0.5)
    c.record("poly", True)
    assert c.record("poly", True) is not None  # promoted to normal
    assert c.record("poly", False) is None  # a new window: one result only
    change = c.record("poly", False)
    assert change is not None and not change.promoted
    assert (change.old, change.new) == ("normal", "easy")
    assert c.record("poly", False) is None
    assert c.record("poly", False) is None  # easy is the floor
    assert c.difficulty("poly") == "easy"


def test_stops_at_the_hardest_difficulty():
    c = Curriculum(window=1, promote_at=1.0, demote_below=0.5)
    moves = [c.record("poly", True) for _ in range(5)]
    assert [m.new for m in moves if m] == ["normal", "hard"]
    assert c.difficulty("poly") == DIFFICULTIES[-1]


def test_rejects_thresholds_in_the_wrong_order():
    with pytest.raises(ValueError, match="demote_below < promote_at"):
        Curriculum(window=5, promote_at=0.5, demote_below=0.6)


def _run_worker(tmp_path, episodes, **overrides):
    config = A3CConfig(
        topics=["poly"],
        model_dir=str(tmp_path),
        model_size=8,
        max_eps=episodes,
        **overrides,
    )
    worker, _, reporter = one_worker(config)
    worker.run()
    return reporter.episodes


def test_a_worker_moves_by_the_environments_win_flag(tmp_path):
    """Window 1: every win promotes, every loss demotes (real environment)."""
    reports = _run_worker(
        tmp_path, 40, curriculum_window=1, promote_at=1.0, demote_below=0.5
    )
    level = 0
    assert reports[0].difficulty == "easy"
    for report in reports:
        assert report.difficulty == DIFFICULTIES[level]
        new = min(level + 1, 2) if report.win else max(level - 1, 0)
        if new != level:
            verb = "promoted" if new > level else "demoted"
            assert report.level_change.startswith(f"curriculum: worker 0 {verb}")
            assert f"{DIFFICULTIES[level]} -> {DIFFICULTIES[new]}" in (
                report.level_change
            )
        else:
            assert report.level_change == ""
        level = new
    assert {r.difficulty for r in reports} >= {"easy", "normal"}


def test_a_fixed_difficulty_never_moves(tmp_path):
    reports = _run_worker(
        tmp_path,
        12,
        difficulty="normal",
        curriculum_window=1,
        promote_at=1.0,
        demote_below=0.5,
    )
    assert {r.difficulty for r in reports} == {"normal"}
    assert all(r.level_change == "" for r in reports)
