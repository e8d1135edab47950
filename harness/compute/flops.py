"""FLOPs per forward pass with fvcore, made complete by harness's handles, and cross-checked with torch.

fvcore counts multiply-accumulates (MACs); the paper counts a multiply-add as 2 FLOPs, so
`flops = 2 × macs`. Counting runs one forward pass of the eager module (never a compiled wrapper) in eval
mode, without gradients, and puts the module back as it was: each submodule's mode and every buffer.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.compute._fvcore import FlopCountAnalysis
from harness.compute.handles import CATEGORY, extra_handles
from harness.compute.policy import free_category
from harness.errors import HarnessError

# by_operator names an op as fvcore's handle reports it: "aten::" dropped, and convolutions as "conv".
_FVCORE_NAMES = {"conv": "aten::_convolution"}


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
    free: dict[str, str] = field(default_factory=dict)  # op without a handle -> the category making it 0

    @property
    def by_category(self) -> dict[str, float]:
        """MACs per kind of work: matmul, convolution, attention, norm, pool, resample."""
        split: dict[str, float] = {}
        for op, value in self.by_operator.items():
            category = CATEGORY.get(_FVCORE_NAMES.get(op, f"aten::{op}"), "other")
            split[category] = split.get(category, 0.0) + value
        return split

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


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The eager module behind `model` (unwrapping torch.compile) in eval mode, for a forward pass without
    gradients; on exit every submodule's mode is restored, and every buffer: the same tensor, with its
    values put back if the pass wrote them. No copy: copying the modules cost more than a tenth of a count
    of resnet50, and parameters are not written by a forward pass without gradients."""
    eager = getattr(model, "_orig_mod", model)
    modes = [(module, module.training) for module in eager.modules()]
    # An inference tensor keeps no version and cannot be written outside inference mode: only its place
    # is kept.
    buffers = [
        (module, name, buffer, None, None)
        if buffer.is_inference()
        else (module, name, buffer, buffer._version, buffer.detach().clone())
        for module in eager.modules()
        for name, buffer in module._buffers.items()
        if buffer is not None
    ]
    eager.eval()
    try:
        yield eager
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for module, name, buffer, version, saved in buffers:
                module._buffers[name] = buffer
                if version is not None and buffer._version != version:
                    buffer.copy_(saved)


def _as_tuple(inputs: Any) -> tuple:
    # A PackedSequence or other named tuple is one input, not a tuple of inputs.
    return inputs if type(inputs) is tuple else (inputs,)


def declared_batch_dim(model: torch.nn.Module, batch_dim: int | None) -> int:
    """The batch dim of the input: the caller's, else the layout an RNN declares, else 0."""
    if batch_dim is not None:
        return batch_dim
    if isinstance(model, torch.nn.RNNBase):
        return 0 if model.batch_first else 1
    return 0


def _batch_size(inputs: tuple, batch_dim: int) -> int:
    first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
    if first is None or first.ndim <= batch_dim:
        raise ValueError(f"count_flops needs at least one tensor input batched on dim {batch_dim}")
    return int(first.shape[batch_dim])


def _where(analysis: Any, net: torch.nn.Module, op: str) -> str:
    """The deepest module an op was seen in, as `path (Type)`, for the error that names it."""
    modules = dict(net.named_modules())
    seen = [name for name in modules if name and analysis.unsupported_ops(name).get(op)]
    if not seen:
        return f"the forward of {type(net).__name__} itself"
    deepest = max(seen, key=lambda name: name.count("."))
    return f"{deepest} ({type(modules[deepest]).__name__}) of {type(net).__name__}"


def count_flops(
    model: torch.nn.Module, inputs: Any, *, strict: bool = True, batch_dim: int | None = None
) -> FlopReport:
    """Count the MACs and FLOPs of one forward pass of `model` on `inputs` (a tensor or a tuple).

    An op without a handle is free when a category of policy.py claims it (recorded in `free`). Otherwise
    it could carry work: strict mode raises UnsupportedOpError naming it and the module it came from;
    non-strict lists it in `unsupported`, counts it 0 and warns once.
    batch_dim: where the batch is in the first tensor input, for the per-sample figures; None takes the
    layout an RNN model declares (batch_first), else 0.
    """
    inputs = _as_tuple(inputs)
    with evaluating(model) as net, torch.no_grad():
        batch = _batch_size(inputs, declared_batch_dim(net, batch_dim))
        analysis = FlopCountAnalysis(net, inputs)
        analysis.set_op_handle(**extra_handles())
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
        seen = dict(analysis.unsupported_ops())
        by_module = {name: float(v) for name, v in analysis.by_module().items()}
        by_operator = {name: float(v) for name, v in analysis.by_operator().items()}
    free = {op: category.name for op in seen if (category := free_category(op)) is not None}
    unsupported = {op: n for op, n in seen.items() if op not in free}
    if unsupported:
        listed = ", ".join(
            f"{op} ×{n} at {_where(analysis, net, op)}" for op, n in sorted(unsupported.items())
        )
        message = f"no FLOP handle for {listed}"
        if strict:
            raise UnsupportedOpError(
                f"{message}; it could carry matmul- or convolution-like work: add a handle in "
                "harness/compute/handles.py or count with strict=False"
            )
        warnings.warn(f"{message}; they are counted as 0 and listed in `unsupported`", stacklevel=2)
    return FlopReport(
        macs=float(total),
        batch_size=batch,
        by_module=by_module,
        by_operator=by_operator,
        unsupported=unsupported,
        free=free,
    )


@contextlib.contextmanager
def math_attention() -> Iterator[None]:
    """Attention as plain matrix products, which torch's counter sees: the math SDPA kernel, and no
    nn.MultiheadAttention fast path (its fused op is invisible to the counter). Restored on exit."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def torch_forward_flops(model: torch.nn.Module, inputs: Any, *, math: bool = False) -> float:
    """torch.utils.flop_counter's FLOPs (2 per MAC) for one eval-mode forward pass of `model` (see
    `evaluating`: the module is put back as it was).

    torch counts only matmuls, convolutions and the attention kernels it knows. On the CPU it knows none
    of them for attention: `scaled_dot_product_attention` dispatches to a CPU flash kernel it does not
    register, and nn.MultiheadAttention's fused eval path is invisible too, so attention counts 0 there.
    math=True runs attention as plain products (`math_attention`), which it then counts.
    """
    attention = math_attention() if math else contextlib.nullcontext()
    with evaluating(model) as net, torch.no_grad(), attention, FlopCounterMode(display=False) as counter:
        net(*_as_tuple(inputs))
    return float(counter.get_total_flops())
