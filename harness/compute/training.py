"""The training compute of a run: the paper's network operations, and FLOPs measured on a real step.

network_operations (the paper's definition) = flops_forward × fp_bp_ratio × epochs × n_train, with the
epochs actually trained (steps × batch / n_train), so a run stopped early is charged what it ran.

The measured figure counts one real training step — forward, backward and the optimizer — with
torch.utils.flop_counter.FlopCounterMode on a copy of the model, and scales it by the samples processed.
Its forward part gives fp_bp_ratio_measured = step FLOPs / forward FLOPs, the same counter on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from harness.compute.flops import eager_copy
from harness.device import autocast


@dataclass(frozen=True)
class StepFlops:
    """torch-counted FLOPs of one training step on `batch_size` samples."""

    forward: float
    step: float  # forward + backward + optimizer
    batch_size: int

    @property
    def per_sample(self) -> float:
        return self.step / self.batch_size

    @property
    def fp_bp_ratio(self) -> float | None:
        return self.step / self.forward if self.forward > 0 else None


def measure_train_step(
    model: torch.nn.Module,
    make_optimizer: Callable[..., torch.optim.Optimizer],
    x: torch.Tensor,
    y: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> StepFlops:
    """Count one training step on (x, y) with `loss_fn` (cross-entropy by default) and a fresh optimizer
    on a copy of `model`.

    Cost figures assume FLOPs grow linearly with the batch, as they do for these models, so a smaller
    last batch is charged per sample.
    """
    net = eager_copy(model).train()
    optimizer = make_optimizer(net.parameters())
    with FlopCounterMode(display=False) as forward_counter, autocast(x.device, dtype):
        loss = (loss_fn or F.cross_entropy)(net(x), y)
    with FlopCounterMode(display=False) as rest_counter:
        loss.backward()
        optimizer.step()
    forward = float(forward_counter.get_total_flops())
    return StepFlops(forward=forward, step=forward + float(rest_counter.get_total_flops()), batch_size=len(x))


def network_operations(flops_forward: float, fp_bp_ratio: float, epochs: float, n_train: int) -> float:
    """The paper's network operations: FLOPs per forward pass × ratio × epochs × training-set size."""
    return flops_forward * fp_bp_ratio * epochs * n_train
