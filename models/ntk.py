"""An MLP in the neural-tangent-kernel parameterization: the overparameterized model of learning theory.

In the standard parameterization the largest stable learning rate falls like 1/width, so one optimizer
setting cannot train a family of widths (small ones train too slowly or large ones diverge). Here every
weight and bias starts N(0, 1) and each layer divides its pre-activation by √(fan_in + 1) (Jacot et al.
2018, "Neural Tangent Kernel"; the +1 counts the bias as an input): activations and the tangent kernel
stay O(1) at any width, so one learning rate serves them all, and a wider network is just a bigger model
— which is what the theory experiment needs when the width grows with the data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.mlp import MLP
from harness.models.registry import register


class NTKLinear(nn.Linear):
    """y = (W·x + b) / √(in_features + 1), with W and b drawn N(0, 1)."""

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.normal_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) / math.sqrt(self.in_features + 1)


@register("mlp_ntk")
class MLPNTK(MLP):
    """models.mlp.MLP's layout and parameter count, every linear layer an NTKLinear."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int):
        super().__init__(input_shape, num_classes, width, depth)
        for index, layer in enumerate(self.net):
            if isinstance(layer, nn.Linear):
                self.net[index] = NTKLinear(layer.in_features, layer.out_features)
