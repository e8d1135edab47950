"""The one interface every trainer mode has: a TrainingJob in, one TrainResult per model out.

A mode (eager steps, CUDA-graph replays, a vmapped ensemble, a closed-form solve) is a function
`(job: TrainingJob) -> list[TrainResult]`. The job carries the models it trains — one, or an ensemble's
members — with their seeds, the data, the typed trainer settings, device, precision, and the progress and
energy observers. Results come back in the order of `job.models`; train.py turns each into a record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from harness.data import Dataset, TrainingData
from harness.energy import EnergyMeter
from harness.errors import ConfigError
from harness.settings import TrainerSettings
from harness.training.progress import LogProgress, Progress


@dataclass(frozen=True)
class CurveRow:
    """One evaluation of one model: a row of curve.csv (the columns, in this order)."""

    step: int
    epoch: float
    samples_seen: int
    train_loss: float
    test_loss: float
    test_error: float
    train_time_s: float  # training time so far (warm-up and evaluation excluded)
    lr: float | None  # the learning rate of the last step (None: a solver has none)
    val_loss: float | None = None  # on the validation split (None: the dataset has none)
    val_error: float | None = None


@dataclass
class TrainResult:
    status: str = "completed"  # completed | diverged | interrupted
    error: str | None = None
    steps: int = 0
    samples_seen: int = 0
    tokens_seen: int | None = None  # tokens in those samples, where the loop reports them
    curve: list[CurveRow] = field(default_factory=list)
    train_time_s: float = 0.0
    train_cpu_s: float = 0.0  # this process's CPU time over the training segments (all threads)
    eval_time_s: float = 0.0
    warmup_time_s: float = 0.0
    # Training FLOPs when the trainer knows them exactly (closed-form solvers: a formula in
    # harness/compute); None means they are counted from the model's measured step, as for SGD.
    flops_train: float | None = None
    flops_train_method: str | None = None
    # What actually ran, when it differs from trainer.mode (a graph run that fell back to eager), and why.
    mode: str | None = None
    fallback: str | None = None
    cuda_graph: bool = False  # the steps were replayed from a captured CUDA graph

    def last(self, key: str) -> float | None:
        return getattr(self.curve[-1], key) if self.curve else None

    def best_test_error(self) -> float | None:
        errors = [row.test_error for row in self.curve if row.test_error is not None]
        return min(errors) if errors else None

    def first_reaching(self, target: float | None) -> CurveRow | None:
        """The first evaluation whose test error is at or below `target` (time-to-target)."""
        if target is None:
            return None
        return next((row for row in self.curve if row.test_error <= target), None)


@dataclass(frozen=True)
class TrainingJob:
    """What a trainer mode is handed: `models[i]` was built from `seeds[i]`."""

    models: Sequence[torch.nn.Module]
    seeds: Sequence[int]
    data: TrainingData  # in-memory tensors, or a map-style Dataset streamed through a DataLoader (eager)
    settings: TrainerSettings
    device: torch.device
    dtype: torch.dtype
    progress: Progress = field(default_factory=lambda: LogProgress(logging.DEBUG))
    energy: EnergyMeter = field(default_factory=EnergyMeter.off)

    def __post_init__(self) -> None:
        if not self.models or len(self.models) != len(self.seeds):
            raise ValueError(
                f"need one seed per model, got {len(self.models)} models and {len(self.seeds)} seeds"
            )

    def only_model(self) -> tuple[torch.nn.Module, int]:
        """(model, seed) of a mode that trains one model at a time."""
        if len(self.models) != 1:
            raise ValueError(f"trainer.mode={self.settings.mode} trains one model, got {len(self.models)}")
        return self.models[0], self.seeds[0]


# Modes that can read a map-style Dataset batch by batch; the others keep the whole training set resident on
# the device (a CUDA graph replays fixed device addresses, an ensemble gathers E batches from one tensor, a
# closed-form solver takes the whole design matrix).
STREAMING_MODES = ("eager",)


def resident(data: TrainingData, mode: str) -> Dataset:
    """`data` as in-memory tensors, or a one-line ConfigError for a mode that needs them and a map-style
    Dataset it cannot hold."""
    if isinstance(data, Dataset):
        return data
    raise ConfigError(
        f"trainer.mode={mode} keeps the whole training set on the device, but data {data.name} is a "
        "map-style Dataset read batch by batch; use trainer.mode=eager, or have your loader return (x, y) "
        "tensors"
    )


class Trainer(Protocol):
    """A trainer mode (harness.training.modes maps trainer.mode to one)."""

    def __call__(self, job: TrainingJob) -> list[TrainResult]: ...
