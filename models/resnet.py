"""ResNet-18 layout with a width knob and a small-image stem (3×3 conv, no max-pool), for 8–64 px inputs."""

from __future__ import annotations

import torch
from torch import nn

from harness.models.registry import check_common, register


@register("resnet")
class ResNet(nn.Module):
    """Four stages of `depth` BasicBlocks with width, 2w, 4w, 8w channels; stride 2 from stage 2 on.

    ResNet-18 proper is width=64, depth=2 (11,173,962 parameters for 3×32×32 inputs and 10 classes).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int):
        super().__init__()
        # Imported here, not at the top: importing torchvision costs seconds of start-up (its ops pull in
        # torch._dynamo), which every command would pay for a model most runs never build.
        from torchvision.models.resnet import BasicBlock

        check_common(input_shape, num_classes, width, depth)
        if len(input_shape) != 3:
            raise ValueError(
                f"resnet needs image input (C, H, W), got shape {tuple(input_shape)}; "
                "use model=cnn or model=mlp for this dataset"
            )
        # The CIFAR stem: a 7×7 stride-2 conv and max-pool would shrink a 32×32 image to 8×8 at once.
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], width
        for index in range(4):
            out, stride = width * 2**index, (1 if index == 0 else 2)
            blocks = []
            for block in range(depth):
                first = block == 0
                downsample = None
                if first and (stride != 1 or channels != out):
                    # Projection shortcut (1×1 conv + BN) where the shape changes, as in torchvision.
                    downsample = nn.Sequential(
                        nn.Conv2d(channels, out, 1, stride, bias=False), nn.BatchNorm2d(out)
                    )
                blocks.append(BasicBlock(channels, out, stride if first else 1, downsample))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
        self._init_like_torchvision()

    def _init_like_torchvision(self) -> None:
        """torchvision's ResNet initialisation, so training runs are comparable with the usual recipes."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
