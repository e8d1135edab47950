"""The training loop: data already on the device, timed by the stopwatch, evaluated at intervals.

Timing (results/README.md, "Conventions"): train, eval and warm-up time are separate buckets of one
synchronized clock.

One outer loop (`run_steps`) serves every trainer mode. What differs between modes lives in two small
objects it is handed:
- a *core* says what is trained: one module (`ModuleCore`, here) or E stacked models
  (`harness.training.ensemble.EnsembleCore`): its parameters, how a batch's loss and gradients are made,
  gradient clipping, evaluation;
- a *stepper* says how a step is run: eagerly, op by op (`EagerStepper`, here), or replayed from a captured
  CUDA graph (`harness.training.graph.GraphStepper`).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from harness.data import StreamedDataset, TrainingData
from harness.data.streamed import Streamed
from harness.device import autocast
from harness.errors import ConfigError
from harness.plugins import checked_arguments, resolve
from harness.settings import TrainerSettings
from harness.training.clock import Stopwatch
from harness.training.objective import Objective, objective_for
from harness.training.schedule import lr_factor
from harness.training.spec import CurveRow, TrainingJob, TrainResult, resident

log = logging.getLogger(__name__)


def plan_steps(
    n_train: int, batch_size: int, epochs: float, max_steps: int | None, drop_last: bool = False
) -> tuple[int, int]:
    """(steps per epoch, total steps); fractional epochs round up to whole steps. With `drop_last` every
    step is a full batch and the remainder of each epoch's permutation is not trained on."""
    if batch_size <= 0:
        raise ConfigError(f"trainer.batch_size must be a positive integer, got {batch_size}")
    if not epochs > 0:
        raise ConfigError(f"trainer.epochs must be positive, got {epochs}")
    batch = min(batch_size, n_train)
    steps_per_epoch = n_train // batch if drop_last else math.ceil(n_train / batch)
    total = math.ceil(epochs * steps_per_epoch)
    if max_steps is not None:
        if max_steps <= 0:
            raise ConfigError(f"trainer.max_steps must be a positive integer or null, got {max_steps}")
        total = min(total, max_steps)
    return steps_per_epoch, total


def shuffled_batches(
    n: int, batch_size: int, seeds: int | Sequence[int], device: torch.device, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Index batches, epoch after epoch, each epoch a fresh permutation from a generator of its own.

    One seed yields (batch,) tensors; a sequence of E seeds yields (E, batch) tensors whose row i is
    exactly the sequence seed i alone would give. With `drop_last` a smaller last batch is skipped.
    """
    many = not isinstance(seeds, int)
    each = [seeds] if isinstance(seeds, int) else list(seeds)
    generators = [torch.Generator().manual_seed(int(s)) for s in each]
    full = n // batch_size
    while True:
        order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        chunks = (order if many else order[0]).split(batch_size, dim=-1)
        yield from chunks[:full] if drop_last else chunks


@torch.no_grad()
def evaluate(
    model, x, y, batch_size: int, device, dtype, objective: Objective | None = None
) -> tuple[float, float]:
    """(test error, mean test loss) over the whole set, in eval mode; the objective says what error means
    (classification error by default, RMSE for regression)."""
    return evaluate_batches(model, tensor_batches(x, y, batch_size), len(x), device, dtype, objective)


@torch.no_grad()
def evaluate_batches(
    model, batches: Iterable[tuple], n: int, device, dtype, objective: Objective | None = None
) -> tuple[float, float]:
    """`evaluate` over (x, y) batches that together hold the `n` samples of the set."""
    objective = objective or objective_for("classification")
    was_training = model.training
    model.eval()
    loss, error = summed_over(model, objective.sums, batches, device, dtype)
    model.train(was_training)
    return objective.scores(loss.item(), error.item(), n)


def tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Iterator[tuple]:
    """(x, y) in consecutive slices of `batch_size`."""
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def summed_over_batches(forward, sums, x, y, batch_size: int, device, dtype, members: tuple[int, ...] = ()):
    """(loss, error) of `forward` on (x, y), each summed over the set batch by batch under autocast;
    `members` is their shape: () for one model, (E,) for an ensemble's E."""
    return summed_over(forward, sums, tensor_batches(x, y, batch_size), device, dtype, members)


def summed_over(forward, sums, batches: Iterable[tuple], device, dtype, members: tuple[int, ...] = ()):
    """`summed_over_batches` over given (x, y) batches."""
    loss = torch.zeros(members, device=device)
    error = torch.zeros(members, device=device)
    for xb, yb in batches:
        with autocast(device, dtype):
            output = forward(xb)
        batch_loss, batch_error = sums(output, yb)
        loss += batch_loss
        error += batch_error
    return loss, error


# ------------------------------------------------------------------------------------ what is trained


class Core(Protocol):
    """What a stepper trains: `members` models (1, or E stacked), their tensors, loss and gradients."""

    members: int

    def parameters(self) -> list[torch.Tensor]: ...
    def buffers(self) -> list[torch.Tensor]: ...
    def loss_and_grads(self, idx: torch.Tensor, scale: Callable) -> torch.Tensor:
        """Loss of the batch `idx` as a (members,) fp32 tensor; gradients left in each parameter's .grad
        (`scale` applied to the loss before backward, for fp16's gradient scaler)."""

    def clip_(self, max_norm: float) -> None: ...
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, split: str = "test"
    ) -> list[tuple[float, float]]:
        """(error, loss) per member on (x, y), the `split` ("test" or "val") of the data: a core that
        reads its splits itself (a streamed Dataset's) goes by the name."""


