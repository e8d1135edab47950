"""A researcher's own model, as `harness train model=custom model._target_=mynet.MyNet` sees it: a plain
nn.Module in a file outside the harness (put its folder on PYTHONPATH). Nothing here knows it is measured.

A small CNN with a residual connection and a custom activation. The constructor asks for `input_shape` (one
sample's, e.g. (1, 8, 8)) and `num_classes`, so the harness passes them; `hidden` and `blocks` are its own
arguments (`+model.hidden=32`).
"""

from __future__ import annotations

import torch
from torch import nn


class Swish(nn.Module):
    """x * sigmoid(beta * x) with a learned beta: a custom activation no counter table has seen."""

    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class Block(nn.Module):
    """conv3x3 - BN - Swish, added back to its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.act = Swish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.norm(self.conv(x)))


class MyNet(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 16, blocks: int = 2):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"MyNet takes images (C, H, W), got input_shape={tuple(input_shape)}")
        self.stem = nn.Conv2d(input_shape[0], hidden, 3, padding=1)
        self.blocks = nn.Sequential(*(Block(hidden) for _ in range(blocks)))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))
