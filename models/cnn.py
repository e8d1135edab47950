"""Plain CNN, 1-D for signals (C, L) and 2-D for images (C, H, W), chosen from the input shape."""

from __future__ import annotations

import torch
from torch import nn

from harness.models.registry import check_common, register

# Per number of spatial dims: convolution, batch norm, max-pool, global average pool.
_LAYERS = {
    1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d),
    2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
}


@register("cnn")
class CNN(nn.Module):
    """`depth` blocks of conv3-BN-ReLU with `width` channels; each block halves the spatial size with a
    max-pool while every spatial dim is still >= 2, so tiny inputs (8×8 digits) take any depth.

    A flat input (features,) is read as a one-channel signal (1, features).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int):
        super().__init__()
        check_common(input_shape, num_classes, width, depth)
        self.add_channel = len(input_shape) == 1
        if self.add_channel:
            input_shape = (1, *input_shape)
        spatial_dims = len(input_shape) - 1
        if spatial_dims not in _LAYERS:
            raise ValueError(
                f"cnn needs input (features,), (C, L) or (C, H, W), got shape {tuple(input_shape)}; "
                "reshape the data to one of these or use model=mlp"
            )
        conv, norm, pool, global_pool = _LAYERS[spatial_dims]
        channels, size = input_shape[0], list(input_shape[1:])
        blocks: list[nn.Module] = []
        for _ in range(depth):
            # No conv bias: the batch norm right after it has its own shift.
            blocks += [conv(channels, width, 3, padding=1, bias=False), norm(width), nn.ReLU(inplace=True)]
            channels = width
            if min(size) >= 2:
                blocks.append(pool(2))
                size = [s // 2 for s in size]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(global_pool(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add_channel:
            x = x.unsqueeze(1)
        return self.head(self.features(x))
