"""trainer.mode → the function that trains: each has the signature of harness.training.loop.train.

Modules are imported on demand so a mode's heavy or optional dependencies cost nothing when unused.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from harness.errors import ConfigError

# mode -> "module:function"; every function takes (model, data, cfg_trainer, device, dtype, *, seed,
# progress, energy) and returns a TrainResult.
MODES = {
    "eager": "harness.training.loop:train",
}


def trainer_for(mode: str) -> Callable:
    if mode not in MODES:
        raise ConfigError(f"trainer.mode must be one of {', '.join(MODES)}, got {mode!r}; pick one of those")
    module, function = MODES[mode].split(":")
    return getattr(import_module(module), function)
