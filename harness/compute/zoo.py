"""The counter checked on models no one here wrote: torchvision's classification zoo.

Each model is built untrained (`weights=None`: nothing is downloaded) at its weights' evaluation crop,
batch 1, and counted under the default (strict) settings. Its weights' metadata, shipped inside
torchvision, gives the published `_ops` (GMACs of matmuls, convolutions and attention; torchvision
counts no norms, pools or interpolation), so `ratio` compares like with like. torch's own counter is run
with attention as plain products (`math_attention`), which it then sees.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from harness.compute.flops import count_flops, torch_forward_flops

# torch's counter and torchvision's _ops count these; norms, pools and resampling they leave out.
WORK = ("matmul", "convolution", "attention")
SPLIT = ("matmul", "convolution", "attention", "norm", "pool", "resample", "other")


def torchvision_classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def count_torchvision(name: str, *, forward: bool = False) -> dict[str, Any]:
    """One row of the zoo table for torchvision model `name` (see results/measure/README.md)."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    resolution = int(weights.transforms().crop_size[0])
    # A ViT's size is set by its weights (vit_h_14's default weights are at 518); built without them,
    # it is given the same image size, as torchvision's builder would.
    size = {"image_size": resolution} if name.startswith("vit_") else {}
    model = torchvision.models.get_model(name, weights=None, **size).eval()
    x = torch.randn(1, 3, resolution, resolution)
    start = time.perf_counter()
    report = count_flops(model, x)
    count_s = time.perf_counter() - start
    split = report.by_category
    work = sum(split.get(category, 0.0) for category in WORK)
    torch_macs = torch_forward_flops(model, x, math=True) / 2
    published = float(weights.meta["_ops"]) * 1e9
    row: dict[str, Any] = {
        "model": name,
        "resolution": resolution,
        "torchvision_ops_gmacs": weights.meta["_ops"],
        "macs": int(report.macs),  # MACs are whole numbers: the table keeps every digit
        **{f"macs_{category}": int(split.get(category, 0)) for category in SPLIT},
        "ratio": work / published,
        "torch_ratio": work / torch_macs,
        "count_s": count_s,
    }
    if forward:
        with torch.no_grad():
            start = time.perf_counter()
            model(x)
            row["forward_s"] = time.perf_counter() - start
    return row
