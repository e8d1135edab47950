"""The training loop, its clock, and device/precision handling."""

from harness.training.loop import TrainResult, evaluate, train

__all__ = ["TrainResult", "evaluate", "train"]
