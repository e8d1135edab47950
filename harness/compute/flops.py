"""FLOPs per forward pass with fvcore, made complete by harness's handles, and cross-checked with torch.

fvcore counts multiply-accumulates (MACs); the paper counts a multiply-add as 2 FLOPs, so
`flops = 2 × macs`. Counting runs one forward pass of the eager module (never a compiled wrapper, nor the
compiled wrappers of its submodules) in eval mode, without gradients, with a model's key/value cache off
(`config.use_cache`, Hugging Face's), and puts the module back as it was: each submodule's mode, every
buffer, the cache setting, the compiled submodules. Only the tensors of the model's output are traced:
a cache object, `None` or a string in a Hugging Face `ModelOutput` is dropped, not refused.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.compute._fvcore import FlopCountAnalysis, all_modules
from harness.compute.attention import ATTENTION_CONVENTIONS, causal_attention
from harness.compute.handles import CATEGORY, extra_handles
from harness.compute.policy import free_category
from harness.errors import HarnessError, one_line

# by_operator names an op as fvcore's handle reports it: "aten::" dropped, and convolutions as "conv".
_FVCORE_NAMES = {"conv": "aten::_convolution"}


class UnsupportedOpError(HarnessError):
    """An op without a FLOP handle was hit in strict mode."""


class CountError(HarnessError, RuntimeError):
    """The model's forward pass failed while it was traced for counting (a RuntimeError, as it was before
    it was named). `module` is where it failed, as `path (Type)`; `cause` the original message, one line."""

    def __init__(self, message: str, *, module: str, cause: str) -> None:
        super().__init__(message)
        self.module = module
        self.cause = cause


@dataclass
class FlopReport:
    """One forward pass of a batch. Totals are for the whole batch; `*_per_sample` divide by it."""

    macs: float
    batch_size: int
    by_module: dict[str, float] = field(default_factory=dict)  # MACs, "" is the whole model
    by_operator: dict[str, float] = field(default_factory=dict)  # MACs per fvcore op kind
    unsupported: dict[str, int] = field(default_factory=dict)  # op -> times seen (non-strict mode)
    free: dict[str, str] = field(default_factory=dict)  # op without a handle -> the category making it 0
    attention_causal: str = "full"  # how causal attention was counted: full (dense) or half

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
def evaluating(
    model: torch.nn.Module, modules: list[torch.nn.Module] | None = None
) -> Iterator[torch.nn.Module]:
    """The eager module behind `model` (unwrapping torch.compile) in eval mode, for a forward pass without
    gradients; on exit every submodule's mode is restored, and every buffer: the same tensor, with its
    values put back if the pass wrote them. No copy: copying the modules cost more than a tenth of a count
    of resnet50, and parameters are not written by a forward pass without gradients.
    `modules`: all_modules of the eager module, where the caller has listed them already."""
    eager = getattr(model, "_orig_mod", model)
    if modules is None:
        modules = all_modules(eager)
    modes = [(module, module.training) for module in modules]
    # An inference tensor keeps no version and cannot be written outside inference mode: only its place
    # is kept.
    buffers = [
        (module, name, buffer, None, None)
        if buffer.is_inference()
        else (module, name, buffer, buffer._version, buffer.detach().clone())
        for module in modules
        for name, buffer in module._buffers.items()
        if buffer is not None
    ]
    if any(training for _, training in modes):  # eval() visits every module, for nothing if none trains
        eager.eval()
    try:
        yield eager
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)  # not nn.Module's __setattr__: a plain bool
        with torch.no_grad():
            for module, name, buffer, version, saved in buffers:
                module._buffers[name] = buffer
                if version is not None and buffer._version != version:
                    buffer.copy_(saved)


def _as_tuple(inputs: Any) -> tuple:
    # A PackedSequence or other named tuple is one input, not a tuple of inputs.
    return inputs if type(inputs) is tuple else (inputs,)


@dataclass(frozen=True)
class _Call:
    """How the model is called for a count: positional `values` (tensors), the last `len(keywords)` of
    them passed by those names, and `constants` (keyword inputs that are not tensors, such as
    use_cache=False) passed as they are: the tracer takes tensors only."""

    values: tuple
    keywords: tuple[str, ...] = ()
    constants: Mapping[str, Any] = field(default_factory=dict)

    def traced(self, model: torch.nn.Module) -> TensorOutputs:
        return TensorOutputs(model, self.keywords, self.constants)


def _split_inputs(inputs: Any) -> _Call:
    """A Mapping is keyword inputs (`{"input_ids": ..., "attention_mask": ..., "use_cache": False}`),
    anything else positional."""
    if isinstance(inputs, Mapping):
        tensors = {key: value for key, value in inputs.items() if isinstance(value, torch.Tensor)}
        constants = {key: value for key, value in inputs.items() if key not in tensors}
        return _Call(tuple(tensors.values()), tuple(tensors), constants)
    return _Call(_as_tuple(inputs))


def tensors_in(output: Any) -> Iterator[torch.Tensor]:
    """The tensors of a forward pass's output, depth first: through tuples, lists and mappings (a Hugging
    Face ModelOutput is one); anything else (a KV cache object, None, a string) carries no work to trace."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, Mapping):
        for value in output.values():
            yield from tensors_in(value)
    elif isinstance(output, (tuple, list)):
        for value in output:
            yield from tensors_in(value)


