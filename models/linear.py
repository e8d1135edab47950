"""Linear models for the theory experiment: the same hypothesis class on all features or on a known few.

Thompson et al.'s simulation compares an "expert" model that uses exactly the relevant features, a
"flexible" model that uses every candidate, and a flexible model trained with a Lasso penalty. The first two
are different hypothesis classes; the third is the flexible class trained differently, so linear_flexible
and linear_lasso are one architecture under two names, the name saying which arm of the experiment a run
belongs to (the Lasso itself is a trainer: trainer=lasso). Any trainer can fit them: SGD (trainer.mode=eager)
or a closed-form solver (trainer.mode=closed_form), which writes its coefficients into `linear`.
"""

from __future__ import annotations

from math import prod

import torch
from torch import nn

from harness.models.registry import register, require_positive_int


class LinearOnLeading(nn.Module):
    """y = W·x[:, :k] + b on the flattened input: a linear model on its first k features (all by default).

    Parameters: (k + 1)·outputs. `input_features` (k) and `linear` are what a solver needs to fit it.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, features: int | None = None):
        super().__init__()
        require_positive_int("num_classes", num_classes, 10)
        total = prod(input_shape) if input_shape else 0
        if total <= 0:
            raise ValueError(f"input_shape must be positive sizes per sample, got {tuple(input_shape)}")
        if features is None:
            features = total
        require_positive_int("model.features", features, min(4, total))
        if features > total:
            raise ValueError(
                f"model.features={features} exceeds the {total} input features; set it to at most {total}"
            )
        self.input_features = features
        self.linear = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)[:, : self.input_features])


@register("linear_flexible")
@register("linear_lasso")
class LinearFlexible(LinearOnLeading):
    """The flexible model: linear in every candidate feature."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(input_shape, num_classes)


@register("linear_expert")
class LinearExpert(LinearOnLeading):
    """The expert model: linear in the `features` relevant ones, which the data puts first
    (data=sparse_regression: the first data.s)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, features: int | None = None):
        if features is None:
            raise ValueError(
                "linear_expert needs model.features, the number of relevant leading features "
                "(with data=sparse_regression the config sets it to data.s)"
            )
        super().__init__(input_shape, num_classes, features)
