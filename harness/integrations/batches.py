"""What a training batch holds, read without touching its values (no device synchronization)."""

from __future__ import annotations

from typing import Any

import torch

from harness.compute.flops import tensors_in
from harness.errors import ConfigError


def first_tensor(batch: Any) -> torch.Tensor | None:
    """The batch's first tensor: the batch itself, the first of a tuple or list, or the first value of a
    dict (depth first)."""
    return next(tensors_in(batch), None)


def batch_size(batch: Any) -> int:
    """Samples in a batch: the leading dimension of its first tensor."""
    tensor = first_tensor(batch)
    if tensor is None or tensor.ndim == 0:
        raise ConfigError(
            f"cannot tell the samples in a training batch of type {type(batch).__name__}: it holds no "
            "batched tensor; measure this loop with harness.track and report the samples with run.step"
        )
    return int(tensor.shape[0])


def precision_name(setting: Any) -> str:
    """The harness's precision name (fp32, bf16, fp16) for a trainer's setting (Lightning's '32-true',
    'bf16-mixed', '16-mixed', ...)."""
    text = str(setting).lower()
    if text.startswith("bf16"):
        return "bf16"
    if text.startswith("16"):
        return "fp16"
    if text.startswith("32"):
        return "fp32"
    raise ConfigError(f"precision {setting!r} has no peak FLOP/s here; pass precision='fp32' (or bf16, fp16)")
