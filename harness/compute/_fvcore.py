"""fvcore, imported once without its import-time noise, and traced with torch's own module scopes.

fvcore.nn's package __init__ compiles a focal loss with torch.jit.script, which current torch reports as a
FutureWarning on every import; it has nothing to do with counting, so it is silenced here and only here.

fvcore learns which module an op ran in by registering two Python hooks on every module for the trace (they
push and pop a scope). torch's tracer pushes the same scopes by itself, in `Module._slow_forward`, from
`torch.jit._trace._trace_module_map` (what torch.onnx uses). `FlopCountAnalysis` here pushes them at that
same place (`_FlatScopes`, which stands in for `_slow_forward` during the trace), which gives the same scope
per node, leaves no hook behind on the model if the forward pass raises, and opens no block per module
call (torch's push_scope does, and inlining the nested blocks after the trace copied every op once per
enclosing module). Where torch lacks the map, or for a DataParallel wrapper (fvcore renames its root),
fvcore's own tracing runs.

The tracer makes many short-lived Python objects, enough to set off several full garbage collections per
count, each a walk over every object torch and torchvision hold; the collector is paused while the graph
is traced and walked (objects freed by reference counting are freed as usual; cycles wait until after).

What is traced is `wrap(model)` (flops.TensorOutputs: keyword inputs, only the output's tensors), built
into a graph the way torch.onnx's tracer builds it but without its per-value name lookup, and without the
Python stack torch records per op (_tracer.py). The walk over the graph is fvcore's, done per scope
instead of per node (`FlopCountAnalysis._walk`); the handles and the Statistics are fvcore's.
"""

import contextlib
import functools
import gc
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\.script.*")
    from fvcore.nn import FlopCountAnalysis as _FvcoreFlopCountAnalysis
    from fvcore.nn import jit_analysis as _jit_analysis
    from fvcore.nn.jit_handles import conv_flop_count, elementwise_flop_counter, get_shape, norm_flop_counter

from harness.compute._tracer import no_source_locations

_FVCORE_SCOPED_TRACE = _jit_analysis._get_scoped_trace_graph
# Nodes that only carry arguments (constants, lists and tuples of them): fvcore ignores every prim:: node
# but a Python op or a call, and their scope is that of the op they feed, so the walk skips them unread:
# they are most of a traced graph (958 of 1,336 nodes of mobilenetv3_small_100 are constants).
_ARGUMENT_NODES = frozenset(
    {"prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack"}
)


def all_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """`list(model.modules())`, in its order (pre-order, each module once), without the dotted names that
    `modules()` builds for every submodule and drops: a count lists the modules several times."""
    found: list[torch.nn.Module] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        found.append(module)
        stack.extend(child for child in reversed(module._modules.values()) if child is not None)
    return found


_WRAPPERS = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)