class ModuleCore:
    """One nn.Module trained on GPU-resident (x, y): the eager and graph modes' core."""

    members = 1

    def __init__(self, model, forward, x, y, objective: Objective, device, dtype, amp: Callable = autocast):
        self.model, self.forward, self.x, self.y = model, forward, x, y
        self.objective, self.device, self.dtype, self.amp = objective, device, dtype, amp

    def parameters(self) -> list[torch.Tensor]:
        return list(self.model.parameters())

    def buffers(self) -> list[torch.Tensor]:
        return list(self.model.buffers())

    def loss_and_grads(self, idx: torch.Tensor, scale: Callable = lambda loss: loss) -> torch.Tensor:
        with self.amp(self.device, self.dtype):
            loss = self.objective.loss(self.forward(self.x[idx]), self.y[idx])
        scale(loss).backward()
        return loss.detach().float().reshape(1)

    def clip_(self, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)

    def evaluate(self, x, y, batch_size: int, split: str = "test") -> list[tuple[float, float]]:
        return [evaluate(self.model, x, y, batch_size, self.device, self.dtype, self.objective)]


class StreamedCore(ModuleCore):
    """One nn.Module trained on (x, y) batches a DataLoader reads from a map-style Dataset (its steps take
    a batch, not indices), and evaluated by reading its test split the same way."""

    def __init__(
        self, model, forward, test: Streamed, objective: Objective, device, dtype, val: Streamed | None = None
    ):
        empty = torch.empty(0)
        super().__init__(model, forward, empty, empty, objective, device, dtype)
        self.splits = {"test": test, "val": val}

    def loss_and_grads(self, idx, scale: Callable = lambda loss: loss) -> torch.Tensor:
        x, y = idx  # a batch the DataLoader read
        with self.amp(self.device, self.dtype):
            loss = self.objective.loss(self.forward(x), y)
        scale(loss).backward()
        return loss.detach().float().reshape(1)

    def evaluate(self, x, y, batch_size: int, split: str = "test") -> list[tuple[float, float]]:
        data = self.splits[split]
        if data is None:
            raise ValueError(f"no {split} split to evaluate on")
        batches = data.in_order(batch_size, self.device)
        return [evaluate_batches(self.model, batches, len(data), self.device, self.dtype, self.objective)]


# ------------------------------------------------------------------------------------ how it is stepped


class Stepper(Protocol):
    """Runs optimizer steps on a core; the outer loop only calls these."""

    # Read-only here (properties), so that a stepper may hold a more specific core, or compute loss_sum.
    @property
    def core(self) -> Core: ...
    @property
    def loss_sum(self) -> torch.Tensor:
        """(members,) training loss summed since the outer loop last zeroed it."""

    def warmup(self, steps: int) -> None:
        """Untimed steps (compilation, autotuning, graph capture), then undone: the timed run starts from
        the initialised weights, a fresh optimizer and the same RNG state."""

    def step(self, idx: torch.Tensor) -> None: ...
    def lr(self) -> float | None: ...


