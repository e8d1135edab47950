"""What a run minimizes and what it reports as its error: one object per task, so the loop stays the same.

Classification: cross-entropy; test error = fraction misclassified.
Regression: mean squared error; test error = RMSE (the theory experiment's measure), test loss = MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.errors import ConfigError

TASKS = ("classification", "regression")
# A run whose final error is within this fraction of the chance level (or worse) has learned nothing
# usable: 1% of 0.9 on a balanced 10-class set flags test errors of 0.891 and above (accuracy 10.9% or less).
COLLAPSE_MARGIN = 0.01


@dataclass(frozen=True)
class Objective:
    task: str

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean training loss of a batch (computed in fp32 whatever the autocast dtype)."""
        if self.task == "regression":
            return F.mse_loss(output.float().reshape(target.shape), target)
        return F.cross_entropy(output.float(), target)

    def sums(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, summed error) of a batch; `scores` turns the sums over a set into the metrics."""
        if self.task == "regression":
            squared = (output.float().reshape(target.shape) - target).square().sum()
            return squared, squared
        loss = F.cross_entropy(output.float(), target, reduction="sum")
        return loss, (output.argmax(dim=1) != target).sum()

    def scores(self, loss_sum: float, error_sum: float, n: int) -> tuple[float, float]:
        """(test error, test loss) over `n` samples."""
        if self.task == "regression":
            return math.sqrt(error_sum / n), loss_sum / n
        return error_sum / n, loss_sum / n

    def chance_error(self, y_train: torch.Tensor, y_test: torch.Tensor) -> float:
        """The test error of a model that learned nothing but the training labels' marginal: always the
        most frequent training class (classification), or the training targets' mean (regression)."""
        if self.task == "regression":
            return math.sqrt((y_test.double() - y_train.double().mean()).square().mean().item())
        majority = torch.bincount(y_train).argmax()
        return (y_test != majority).sum().item() / len(y_test)  # as the test error: a count over n

    def collapsed(self, error: float | None, chance: float | None) -> bool | None:
        """Whether a final `error` is no better than `chance`: within COLLAPSE_MARGIN of it (relative), or
        worse. None when either is unknown."""
        if error is None or chance is None:
            return None
        return error >= chance * (1.0 - COLLAPSE_MARGIN)

    @property
    def error_metric(self) -> str:
        return "rmse" if self.task == "regression" else "classification_error"


def objective_for(task: str) -> Objective:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; a dataset's task must be one of {', '.join(TASKS)}")
    return Objective(task)
