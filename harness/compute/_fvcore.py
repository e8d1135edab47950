"""fvcore, imported once without its import-time noise, and traced with torch's own module scopes.

fvcore.nn's package __init__ compiles a focal loss with torch.jit.script, which current torch reports as a
FutureWarning on every import; it has nothing to do with counting, so it is silenced here and only here.

fvcore learns which module an op ran in by registering two Python hooks on every module for the trace (they
push and pop a scope). torch's tracer records the same scopes by itself from `torch.jit._trace.
_trace_module_map` (what torch.onnx uses); `FlopCountAnalysis` here traces that way, which gives the same
graph with the same scope per node for less time (about 10% of a count of resnet50) and leaves no hook
behind on the model if the forward pass raises. Where torch lacks the map, or for a DataParallel wrapper
(fvcore renames its root), fvcore's own tracing runs.

The tracer makes many short-lived Python objects, enough to set off several full garbage collections per
count, each a walk over every object torch and torchvision hold; the collector is paused while the graph
is traced and walked (objects freed by reference counting are freed as usual; cycles wait until after).
"""

import contextlib
import functools
import gc
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from numbers import Number

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\.script.*")
    from fvcore.common.checkpoint import _named_modules_with_dup
    from fvcore.nn import FlopCountAnalysis as _FvcoreFlopCountAnalysis
    from fvcore.nn import jit_analysis as _jit_analysis
    from fvcore.nn.jit_handles import conv_flop_count, elementwise_flop_counter, get_shape, norm_flop_counter

from harness.compute._tracer import no_source_locations

_FVCORE_SCOPED_TRACE = _jit_analysis._get_scoped_trace_graph
_WRAPPERS = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)


def _scoped_trace(
    module: torch.nn.Module, inputs, aliases: dict, *, wrap: Callable[[torch.nn.Module], torch.nn.Module]
) -> torch._C.Graph:
    """fvcore's `_get_scoped_trace_graph` (same arguments, same scopes: each module's canonical name), with
    `wrap(module)` traced in place of the module (it calls the module: keyword inputs, tensor outputs)."""
    trace = torch.jit._trace
    if isinstance(module, _WRAPPERS) or not hasattr(trace, "_trace_module_map"):
        return _FVCORE_SCOPED_TRACE(module, inputs, aliases)
    previous = trace._trace_module_map
    # The root's name is "", which torch does not push: fvcore's root scope is "" too. The wrapper is not
    # in the map, so it pushes no scope either.
    trace._trace_module_map = {mod: aliases[mod] for mod in module.modules()}
    try:
        with no_source_locations():
            graph, _ = torch.jit._get_trace_graph(wrap(module), inputs)
    finally:
        trace._trace_module_map = previous
    return graph


@contextlib.contextmanager
def _torch_scopes(wrap: Callable[[torch.nn.Module], torch.nn.Module]) -> Iterator[None]:
    _jit_analysis._get_scoped_trace_graph = functools.partial(_scoped_trace, wrap=wrap)
    try:
        yield
    finally:
        _jit_analysis._get_scoped_trace_graph = _FVCORE_SCOPED_TRACE


class FlopCountAnalysis(_FvcoreFlopCountAnalysis):
    """fvcore's FlopCountAnalysis, traced with torch's module scopes instead of per-module hooks.

    `wrap`, if given, makes what is traced from the model (flops.TensorOutputs: keyword inputs, only the
    output's tensors); the scopes, and every name fvcore reports, stay the model's own."""

    def __init__(self, model, inputs, *, wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None):
        super().__init__(model, inputs)
        self._wrap = wrap or (lambda module: module)

    def _analyze(self) -> _jit_analysis.Statistics:
        if self._stats is not None:
            return self._stats
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            with warnings.catch_warnings(), _torch_scopes(self._wrap):
                if self._warn_trace == "none":
                    warnings.simplefilter("ignore")
                elif self._warn_trace == "no_tracer_warning":
                    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                graph = _jit_analysis._get_scoped_trace_graph(self._model, self._inputs, self._aliases)
            self._stats = self._walk(graph)
        finally:
            if was_enabled:
                gc.enable()
        self._warn_unsupported_ops(self._stats.unsupported_ops[""])
        self._warn_uncalled_mods(self._stats.uncalled_mods)
        return self._stats

    def _walk(self, graph: torch._C.Graph) -> _jit_analysis.Statistics:
        """fvcore's walk over the graph, with its result (the same Statistics), in fewer steps: a graph has a
        few hundred scopes for thousands of nodes, so each scope's ancestors are found once, and the counts
        are summed per scope before they are added to every ancestor (fvcore adds each node's to each)."""
        counts = {self._aliases[mod]: Counter() for _, mod in _named_modules_with_dup(self._model)}
        unsupported = {name: Counter() for name in counts}
        seen: set[str] = set()
        ancestors_of: dict[str, tuple[str, ...]] = {}
        ignored: dict[str, bool] = {}
        per_scope: dict[str, dict[str, float]] = {}
        unsupported_per_scope: dict[str, dict[str, int]] = {}
        handles = self._op_handles
        for node in graph.nodes():
            kind = node.kind()
            if kind == "prim::PythonOp":
                kind = f"{kind}.{node.pyname()}"  # its Python name says what it is
            scope = node.scopeName()
            if scope not in ancestors_of:
                names = scope.split("/")
                ancestors = (
                    set(names) if self._ancestor_mode == "caller" else self._get_all_ancestors(names[-1])
                )
                seen.update(names, ancestors)
                ancestors_of[scope] = tuple(ancestors)
            handle = handles.get(kind)
            if handle is None:
                if kind not in ignored:
                    ignored[kind] = self._should_ignore_node(node)
                if not ignored[kind]:
                    tally = unsupported_per_scope.setdefault(scope, {})
                    tally[kind] = tally.get(kind, 0) + 1
                continue
            op_counts = handle(list(node.inputs()), list(node.outputs()))
            if isinstance(op_counts, Number):
                op_counts = {self._simplify_op_name(kind): op_counts}
            tally = per_scope.setdefault(scope, {})
            for op, value in op_counts.items():
                if not isinstance(value, (int, float, np.float64, np.int64)):
                    raise ValueError(f"Invalid type {type(value)} for the flop count of {kind}")
                tally[op] = tally.get(op, 0) + value
        for totals, tallies in ((counts, per_scope), (unsupported, unsupported_per_scope)):
            for scope, tally in tallies.items():
                added = Counter(tally)
                for name in ancestors_of[scope]:
                    totals[name] += added  # Counter's +=, as fvcore's: entries of 0 are dropped
        uncalled = set(self._aliases.values()) - seen
        return _jit_analysis.Statistics(counts=counts, unsupported_ops=unsupported, uncalled_mods=uncalled)


__all__ = [
    "FlopCountAnalysis",
    "conv_flop_count",
    "elementwise_flop_counter",
    "get_shape",
    "norm_flop_counter",
]
