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
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from hydra.utils import instantiate

from harness.data import Dataset
from harness.energy import EnergyMeter
from harness.errors import ConfigError
from harness.progress import LogProgress, Progress
from harness.training.clock import Stopwatch
from harness.training.device import autocast
from harness.training.objective import Objective, objective_for
from harness.training.schedule import lr_factor

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    status: str = "completed"  # completed | diverged | interrupted
    error: str | None = None
    steps: int = 0
    samples_seen: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0
    train_cpu_s: float = 0.0  # this process's CPU time over the training segments (all threads)
    eval_time_s: float = 0.0
    warmup_time_s: float = 0.0
    # Training FLOPs when the trainer knows them exactly (closed-form solvers: a formula in
    # harness/compute); None means they are counted from the model's measured step, as for SGD.
    flops_train: float | None = None
    flops_train_method: str | None = None
    # What actually ran, when it differs from trainer.mode (a graph run that fell back to eager), and why.
    mode: str | None = None
    fallback: str | None = None
    cuda_graph: bool = False  # the steps were replayed from a captured CUDA graph

    def last(self, key: str) -> float | None:
        return self.curve[-1][key] if self.curve else None

    def best_test_error(self) -> float | None:
        errors = [row["test_error"] for row in self.curve if row["test_error"] is not None]
        return min(errors) if errors else None

    def first_reaching(self, target: float | None) -> dict[str, Any] | None:
        """The first evaluation whose test error is at or below `target` (time-to-target)."""
        if target is None:
            return None
        return next((row for row in self.curve if row["test_error"] <= target), None)


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
    generators = [torch.Generator().manual_seed(int(s)) for s in (seeds if many else [seeds])]
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
    objective = objective or objective_for("classification")
    was_training = model.training
    model.eval()
    loss, error = summed_over_batches(model, objective.sums, x, y, batch_size, device, dtype)
    model.train(was_training)
    return objective.scores(loss.item(), error.item(), len(x))


def summed_over_batches(forward, sums, x, y, batch_size: int, device, dtype, members: tuple[int, ...] = ()):
    """(loss, error) of `forward` on (x, y), each summed over the set batch by batch under autocast;
    `members` is their shape: () for one model, (E,) for an ensemble's E."""
    loss = torch.zeros(members, device=device)
    error = torch.zeros(members, device=device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
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
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[float, float]]:
        """(test error, test loss) per member."""


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

    def evaluate(self, x, y, batch_size: int) -> list[tuple[float, float]]:
        return [evaluate(self.model, x, y, batch_size, self.device, self.dtype, self.objective)]


# ------------------------------------------------------------------------------------ how it is stepped


class Stepper(Protocol):
    """Runs optimizer steps on a core; the outer loop only calls these."""

    core: Core
    loss_sum: torch.Tensor  # (members,) training loss summed since the outer loop last zeroed it

    def warmup(self, steps: int) -> None:
        """Untimed steps (compilation, autotuning, graph capture), then undone: the timed run starts from
        the initialised weights, a fresh optimizer and the same RNG state."""

    def step(self, idx: torch.Tensor) -> None: ...
    def lr(self) -> float: ...


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

    def __init__(self, core: Core, optimizer, total_steps: int, cfg: Any, dtype, device, warmup_idx):
        self.core, self.optimizer, self.device, self.warmup_idx = core, optimizer, device, warmup_idx
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(cfg.schedule.name, total_steps, float(cfg.schedule.warmup_fraction))
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        self.clip = None if cfg.grad_clip_norm is None else float(cfg.grad_clip_norm)
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
        return self.scheduler.get_last_lr()[0]

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

    @property
    def n(self) -> int:
        return len(self.x_train)

    @classmethod
    def make(
        cls, data: Dataset, cfg: Any, device: torch.device, drop_last: bool, channels_last: bool = False
    ):
        x_train, x_test = data.x_train.to(device), data.x_test.to(device)
        if channels_last and x_train.ndim == 4:
            x_train = x_train.contiguous(memory_format=torch.channels_last)
            x_test = x_test.contiguous(memory_format=torch.channels_last)
        n = len(x_train)
        steps_per_epoch, total = plan_steps(
            n, int(cfg.batch_size), float(cfg.epochs), cfg.max_steps, drop_last
        )
        return cls(
            x_train,
            data.y_train.to(device),
            x_test,
            data.y_test.to(device),
            objective_for(data.task),
            min(int(cfg.batch_size), n),
            steps_per_epoch,
            total,
            drop_last,
        )