@dataclass
class Snapshot:
    """Weights, buffers and RNG states saved before a warm-up, restored in place after it (tensors keep
    their identity, so a compiled function or captured graph that refers to them stays valid)."""

    tensors: list[torch.Tensor]
    cpu_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None

    @classmethod
    def take(cls, core: Core, device: torch.device) -> Snapshot:
        return cls(
            [t.detach().clone() for t in (*core.parameters(), *core.buffers())],
            torch.random.get_rng_state(),
            torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        )

    @torch.no_grad()
    def restore(self, core: Core) -> None:
        for tensor, saved in zip((*core.parameters(), *core.buffers()), self.tensors, strict=True):
            tensor.copy_(saved)
        torch.random.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


class EagerStepper:
    """Plain PyTorch steps: any optimizer, LambdaLR schedule, fp16 gradient scaler, optional clipping."""

    def __init__(
        self, core: Core, optimizer, total_steps: int, settings: TrainerSettings, dtype, device, warmup_idx
    ):
        self.core, self.optimizer, self.device, self.warmup_idx = core, optimizer, device, warmup_idx
        schedule = settings.schedule
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(schedule.name, total_steps, schedule.warmup_fraction)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        self.clip = settings.grad_clip_norm
        self.loss_sum = torch.zeros(core.members, device=device)

    def step(self, idx: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.core.loss_and_grads(idx, self.scaler.scale)
        if self.clip is not None:
            self.scaler.unscale_(self.optimizer)
            self.core.clip_(self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.loss_sum += loss

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def warmup(self, steps: int) -> None:
        if steps <= 0:
            return
        saved = Snapshot.take(self.core, self.device)
        state = [copy.deepcopy(x.state_dict()) for x in (self.optimizer, self.scheduler, self.scaler)]
        for _ in range(steps):
            self.step(self.warmup_idx)
        saved.restore(self.core)
        for x, s in zip((self.optimizer, self.scheduler, self.scaler), state, strict=True):
            if s:  # a disabled scaler's state is empty
                x.load_state_dict(s)
        self.loss_sum.zero_()


def optimizer_factory(settings: TrainerSettings) -> Callable[..., torch.optim.Optimizer]:
    """The configured optimizer class as a partial: call it with the parameters it updates. Its arguments
    are checked against its signature first: one line naming the optimizer and the argument it lacks."""
    options = dict(settings.optimizer)
    target = options.pop("_target_", None)
    options.pop("_partial_", None)  # Hydra's spelling of "a partial": it always is one here
    label = f"trainer.optimizer._target_={target}"
    optimizer = resolve(target, "trainer.optimizer")
    return functools.partial(optimizer, **checked_arguments(optimizer, options, label, provided=("params",)))


# ------------------------------------------------------------------------------------ the outer loop


@dataclass(frozen=True)
class Plan:
    """The run's data on the device and its step plan, shared by every mode."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    objective: Objective
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    drop_last: bool
    n: int  # training samples (x_train's length; for a streamed Dataset, its training split's)
    # The validation split, evaluated beside the test set (None: there is none; for a streamed Dataset
    # empty tensors that say there is one, its core reading it)
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @classmethod
    def make(cls, data: TrainingData, settings: TrainerSettings, device: torch.device, drop_last: bool):
        data = resident(data, settings.mode)
        x_train, x_test = data.x_train.to(device), data.x_test.to(device)
        x_val = None if data.x_val is None else data.x_val.to(device)
        if settings.channels_last and x_train.ndim == 4:
            x_train = x_train.contiguous(memory_format=torch.channels_last)
            x_test = x_test.contiguous(memory_format=torch.channels_last)
            if x_val is not None:
                x_val = x_val.contiguous(memory_format=torch.channels_last)
        n = len(x_train)
        steps_per_epoch, total = plan_steps(
            n, settings.batch_size, settings.epochs, settings.max_steps, drop_last
        )
        return cls(
            x_train,
            data.y_train.to(device),
            x_test,
            data.y_test.to(device),
            objective_for(data.task),
            min(settings.batch_size, n),
            steps_per_epoch,
            total,
            drop_last,
            n,
            x_val,
            None if data.y_val is None else data.y_val.to(device),
        )


def place(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """Move `model` to `device` in training mode, in channels_last memory format where asked."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


class Diverged(Exception):
    """Raised by a stepper whose step cannot produce a model (a singular system): every member stops as
    diverged, with this message as the record's error."""


class _Run:
    """The state of one run_steps call: its clock, the members still training, one result per member."""

    def __init__(self, stepper: Stepper, plan: Plan, job: TrainingJob):
        self.stepper, self.plan, self.settings = stepper, plan, job.settings
        self.members = stepper.core.members
        self.watch = Stopwatch(job.device)
        self.progress, self.energy = job.progress, job.energy
        self.results = [TrainResult() for _ in range(self.members)]
        self.running = list(range(self.members))
        self.steps = self.samples = self.losses = 0
        self.eval_every = self.settings.eval_every_steps or plan.steps_per_epoch
        self.check_every = max(self.settings.log_every_steps, 1)

    def stop(self, i: int, status: str | None = None, error: str | None = None) -> None:
        """Member `i` stops here: its counters and its share (1/members) of every time bucket."""
        result = self.results[i]
        if status is not None:
            result.status, result.error = status, error
        result.steps, result.samples_seen = self.steps, self.samples
        result.train_time_s = self.watch.total("train") / self.members
        result.train_cpu_s = self.watch.cpu_total("train") / self.members
        result.eval_time_s = self.watch.total("eval") / self.members
        result.warmup_time_s = self.watch.total("warmup") / self.members

    def stop_running(self, status: str, error: str) -> None:
        log.warning(error)
        for i in self.running:
            self.stop(i, status, error)
        self.running = []

    def next_pause(self) -> int:
        """The step at which training next pauses: a loss check or an evaluation, whichever comes first."""
        steps = self.steps
        next_eval = (steps // self.eval_every + 1) * self.eval_every
        return min(self.plan.total_steps, next_eval, (steps // self.check_every + 1) * self.check_every)

    def train_until(self, end: int, batches: Iterator) -> None:
        # One energy window per evaluation interval, not per chunk: each window edge costs NVML counter
        # reads (milliseconds each; on an H100, windows per 50-step chunk slowed a small MLP's training by
        # 14%). The loss check between chunks falls inside the window; evaluation does not.
        self.energy.begin()  # no-op while the window is open
        with self.watch.segment("train"):
            while self.steps < end:
                batch = next(batches)
                self.stepper.step(batch)
                self.steps += 1
                # index batches (members, batch) or (batch,); a streamed batch is an (x, y) pair
                self.samples += len(batch[1]) if isinstance(batch, tuple) else batch.shape[-1]
                self.losses += 1

    def check_losses(self) -> list[float]:
        """Each member's mean training loss since the last evaluation; a non-finite one stops its member."""
        mean_loss = (self.stepper.loss_sum / self.losses).tolist()
        for i in [i for i in self.running if not math.isfinite(mean_loss[i])]:
            error = f"training loss became non-finite by step {self.steps}"
            log.warning(error if self.members == 1 else f"ensemble member {i}: {error}")
            self.stop(i, "diverged", error)
            self.running.remove(i)
        if self.running:
            self.progress.advance(self.steps, sum(mean_loss[i] for i in self.running) / len(self.running))
        return mean_loss

    def evaluation_due(self) -> bool:
        return self.steps % self.eval_every == 0 or self.steps == self.plan.total_steps

    def evaluate(self, mean_loss: list[float]) -> None:
        """Score the running members on the test set, and on the validation split where there is one
        (outside the energy window and the train clock)."""
        self.energy.end()
        plan, batch_size = self.plan, self.settings.eval_batch_size
        with self.watch.segment("eval"):
            scores = self.stepper.core.evaluate(plan.x_test, plan.y_test, batch_size)
            val_scores: Sequence[tuple[float | None, float | None]]
            if plan.x_val is not None and plan.y_val is not None:
                val_scores = self.stepper.core.evaluate(plan.x_val, plan.y_val, batch_size, split="val")
            else:
                val_scores = [(None, None)] * len(scores)
        rows = [
            CurveRow(
                step=self.steps,
                epoch=self.samples / self.plan.n,
                samples_seen=self.samples,
                train_loss=mean_loss[i],
                test_loss=scores[i][1],
                test_error=scores[i][0],
                train_time_s=self.watch.total("train") / self.members,
                lr=self.stepper.lr(),
                val_loss=val_scores[i][1],
                val_error=val_scores[i][0],
            )
            for i in self.running
        ]
        for i, row in zip(self.running, rows, strict=True):
            self.results[i].curve.append(row)
        self.progress.evaluated(_mean_row(rows))
        self.stepper.loss_sum.zero_()
        self.losses = 0


def run_steps(stepper: Stepper, batches: Iterator, plan: Plan, job: TrainingJob) -> list[TrainResult]:
    """Warm up, then train until the plan's steps are done, evaluating at intervals: one TrainResult per
    member. Members share the device, so each is charged its share (1/members) of every time bucket; a
    member whose loss turns non-finite stops (status diverged) while the others go on."""
    run = _Run(stepper, plan, job)
    with run.watch.segment("warmup"):
        stepper.warmup(job.settings.timing_warmup_steps)
    job.energy.start()  # after the warm-up: its start-up (codecarbon reads the hardware) is not training
    job.progress.start(plan.total_steps)
    try:
        while run.steps < plan.total_steps and run.running:
            run.train_until(run.next_pause(), batches)
            mean_loss = run.check_losses()
            if run.running and run.evaluation_due():
                run.evaluate(mean_loss)
    except Diverged as exc:
        run.stop_running("diverged", str(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C, or a signal that interrupt_on_signals turned into one
        run.stop_running(
            "interrupted", f"interrupted ({exc or 'SIGINT'}) at step {run.steps} of {plan.total_steps}"
        )
    finally:
        job.energy.end()  # no-op when closed; keeps what a diverged or interrupted run measured
        job.progress.close()
    for i in run.running:
        run.stop(i)
    return run.results


def _mean_row(rows: list[CurveRow]) -> CurveRow:
    """What progress shows for several members: their mean loss and error."""
    if len(rows) == 1:
        return rows[0]
    mean = {
        key: sum(getattr(row, key) for row in rows) / len(rows)
        for key in ("train_loss", "test_loss", "test_error")
    }
    return replace(rows[0], **mean)


def train(job: TrainingJob) -> list[TrainResult]:
    """trainer.mode=eager: train the job's model as its settings say; never raises on divergence."""
    if isinstance(job.data, StreamedDataset):
        return train_streamed(job, job.data)
    model, seed = job.only_model()
    settings, device = job.settings, job.device
    # A compiled model recompiles on a new batch shape, inside timed training: compile implies static shapes.
    plan = Plan.make(job.data, settings, device, settings.drop_last_for(static_shapes=settings.compile))
    place(model, device, settings.channels_last)
    optimizer = optimizer_factory(settings)(model.parameters())
    forward = torch.compile(model) if settings.compile else model
    core = ModuleCore(model, forward, plan.x_train, plan.y_train, plan.objective, device, job.dtype)
    warmup_idx = torch.arange(plan.batch_size, device=device)
    stepper = EagerStepper(core, optimizer, plan.total_steps, settings, job.dtype, device, warmup_idx)
    batches = shuffled_batches(plan.n, plan.batch_size, seed, device, plan.drop_last)
    return run_steps(stepper, batches, plan, job)


def train_streamed(job: TrainingJob, data: StreamedDataset) -> list[TrainResult]:
    """trainer.mode=eager on a map-style Dataset: the same seeded permutations, steps, clock and evaluations
    as in-memory data, but each batch is read by a DataLoader (its reading is inside the training time:
    it is part of what training this data costs)."""
    model, seed = job.only_model()
    settings, device = job.settings, job.device
    drop_last = settings.drop_last_for(static_shapes=settings.compile)
    n = data.n_train
    steps_per_epoch, total = plan_steps(
        n, settings.batch_size, settings.epochs, settings.max_steps, drop_last
    )
    batch_size = min(settings.batch_size, n)
    # The plan's tensors stay empty: the core reads its batches, and its test split, through the DataLoader.
    empty = torch.empty(0)
    objective = objective_for(data.task)
    val = None if data.val is None else empty
    plan = Plan(
        empty, empty, empty, empty, objective, batch_size, steps_per_epoch, total, drop_last, n, val, val
    )
    place(model, device, settings.channels_last)
    optimizer = optimizer_factory(settings)(model.parameters())
    forward = torch.compile(model) if settings.compile else model
    core = StreamedCore(model, forward, data.test, objective, device, job.dtype, val=data.val)
    warmup_batch = next(data.train.batches([torch.arange(batch_size)], device))
    stepper = EagerStepper(core, optimizer, total, settings, job.dtype, device, warmup_batch)
    order = shuffled_batches(n, batch_size, seed, torch.device("cpu"), drop_last)
    batches = data.train.batches(order, device)
    if settings.channels_last:  # as Plan.make lays out in-memory images, batch by batch here
        batches = ((_channels_last(x), y) for x, y in batches)
    return run_steps(stepper, batches, plan, job)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
