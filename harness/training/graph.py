"""CUDA-graph training steps: forward, backward and optimizer step captured once, replayed every step.

Small models are launch-bound: an eager step spends most of its time in Python and kernel launches, not
in the GPU's arithmetic. Capturing the whole step removes both (a 784-128-128-10 MLP: ~12× more steps/s).

How a step is made capturable:
- data stays on the GPU; each step's shuffled indices are copied into one static index buffer and the batch
  is gathered inside the graph, so every replay reads new samples from fixed addresses. Shapes must be
  static, so the smaller last batch of an epoch is dropped (trainer.drop_last, null means "drop" here);
- the learning rate is a 0-dim tensor the optimizer reads on the device (fused SGD, Adam or AdamW); the
  graph sets it from a precomputed schedule table indexed by an on-device step counter, so the schedule is
  exactly eager mode's `lr_factor`;
- the training loss is summed into a static buffer inside the graph (the outer loop reads it at checks);
- warm-up runs a few steps on a side stream (lazy initialisation, optimizer state), then the graph is captured
  and replayed once; then weights, buffers, RNG and optimizer state are restored *in place* (the graph holds
  their addresses), so the timed run starts exactly where an eager run would;
- BatchNorm's running statistics update in place inside the graph; autocast runs with its cache off
  (required under capture); evaluation runs eagerly, outside the graph.

Where capture is impossible (no CUDA device, fp16's gradient scaler, a smaller last batch, an optimizer
without a device-side learning rate, or an op that fails to capture), `graph_blocker` / `GraphUnavailable`
say why and the caller falls back to eager steps with one warning.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import AbstractContextManager

import torch

from harness.device import autocast
from harness.settings import TrainerSettings
from harness.training.loop import (
    Core,
    ModuleCore,
    Plan,
    Snapshot,
    optimizer_factory,
    place,
    run_steps,
    shuffled_batches,
)
from harness.training.loop import train as train_eager
from harness.training.schedule import lr_factor
from harness.training.spec import TrainingJob, TrainResult

log = logging.getLogger(__name__)

# Optimizers whose learning rate can be a device tensor inside a captured step (fused implementations), and
# whose state reset to zeros in place equals a fresh optimizer's.
CAPTURABLE_OPTIMIZERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
SIDE_STREAM_WARMUP_STEPS = 3


class GraphUnavailable(RuntimeError):
    """This run's step cannot be captured; the message says why."""


