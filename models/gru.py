"""A recurrent classifier (GRU), the fourth of MNIST-1D's published architectures (Greydanus 2020).

The input is read as a sequence: a 1-D signal (C, L) is L steps of C features, a flat (features,) input is
`features` steps of one value, and an image (C, H, W) is read row by row, H steps of C·W features.
"""

from __future__ import annotations

from math import prod

import torch
from torch import nn

from harness.models.registry import check_common, register


def sequence_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(steps, features per step) of a per-sample `input_shape`, as the module docstring describes."""
    if len(input_shape) == 1:
        return input_shape[0], 1
    if len(input_shape) == 2:
        channels, length = input_shape
        return length, channels
    if len(input_shape) == 3:
        channels, height, width = input_shape
        return height, channels * width
    raise ValueError(
        f"gru needs input (features,), (C, L) or (C, H, W), got shape {tuple(input_shape)}; "
        "reshape the data to one of these or use model=mlp"
    )


@register("gru")
class GRU(nn.Module):
    """`depth` stacked GRU layers of `width` hidden units over the sequence, then a linear classifier on the
    last step's hidden state.

    Parameters: per layer 3·(in·w + w² + 2w) with in = features per step (first layer) or w, plus w·k + k.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int):
        super().__init__()
        check_common(input_shape, num_classes, width, depth)
        self.input_shape = tuple(input_shape)
        self.steps, features = sequence_shape(self.input_shape)
        self.rnn = nn.GRU(features, width, num_layers=depth, batch_first=True)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if x.ndim == 2:  # (N, features): one value per step
            seq = x.unsqueeze(-1)
        elif x.ndim == 3:  # (N, C, L): L steps of C features
            seq = x.transpose(1, 2)
        else:  # (N, C, H, W): H rows of C·W features each
            seq = x.permute(0, 2, 1, 3).reshape(batch, x.shape[2], prod(x.shape[1:]) // x.shape[2])
        output, _ = self.rnn(seq.contiguous())
        return self.head(output[:, -1])
