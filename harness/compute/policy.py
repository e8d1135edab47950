"""What an op without a FLOP handle means: free by category, or refused because it could carry work.

fvcore hands every op it has no handle for to its `unsupported` list. Most of them are free under the
convention (handles.py: only multiply-accumulate work counts). Rather than list them one name at a time,
an op is judged by what torch itself declares about it — its tags (`pointwise`, `reduction`,
`nondeterministic_seeded`) and its schema (results that alias an input, results that are not tensors) —
and, where torch declares nothing, by the family its name belongs to (creation, indexing, movement). An
in-place op `x_` is judged as `x`. An op no category claims (linalg, FFT, cdist, bilinear, a custom
autograd function, ...) could carry matrix- or convolution-like work: strict mode refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness.compute.handles import CATEGORY, ZEROS


def _tags(packet: Any) -> set[str]:
    return {tag.name for overload in packet.overloads() for tag in getattr(packet, overload).tags}


def _schemas(packet: Any) -> list[Any]:
    return [getattr(packet, overload)._schema for overload in packet.overloads()]


def _is_view(packet: Any) -> bool:
    """Every overload returns tensors that alias an input without writing to it."""
    return all(
        schema.returns and all(r.alias_info is not None and not r.alias_info.is_write for r in schema.returns)
        for schema in _schemas(packet)
    )


def _returns_no_tensor(packet: Any) -> bool:
    return all(
        schema.returns and all("Tensor" not in str(r.type) for r in schema.returns)
        for schema in _schemas(packet)
    )


def _named(pattern: str) -> Callable[[str, Any], bool]:
    regex = re.compile(pattern)
    return lambda name, packet: bool(regex.search(name))


@dataclass(frozen=True)
class FreeCategory:
    """Ops that carry no multiply-accumulates, how they are recognised, and why they are free."""

    name: str
    recognised_by: str
    reason: str
    examples: tuple[str, ...]
    matches: Callable[[str, Any], bool]  # (functional op name, torch.ops.aten packet or None)


CATEGORIES: tuple[FreeCategory, ...] = (
    FreeCategory(
        "element-wise",
        "torch tag `pointwise`",
        "arithmetic, activations, comparisons and masks element by element: no accumulation",
        ("aten::ne", "aten::sigmoid_", "aten::clamp_min", "aten::masked_fill_", "aten::where"),
        lambda name, packet: packet is not None and "pointwise" in _tags(packet),
    ),
    FreeCategory(
        "reduction",
        "torch tag `reduction`",
        "sums, means, extrema and norms of one tensor: additions or comparisons, no weights",
        ("aten::linalg_vector_norm", "aten::amax", "aten::var"),
        lambda name, packet: packet is not None and "reduction" in _tags(packet),
    ),
    FreeCategory(
        "element-wise operators",
        "name: Python's bitwise operators (__and__, __or__, ...), floor_divide, isin",
        "boolean masks and integer arithmetic element by element (attention-mask helpers): no accumulation",
        ("aten::__and__", "aten::__or__", "aten::isin"),
        _named(r"^__i?(and|or|xor|lshift|rshift)__$|^floor_divide$|^isin$"),
    ),
    FreeCategory(
        "scans and overlap sums",
        "name: cumsum, cumprod, cummax, cummin, logcumsumexp, diff, col2im",
        "running sums, products or extrema along one dim (a packed-sequence mask, a positional encoding), "
        "neighbour differences, and col2im's (nn.Fold's) sums of overlapping patches: one addition, "
        "multiplication or comparison per element, never a product of two operands accumulated",
        ("aten::cumsum", "aten::diff", "aten::col2im"),
        _named(r"^(_?cumsum|_?cumprod|cummax|cummin|_?logcumsumexp|diff|col2im)$"),
    ),
    FreeCategory(
        "max pooling",
        "name: max_pool, adaptive_max_pool, fractional_max_pool, max_unpool",
        "comparisons within each window, or placing values back: no multiply-accumulate",
        ("aten::adaptive_max_pool2d", "aten::max_unpool2d"),
        _named(r"^(adaptive_|fractional_)?max_pool\dd(_with_indices)?$|^max_unpool\dd$"),
    ),
    FreeCategory(
        "view",
        "schema: every result aliases an input",
        "a new shape or stride over the same memory: no arithmetic",
        ("aten::expand_as", "aten::chunk", "aten::contiguous"),
        lambda name, packet: packet is not None and _is_view(packet),
    ),
    FreeCategory(
        "shape query",
        "schema: no tensor result; name: _shape_as_tensor",
        "reads sizes or scalars, computes nothing on the data",
        ("aten::numel",),
        lambda name, packet: (
            name == "_shape_as_tensor" or (packet is not None and _returns_no_tensor(packet))
        ),
    ),
    FreeCategory(
        "dropout and random",
        "torch tag `nondeterministic_seeded`",
        "dropout is the identity in eval mode, where counting happens; random draws touch no data",
        ("aten::dropout_", "aten::bernoulli"),
        lambda name, packet: packet is not None and "nondeterministic_seeded" in _tags(packet),
    ),
    FreeCategory(
        "creation and fill",
        "name: zeros, ones, full, empty, arange, fill, zero, *_like, new_*",
        "writes constants or ranges: no arithmetic on data",
        ("aten::fill_", "aten::zero_", "aten::zeros_like"),
        _named(r"^(zeros|ones|full|empty|eye|arange|linspace|fill|zero|scalar_tensor)(_like)?$|^new_"),
    ),
    FreeCategory(
        "indexing and lookup",
        "name: index, gather, scatter, embedding, masked, take, nonzero, sort, topk, one_hot, histc",
        "selects, looks up, counts or orders elements (an embedding is a row lookup, histc counts a mixture "
        "of experts' routing): no multiply-accumulate",
        ("aten::embedding", "aten::gather", "aten::index_put_", "aten::topk"),
        _named(
            r"index|gather|scatter|embedding|masked|take|nonzero|sort|topk|kthvalue|bucketize|unique|one_hot"
            r"|histc|bincount"
        ),
    ),
    FreeCategory(
        "data movement",
        "name: cat, stack, pad, roll, flip, repeat, tile, clone, copy, to, unsafe_*, *_(un)shuffle, tril, "
        "triu, im2col, broadcast_tensors, meshgrid, (un)packing sequences",
        "copies, converts or rearranges elements (im2col, nn.Unfold, copies each patch out): no arithmetic",
        ("aten::cat", "aten::roll", "aten::copy_", "aten::im2col", "aten::_pack_padded_sequence"),
        _named(
            r"^(cat|concat|stack|[hvd]stack|pad|constant_pad_nd|\w+_pad\dd|roll|flip\w*|rot90|repeat\w*|tile"
            r"|clone|copy|_to_copy|type_as|unsafe_\w+|\w*_(un)?shuffle|tril|triu|im2col|broadcast_tensors|meshgrid"
            r"|_pack_padded_sequence|_pad_packed_sequence)$"
        ),
    ),
)


def _packet(name: str) -> Any:
    try:
        return getattr(torch.ops.aten, name)
    except (AttributeError, RuntimeError):
        return None


def free_category(op: str) -> FreeCategory | None:
    """The category that makes `op` (an `aten::name` kind) free, or None: it could carry work."""
    if not op.startswith("aten::"):
        return None  # prim::PythonOp (a custom autograd function) and the like: anything could be inside
    name = op.removeprefix("aten::")
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]  # an in-place op does what its functional form does
    packet = _packet(name)
    return next((category for category in CATEGORIES if category.matches(name, packet)), None)


def policy_table() -> str:
    """The README's table of what counts: the counted categories and their ops, then the free ones."""
    counted: dict[str, list[str]] = {}
    for op, category in CATEGORY.items():
        counted.setdefault(category, []).append(op.removeprefix("aten::"))
    rows = ["| category | recognised by | counted | why |", "| --- | --- | --- | --- |"]
    for category, ops in counted.items():
        rows.append(
            f"| {category} | a handle: {', '.join(f'`{op}`' for op in ops)} | MACs | its closed form |"
        )
    explicit = ", ".join(f"`{op.removeprefix('aten::')}`" for op in ZEROS)
    rows.append(f"| explicit zeros | a named handle: {explicit} | 0 | each op's reason in handles.py |")
    for c in CATEGORIES:
        examples = ", ".join(f"`{op.removeprefix('aten::')}`" for op in c.examples)
        rows.append(f"| {c.name} | {c.recognised_by} (e.g. {examples}) | 0 | {c.reason} |")
    rows.append(
        "| anything else | no handle and no category (e.g. `cdist`, `fft_rfft`, `linalg_solve`, a custom "
        "autograd function) | refused in strict mode; 0 and listed in `unsupported` otherwise | "
        "it could carry matrix- or convolution-like work |"
    )
    return "\n".join(rows)