class _FlatScopes:
    """Module scopes recorded as torch records them from `_trace_module_map`, in `Module._slow_forward`
    (which a module's call runs in place of `forward` while tracing, inside its hooks), but without the
    block torch's `Graph::push_scope` opens for every module call.

    push_scope puts each call's ops in a block of its own (a `prim::TracedModuleForward` node), and after
    the trace `FixupTraceScopeBlocks` inlines every block back into the graph by copying it into a graph of
    its own and back, innermost first: each op is copied once per module it is nested in, a quarter of a
    count of a small network. Here the scope is pushed as torch pushes it (the same `Scope`, so every
    node's `scopeName()` is the same), then the insertion point is put back where it was and the new,
    empty block removed: the ops land in the graph's own block, in order. pop_scope needs the insertion
    point inside such a block: the first one opened is kept, empty, for that (`anchor`), and after
    pop_scope the insertion point is put back again.

    `slow_forward` replaces `Module._slow_forward` for the trace (`tracing`): hooks would do the same
    around every module call, but send each call down nn.Module's slower path for hooked calls. The swap
    is process-wide for the time of the trace, as `_trace_module_map` is: counts take turns (`_ONE_TRACE`),
    and a trace in another thread (torch.jit.trace of one's own) runs torch's own `_slow_forward`."""

    def __init__(self, names: dict[torch.nn.Module, str]) -> None:
        self.names = names  # module -> its scope; the root's is "" and opens none, as in torch
        self.graph: torch._C.Graph | None = None
        self.anchor: torch._C.Node | None = None  # the insertion point inside the block kept for pop_scope
        self.thread = threading.get_ident()  # the thread that traces

    def forward(self, module: torch.nn.Module, args: tuple, kwargs: dict, slow_forward: Callable) -> Any:
        """`module.forward(*args, **kwargs)` in the module's scope; torch's `slow_forward` where torch would
        open none (a module not in `names`, a scripted one, no trace running)."""
        name = self.names.get(module)
        state = torch._C._get_tracing_state()
        elsewhere = threading.get_ident() != self.thread
        if not name or state is None or elsewhere or isinstance(module.forward, torch._C.ScriptMethod):
            return slow_forward(module, *args, **kwargs)
        graph = self.graph
        if graph is None:
            graph = self.graph = state.graph()
        point = graph.insertPoint()
        state.push_scope(name)  # inserts the block before `point` and moves the insertion point inside it
        if self.anchor is None:
            self.anchor = graph.insertPoint()
            graph.setInsertPoint(point)
        else:
            graph.setInsertPoint(point)
            point.prev().destroy()  # the block just inserted
        try:
            return module.forward(*args, **kwargs)
        finally:
            graph.setInsertPoint(self.anchor)
            state.pop_scope()
            graph.setInsertPoint(point)

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        """nn.Module's `_slow_forward` is `self.forward` inside, and torch's own again on exit."""
        torch_slow_forward = vars(torch.nn.Module)["_slow_forward"]
        forward = self.forward

        def slow_forward(module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            return forward(module, args, kwargs, torch_slow_forward)

        torch.nn.Module._slow_forward = slow_forward  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            torch.nn.Module._slow_forward = torch_slow_forward  # type: ignore[method-assign]


# What a count swaps for its trace is torch's process-wide state (nn.Module._slow_forward, the module map, the
# source-location recorder): counts in several threads trace one at a time, each putting back what it found.
_ONE_TRACE = threading.Lock()


def _scoped_trace(
    module: torch.nn.Module,
    inputs,
    aliases: dict,
    *,
    wrap: Callable[[torch.nn.Module], torch.nn.Module],
    modules: list[torch.nn.Module],
) -> torch._C.Graph:
    """fvcore's `_get_scoped_trace_graph` (same arguments, same scopes: each module's canonical name), with
    `wrap(module)` traced in place of the module (it calls the module: keyword inputs, tensor outputs).
    `modules`: all_modules(module), listed once per count."""
    trace = torch.jit._trace
    if isinstance(module, _WRAPPERS) or not hasattr(trace, "_trace_module_map"):
        return _FVCORE_SCOPED_TRACE(module, inputs, aliases)
    # The root's name is "", which torch does not push: fvcore's root scope is "" too. The wrapper is not
    # in the map, so it pushes no scope either.
    scopes = _FlatScopes({mod: name for mod, name in aliases.items() if isinstance(mod, torch.nn.Module)})
    with _ONE_TRACE:
        previous = trace._trace_module_map
        trace._trace_module_map = None  # torch's _slow_forward, where it still runs, opens no scope itself
        try:
            traced = wrap(module)
            with no_source_locations(), scopes.tracing():
                # the wrapper's own tensors (TensorOutputs has none), then the module's
                return _trace_graph(traced, inputs, _state([traced, *modules]))
        finally:
            trace._trace_module_map = previous


def _state(modules: list[torch.nn.Module]) -> list[torch.Tensor]:
    """The tensors of `module.state_dict(keep_vars=True)` for `modules` = all_modules(module), each once:
    parameters and persistent buffers, without building the state dict (its keys are strings made per
    module, which the trace never reads)."""
    unique: dict[int, torch.Tensor] = {}
    for owner in modules:
        for tensor in owner._parameters.values():
            if tensor is not None:
                unique.setdefault(id(tensor), tensor)
        for name, buffer in owner._buffers.items():
            if buffer is not None and name not in owner._non_persistent_buffers_set:
                unique.setdefault(id(buffer), buffer)
    return list(unique.values())


def _unnamed(value: torch.Tensor) -> str:
    return ""


def _trace_graph(module: torch.nn.Module, inputs: tuple, state: list[torch.Tensor]) -> torch._C.Graph:
    """`torch.jit._get_trace_graph(module, inputs)`'s graph, made the way it makes it (torch.onnx's
    ONNXTracedModule: the flattened inputs and the module's state as the graph's inputs), less two costs a
    count does not need: a state dict built only to list the tensors, and the name lookup it gives the
    tracer, which reads the locals of the caller's frame for every value to name it in the printed graph."""
    flat, layout = torch._C._jit_flatten(inputs if isinstance(inputs, tuple) else (inputs,))

    def traced(*values: torch.Tensor) -> Any:
        arguments = torch._C._jit_unflatten(list(values[: len(flat)]), layout)
        outputs, _ = torch._C._jit_flatten(module(*arguments))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    graph, _ = torch._C._create_graph_by_tracing(traced, [*flat, *state], _unnamed, True, False)
    return graph


@contextlib.contextmanager
def _torch_scopes(
    wrap: Callable[[torch.nn.Module], torch.nn.Module], modules: list[torch.nn.Module]
) -> Iterator[None]:
    _jit_analysis._get_scoped_trace_graph = functools.partial(_scoped_trace, wrap=wrap, modules=modules)
    try:
        yield
    finally:
        _jit_analysis._get_scoped_trace_graph = _FVCORE_SCOPED_TRACE


class FlopCountAnalysis(_FvcoreFlopCountAnalysis):
    """fvcore's FlopCountAnalysis, traced with torch's module scopes instead of per-module hooks.

    `wrap`, if given, makes what is traced from the model (flops.TensorOutputs: keyword inputs, only the
    output's tensors); the scopes, and every name fvcore reports, stay the model's own."""

    # fvcore's (set to None in its __init__; fvcore is untyped): the Statistics once analyzed
    _stats: _jit_analysis.Statistics | None

    def __init__(self, model, inputs, *, wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None):
        super().__init__(model, inputs)
        self._wrap = wrap or (lambda module: module)

    def _analyze(self) -> _jit_analysis.Statistics:
        if self._stats is not None:
            return self._stats
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            # all_modules(model), in its order: the first of each module's names is its first listing
            modules = list(dict.fromkeys(self._named_modules.values()))
            with warnings.catch_warnings(), _torch_scopes(self._wrap, modules):
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

    def _get_aliases(self, model: torch.nn.Module) -> dict:
        """fvcore's aliases (each module and each of its names -> its canonical name, the first it is listed
        under), read from `_named_modules`, which fvcore's __init__ has just listed, instead of a second
        walk over the model."""
        aliases: dict = {}
        for name, module in self._named_modules.items():
            aliases[name] = aliases.setdefault(module, name)
        return aliases

    def _walk(self, graph: torch._C.Graph) -> _jit_analysis.Statistics:
        """fvcore's walk over the graph, with its result (the same Statistics, but for `uncalled_mods` of
        modules whose only nodes carry arguments), in fewer steps: a graph has a few hundred scopes for
        thousands of nodes, so each scope's ancestors are found once, argument nodes are skipped, and the
        counts are summed per scope, then per module, before they become fvcore's Counters."""
        names = [self._aliases[module] for module in self._named_modules.values()]
        seen: set[str] = set()
        ancestors_of: dict[str, tuple[str, ...]] = {}
        ignored: dict[str, bool] = {}
        per_scope: dict[str, dict[str, float]] = {}
        unsupported_per_scope: dict[str, dict[str, float]] = {}
        handles = self._op_handles
        caller = self._ancestor_mode == "caller"
        for node in graph.nodes():
            kind = node.kind()
            if kind in _ARGUMENT_NODES:
                continue
            if kind == "prim::PythonOp":
                # its Python name says what it is (torch binds Node.pyname; its stubs leave it out)
                kind = f"{kind}.{node.pyname()}"  # type: ignore[attr-defined]
            scope = node.scopeName()
            if scope not in ancestors_of:
                parts = scope.split("/")
                ancestors = set(parts) if caller else self._get_all_ancestors(parts[-1])
                seen.update(parts, ancestors)
                ancestors_of[scope] = tuple(ancestors)
            handle = handles.get(kind)
            if handle is None:
                if kind not in ignored:
                    ignored[kind] = self._should_ignore_node(node)
                if not ignored[kind]:
                    tally = unsupported_per_scope.setdefault(scope, {})
                    tally[kind] = tally.get(kind, 0) + 1
                continue
            # Indexed, not `list(node.inputs())`: pybind's iterator ends by throwing a C++ exception through
            # torch's exception translators, several times the cost of reading the values.
            op_counts = handle(
                list(map(node.inputsAt, range(node.inputsSize()))),
                list(map(node.outputsAt, range(node.outputsSize()))),
            )
            if not isinstance(op_counts, dict):  # a number (fvcore's handles return one or a Counter)
                op_counts = {self._simplify_op_name(kind): op_counts}
            tally = per_scope.setdefault(scope, {})
            for op, value in op_counts.items():
                if not isinstance(value, (int, float, np.floating, np.integer)):
                    raise ValueError(f"Invalid type {type(value)} for the flop count of {kind}")
                tally[op] = tally.get(op, 0) + value
        counts = self._per_module(names, ancestors_of, per_scope)
        unsupported = self._per_module(names, ancestors_of, unsupported_per_scope)
        uncalled = set(self._aliases.values()) - seen
        return _jit_analysis.Statistics(counts=counts, unsupported_ops=unsupported, uncalled_mods=uncalled)

    @staticmethod
    def _per_module(
        names: list[str], ancestors_of: dict[str, tuple[str, ...]], per_scope: dict[str, dict[str, float]]
    ) -> dict[str, Counter]:
        """Each module's Counter: the tallies of every scope it is an ancestor of (entries of 0 dropped, as
        fvcore's Counter additions drop them)."""
        totals: dict[str, dict[str, float]] = {name: {} for name in names}
        for scope, tally in per_scope.items():
            for name in ancestors_of[scope]:
                bucket = totals[name]
                for op, value in tally.items():
                    bucket[op] = bucket.get(op, 0) + value
        return {name: _counter(bucket) for name, bucket in totals.items()}


def _counter(totals: dict[str, float]) -> Counter:
    """Counter(totals) less its entries of 0, filled as the dict it is: Counter's constructor goes through
    its generic update, which for the hundreds of modules of a count costs more than the sums themselves
    (dict's __new__ makes a complete, empty Counter; its __init__ only fills it)."""
    counter = Counter.__new__(Counter)
    if totals:
        dict.update(counter, {op: value for op, value in totals.items() if value > 0})
    return counter


__all__ = [
    "FlopCountAnalysis",
    "all_modules",
    "conv_flop_count",
    "elementwise_flop_counter",
    "get_shape",
    "norm_flop_counter",
]
