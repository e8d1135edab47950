"""FLOP handles for the ops fvcore leaves uncounted, so every op a registered model hits is accounted for.

The unit is fvcore's: one multiply-accumulate (MAC) = 1. `flops = 2 × macs` is applied once, in flops.py.

Convention (fvcore's, and the paper's "operations"): what is counted is multiply-accumulate work —
matrix products, convolutions, attention — plus the norms and average pools fvcore already counts.
Elementwise arithmetic, activations, comparisons and data movement are an explicit zero, each with the
reason below, so that a count never silently depends on an op nobody looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

from harness.compute._fvcore import elementwise_flop_counter, get_shape

Handle = Callable[[list[Any], list[Any]], int]


def _sdpa_macs(q_shape: list[int], k_shape: list[int], v_shape: list[int]) -> int:
    """Q·Kᵀ (L×S×E per batch-head) plus softmax(·)·V (L×S×Ev), dense.

    Works for any head layout: every dim before the last two is a batch dim of the query (B, H, or B×H;
    with grouped-query attention the key/value heads are broadcast, the work follows the query's heads).
    A mask or is_causal does not reduce the count: the dense product is what the math computes (and what
    torch's own counter counts); kernels that skip masked blocks do less, and that saving is not claimed.
    """
    *batch, length, embed = q_shape
    source = k_shape[-2]
    return prod(batch) * length * source * (embed + v_shape[-1])


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, ...)."""
    return _sdpa_macs(get_shape(inputs[0]), get_shape(inputs[1]), get_shape(inputs[2]))


def native_mha_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::_native_multi_head_attention: nn.MultiheadAttention's fused path in eval mode without grad.

    Signature: (query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight, proj_bias, ...),
    inputs batch-first (B, L, E). One op hides four linears and the attention:
    in-projections L·E² (query) + 2·S·E² (key, value), attention 2·L·S·E (summed over heads),
    out-projection L·E²; all per batch element.
    """
    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    embed = inputs[3].toIValue()
    batch = prod(query[:-2])
    length, source = query[-2], key[-2]
    projections = (2 * length + 2 * source) * embed * embed
    attention = 2 * length * source * embed
    return batch * (projections + attention)


def zero(reason: str) -> Handle:
    """An op that costs no MACs under our convention; the reason is kept for the documentation table."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return 0

    handle.reason = reason  # type: ignore[attr-defined]
    return handle


_ELEMENTWISE = "elementwise arithmetic: no multiply-accumulate (fvcore convention)"
_ACTIVATION = "activation: elementwise, no multiply-accumulate (fvcore convention)"
_POOL_MAX = "max pooling: comparisons only, no multiply-accumulate"
_MOVEMENT = "data movement or shape change: no arithmetic"

FORMULAS: dict[str, Handle] = {
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
    "aten::_native_multi_head_attention": native_mha_flop_jit,
    # fvcore counts adaptive_avg_pool2d as one per input element; the 1-D and 3-D pools likewise.
    "aten::adaptive_avg_pool1d": elementwise_flop_counter(1, 0),
    "aten::adaptive_avg_pool3d": elementwise_flop_counter(1, 0),
}

ZEROS: dict[str, str] = {
    "aten::add": _ELEMENTWISE,
    "aten::add_": _ELEMENTWISE,
    "aten::sub": _ELEMENTWISE,
    "aten::rsub": _ELEMENTWISE,
    "aten::mul": _ELEMENTWISE,
    "aten::mul_": _ELEMENTWISE,
    "aten::div": _ELEMENTWISE,
    "aten::div_": _ELEMENTWISE,
    "aten::neg": _ELEMENTWISE,
    "aten::sqrt": _ELEMENTWISE,
    "aten::rsqrt": _ELEMENTWISE,
    "aten::exp": _ELEMENTWISE,
    "aten::pow": _ELEMENTWISE,
    "aten::sum": "reduction: additions only, no multiply-accumulate",
    "aten::mean": "reduction: additions only (fvcore counts only adaptive average pools)",
    "aten::gelu": _ACTIVATION,
    "aten::gelu_": _ACTIVATION,
    "aten::silu": _ACTIVATION,
    "aten::silu_": _ACTIVATION,
    "aten::sigmoid": _ACTIVATION,
    "aten::tanh": _ACTIVATION,
    "aten::hardtanh": _ACTIVATION,
    "aten::hardtanh_": _ACTIVATION,
    "aten::hardswish": _ACTIVATION,
    "aten::hardswish_": _ACTIVATION,
    "aten::hardsigmoid": _ACTIVATION,
    "aten::leaky_relu": _ACTIVATION,
    "aten::leaky_relu_": _ACTIVATION,
    "aten::softmax": "softmax: exponentials and a normalising sum, no multiply-accumulate",
    "aten::log_softmax": "softmax: exponentials and a normalising sum, no multiply-accumulate",
    "aten::max_pool1d": _POOL_MAX,
    "aten::max_pool2d": _POOL_MAX,
    "aten::max_pool3d": _POOL_MAX,
    "aten::unflatten": _MOVEMENT,
    "aten::repeat": _MOVEMENT,
    "aten::pad": _MOVEMENT,
    "aten::clone": _MOVEMENT,
    "aten::feature_dropout": "dropout: identity in eval mode, where counting happens",
    "aten::alpha_dropout": "dropout: identity in eval mode, where counting happens",
}


def extra_handles() -> dict[str, Handle]:
    """Every handle harness adds to fvcore's defaults: formulas and explicit zeros."""
    return {**FORMULAS, **{op: zero(reason) for op, reason in ZEROS.items()}}
