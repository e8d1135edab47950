"""How causal attention is counted: the two conventions in use, and how a causal call is recognised.

A causal mask (or `is_causal=True`) lets each query attend to the keys at or before its position, yet the
math kernel computes the full L×S products and masks them afterwards. Papers disagree on what to count:

- **full** (the default): the dense products, Q·Kᵀ and softmax(·)·V, L·S·(E + Ev) MACs per batch-head,
  what the math computes and what torch's own counter counts. Kaplan et al. (2020) and Hoffmann et al.
  (Chinchilla, 2022) count attention this way in their appendices.
- **half**: half of those for causal attention, the accounting of FlashAttention's benchmarks (its
  kernels skip the blocks above the diagonal). Non-causal attention is counted in full under both.

Which calls are causal is read where torch's scaled_dot_product_attention (SDPA) is called: `is_causal=True`,
or an `attn_mask` that keeps no (query, key) pair above the diagonal (a boolean mask of False, or a float
mask of -inf or below -1e4, there). The trace records shapes, not a mask's values, so for "half" a
TorchFunctionMode looks at each SDPA call as it runs and the handle reads the answers in call order.
Attention written as explicit matmuls (Hugging Face's `attn_implementation="eager"`) is counted in full
either way: no op says it is attention. nn.MultiheadAttention's fused path is counted in full too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from harness.compute.handles import Handle, sdpa_flop_jit

ATTENTION_CONVENTIONS = ("full", "half")

# A float mask blocks a pair with -inf, or with a large negative number (Hugging Face uses the dtype's min).
_BLOCKED_BELOW = -1e4


def mask_is_causal(mask: torch.Tensor, length: int, source: int) -> bool:
    """Whether `mask` (broadcastable to (..., length, source)) keeps no pair above the diagonal (key index
    greater than query index, aligned top-left as torch's is_causal), and blocks at least one pair."""
    if length < 2 or mask.shape[-2:] != (length, source):
        return False
    above = torch.ones(length, source, dtype=torch.bool, device=mask.device).triu(1)
    if not above.any():
        return False
    blocked = ~mask if mask.dtype == torch.bool else mask <= _BLOCKED_BELOW
    return bool(blocked[..., above].all())


class _CausalProbe(TorchFunctionMode):
    """Notes, for each SDPA call in order, whether it is causal; untraced, so the trace is unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.causal: list[bool] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.causal.append(_is_causal_call(*args, **kwargs))
        return func(*args, **kwargs)


def _is_causal_call(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *args, **kwargs
) -> bool:
    if is_causal:
        return True
    if attn_mask is None:
        return False
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)  # type: ignore[attr-defined]  # the check is not the model's: untraced
    try:
        return mask_is_causal(attn_mask, query.shape[-2], key.shape[-2])
    finally:
        torch._C._set_tracing_state(state)  # type: ignore[attr-defined]


def _half_causal_sdpa(causal: list[bool]) -> Handle:
    calls = iter(causal)

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        macs = sdpa_flop_jit(inputs, outputs)
        seen = next(calls, None)
        if seen is None:  # a call the probe did not see (scripted code): only its own flag can say
            seen = bool(inputs[5].toIValue())
        return macs // 2 if seen else macs

    return handle


@contextlib.contextmanager
def causal_attention(convention: str) -> Iterator[dict[str, Handle]]:
    """For the trace of one count: the handles that replace the defaults under `convention` (none for
    "full"), with what they need recorded while the trace runs inside this block."""
    if convention == "full":
        yield {}
        return
    probe = _CausalProbe()
    with probe:
        yield {"aten::scaled_dot_product_attention": _half_causal_sdpa(probe.causal)}
