"""One record builder for every way of training: `harness train`, and `harness.track` with its callbacks.

A record is built in two moves:
- `new_record`, before training: identity, config and its hash, provenance, device, precision and threads;
  the caller passes what it alone knows (a dataset's size, a trainer's mode) as further record fields.
- `finish_record`, after training: the outcome and clock (a TrainResult), then the typed parts of the record
  (harness.results.schema): compute from the FLOPs counted before training, energy from the meter, cost
  from both, contention from the machine's samples. Both paths call it, so a field cannot be filled in one
  and missing in the other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from harness.compute.accounting import ForwardCompute, compute_fields
from harness.compute.hardware import PeakFlops
from harness.device import device_name
from harness.energy import cost_fields
from harness.results.index import config_hash
from harness.results.provenance import provenance
from harness.results.schema import EnergyFields, RunRecord
from harness.settings import EnergySettings
from harness.training.spec import TrainResult
from harness.training.threads import MachineSample, contention_fields


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def new_record(
    config: dict[str, Any], *, device: torch.device, precision: str, threads: tuple[int, str], **head: Any
) -> RunRecord:
    """A record of a run that is about to train (status `failed` until it is finished): `config` is what
    sweeps vary and fits group by; `threads` is (torch's CPU threads, how they were chosen); `head` sets
    further record fields (an unknown name is a TypeError)."""
    record = RunRecord(
        run_id=new_run_id(),
        status="failed",
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config,
        config_hash=config_hash(config),
        precision=precision,
        device=str(device),
        device_name=device_name(device),
        device_count=1,
        cpu_threads=threads[0],
        cpu_threads_policy=threads[1],
        **head,
    )
    return record.fill(provenance())


@dataclass(frozen=True)
class Measured:
    """What every model of a job shares for its record: compute counted before training (None: not
    counted), the peak speed, the energy of the training windows, the machine before and after training."""

    counted: ForwardCompute | None
    peak: PeakFlops
    energy: EnergyFields
    machine: tuple[MachineSample, MachineSample]
    threads: int
    fp_bp_ratio: float
    energy_settings: EnergySettings
    device: torch.device


def finish_record(record: RunRecord, result: TrainResult, measured: Measured) -> RunRecord:
    """Fill `record` from what training measured: outcome, samples, times, compute, energy, cost and
    contention."""
    record.status, record.error = result.status, result.error
    record.steps, record.samples_seen, record.tokens_seen = (
        result.steps,
        result.samples_seen,
        result.tokens_seen,
    )
    if record.n_train:
        record.epochs_completed = result.samples_seen / record.n_train
    record.train_time_s, record.eval_time_s = result.train_time_s, result.eval_time_s
    record.warmup_time_s = result.warmup_time_s
    if measured.counted is not None:
        record.fill(
            compute_fields(
                measured.counted,
                samples_seen=result.samples_seen,
                fp_bp_ratio=measured.fp_bp_ratio,
                device=measured.device,
                peak=measured.peak,
                train_time_s=result.train_time_s,
                exact_train_flops=result.flops_train,
                exact_method=result.flops_train_method,
            )
        )
    energy = measured.energy
    cost = cost_fields(
        energy_total_kwh=energy.energy_total_kwh,
        carbon_intensity_g_per_kwh=energy.carbon_intensity_g_per_kwh,
        hardware_burden=record.hardware_burden,
        device_name=record.device_name,
        device_count=record.device_count,
        train_time_s=record.train_time_s,
        settings=measured.energy_settings,
    )
    contention = contention_fields(
        *measured.machine,
        threads=measured.threads,
        train_time_s=result.train_time_s,
        train_cpu_s=result.train_cpu_s,
        gpu_shared=energy.energy_gpu_shared,
    )
    return record.fill(energy, cost, contention)
