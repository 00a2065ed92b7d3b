"""mathy_a3c: threaded A3C agents that learn to simplify algebra step by step.

``A3CConfig`` is cheap to import. ``A3CAgent`` pulls in TensorFlow, so it is
loaded on first access only. Importing the package changes nothing in the
importing program (see :mod:`mathy_a3c.runtime`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import A3CConfig, ConfigError

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
