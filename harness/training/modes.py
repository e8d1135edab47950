"""trainer.mode → the function that trains, and the checks it makes before anything is measured.

Every trainer is a Trainer (harness.training.spec): a TrainingJob in, one TrainResult per model out. A mode
may also name a check, run on the job before its compute is counted, so that a misuse is a one-line error
and not a failed run. Modules are imported on demand: a mode's heavy dependencies cost nothing when unused.
"""

from __future__ import annotations

from importlib import import_module

from harness.training.spec import STREAMING_MODES, Trainer, TrainingJob, resident

# mode -> ("module:trainer", "module:check" or None); the names are harness.settings' TRAINER_MODES.
MODES = {
    "eager": ("harness.training.loop:train", None),
    "closed_form": (
        "harness.training.closed_form:fit_closed_form",
        "harness.training.closed_form:check_closed_form",
    ),
    "graph": ("harness.training.graph:train_graph", None),
    "ensemble": ("harness.training.ensemble:train_ensemble", "harness.training.ensemble:check_ensemble"),
}


# Modes whose steps use trainer.optimizer (a closed-form solve has none).
OPTIMIZER_MODES = ("eager", "graph", "ensemble")


def _load(path: str):
    module, name = path.split(":")
    return getattr(import_module(module), name)


def trainer_for(mode: str) -> Trainer:
    """The trainer of `mode`, a name TrainerSettings has already checked."""
    return _load(MODES[mode][0])


def check_job(job: TrainingJob) -> None:
    """The job's mode's own checks (one-line ConfigErrors), before anything is counted or trained."""
    if job.settings.mode not in STREAMING_MODES:
        resident(job.data, job.settings.mode)
    if job.settings.mode in OPTIMIZER_MODES:
        from harness.training.loop import optimizer_factory

        optimizer_factory(job.settings)  # its arguments checked before anything is counted
    check = MODES[job.settings.mode][1]
    if check is not None:
        _load(check)(job)
