"""mathy_a3c: threaded A3C agents that learn to simplify algebra step by step.

``A3CConfig`` is cheap to import. ``A3CAgent`` pulls in TensorFlow, so it is
loaded on first access only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import A3CConfig, ConfigError

__version__ = "0.1.0"
__all__ = ["A3CAgent", "A3CConfig", "ConfigError", "WorkerError", "__version__"]

if TYPE_CHECKING:
    from .agent import A3CAgent, WorkerError


def __getattr__(name: str) -> Any:
    if name in ("A3CAgent", "WorkerError"):
        from . import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'mathy_a3c' has no attribute {name!r}")
