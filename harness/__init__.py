"""harness: measure what deep-learning accuracy costs, in FLOPs, hardware burden, energy and dollars."""

__version__ = "0.1.0"
