"""harness: measure what deep-learning accuracy costs, in FLOPs, hardware burden, energy and dollars.

`harness.track(model, ...)` measures a training loop of your own (harness/tracking.py); it is imported on
first use, so `import harness` stays free of torch and of every optional library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.tracking import track

__version__ = "0.1.0"
__all__ = ["__version__", "track"]


def __getattr__(name: str) -> Any:
    if name == "track":
        from harness.tracking import track

        return track
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
