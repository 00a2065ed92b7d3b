"""Shared fixtures: tiny configs that train real models on real Mathy envs."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Property-based tests: a few hundred random inputs each in CI; set
# HYPOTHESIS_PROFILE=thorough for many more (a few minutes).
settings.register_profile("ci", max_examples=250, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def tiny(tmp_path):
    """Keyword arguments for an A3CConfig that trains in a few seconds."""
    return {
        "topics": ["poly"],
        "model_dir": str(tmp_path / "model"),
        "num_workers": 2,
        "max_eps": 6,
        "model_size": 8,
        "update_interval": 8,
    }
