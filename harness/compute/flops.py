"""FLOPs per forward pass with fvcore, made complete by harness's handles, and cross-checked with torch.

fvcore counts multiply-accumulates (MACs); the paper counts a multiply-add as 2 FLOPs, so
`flops = 2 × macs`. Counting runs one forward pass of an eval-mode copy of the eager module (never a
compiled wrapper), without gradients, so the caller's model is untouched.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.compute._fvcore import FlopCountAnalysis
from harness.compute.handles import extra_handles
from harness.errors import HarnessError


class UnsupportedOpError(HarnessError):
    """An op without a FLOP handle was hit in strict mode."""


@dataclass
class FlopReport:
    """One forward pass of a batch. Totals are for the whole batch; `*_per_sample` divide by it."""

    macs: float
    batch_size: int
    by_module: dict[str, float] = field(default_factory=dict)  # MACs, "" is the whole model
    by_operator: dict[str, float] = field(default_factory=dict)  # MACs per fvcore op kind
    unsupported: dict[str, int] = field(default_factory=dict)  # op -> times seen (non-strict mode)

    @property
    def flops(self) -> float:
        return 2.0 * self.macs

    @property
    def macs_per_sample(self) -> float:
        return self.macs / self.batch_size

    @property
    def flops_per_sample(self) -> float:
        return self.flops / self.batch_size


def eager_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of the eager module behind `model` (unwrapping torch.compile), to count on."""
    return copy.deepcopy(getattr(model, "_orig_mod", model))


def eager_eval_copy(model: torch.nn.Module) -> torch.nn.Module:
    return eager_copy(model).eval()


def _as_tuple(inputs: Any) -> tuple:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def _batch_size(inputs: tuple) -> int:
    first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
    if first is None or first.ndim == 0:
        raise ValueError("count_flops needs at least one batched tensor input (batch on dim 0)")
    return int(first.shape[0])


def count_flops(model: torch.nn.Module, inputs: Any, *, strict: bool = True) -> FlopReport:
    """Count the MACs and FLOPs of one forward pass of `model` on `inputs` (a tensor or a tuple).

    strict: an op with no handle raises UnsupportedOpError naming it; otherwise it is listed in
    `unsupported` and reported in one warning.
    """
    inputs = _as_tuple(inputs)
    net = eager_eval_copy(model)
    with torch.no_grad():
        analysis = FlopCountAnalysis(net, inputs)
        analysis.set_op_handle(**extra_handles())
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
        unsupported = dict(analysis.unsupported_ops())
        by_module = {name: float(v) for name, v in analysis.by_module().items()}
        by_operator = {name: float(v) for name, v in analysis.by_operator().items()}
    if unsupported:
        listed = ", ".join(f"{op} ×{n}" for op, n in sorted(unsupported.items()))
        message = f"no FLOP handle for {listed} in {type(net).__name__}"
        if strict:
            raise UnsupportedOpError(
                f"{message}; add one in harness/compute/handles.py or count with strict=False"
            )
        warnings.warn(f"{message}; they are counted as 0 and listed in `unsupported`", stacklevel=2)
    return FlopReport(
        macs=float(total),
        batch_size=_batch_size(inputs),
        by_module=by_module,
        by_operator=by_operator,
        unsupported=unsupported,
    )


def torch_forward_flops(model: torch.nn.Module, inputs: Any) -> float:
    """torch.utils.flop_counter's FLOPs (2 per MAC) for one eval-mode forward pass of a copy of `model`.

    torch counts only matmuls, convolutions and the attention kernels it knows. On the CPU it knows none
    of them for attention: `scaled_dot_product_attention` dispatches to a CPU flash kernel it does not
    register, and nn.MultiheadAttention's fused eval path is invisible too, so attention counts 0 there.
    """
    net = eager_eval_copy(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(*_as_tuple(inputs))
    return float(counter.get_total_flops())
