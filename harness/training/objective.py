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

    @property
    def error_metric(self) -> str:
        return "rmse" if self.task == "regression" else "classification_error"


def objective_for(task: str) -> Objective:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; a dataset's task must be one of {', '.join(TASKS)}")
    return Objective(task)