def graph_amp(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """Autocast without its weight-cast cache, which must be off while a graph is captured."""
    return autocast(device, dtype, cache=False)


def graph_blocker(settings: TrainerSettings, device: torch.device, dtype: torch.dtype, n_train: int):
    """Why this run's steps cannot be captured in a CUDA graph, or None when they can (probably: an op may
    still fail to capture, which GraphStepper.warmup reports). Needs no data on the device, so a run that
    falls back never holds the graph attempt's copy beside eager's."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, and this run trains on {device}"
    if dtype is torch.float16:
        return "fp16's gradient scaler reads its overflow check on the host every step; use bf16"
    batch = min(settings.batch_size, n_train)  # as Plan.make
    if not settings.drop_last_for(static_shapes=True) and n_train % batch:
        return (
            f"trainer.drop_last=false leaves a smaller last batch ({n_train} % {batch} samples), "
            "and a graph needs one batch shape; drop it with trainer.drop_last=null or true"
        )
    optimizer = optimizer_factory(settings)([torch.zeros(1, requires_grad=True)])
    if type(optimizer) not in CAPTURABLE_OPTIMIZERS:
        names = ", ".join(f"torch.optim.{c.__name__}" for c in CAPTURABLE_OPTIMIZERS)
        return (
            f"{type(optimizer).__name__} has no device-side learning rate here; graph mode supports {names}"
        )
    if any(group.get("dampening", 0) for group in optimizer.param_groups):
        return "SGD with dampening: its first step differs from a reset momentum buffer"
    return None


def _device_lr_optimizer(factory, params: list[torch.Tensor], lr: torch.Tensor) -> torch.optim.Optimizer:
    """The configured optimizer, fused, reading its learning rate from the device tensor `lr`; capturable
    where the class has that flag (Adam and AdamW refuse capture without it; SGD has none and needs none)."""
    try:
        return factory(params, lr=lr, fused=True, capturable=True)
    except TypeError:
        return factory(params, lr=lr, fused=True)


class GraphStepper:
    """Steps of a core replayed from one captured CUDA graph (the Stepper protocol of loop.py).

    `capture=False` runs the very same step body eagerly instead of replaying it (any device): what the
    graph would replay — schedule table, fused optimizer, in-place reset — checkable on a CPU.
    """

    def __init__(
        self,
        core: Core,
        settings: TrainerSettings,
        total_steps: int,
        device: torch.device,
        warmup_idx,
        capture: bool = True,
    ):
        self.core, self.device, self.capture = core, device, capture
        factory = optimizer_factory(settings)
        base_lr = float(factory(core.parameters()).param_groups[0]["lr"])
        factor = lr_factor(settings.schedule.name, total_steps, settings.schedule.warmup_fraction)
        # Long enough for warm-up and capture steps too (they are undone, the counter is reset).
        table = [base_lr * factor(s) for s in range(total_steps + 1)]
        table += [table[-1]] * (2 * SIDE_STREAM_WARMUP_STEPS + settings.timing_warmup_steps + 2)
        self.lr_table_host = table
        self.lr_table = torch.tensor(table, device=device)
        self.lr_now = torch.tensor(table[0], device=device)
        try:
            self.optimizer = _device_lr_optimizer(factory, core.parameters(), self.lr_now)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise GraphUnavailable(f"the optimizer cannot take a device-side learning rate ({exc})") from None
        self.clip = settings.grad_clip_norm
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self.static_idx = warmup_idx.clone()
        self.loss_sum = torch.zeros(core.members, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.replay = self._eager_step
        self.steps = 0

    def _body(self) -> None:
        """One whole training step on the static index buffer: what is captured."""
        self.lr_now.copy_(self.lr_table.index_select(0, self.counter).squeeze(0))
        loss = self.core.loss_and_grads(self.static_idx, lambda value: value)
        if self.clip is not None:
            self.core.clip_(self.clip)
        self.optimizer.step()
        self.loss_sum += loss
        self.counter += 1

    @torch.no_grad()
    def _reset_optimizer(self) -> None:
        """A fresh optimizer's state, in place: zero moments and step counts (see CAPTURABLE_OPTIMIZERS)."""
        for state in self.optimizer.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.zero_()

    def _eager_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._body()

    def warmup(self, steps: int) -> None:
        saved = Snapshot.take(self.core, self.device)
        if not self.capture:
            for _ in range(max(steps, SIDE_STREAM_WARMUP_STEPS)):
                self._eager_step()
            self._undo(saved)
            return
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(max(steps, SIDE_STREAM_WARMUP_STEPS)):
                    self.optimizer.zero_grad(set_to_none=True)
                    self._body()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.optimizer.zero_grad(set_to_none=True)  # backward inside the graph allocates static grads
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._body()
            graph.replay()
            torch.cuda.synchronize(self.device)
        except Exception as exc:  # capture failed (an unsupported op, a host sync): train eagerly instead
            torch.cuda.synchronize(self.device)
            saved.restore(self.core)
            raise GraphUnavailable(
                f"capture failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from exc
        self.graph, self.replay = graph, graph.replay
        self._undo(saved)

    def _undo(self, saved: Snapshot) -> None:
        """Back to the state before warm-up, in place: weights, buffers, RNG, optimizer, counters."""
        saved.restore(self.core)
        self._reset_optimizer()
        self.counter.zero_()
        self.loss_sum.zero_()

    def step(self, idx: torch.Tensor) -> None:
        self.static_idx.copy_(idx)
        self.replay()
        self.steps += 1

    def lr(self) -> float:
        return self.lr_table_host[self.steps]


def warn_fallback(requested: str, ran: str, reason: str) -> str:
    """The one warning a run gives when it cannot run as asked; returns the note kept in the record."""
    note = f"trainer.mode={requested} ran as {ran}: {reason}"
    log.warning(note)
    return note


def train_graph(job: TrainingJob) -> list[TrainResult]:
    """trainer.mode=graph: like loop.train, with each step replayed from a CUDA graph; falls back to eager
    (one warning, result.mode='eager', result.fallback says why) where the step cannot be captured."""
    reason = graph_blocker(job.settings, job.device, job.dtype, job.data.n_train)
    if reason is None:
        try:
            return _train_captured(job)
        except GraphUnavailable as exc:
            reason = str(exc)
    note = warn_fallback("graph", "eager", reason)
    return [dataclasses.replace(result, mode="eager", fallback=note) for result in train_eager(job)]


def _train_captured(job: TrainingJob) -> list[TrainResult]:
    """train_graph's captured path; its device copies of the data go with its frame when capture fails."""
    model, seed = job.only_model()
    settings, device = job.settings, job.device
    plan = Plan.make(job.data, settings, device, settings.drop_last_for(static_shapes=True))
    place(model, device, settings.channels_last)
    core = ModuleCore(model, model, plan.x_train, plan.y_train, plan.objective, device, job.dtype, graph_amp)
    warmup_idx = torch.arange(plan.batch_size, device=device)
    stepper = GraphStepper(core, settings, plan.total_steps, device, warmup_idx)
    batches = shuffled_batches(plan.n, plan.batch_size, seed, device, plan.drop_last)
    return [dataclasses.replace(result, cuda_graph=True) for result in run_steps(stepper, batches, plan, job)]
