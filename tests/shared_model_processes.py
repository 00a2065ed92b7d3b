"""What the worker processes of tests/test_parameter_server.py run: light on
imports, since every spawned process imports this module."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mathy_a3c.parameter_server import GlobalModel


def apply(shared: Any, gradient: np.ndarray, count: int) -> None:
    """Apply ``gradient`` ``count`` times to the shared global model."""
    model = GlobalModel.attach(shared)
    for _ in range(count):
        model.apply_flat(gradient)


def hold_the_lock(shared: Any, held: Any) -> None:
    """Take the shared model's lock, say so, and never let go (until killed)."""
    model = GlobalModel.attach(shared)
    with model._held():
        held.set()
        time.sleep(600)