def place(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """Move `model` to `device` in training mode, in channels_last memory format where asked."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def drop_last_for(cfg: Any, static_shapes: bool) -> bool:
    """trainer.drop_last, where null means: drop the smaller last batch only where shapes must be static."""
    value = cfg.get("drop_last")
    return static_shapes if value is None else bool(value)


def run_steps(
    stepper: Stepper,
    batches: Iterator[torch.Tensor],
    plan: Plan,
    cfg: Any,
    device: torch.device,
    *,
    progress: Progress | None = None,
    energy: EnergyMeter | None = None,
) -> list[TrainResult]:
    """Warm up, then train until the plan's steps are done, evaluating at intervals: one TrainResult per
    member. Members share the device, so each is charged its share (1/members) of every time bucket; a
    member whose loss turns non-finite stops (status diverged) while the others go on."""
    members = stepper.core.members
    eval_every = int(cfg.eval_every_steps or plan.steps_per_epoch)
    check_every = max(int(cfg.log_every_steps), 1)
    total_steps = plan.total_steps
    watch = Stopwatch(device)
    with watch.segment("warmup"):
        stepper.warmup(int(cfg.timing_warmup_steps))

    energy = energy or EnergyMeter.off()
    energy.start()  # after the warm-up: its start-up (codecarbon reads the hardware) is not training
    progress = progress or LogProgress(logging.DEBUG)
    progress.start(total_steps)
    results = [TrainResult() for _ in range(members)]
    running = list(range(members))
    steps = samples = losses = 0

    def stop(i: int, status: str | None = None, error: str | None = None) -> None:
        result = results[i]
        if status is not None:
            result.status, result.error = status, error
        result.steps, result.samples_seen = steps, samples
        result.train_time_s = watch.total("train") / members
        result.train_cpu_s = watch.cpu_total("train") / members
        result.eval_time_s = watch.total("eval") / members
        result.warmup_time_s = watch.total("warmup") / members

    try:
        while steps < total_steps:
            next_eval = (steps // eval_every + 1) * eval_every
            chunk_end = min(total_steps, next_eval, (steps // check_every + 1) * check_every)
            # One energy window per evaluation interval, not per chunk: each window edge costs NVML
            # counter reads (milliseconds each; on an H100, windows per 50-step chunk slowed a small MLP's
            # training by 14%). The loss check between chunks falls inside the window; evaluation does not.
            energy.begin()  # no-op while the window is open
            with watch.segment("train"):
                while steps < chunk_end:
                    idx = next(batches)
                    stepper.step(idx)
                    steps += 1
                    samples += idx.shape[-1]
                    losses += 1
            mean_loss = (stepper.loss_sum / losses).tolist()
            for i in [i for i in running if not math.isfinite(mean_loss[i])]:
                error = f"training loss became non-finite by step {steps}"
                log.warning(error if members == 1 else f"ensemble member {i}: {error}")
                stop(i, "diverged", error)
                running.remove(i)
            if not running:
                break
            progress.advance(steps, sum(mean_loss[i] for i in running) / len(running))
            if steps % eval_every == 0 or steps == total_steps:
                energy.end()
                with watch.segment("eval"):
                    scores = stepper.core.evaluate(plan.x_test, plan.y_test, int(cfg.eval_batch_size))
                rows = {
                    i: {
                        "step": steps,
                        "epoch": samples / plan.n,
                        "samples_seen": samples,
                        "train_loss": mean_loss[i],
                        "test_loss": scores[i][1],
                        "test_error": scores[i][0],
                        "train_time_s": watch.total("train") / members,
                        "lr": stepper.lr(),
                    }
                    for i in running
                }
                for i, row in rows.items():
                    results[i].curve.append(row)
                progress.evaluated(_mean_row(list(rows.values())))
                stepper.loss_sum.zero_()
                losses = 0
    except KeyboardInterrupt as exc:  # Ctrl-C, or a signal that interrupt_on_signals turned into one
        error = f"interrupted ({exc or 'SIGINT'}) at step {steps} of {total_steps}"
        log.warning(error)
        for i in running:
            stop(i, "interrupted", error)
        running = []
    finally:
        energy.end()  # no-op when closed; keeps what a diverged or interrupted run measured
        progress.close()
    for i in running:
        stop(i)
    return results


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What progress shows for several members: their mean loss and error."""
    if len(rows) == 1:
        return rows[0]
    mean = {
        key: sum(row[key] for row in rows) / len(rows) for key in ("train_loss", "test_loss", "test_error")
    }
    return {**rows[0], **mean}


def train(
    model: torch.nn.Module,
    data: Dataset,
    cfg: Any,
    device: torch.device,
    dtype: torch.dtype,
    *,
    seed: int,
    progress: Progress | None = None,
    energy: EnergyMeter | None = None,
) -> TrainResult:
    """Train `model` on `data` as `cfg` (the trainer config group) says; never raises on divergence."""
    channels_last = bool(cfg.get("channels_last", False))
    # A compiled model recompiles on a new batch shape, inside timed training: compile implies static shapes.
    plan = Plan.make(data, cfg, device, drop_last_for(cfg, static_shapes=bool(cfg.compile)), channels_last)
    place(model, device, channels_last)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    forward = torch.compile(model) if cfg.compile else model
    core = ModuleCore(model, forward, plan.x_train, plan.y_train, plan.objective, device, dtype)
    warmup_idx = torch.arange(plan.batch_size, device=device)
    stepper = EagerStepper(core, optimizer, plan.total_steps, cfg, dtype, device, warmup_idx)
    batches = shuffled_batches(plan.n, plan.batch_size, seed, device, plan.drop_last)
    return run_steps(stepper, batches, plan, cfg, device, progress=progress, energy=energy)[0]
