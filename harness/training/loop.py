"""The training loop: data already on the device, timed by the stopwatch, evaluated at intervals.

Timing follows DESIGN.md: train, eval and warm-up time are separate buckets of one synchronized clock.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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
    eval_time_s: float = 0.0
    warmup_time_s: float = 0.0
    # Training FLOPs when the trainer knows them exactly (closed-form solvers: a formula in
    # harness/compute); None means they are counted from the model's measured step, as for SGD.
    flops_train: float | None = None
    flops_train_method: str | None = None

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


def plan_steps(n_train: int, batch_size: int, epochs: float, max_steps: int | None) -> tuple[int, int]:
    """(steps per epoch, total steps); fractional epochs round up to whole steps."""
    if batch_size <= 0:
        raise ConfigError(f"trainer.batch_size must be a positive integer, got {batch_size}")
    if not epochs > 0:
        raise ConfigError(f"trainer.epochs must be positive, got {epochs}")
    steps_per_epoch = math.ceil(n_train / min(batch_size, n_train))
    total = math.ceil(epochs * steps_per_epoch)
    if max_steps is not None:
        if max_steps <= 0:
            raise ConfigError(f"trainer.max_steps must be a positive integer or null, got {max_steps}")
        total = min(total, max_steps)
    return steps_per_epoch, total


def _shuffled_batches(n: int, batch_size: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Index batches, epoch after epoch, each epoch a fresh permutation from a generator of its own."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator).to(device)
        yield from order.split(batch_size)


@torch.no_grad()
def evaluate(
    model, x, y, batch_size: int, device, dtype, objective: Objective | None = None
) -> tuple[float, float]:
    """(test error, mean test loss) over the whole set, in eval mode; the objective says what error means
    (classification error by default, RMSE for regression)."""
    objective = objective or objective_for("classification")
    was_training = model.training
    model.eval()
    error = torch.zeros((), device=device)
    loss = torch.zeros((), device=device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with autocast(device, dtype):
            output = model(xb)
        batch_loss, batch_error = objective.sums(output, yb)
        loss += batch_loss
        error += batch_error
    model.train(was_training)
    return objective.scores(loss.item(), error.item(), len(x))


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
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    n = len(x_train)
    batch_size = min(int(cfg.batch_size), n)
    steps_per_epoch, total_steps = plan_steps(n, int(cfg.batch_size), float(cfg.epochs), cfg.max_steps)
    eval_every = int(cfg.eval_every_steps or steps_per_epoch)
    check_every = max(int(cfg.log_every_steps), 1)
    objective = objective_for(data.task)

    model.to(device).train()
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(cfg.schedule.name, total_steps, float(cfg.schedule.warmup_fraction))
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    forward = torch.compile(model) if cfg.compile else model

    def step(idx: torch.Tensor) -> torch.Tensor:
        with autocast(device, dtype):
            loss = objective.loss(forward(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.grad_clip_norm))
        scaler.step(optimizer)
        scaler.update()
        return loss.detach().float()

    watch = Stopwatch(device)
    result = TrainResult()
    with watch.segment("warmup"):
        _untimed_warmup(step, model, optimizer, scaler, int(cfg.timing_warmup_steps), batch_size, device)

    energy = energy or EnergyMeter.off()
    energy.start()  # after the warm-up: its start-up (codecarbon reads the hardware) is not training
    progress = progress or LogProgress(logging.DEBUG)
    progress.start(total_steps)
    batches = _shuffled_batches(n, batch_size, seed, device)
    loss_sum = torch.zeros((), device=device)
    losses = 0
    try:
        while result.steps < total_steps:
            next_eval = (result.steps // eval_every + 1) * eval_every
            stop = min(total_steps, next_eval, (result.steps // check_every + 1) * check_every)
            with watch.segment("train"), energy.window():
                while result.steps < stop:
                    idx = next(batches)
                    loss_sum += step(idx)
                    scheduler.step()
                    result.steps += 1
                    result.samples_seen += len(idx)
                    losses += 1
            if not torch.isfinite(loss_sum):
                result.status = "diverged"
                result.error = f"training loss became non-finite by step {result.steps}"
                log.warning(result.error)
                break
            progress.advance(result.steps, loss_sum.item() / losses)
            if result.steps % eval_every == 0 or result.steps == total_steps:
                with watch.segment("eval"):
                    test_error, test_loss = evaluate(
                        model, x_test, y_test, int(cfg.eval_batch_size), device, dtype, objective
                    )
                row = {
                    "step": result.steps,
                    "epoch": result.samples_seen / n,
                    "samples_seen": result.samples_seen,
                    "train_loss": loss_sum.item() / losses,
                    "test_loss": test_loss,
                    "test_error": test_error,
                    "train_time_s": watch.total("train"),
                    "lr": scheduler.get_last_lr()[0],
                }
                result.curve.append(row)
                progress.evaluated(row)
                loss_sum.zero_()
                losses = 0
    except KeyboardInterrupt:
        result.status = "interrupted"
        result.error = f"interrupted by the user at step {result.steps} of {total_steps}"
        log.warning(result.error)
    finally:
        progress.close()
    result.train_time_s = watch.total("train")
    result.eval_time_s = watch.total("eval")
    result.warmup_time_s = watch.total("warmup")
    return result


def _untimed_warmup(step, model, optimizer, scaler, steps: int, batch_size: int, device) -> None:
    """Run `steps` real training steps (compilation, autotuning, allocator growth), then undo them.

    Weights, buffers, optimizer and scaler state and the RNGs are restored in place, so the timed run
    starts from exactly the initialised model and any compiled graph stays valid.
    """
    if steps <= 0:
        return
    saved = (
        copy.deepcopy(model.state_dict()),
        copy.deepcopy(optimizer.state_dict()),
        copy.deepcopy(scaler.state_dict()) if scaler.is_enabled() else None,
        torch.random.get_rng_state(),
        torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
    )
    idx = torch.arange(batch_size, device=device)
    for _ in range(steps):
        step(idx)
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    if saved[2] is not None:
        scaler.load_state_dict(saved[2])
    torch.random.set_rng_state(saved[3])
    if saved[4] is not None:
        torch.cuda.set_rng_state_all(saved[4])
