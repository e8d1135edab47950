"""Multi-layer perceptron: the simplest model whose compute scales cleanly with width and depth."""

from __future__ import annotations

from math import prod

import torch
from torch import nn

from harness.models.registry import check_common, register


@register("mlp")
class MLP(nn.Module):
    """Flatten, then `depth` hidden layers of `width` ReLU units, then a linear classifier.

    Parameters: (F·w + w) + (depth − 1)·(w² + w) + (w·k + k) for F input features and k classes.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int):
        super().__init__()
        check_common(input_shape, num_classes, width, depth)
        layers: list[nn.Module] = [nn.Flatten()]
        features = prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
