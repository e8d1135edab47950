"""trainer.mode=ensemble: E models of one shape, differing in seed, trained together in one vmapped step.

Small models leave a GPU mostly idle; stacking E of them (torch.func.stack_module_state) and running one
vmapped forward (torch.func.vmap) and one backward trains all E for about the launches of one.
The stacked parameters are ordinary leaf tensors of shape (E, ...), so the configured torch.optim
optimizer and LR schedule update them as they would one model: for element-wise optimizers (SGD, Adam, ...)
that is exactly E independent optimizers. Gradient clipping is per member. On a CUDA device the vmapped
step is captured in a CUDA graph like trainer.mode=graph (harness.training.graph); elsewhere it runs
eagerly. fp16 is refused: one gradient scaler would skip a step for every member when one overflows.

Member i is what an eager run with seed `seed + i` would train: its weights are initialised from that
seed and (trainer.ensemble_data_order=own, the default) it shuffles with it; `shared` gives every member the
first seed's order, so only the initialisation differs. All members share the data subsample
(data.subsample_seed). Each member gets its own TrainResult, and train.py writes each as its own run.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from harness.device import autocast
from harness.errors import ConfigError
from harness.record_parts import EnergyFields
from harness.training.graph import GraphStepper, GraphUnavailable, graph_amp, graph_blocker, warn_fallback
from harness.training.loop import (
    EagerStepper,
    Plan,
    optimizer_factory,
    place,
    run_steps,
    shuffled_batches,
    summed_over_batches,
)
from harness.training.objective import Objective
from harness.training.spec import TrainingJob, TrainResult

log = logging.getLogger(__name__)

# Optimizers that act element by element (no norm over a whole tensor): on stacked parameters they are
# E independent optimizers.
ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad")
ENERGY_SHARE_TAG = "shared_ensemble"
_UNMEASURED_METHODS = ("not_used", "disabled")


class EnsembleCore:
    """E stacked copies of one architecture (the Core protocol of loop.py)."""

    def __init__(self, models, x, y, objective: Objective, device, dtype, shared_order: bool, amp=autocast):
        self.members = len(models)
        for model in models:
            model.to(device).train()
        self.models = models
        params, buffers = stack_module_state(models)
        self.params, self.buffers_ = params, buffers
        self.base = copy.deepcopy(models[0]).to("meta")
        self.x, self.y, self.objective, self.device, self.dtype, self.amp = (
            x,
            y,
            objective,
            device,
            dtype,
            amp,
        )
        data_dim = None if shared_order else 0

        def loss_of(p, b, xb, yb):
            with amp(device, dtype):
                output = functional_call(self.base, (p, b), (xb,))
            return objective.loss(output, yb)

        # vmap over the forward and loss only; ordinary autograd differentiates the batched ops (the
        # members' losses are independent, so the gradient of their sum is each member's own gradient).
        # torch.func.grad inside vmap would need batch rules for every backward op, and BatchNorm's
        # backward has none for mixed precision.
        self._losses = vmap(loss_of, in_dims=(0, 0, data_dim, data_dim), randomness="different")
        self._forward = vmap(
            lambda p, b, xb: functional_call(self.base, (p, b), (xb,)),
            in_dims=(0, 0, None),
            randomness="different",
        )
        self._sums = vmap(objective.sums, in_dims=(0, None))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def buffers(self) -> list[torch.Tensor]:
        return list(self.buffers_.values())

    def loss_and_grads(self, idx: torch.Tensor, scale: Callable = lambda loss: loss) -> torch.Tensor:
        losses = self._losses(self.params, self.buffers_, self.x[idx], self.y[idx])
        scale(losses.sum()).backward()
        return losses.detach().float()

    @torch.no_grad()
    def clip_(self, max_norm: float) -> None:
        """Scale each member's gradients to a global norm of at most `max_norm` (clip_grad_norm_ each)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([g.flatten(1).float().norm(dim=1) for g in grads], dim=1).norm(dim=1)
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.ndim - 1)).to(g.dtype))

    @torch.no_grad()
    def evaluate(self, x, y, batch_size: int, split: str = "test") -> list[tuple[float, float]]:
        self.base.eval()
        loss, error = summed_over_batches(
            lambda xb: self._forward(self.params, self.buffers_, xb),
            self._sums,
            x,
            y,
            batch_size,
            self.device,
            self.dtype,
            (self.members,),
        )
        self.base.train()
        return [
            self.objective.scores(lo, er, len(x))
            for lo, er in zip(loss.tolist(), error.tolist(), strict=True)
        ]

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the trained weights into the member modules (they end trained, as in eager mode)."""
        for i, model in enumerate(self.models):
            for name, tensor in (*model.named_parameters(), *model.named_buffers()):
                stacked = self.params.get(name, self.buffers_.get(name))
                if stacked is not None:
                    tensor.copy_(stacked[i])


def check_ensemble(job: TrainingJob) -> None:
    """One-line ConfigErrors for settings an ensemble cannot honour."""
    if job.dtype is torch.float16:
        raise ConfigError(
            "trainer.mode=ensemble cannot use precision=fp16: one gradient scaler would skip every member's "
            "step when one overflows; use trainer.precision=bf16 or fp32"
        )
    name = optimizer_factory(job.settings)([torch.zeros(1, requires_grad=True)]).__class__.__name__
    if name not in ELEMENTWISE_OPTIMIZERS:
        raise ConfigError(
            f"trainer.mode=ensemble needs an element-wise optimizer ({', '.join(ELEMENTWISE_OPTIMIZERS)}); "
            f"{name} would mix members' statistics; pick one of those or use trainer.mode=eager"
        )


def train_ensemble(job: TrainingJob) -> list[TrainResult]:
    """Train the job's models (built from its seeds, one each) together; one TrainResult per member, each
    charged 1/E of the time. The member modules end with their trained weights."""
    settings, device, dtype, models = job.settings, job.device, job.dtype, list(job.models)
    check_ensemble(job)
    shared = settings.ensemble_data_order == "shared"
    plan = Plan.make(job.data, settings, device, settings.drop_last_for(static_shapes=True))
    for model in models:
        place(model, device, settings.channels_last)
    order_seeds = job.seeds[0] if shared else list(job.seeds)
    warmup_idx = torch.arange(plan.batch_size, device=device)
    if not shared:
        warmup_idx = warmup_idx.expand(len(models), -1).contiguous()

    def train_with(stepper) -> list[TrainResult]:
        batches = shuffled_batches(plan.n, plan.batch_size, order_seeds, device, plan.drop_last)
        results = run_steps(stepper, batches, plan, job)
        stepper.core.write_back()
        return results

    reason = graph_blocker(settings, device, dtype, plan.n)
    if reason is None:
        core = EnsembleCore(
            models, plan.x_train, plan.y_train, plan.objective, device, dtype, shared, graph_amp
        )
        try:
            results = train_with(GraphStepper(core, settings, plan.total_steps, device, warmup_idx))
            for result in results:
                result.cuda_graph = True
            return results
        except GraphUnavailable as exc:
            reason = str(exc)
    note = None
    if device.type == "cuda":  # on a CPU, eager vmap is simply how an ensemble runs
        note = warn_fallback("ensemble", "ensemble without a CUDA graph", reason)
    core = EnsembleCore(models, plan.x_train, plan.y_train, plan.objective, device, dtype, shared)
    optimizer = optimizer_factory(settings)(core.parameters())
    results = train_with(EagerStepper(core, optimizer, plan.total_steps, settings, dtype, device, warmup_idx))
    for result in results:
        result.fallback = note
    return results


def share_energy(energy: EnergyFields, members: int) -> EnergyFields:
    """One member's energy: the window's quantities that add up (marked shared_by_members in the schema)
    split evenly, each measured method tagged, power left whole-device (a job of one model keeps its
    energy as it is)."""
    if members == 1:
        return energy
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(energy):
        value = getattr(energy, f.name)
        if value is None:
            continue
        if f.metadata.get("shared_by_members"):
            changes[f.name] = value / members
        elif f.name.startswith("energy_method_") and value not in _UNMEASURED_METHODS:
            changes[f.name] = f"{value}+{ENERGY_SHARE_TAG}"
    return dataclasses.replace(energy, **changes)
