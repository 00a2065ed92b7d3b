"""mathy_a3c: threaded A3C agents that learn to simplify algebra step by step.

``A3CConfig`` is cheap to import. ``A3CAgent`` pulls in TensorFlow, so it is
loaded on first access only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# TensorFlow reads these when it loads, so they are set here, before any
# module of this package imports it (a value already set is kept):
# * quiet start-up logs;
# * no oneDNN kernels: they make this model's small convolutions and matrix
#   products slower on CPU (a gradient call on a 10-step rollout takes 2.3 ms
#   with them and 2.1 ms without; set TF_ENABLE_ONEDNN_OPTS=1 to compare).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from .config import A3CConfig, ConfigError  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "A3CAgent",
    "A3CConfig",
    "CheckpointError",
    "ConfigError",
    "ProblemError",
    "WorkerError",
    "__version__",
]

if TYPE_CHECKING:
    from .agent import A3CAgent, WorkerError
    from .checkpoint import CheckpointError
    from .envs import ProblemError

#: Names loaded on first access, from the module that defines them.
_LAZY = {
    "A3CAgent": "agent",
    "WorkerError": "agent",
    "CheckpointError": "checkpoint",
    "ProblemError": "envs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mathy_a3c' has no attribute {name!r}")
