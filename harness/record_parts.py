"""The typed parts of the run record (harness.results.schema.RunRecord inherits them): what the compute
accounting, the energy meter, the cost tables, the contention sampler and the provenance read each produce.

A module of its own, free of imports beyond the standard library, so that what measures (the energy meter,
harness measure) can name its fields without loading the results store (pandas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def documented(doc: str, default: Any = None, unit: str = "") -> Any:
    """A record field with its documentation attached (rendered into results/README.md)."""
    return field(default=default, metadata={"doc": doc, "unit": unit})


def _shared(doc: str, unit: str = "") -> Any:
    """An energy field that adds up over an ensemble's members, which share it out evenly."""
    return field(default=None, metadata={"doc": doc, "unit": unit, "shared_by_members": True})


def documented_dict(doc: str) -> Any:
    """A record field holding a dict (config, versions, seeds), documented like `documented`."""
    return field(default_factory=dict, metadata={"doc": doc, "unit": ""})


@dataclass
class ContentionFields:
    """What else the machine did while this run trained (harness/training/threads.py measures it)."""

    usable_cores: int | None = documented(
        "cores this process may use: its CPU affinity, capped by a cgroup quota", unit="count"
    )
    cpu_time_s: float | None = documented(
        "this process's CPU time (all threads) in the training segments", unit="s"
    )
    cpu_utilization: float | None = documented("cpu_time_s / (train_time_s × cpu_threads)", unit="fraction")
    machine_load_others: float | None = documented(
        "cores kept busy by other processes during training: /proc/stat busy time less this process's, "
        "over the wall time (null where /proc/stat is unreadable)",
        unit="cores",
    )
    contended: bool | None = documented(
        "the times are not of this computation alone: cpu_threads + machine_load_others exceeded "
        "usable_cores by 0.25 core or more, or other processes used the GPU (energy_gpu_shared)"
    )
    contended_reason: str | None = documented("why contended is true, in one line")


@dataclass
class ComputeFields:
    """FLOPs counted before training, priced after it from what ran (harness/compute/accounting.py)."""

    macs_forward: float | None = documented(
        "multiply-accumulates of one forward pass, per sample", unit="MAC"
    )
    flops_forward: float | None = documented("2 × macs_forward (the paper's FLOP), per sample", unit="FLOP")
    flops_forward_per_token: float | None = documented(
        "flops_forward / tokens per sample of the counted input (language models)", unit="FLOP"
    )
    flops_forward_torch: float | None = documented(
        "torch.utils.flop_counter's forward FLOPs per sample (matmul/conv/attention only), a cross-check",
        unit="FLOP",
    )
    attention_causal: str | None = documented(
        "how causal attention is counted in macs_forward: full (the dense products computed; Kaplan's and "
        "Chinchilla's convention) or half (FlashAttention's)"
    )
    network_operations: float | None = documented(
        "flops_forward × fp_bp_ratio × epochs_completed × n_train (the paper's definition)", unit="FLOP"
    )
    flops_train_measured: float | None = documented(
        "one real training step (forward, backward, optimizer) counted by torch, per sample × samples_seen",
        unit="FLOP",
    )
    flops_train_method: str | None = documented(
        "how network_operations was obtained: the paper's estimate, or a solver's exact formula"
    )
    fp_bp_ratio_measured: float | None = documented(
        "measured training-step FLOPs / forward FLOPs", unit="ratio"
    )
    n_processors: int | None = documented("processors counted in the hardware burden", unit="count")
    peak_flops: float | None = documented("peak FLOP/s per processor at the run's precision", unit="FLOP/s")
    peak_source: str | None = documented("where peak_flops comes from (table row source, override, unknown)")
    hardware_burden: float | None = documented("n_processors × peak_flops × train_time_s", unit="FLOP")
    utilization: float | None = documented("network_operations / hardware_burden", unit="fraction")
    achieved_flops_per_s: float | None = documented(
        "flops_train_measured (or a solver's exact FLOPs) / train_time_s", unit="FLOP/s"
    )
    mfu: float | None = documented(
        "model FLOP utilization: achieved_flops_per_s / (n_processors × peak_flops)", unit="fraction"
    )


