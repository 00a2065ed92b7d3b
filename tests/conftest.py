"""Shared fixtures: tiny configs that train real models on real Mathy envs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