class TensorOutputs(torch.nn.Module):
    """What is traced: `model` called with the positional inputs and then the keyword ones (named by
    `keywords`, which take the last inputs), returning only the tensors of its output. The tracer takes
    tensors in and out only; a cache or a ModelOutput's non-tensor fields would stop it."""

    def __init__(
        self, model: torch.nn.Module, keywords: tuple[str, ...], constants: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.keywords = keywords
        self.constants = dict(constants or {})  # keyword inputs that are not tensors, passed as they are

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        split = len(inputs) - len(self.keywords)
        keywords = dict(zip(self.keywords, inputs[split:], strict=True))
        output = self.model(*inputs[:split], **keywords, **self.constants)
        tensors = tuple(tensors_in(output))
        if not tensors:
            raise TypeError(
                f"the forward pass returned no tensor ({type(output).__name__}): nothing to trace"
            )
        return tensors


@contextlib.contextmanager
def _counting(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model as both counters run it: in eval mode, without gradients, without a Hugging Face cache,
    its compiled submodules eager; everything put back on exit."""
    eager = getattr(model, "_orig_mod", model)
    modules = all_modules(eager)  # listed once for the three
    with evaluating(eager, modules) as net, torch.no_grad(), _cache_off(modules), _eager_submodules(modules):
        yield net


@contextlib.contextmanager
def _cache_off(modules: list[torch.nn.Module]) -> Iterator[None]:
    """Hugging Face models default to `use_cache=True` and return a key/value cache (it would be traced as an
    output, and it is work for the next call, not this one): off for the count, each config put back."""
    configs = {
        id(config): config
        for module in modules
        # read from the instance's own attributes: nn.Module's __getattr__ raises for every other module
        if (config := vars(module).get("config")) is not None and getattr(config, "use_cache", None)
    }
    for config in configs.values():
        config.use_cache = False
    try:
        yield
    finally:
        for config in configs.values():
            config.use_cache = True


def _is_compiled(module: torch.nn.Module) -> bool:
    # torch.compile(module) returns an OptimizedModule that holds the eager module as its child `_orig_mod`.
    # A scripted module's `_modules` is torch.jit's OrderedModuleDict: `in` and `[]`, no `get`.
    return "_orig_mod" in module._modules and isinstance(module._modules["_orig_mod"], torch.nn.Module)


@contextlib.contextmanager
def _eager_submodules(modules: list[torch.nn.Module]) -> Iterator[None]:
    """Submodules compiled in place (`block = torch.compile(block)`, or `block.compile()`) run as their
    eager modules for the count: torch's tracer cannot trace a dynamo-optimized function, and the count is
    of the model's arithmetic, which compiling does not change. `harness train` counts a compiled model the
    same way. Each swap is put back on exit. `modules`: all_modules of the model."""
    swapped = [
        (parent, name, child)
        for parent in modules
        for name, child in parent._modules.items()
        if child is not None and _is_compiled(child)
    ]
    compiled_calls = [
        (module, module._compiled_call_impl)
        for module in modules
        if vars(module).get("_compiled_call_impl") is not None
    ]
    for parent, name, child in swapped:
        parent._modules[name] = child._modules["_orig_mod"]
    for module, _ in compiled_calls:
        module._compiled_call_impl = None
    try:
        yield
    finally:
        for parent, name, child in swapped:
            parent._modules[name] = child
        for module, call in compiled_calls:
            module._compiled_call_impl = call


def _failed_in(exc: BaseException, net: torch.nn.Module) -> str:
    """The deepest module of `net` whose code was running when `exc` was raised, as `path (Type)`: read
    from the traceback's frames (each module's forward has it as `self`), so no hook is needed."""
    names = {id(module): name for name, module in net.named_modules()}
    deepest = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if id(owner) in names and names[id(owner)]:
            deepest = names[id(owner)], type(owner).__name__
        tb = tb.tb_next
    if deepest is None:
        return f"{type(net).__name__} itself"
    return f"{deepest[0]} ({deepest[1]}) of {type(net).__name__}"


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
    model: torch.nn.Module,
    inputs: Any,
    *,
    strict: bool = True,
    batch_dim: int | None = None,
    attention_causal: str = "full",
) -> FlopReport:
    """Count the MACs and FLOPs of one forward pass of `model` on `inputs`: a tensor, a tuple (positional
    inputs), or a mapping of keyword inputs (`{"input_ids": ids, "attention_mask": mask}`; values that
    are not tensors, such as `use_cache=False`, are passed as they are).

    An op without a handle is free when a category of policy.py claims it (recorded in `free`). Otherwise
    it could carry work: strict mode raises UnsupportedOpError naming it and the module it came from;
    non-strict lists it in `unsupported`, counts it 0 and warns once. A forward pass that fails raises
    CountError naming the module it failed in.
    batch_dim: where the batch is in the first tensor input, for the per-sample figures; None takes the
    layout an RNN model declares (batch_first), else 0.
    attention_causal: "full" counts causal attention as the dense products it computes (Kaplan's and
    Chinchilla's convention); "half" counts half of them where attention is causal (is_causal=True or a
    causal mask; FlashAttention's convention). See attention.py.
    """
    if attention_causal not in ATTENTION_CONVENTIONS:
        raise ValueError(f"attention_causal={attention_causal!r}: expected one of {ATTENTION_CONVENTIONS}")
    call = _split_inputs(inputs)
    with _counting(model) as net, causal_attention(attention_causal) as attention_handles:
        batch = _batch_size(call.values, declared_batch_dim(net, batch_dim))
        analysis = FlopCountAnalysis(net, call.values, wrap=call.traced)
        analysis.set_op_handle(**(extra_handles() | attention_handles))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        try:
            total = analysis.total()
        except HarnessError:
            raise
        except Exception as exc:  # the model's own forward failed: say where, on one line
            where = _failed_in(exc, net)
            raise CountError(
                f"the forward pass of {type(net).__name__} failed in {where}: {one_line(exc)}",
                module=where,
                cause=one_line(exc),
            ) from exc
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
        attention_causal=attention_causal,
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
    `evaluating`: the module is put back as it was) on `inputs`, as count_flops takes them (a mapping is
    keyword inputs), with the cache off and compiled submodules run eager, as count_flops counts.

    torch counts only matmuls, convolutions and the attention kernels it knows. On the CPU it knows none
    of them for attention: `scaled_dot_product_attention` dispatches to a CPU flash kernel it does not
    register, and nn.MultiheadAttention's fused eval path is invisible too, so attention counts 0 there.
    math=True runs attention as plain products (`math_attention`), which it then counts.
    """
    call = _split_inputs(inputs)
    attention = math_attention() if math else contextlib.nullcontext()
    with _counting(model) as net, attention, FlopCounterMode(display=False) as counter:
        call.traced(net)(*call.values)
    return float(counter.get_total_flops())
