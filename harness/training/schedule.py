"""Learning-rate schedules as a factor of the optimizer's base LR, over the run's optimizer steps."""

from __future__ import annotations

import math
from collections.abc import Callable

from harness.errors import ConfigError
from harness.settings import SCHEDULES


def lr_factor(name: str, total_steps: int, warmup_fraction: float = 0.0) -> Callable[[int], float]:
    """Factor for step `s` (0-based): a linear ramp over the warm-up share, then the named decay to 0."""
    if name not in SCHEDULES:
        raise ConfigError(f"trainer.schedule.name={name} is unknown; use one of {', '.join(SCHEDULES)}")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(f"trainer.schedule.warmup_fraction must be in [0, 1), got {warmup_fraction}")
    warmup = int(round(warmup_fraction * total_steps))
    decay_steps = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / decay_steps, 1.0)
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "linear":
            return 1.0 - progress
        return 1.0

    return factor
