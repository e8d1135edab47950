"""FLOP handles for the ops fvcore leaves uncounted, so every op a registered model hits is accounted for.

The unit is fvcore's: one multiply-accumulate (MAC) = 1. `flops = 2 × macs` is applied once, in flops.py.

Convention (fvcore's, and the paper's "operations"): what is counted is multiply-accumulate work —
matrix products, convolutions, attention, recurrent layers — plus norms, average pools and interpolation
as fvcore counts them. Where fvcore's rule is wrong (matmul broadcasting, einsum's rounded estimate) or
missing (RNNs, avg_pool, bicubic) the handle is ours. Elementwise arithmetic, activations, comparisons and
data movement cost nothing: a few are explicit zeros below, each with its reason; the rest are free by
category (policy.py), so a count never silently depends on an op nobody looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

import torch

from harness.compute._fvcore import conv_flop_count, elementwise_flop_counter, get_shape, norm_flop_counter

Handle = Callable[[list[Any], list[Any]], int]


def _ints(value: Any) -> list[int]:
    """An int[] argument of a traced op: a constant list, or a list built from constants."""
    constant = value.toIValue()
    if constant is not None:
        return list(constant) if isinstance(constant, (list, tuple)) else [constant]
    return [item.toIValue() for item in value.node().inputs()]


def _listed_shapes(value: Any) -> list[list[int]]:
    """Shapes of the tensors in a Tensor[] argument (einsum's operands, an RNN's weights)."""
    return [get_shape(item) for item in value.node().inputs()]


def matmul_macs(a: list[int], b: list[int]) -> int:
    """torch.matmul's multiply-accumulates for operands of shapes `a` and `b`, with its semantics:
    a 1-D first operand is a row (1, K), a 1-D second one a column (K, 1), and the batch dims of both
    (all but the last two) broadcast against each other. 1-D · 1-D is a dot product of K.

    fvcore's own rule multiplies the first operand's elements by the second's last dim, which drops the
    second operand's batch (W(16,32) @ x(4,32,8) counts 4,096 instead of 16,384) and fails on 1-D operands.
    """
    if len(a) == 1 and len(b) == 1:
        return a[0]
    rows, inner = (1, a[0]) if len(a) == 1 else a[-2:]
    columns = 1 if len(b) == 1 else b[-1]
    batch = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return prod(batch) * rows * inner * columns


def product_of(first: int, second: int) -> Handle:
    """A handle for an op whose work is one (batched) matrix product of inputs `first` and `second`
    (the other inputs, e.g. addmm's added matrix, are elementwise and not counted)."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return matmul_macs(get_shape(inputs[first]), get_shape(inputs[second]))

    return handle


def einsum_macs(equation: str, shapes: list[list[int]]) -> int:
    """Exact multiply-accumulates of torch.einsum, contracting left to right as torch does without
    opt_einsum (with opt_einsum installed torch may pick a cheaper order, which this does not follow).

    Each pairwise step first sums out the indices only its own operand has and nothing later needs
    (additions, 0 MACs), then multiplies over the union of the two operands' remaining indices.
    """
    lhs, arrow, output = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    widths = [len(shape) - len(term.replace("...", "")) for term, shape in zip(terms, shapes, strict=True)]
    ellipsis = [chr(0x2460 + i) for i in range(max(widths, default=0))]  # symbols no equation uses

    def symbols(term: str, width: int) -> list[str]:
        head, dots, tail = term.partition("...")
        return [*head, *(ellipsis[len(ellipsis) - width :] if dots else []), *tail]

    operands = [symbols(term, width) for term, width in zip(terms, widths, strict=True)]
    if arrow:
        kept_at_end = set(symbols(output, len(ellipsis)))
    else:  # implicit output: the broadcast dims and every index that appears once
        letters = [s for operand in operands for s in operand if s not in ellipsis]
        kept_at_end = set(ellipsis) | {s for s in letters if letters.count(s) == 1}
    size: dict[str, int] = {}
    for operand, shape in zip(operands, shapes, strict=True):
        for symbol, extent in zip(operand, shape, strict=True):
            size[symbol] = max(size.get(symbol, 1), extent)

    macs = 0
    result = set(operands[0])
    for position, operand in enumerate(operands[1:], start=1):
        later = {s for other in operands[position + 1 :] for s in other}
        needed = kept_at_end | later
        left = {s for s in result if s in needed or s in operand}
        right = {s for s in operand if s in needed or s in result}
        union = left | right
        macs += prod(size[s] for s in union)
        result = union & needed
    return macs


def einsum_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::einsum(equation, tensors, path): exact, replacing fvcore's 4-significant-digit estimate."""
    return einsum_macs(inputs[0].toIValue(), _listed_shapes(inputs[1]))


def avg_pool_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::avg_pool{1,2,3}d(input, kernel_size, ...): one add per window element per output element.

    For non-overlapping windows this is fvcore's adaptive-pool count (one per input element); overlapping
    windows (Inception's 3×3 stride-1 pools) read each input several times and count each read.
    """
    out = get_shape(outputs[0])
    kernel = _ints(inputs[1])
    spatial = len(out) - 2 if len(out) > 2 else len(out) - 1  # (N, C, *spatial) or unbatched (C, *spatial)
    window = prod(kernel) if len(kernel) > 1 else kernel[0] ** spatial
    return prod(out) * window


def rnn_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::lstm / gru / rnn_tanh / rnn_relu, padded or packed, any layers, directions and proj_size.

    Every weight matrix (w_ih, w_hh and LSTM's w_hr) multiplies one vector per time step per sequence
    in each layer and direction, so MACs = steps × Σ weight-matrix elements, where steps is T·B for a
    padded input in either layout (all dims but the feature dim) and Σ batch_sizes for a packed one
    (its data tensor's rows). Gate products, biases and activations are elementwise and not counted.
    The weights are the last Tensor[] argument (LSTM's hidden state is a Tensor[] before them).
    """
    steps = prod(get_shape(inputs[0])[:-1])
    weights = [value for value in inputs if value.type().str() == "Tensor[]"][-1]
    return steps * sum(prod(shape) for shape in _listed_shapes(weights) if len(shape) == 2)


def sdpa_macs(q_shape: list[int], k_shape: list[int], v_shape: list[int]) -> int:
    """Q·Kᵀ (L×S×E per batch-head) plus softmax(·)·V (L×S×Ev), dense.

    Works for any head layout: every dim before the last two is a batch dim of the query (B, H, or B×H;
    with grouped-query attention the key/value heads are broadcast, the work follows the query's heads).
    A mask or is_causal does not reduce the count: the dense product is what the math computes (and what
    torch's own counter counts); kernels that skip masked blocks do less, and that saving is claimed only
    under `attention_causal="half"` (attention.py).
    """
    *batch, length, embed = q_shape
    source = k_shape[-2]
    return prod(batch) * length * source * (embed + v_shape[-1])


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, ...)."""
    return sdpa_macs(get_shape(inputs[0]), get_shape(inputs[1]), get_shape(inputs[2]))


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


def convolution_mode_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::_convolution_mode(input, weight, bias, stride, padding: str, dilation, groups): a convolution
    with string padding ('same', 'valid'). Its closed form is aten::_convolution's (fvcore's rule: every
    output element costs C_in/groups × kernel MACs); fvcore's own handle cannot read this signature, whose
    7th argument is `groups`, not `transposed`. A string padding never transposes."""
    shapes = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
    return int(conv_flop_count(*shapes, transposed=False))


def weight_norm_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::_weight_norm(v, g, dim): weight normalisation (nn.utils.weight_norm and its parametrization),
    w = g · v / ‖v‖, made from the parameters at every forward pass. Its multiply-accumulates are the sums
    of squares for the norms, one per element of v; the rescale is element-wise, free as elsewhere. The
    work does not grow with the batch, so per sample it shrinks as the batch grows."""
    v = get_shape(inputs[0])
    return prod(v)


def grouped_mm_macs(a: list[int], b: list[int]) -> int:
    """torch._grouped_mm(a, b, offs): one matrix product per group (a mixture of experts' expert weights),
    the groups cut along one dim by `offs`. Whichever dim is cut, the groups' products add up to one dense
    product over the uncut extents: 2-D × 3-D (tokens routed to experts: rows of `a` by group, b = G×K×N)
    M·K·N; 3-D × 3-D (G batched products) G·M·K·N; 3-D × 2-D (columns of b by group) M·K·N_total per
    group's a, i.e. G·M·K·N_total / G summed; 2-D × 2-D (the inner dim by group) M·K_total·N."""
    if len(a) == 2:
        return a[0] * a[1] * b[-1]
    if len(b) == 3:
        return a[0] * a[1] * a[2] * b[-1]
    return a[1] * a[2] * b[-1]


def grouped_mm_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::_grouped_mm(self, mat2, offs, bias, out_dtype): see grouped_mm_macs; the bias is not counted."""
    return grouped_mm_macs(get_shape(inputs[0]), get_shape(inputs[1]))


def antialiased_upsample(support: int) -> Handle:
    """aten::_upsample_{bilinear,bicubic}2d_aa (interpolate(antialias=True)): taps per output element, as
    the plain interpolations count theirs (bilinear 2 × 2, bicubic 4 × 4), but when shrinking by a factor s
    the kernel is stretched to cover s input pixels per tap, so `support` × s taps per dim."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        source, out = get_shape(inputs[0]), get_shape(outputs[0])
        taps = prod(support * max(1, -(-i // o)) for i, o in zip(source[-2:], out[-2:], strict=True))
        return prod(out) * taps

    return handle


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

# Ops that are one (batched) matrix product, and which two inputs are multiplied.
_PRODUCTS = {
    "aten::matmul": (0, 1),
    "aten::mm": (0, 1),
    "aten::bmm": (0, 1),
    "aten::mv": (0, 1),
    "aten::dot": (0, 1),
    "aten::addmm": (1, 2),
    "aten::addmv": (1, 2),
    "aten::baddbmm": (1, 2),
    "aten::addbmm": (1, 2),
}
_RECURRENT = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")

FORMULAS: dict[str, Handle] = {
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
    "aten::_native_multi_head_attention": native_mha_flop_jit,
    # Matrix products with torch.matmul's broadcasting (fvcore's matmul/mm/addmm rules are replaced).
    **{op: product_of(*operands) for op, operands in _PRODUCTS.items()},
    "aten::einsum": einsum_flop_jit,
    "aten::_grouped_mm": grouped_mm_flop_jit,
    "aten::_convolution_mode": convolution_mode_flop_jit,
    "aten::_weight_norm": weight_norm_flop_jit,
    # torch's fused RMSNorm (nn.RMSNorm) as fvcore counts layer_norm: 5 per element with a weight, else 4.
    "aten::rms_norm": norm_flop_counter(2),
    **dict.fromkeys(_RECURRENT, rnn_flop_jit),
    # fvcore counts adaptive_avg_pool2d as one per input element; the 1-D and 3-D pools likewise.
    "aten::adaptive_avg_pool1d": elementwise_flop_counter(1, 0),
    "aten::adaptive_avg_pool3d": elementwise_flop_counter(1, 0),
    "aten::avg_pool1d": avg_pool_flop_jit,
    "aten::avg_pool2d": avg_pool_flop_jit,
    "aten::avg_pool3d": avg_pool_flop_jit,
    # Interpolation as fvcore counts upsample_bilinear2d (4 taps) and nearest2d (1): taps per output.
    "aten::upsample_linear1d": elementwise_flop_counter(0, 2),
    "aten::upsample_trilinear3d": elementwise_flop_counter(0, 8),
    "aten::upsample_bicubic2d": elementwise_flop_counter(0, 16),
    "aten::_upsample_bilinear2d_aa": antialiased_upsample(2),
    "aten::_upsample_bicubic2d_aa": antialiased_upsample(4),
    "aten::upsample_nearest1d": elementwise_flop_counter(0, 1),
    "aten::upsample_nearest3d": elementwise_flop_counter(0, 1),
}

# What each counted op is, for the split of a count (and the comparison with torch's counter, which
# counts only matmul, convolution and attention). fvcore's own handles are listed too.
CATEGORY: dict[str, str] = {
    **dict.fromkeys(["aten::linear", "aten::einsum", "aten::_grouped_mm", *_PRODUCTS, *_RECURRENT], "matmul"),
    "aten::_convolution": "convolution",
    "aten::_convolution_mode": "convolution",
    "aten::scaled_dot_product_attention": "attention",
    "aten::_native_multi_head_attention": "attention",
    **dict.fromkeys(
        [
            "aten::batch_norm",
            "aten::group_norm",
            "aten::layer_norm",
            "aten::instance_norm",
            "aten::rms_norm",
            "aten::_weight_norm",
        ],
        "norm",
    ),
    **{op: "pool" for op in FORMULAS if "avg_pool" in op},
    "aten::adaptive_avg_pool2d": "pool",
    **{op: "resample" for op in FORMULAS if op.startswith(("aten::upsample", "aten::_upsample"))},
    "aten::upsample_nearest2d": "resample",
    "aten::upsample_bilinear2d": "resample",
    "aten::grid_sampler": "resample",
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
    # A custom autograd function is refused unless named here: this one is Bloom's GeLU (transformers'
    # BloomGelu), elementwise; the name is the Function's class, so another GeLUFunction is taken as one.
    "prim::PythonOp.GeLUFunction": _ACTIVATION,
}


def extra_handles() -> dict[str, Handle]:
    """Every handle harness adds to fvcore's defaults: formulas and explicit zeros."""
    return {**FORMULAS, **{op: zero(reason) for op, reason in ZEROS.items()}}
