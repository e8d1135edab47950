"""trainer.mode → the function that trains: each has the signature of harness.training.loop.train.

Modules are imported on demand so a mode's heavy or optional dependencies cost nothing when unused.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from harness.errors import ConfigError

# mode -> "module:function"; every function takes (model, data, cfg_trainer, device, dtype, *, seed,
# progress, energy) and returns a TrainResult — except the modes in ENSEMBLE_MODES, which take a list of
# models and `seeds` (one per model) and return one TrainResult per model.
MODES = {
    "eager": "harness.training.loop:train",
    "closed_form": "harness.training.closed_form:fit_closed_form",
    "graph": "harness.training.graph:train_graph",
    "ensemble": "harness.training.ensemble:train_ensemble",
}


ENSEMBLE_MODES = ("ensemble",)
# Modes that can wrap the model in torch.compile (graph capture and vmap take the step as it is).
COMPILE_MODES = ("eager",)


def ensemble_size(cfg_trainer: Any) -> int:
    """How many models this trainer config trains at once (1 outside ENSEMBLE_MODES); validates
    trainer.ensemble_size, trainer.compile and the mode with one-line ConfigErrors."""
    mode = cfg_trainer.get("mode", "eager")
    trainer_for(mode)
    size = cfg_trainer.get("ensemble_size", 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"trainer.ensemble_size must be a positive integer, got {size!r}")
    if size > 1 and mode not in ENSEMBLE_MODES:
        raise ConfigError(
            f"trainer.ensemble_size={size} needs trainer.mode=ensemble (got trainer.mode={mode}); "
            "add trainer.mode=ensemble or drop ensemble_size"
        )
    if cfg_trainer.get("compile", False) and mode not in COMPILE_MODES:
        raise ConfigError(
            f"trainer.compile=true works with trainer.mode=eager only (got {mode}, whose step is captured or "
            "vmapped as it is); drop trainer.compile or use trainer.mode=eager"
        )
    if cfg_trainer.get("drop_last") not in (None, True, False):
        raise ConfigError(
            f"trainer.drop_last must be null, true or false, got {cfg_trainer.get('drop_last')!r}"
        )
    return size if mode in ENSEMBLE_MODES else 1


def trainer_for(mode: str) -> Callable:
    if mode not in MODES:
        raise ConfigError(f"trainer.mode must be one of {', '.join(MODES)}, got {mode!r}; pick one of those")
    module, function = MODES[mode].split(":")
    return getattr(import_module(module), function)
