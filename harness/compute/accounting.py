"""A run's compute fields: counted before training (on copies), priced after it from what actually ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.compute.flops import count_flops, torch_forward_flops
from harness.compute.hardware import PeakFlops, count_processors, hardware_burden
from harness.compute.training import StepFlops, measure_train_step, network_operations
from harness.record_parts import ComputeFields


@dataclass(frozen=True)
class ForwardCompute:
    """Per-sample forward cost (fvcore with harness's handles, and torch's count) and one training step."""

    macs_forward: float
    flops_forward: float
    flops_forward_torch: float
    step: StepFlops | None  # None where no training step could be counted (a user's own loop: harness.track)
    attention_causal: str = "full"  # how causal attention was counted (harness.compute.attention)
    tokens_per_sample: int | None = None  # a language model's sequence length in the counted input


def count_run_compute(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    make_optimizer: Callable[..., torch.optim.Optimizer],
    dtype: torch.dtype,
    *,
    strict: bool = True,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> ForwardCompute:
    """Count on `x[:1]` (forward) and on the batch (x, y) (one training step with `loss_fn`, cross-entropy
    by default); the model is not changed."""
    report = count_flops(model, x[:1], strict=strict)
    return ForwardCompute(
        macs_forward=report.macs_per_sample,
        flops_forward=report.flops_per_sample,
        flops_forward_torch=torch_forward_flops(model, x[:1]),
        step=measure_train_step(model, make_optimizer, x, y, dtype, loss_fn=loss_fn),
        attention_causal=report.attention_causal,
    )


PAPER_ESTIMATE = "flops_forward × fp_bp_ratio × epochs × n_train"


def compute_fields(
    counted: ForwardCompute,
    *,
    samples_seen: int,
    fp_bp_ratio: float,
    device: torch.device,
    peak: PeakFlops,
    train_time_s: float,
    exact_train_flops: float | None = None,
    exact_method: str | None = None,
) -> ComputeFields:
    """The record's compute columns for a run that processed `samples_seen` training samples.

    `exact_train_flops` (a closed-form solver's formula, named by `exact_method`) replaces the paper's
    estimate of the training compute where the trainer knows it exactly. Achieved FLOP/s and MFU use the
    measured training FLOPs (the exact ones for a solver); without a counted step they stay null."""
    exact = exact_train_flops is not None
    step = None if exact else counted.step
    measured = None if step is None else step.per_sample * samples_seen
    # The paper's epochs × n_train is the samples seen (so a loop that does not say its training-set size,
    # harness.track without n_train, is charged what it reported): one "epoch" over samples_seen.
    net_ops = (
        exact_train_flops
        if exact
        else network_operations(counted.flops_forward, fp_bp_ratio, 1.0, samples_seen)
    )
    burden = hardware_burden(count_processors(device), peak, train_time_s, net_ops)
    train_flops = exact_train_flops if exact else measured
    return ComputeFields(
        macs_forward=counted.macs_forward,
        flops_forward=counted.flops_forward,
        flops_forward_torch=counted.flops_forward_torch,
        attention_causal=counted.attention_causal,
        flops_forward_per_token=counted.flops_forward / counted.tokens_per_sample
        if counted.tokens_per_sample
        else None,
        network_operations=net_ops,
        flops_train_method=(exact_method or "exact") if exact else PAPER_ESTIMATE,
        # A solver runs no gradient step, so a counted SGD step would describe work that never happened.
        flops_train_measured=measured,
        fp_bp_ratio_measured=None if step is None else step.fp_bp_ratio,
        n_processors=burden.n_processors,
        peak_flops=burden.peak_flops,
        peak_source=burden.peak_source,
        hardware_burden=burden.hardware_burden,
        utilization=burden.utilization,
        achieved_flops_per_s=train_flops / train_time_s if train_flops is not None and train_time_s else None,
        # burden = processors × peak × time, so this is achieved FLOP/s over the processors' peak.
        mfu=train_flops / burden.hardware_burden
        if train_flops is not None and burden.hardware_burden
        else None,
    )
