"""The run record: one JSON object per run, its fields typed and documented here and only here.

`results/README.md` carries the same table (`schema_markdown()` renders it; a test keeps the two equal).
Fields that a measurement has not filled stay null: never a placeholder number.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("completed", "diverged", "failed", "interrupted")


def _f(doc: str, default: Any = None, unit: str = "") -> Any:
    """A record field with its documentation attached (rendered into results/README.md)."""
    return field(default=default, metadata={"doc": doc, "unit": unit})


def _dict(doc: str) -> Any:
    return field(default_factory=dict, metadata={"doc": doc, "unit": ""})


@dataclass
class RunRecord:
    # identity and outcome
    run_id: str = _f("unique id: UTC start time + random suffix")
    status: str = _f("completed | diverged | failed | interrupted")
    error: str | None = _f("why the run did not complete (null when completed)")
    schema_version: int = _f("version of this schema", SCHEMA_VERSION)
    started_at: str | None = _f("UTC start time, ISO 8601")
    config_hash: str | None = _f("digest of the result-relevant config (resume skips completed hashes)")
    # what was trained, on what
    model: str | None = _f("registered model name")
    model_width: int | None = _f("model.width")
    model_depth: int | None = _f("model.depth")
    params: int | None = _f("trainable parameters", unit="count")
    data: str | None = _f("dataset name")
    data_source: str | None = _f(
        "where the data was actually read (a directory: data.root's, or a fallback such as Debian's copy) "
        "or the call that generated it"
    )
    data_fraction: float | None = _f("data.fraction requested")
    n_train: int | None = _f("training samples actually used", unit="samples")
    n_train_full: int | None = _f("training-set size before subsampling", unit="samples")
    n_test: int | None = _f("test samples", unit="samples")
    n_val: int | None = _f(
        "validation samples, held out of the training pool before subsampling (data.val_fraction); "
        "null or 0 when there is no validation split",
        unit="samples",
    )
    input_shape: list[int] | None = _f("shape of one input sample")
    num_classes: int | None = _f("number of classes (1 output for regression)")
    task: str | None = _f("classification | regression")
    seed: int | None = _f("the run's seed")
    seeds: dict[str, int] = _dict("every seed used: init/data order, subsample, dataset generator")
    # how it was trained
    epochs: float | None = _f("epochs requested", unit="epochs")
    epochs_completed: float | None = _f("epochs actually trained (steps × batch / n_train)", unit="epochs")
    steps: int | None = _f("optimizer steps taken (timing warm-up excluded)", unit="steps")
    samples_seen: int | None = _f("training samples processed", unit="samples")
    batch_size: int | None = _f("trainer.batch_size", unit="samples")
    trainer_mode: str | None = _f("trainer.mode: how the steps were run (eager, ...)")
    trainer_fallback: str | None = _f(
        "why the run could not train as trainer.mode asked and what ran instead (graph → eager on a CPU); "
        "trainer_mode then names what ran; null when it ran as asked"
    )
    cuda_graph: bool | None = _f("the training steps were replayed from a captured CUDA graph")
    ensemble_size: int | None = _f(
        "models trained together in one vmapped step (trainer.mode=ensemble), each its own record; "
        "its times, energy and hardware burden are the ensemble's divided by ensemble_size",
        unit="count",
    )
    ensemble_index: int | None = _f("this member's place in its ensemble (seed = first seed + index)")
    precision: str | None = _f("fp32 | bf16 | fp16")
    device: str | None = _f("torch device used: cpu, cuda, cuda:N")
    device_name: str | None = _f("GPU model, or CPU model for device cpu")
    device_count: int | None = _f("devices used by the run", unit="count")
    cpu_threads: int | None = _f("torch intra- and inter-op threads (trainer.cpu_threads)", unit="count")
    cpu_threads_policy: str | None = _f("how cpu_threads was chosen: trainer.cpu_threads, or auto's reasons")
    usable_cores: int | None = _f(
        "cores this process may use: its CPU affinity, capped by a cgroup quota", unit="count"
    )
    # time (one monotonic clock, device synchronized before each reading)
    train_time_s: float | None = _f("training time: warm-up and evaluation excluded", unit="s")
    eval_time_s: float | None = _f("test-set evaluation time", unit="s")
    warmup_time_s: float | None = _f("untimed warm-up steps (compile, autotune), undone afterwards", unit="s")
    wall_time_s: float | None = _f("whole run, data loading to record", unit="s")
    # contention: what else the machine did while this run trained (harness/training/threads.py)
    cpu_time_s: float | None = _f("this process's CPU time (all threads) in the training segments", unit="s")
    cpu_utilization: float | None = _f("cpu_time_s / (train_time_s × cpu_threads)", unit="fraction")
    machine_load_others: float | None = _f(
        "cores kept busy by other processes during training: /proc/stat busy time less this process's, "
        "over the wall time (null where /proc/stat is unreadable)",
        unit="cores",
    )
    contended: bool | None = _f(
        "the times are not of this computation alone: cpu_threads + machine_load_others exceeded "
        "usable_cores by 0.25 core or more, or other processes used the GPU (energy_gpu_shared)"
    )
    contended_reason: str | None = _f("why contended is true, in one line")
    # results
    error_metric: str | None = _f("what test_error measures: classification_error (1 − accuracy) | rmse")
    test_error: float | None = _f("final test error, as error_metric says", unit="error_metric")
    best_test_error: float | None = _f("lowest test error over the evaluations", unit="error_metric")
    test_loss: float | None = _f("final test loss: cross-entropy (nats), or MSE for regression")
    val_error: float | None = _f(
        "final validation error, as error_metric says: what tuning selects on (never test_error)",
        unit="error_metric",
    )
    val_loss: float | None = _f("final validation loss, as test_loss")
    chance_error: float | None = _f(
        "test error of predicting the most frequent training class (regression: the training targets' "
        "mean): what a model that learned nothing scores",
        unit="error_metric",
    )
    collapsed: bool | None = _f(
        "the run completed but learned nothing usable: test_error within 1% (relative) of chance_error "
        "or worse; warned about, and left out of fits unless collapsed=keep"
    )
    train_loss: float | None = _f("mean training loss since the previous evaluation, at the end", unit="nats")
    target_error: float | None = _f("trainer.target_error", unit="fraction")
    time_to_target_s: float | None = _f("train time when test error first reached target_error", unit="s")
    steps_to_target: int | None = _f("steps when test error first reached target_error", unit="steps")
    # compute (filled by the compute-accounting issue)
    macs_forward: float | None = _f("multiply-accumulates of one forward pass, per sample", unit="MAC")
    flops_forward: float | None = _f("2 × macs_forward (the paper's FLOP), per sample", unit="FLOP")
    flops_forward_torch: float | None = _f(
        "torch.utils.flop_counter's forward FLOPs per sample (matmul/conv/attention only), a cross-check",
        unit="FLOP",
    )
    network_operations: float | None = _f(
        "flops_forward × fp_bp_ratio × epochs_completed × n_train (the paper's definition)", unit="FLOP"
    )
    flops_train_measured: float | None = _f(
        "one real training step (forward, backward, optimizer) counted by torch, per sample × samples_seen",
        unit="FLOP",
    )
    flops_train_method: str | None = _f(
        "how network_operations was obtained: the paper's estimate, or a solver's exact formula"
    )
    fp_bp_ratio_measured: float | None = _f("measured training-step FLOPs / forward FLOPs", unit="ratio")
    n_processors: int | None = _f("processors counted in the hardware burden", unit="count")
    peak_flops: float | None = _f("peak FLOP/s per processor at the run's precision", unit="FLOP/s")
    peak_source: str | None = _f("where peak_flops comes from (table row source, override, unknown)")
    hardware_burden: float | None = _f("n_processors × peak_flops × train_time_s", unit="FLOP")
    utilization: float | None = _f("network_operations / hardware_burden", unit="fraction")
    achieved_flops_per_s: float | None = _f(
        "flops_train_measured (or a solver's exact FLOPs) / train_time_s", unit="FLOP/s"
    )
    mfu: float | None = _f(
        "model FLOP utilization: achieved_flops_per_s / (n_processors × peak_flops)", unit="fraction"
    )
    # energy, carbon, cost (filled by the energy issue)
    energy_gpu_j: float | None = _f("GPU energy over the training window", unit="J")
    energy_cpu_j: float | None = _f("CPU energy over the training window", unit="J")
    energy_ram_j: float | None = _f("RAM energy over the training window", unit="J")
    energy_total_j: float | None = _f("sum of the energies above", unit="J")
    energy_total_kwh: float | None = _f("energy_total_j in kWh", unit="kWh")
    energy_method_gpu: str | None = _f("how energy_gpu_j was obtained")
    energy_method_cpu: str | None = _f("how energy_cpu_j was obtained")
    energy_method_ram: str | None = _f("how energy_ram_j was obtained")
    energy_gpu_shared: bool | None = _f("another process used the GPU during the window")
    power_mean_w: float | None = _f("mean GPU power over the window", unit="W")
    power_peak_w: float | None = _f("peak GPU power over the window", unit="W")
    energy_gpu_j_codecarbon: float | None = _f("codecarbon's GPU energy, a cross-check only", unit="J")
    emissions_kg: float | None = _f("emissions of energy_total", unit="kg CO2e")
    carbon_intensity_g_per_kwh: float | None = _f("grid carbon intensity used", unit="g/kWh")
    cost_usd_energy: float | None = _f("energy × electricity price", unit="USD")
    cost_usd_cloud: float | None = _f("device-hours × cloud price", unit="USD")
    cost_usd_paper: float | None = _f("hardware burden at the paper's USD per FLOP", unit="USD")
    co2_kg_paper: float | None = _f("hardware burden at the paper's CO2 per FLOP", unit="kg CO2e")
    energy_gpu_mig: bool | None = _f(
        "the GPU is in MIG mode: energy and power are whole-GPU, not the instance's"
    )
    energy_gpu_error_j: float | None = _f(
        "worst-case bound on the error of energy_gpu_j from the NVML counter's ~100 ms refresh "
        "(null for nvml_power_integral)",
        unit="J",
    )
    energy_codecarbon_fraction: float | None = _f(
        "training-window time / codecarbon's tracked time; codecarbon's totals are scaled by it",
        unit="fraction",
    )
    carbon_intensity_source: str | None = _f("where carbon_intensity_g_per_kwh comes from")
    energy_meter_s: float | None = _f(
        "wall time of the energy meter's window edges (device sync, NVML counter reads): the cost of "
        "measuring, spent outside train_time_s",
        unit="s",
    )
    pue: float | None = _f(
        "power usage effectiveness applied to emissions_kg and cost_usd_energy", unit="ratio"
    )
    electricity_price_usd_per_kwh: float | None = _f(
        "electricity price used for cost_usd_energy", unit="USD/kWh"
    )
    electricity_price_source: str | None = _f("where electricity_price_usd_per_kwh comes from")
    cloud_price_usd_per_hour: float | None = _f(
        "cloud price per device-hour for cost_usd_cloud", unit="USD/h"
    )
    cloud_price_source: str | None = _f("the cloud price table row used (device, instance, region, source)")
    # provenance
    versions: dict[str, str | None] = _dict("harness, torch, CUDA, cuDNN, Python, numpy, platform")
    git_commit: str | None = _f("commit of the harness checkout, when it is a git checkout")
    git_dirty: bool | None = _f("uncommitted changes in that checkout")
    # Where the scheduler ran it: the one exception to "no hostname", so that a run can be matched to its
    # SLURM job (squeue, sacct, the submitit logs) and a bad node found. Null outside SLURM.
    slurm_job_id: str | None = _f(
        "SLURM job id; for an array task the array's id, so the task is <slurm_job_id>_<slurm_array_task_id>"
    )
    slurm_array_task_id: int | None = _f("SLURM array task id (null outside an array)")
    slurm_node: str | None = _f("SLURM node the run ran on (SLURMD_NODENAME), the only host name recorded")
    config: dict[str, Any] = _dict("the resolved Hydra config of the run")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Build from a stored record; keys of a newer schema are ignored, missing ones are null."""
        if not isinstance(data, dict):
            raise TypeError(f"a run record is a JSON object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def schema_markdown() -> str:
    """The record's fields as a Markdown table, as printed in results/README.md."""
    rows = ["| field | unit | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(RunRecord):
        # A bare | would split the Markdown cell.
        doc = f.metadata["doc"].replace("|", "\\|")
        rows.append(f"| `{f.name}` | {f.metadata['unit']} | {doc} |")
    return "\n".join(rows)