@dataclass
class EnergyFields:
    """Energy of the training windows, each figure with its method (harness/energy/meter.py measures it)."""

    energy_gpu_j: float | None = _shared("GPU energy over the training window", unit="J")
    energy_cpu_j: float | None = _shared("CPU energy over the training window", unit="J")
    energy_ram_j: float | None = _shared("RAM energy over the training window", unit="J")
    energy_total_j: float | None = _shared("sum of the energies above", unit="J")
    energy_total_kwh: float | None = _shared("energy_total_j in kWh", unit="kWh")
    energy_method_gpu: str | None = documented("how energy_gpu_j was obtained")
    energy_method_cpu: str | None = documented("how energy_cpu_j was obtained")
    energy_method_ram: str | None = documented("how energy_ram_j was obtained")
    energy_gpu_shared: bool | None = documented("another process used the GPU during the window")
    power_mean_w: float | None = documented("mean GPU power over the window", unit="W")
    power_peak_w: float | None = documented("peak GPU power over the window", unit="W")
    energy_gpu_j_codecarbon: float | None = _shared("codecarbon's GPU energy, a cross-check only", unit="J")
    carbon_intensity_g_per_kwh: float | None = documented("grid carbon intensity used", unit="g/kWh")
    energy_gpu_mig: bool | None = documented(
        "the GPU is in MIG mode: energy and power are whole-GPU, not the instance's"
    )
    energy_gpu_error_j: float | None = _shared(
        "worst-case bound on the error of energy_gpu_j from the NVML counter's ~100 ms refresh "
        "(null for nvml_power_integral)",
        unit="J",
    )
    energy_codecarbon_fraction: float | None = documented(
        "training-window time / codecarbon's tracked time; codecarbon's totals are scaled by it",
        unit="fraction",
    )
    carbon_intensity_source: str | None = documented("where carbon_intensity_g_per_kwh comes from")
    energy_meter_s: float | None = _shared(
        "wall time of the energy meter's window edges (device sync, NVML counter reads): the cost of "
        "measuring, spent outside train_time_s",
        unit="s",
    )


@dataclass
class CostFields:
    """Carbon and cost: the paper's conversion of hardware burden, and from the measured energy
    (harness/energy/cost.py)."""

    emissions_kg: float | None = documented("emissions of energy_total", unit="kg CO2e")
    cost_usd_energy: float | None = documented("energy × electricity price", unit="USD")
    cost_usd_cloud: float | None = documented("device-hours × cloud price", unit="USD")
    cost_usd_paper: float | None = documented("hardware burden at the paper's USD per FLOP", unit="USD")
    co2_kg_paper: float | None = documented("hardware burden at the paper's CO2 per FLOP", unit="kg CO2e")
    pue: float | None = documented(
        "power usage effectiveness applied to emissions_kg and cost_usd_energy", unit="ratio"
    )
    electricity_price_usd_per_kwh: float | None = documented(
        "electricity price used for cost_usd_energy", unit="USD/kWh"
    )
    electricity_price_source: str | None = documented("where electricity_price_usd_per_kwh comes from")
    cloud_price_usd_per_hour: float | None = documented(
        "cloud price per device-hour for cost_usd_cloud", unit="USD/h"
    )
    cloud_price_source: str | None = documented(
        "the cloud price table row used (device, instance, region, source)"
    )


@dataclass
class ProvenanceFields:
    """What produced the record (harness/results/provenance.py): never the hostname but the SLURM node's."""

    versions: dict[str, str | None] = documented_dict("harness, torch, CUDA, cuDNN, Python, numpy, platform")
    git_commit: str | None = documented("commit of the harness checkout, when it is a git checkout")
    git_dirty: bool | None = documented("uncommitted changes in that checkout")
    # Where the scheduler ran it: the one exception to "no hostname", so that a run can be matched to its
    # SLURM job (squeue, sacct, the submitit logs) and a bad node found. Null outside SLURM.
    slurm_job_id: str | None = documented(
        "SLURM job id; for an array task the array's id, so the task is <slurm_job_id>_<slurm_array_task_id>"
    )
    slurm_array_task_id: int | None = documented("SLURM array task id (null outside an array)")
    slurm_node: str | None = documented(
        "SLURM node the run ran on (SLURMD_NODENAME), the only host name recorded"
    )


RecordPart = ContentionFields | ComputeFields | EnergyFields | CostFields | ProvenanceFields
