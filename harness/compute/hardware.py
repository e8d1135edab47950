"""Peak FLOP/s of the device a run trains on, and the paper's hardware burden built from it.

Thompson et al. define hardware burden = processors × peak FLOP/s (at the precision used) × training time,
and utilization = network operations / hardware burden. A peak we cannot source is reported as unknown
(None), never guessed: a made-up peak would make every burden and utilization built on it look like a fact.

GPU peaks come from ``peak_flops.csv`` (vendor datasheet/whitepaper numbers, dense, no sparsity). Each row's
``match`` is a case-insensitive regex searched in the name torch/NVML reports, and the FIRST row whose regex
matches decides the device, so rows for more specific names (H100 NVL, H100 PCIe) sit above broader ones
(H100 ... HBM3, H200). A device with no row for the requested precision (V100 and T4 have no bf16) is unknown
at that precision rather than falling through to another device's row.

CPU peaks come from a formula, cores × clock × FLOPs/cycle/core, spelled out in the returned source string.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from harness.device import cpu_model_name, device_name
from harness.errors import ConfigError

PEAK_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
UNKNOWN = "unknown"
OVERRIDE_SOURCE = "override (hardware.peak_flops)"

# /proc/cpuinfo flags that decide the CPU formula; kept in this order in CpuInfo.simd_flags.
SIMD_FLAGS = (
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_fp16",
    "avx2",
    "fma",
    "avx",
    "sse4_2",
    "asimd",
    "neon",
)
_CPUINFO = Path("/proc/cpuinfo")
_CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


@dataclass(frozen=True)
class CpuInfo:
    """What the CPU formula needs.

    ``cores`` is physical cores when /proc/cpuinfo says (unique physical id/core id pairs), else logical
    CPUs: hyper-threads share one core's vector units, so counting them would double the peak.
    ``max_clock_hz`` prefers cpufreq's max (turbo) clock; /proc/cpuinfo "cpu MHz" is the current or, under
    a hypervisor, nominal clock, so a peak from it can sit below the real turbo peak (``clock_source`` says
    which was used). ``fma_units`` None means "assume" (see ``_vector_plan``); set it when the part's count of
    vector FMA pipes is known to differ (e.g. 1 on many Xeon Silver/Bronze and client AVX-512 parts).
    """

    model: str
    cores: int
    logical_cpus: int
    max_clock_hz: float | None
    simd_flags: tuple[str, ...]
    vendor: str | None = None
    cpu_family: int | None = None
    clock_source: str = UNKNOWN
    fma_units: int | None = None


@dataclass(frozen=True)
class PeakFlops:
    """A peak FLOP/s and where it came from; ``value`` None and ``source`` 'unknown' when not found."""

    value: float | None
    source: str
    device: str | None


@dataclass(frozen=True)
class HardwareBurden:
    """The paper's hardware burden (FLOP) and utilization for one run; None where an input is unknown."""

    n_processors: int
    peak_flops: float | None
    peak_source: str
    train_time_s: float
    hardware_burden: float | None
    utilization: float | None


def _check_precision(precision: str) -> str:
    name = str(precision).strip().lower()
    if name not in PEAK_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision} has no peak FLOP/s; use one of {', '.join(PEAK_PRECISIONS)}"
        )
    return name


def _sci(x: float) -> str:
    """2596146000.0 → '2.596e9': short enough to read inside a formula string."""
    text = f"{x:.4g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


# --------------------------------------------------------------------------------------------------- CPU


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU (blocks separated by blank lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _max_clock(blocks: list[dict[str, str]], cpufreq_max: Path) -> tuple[float | None, str]:
    try:
        khz = float(cpufreq_max.read_text().strip())
        if khz > 0:
            return khz * 1e3, f"{cpufreq_max} (max clock)"
    except (OSError, ValueError):
        pass
    mhz = []
    for block in blocks:
        try:
            mhz.append(float(block["cpu mhz"]))
        except (KeyError, ValueError):
            continue
    if mhz and max(mhz) > 0:
        return max(mhz) * 1e6, "/proc/cpuinfo cpu MHz (current or nominal clock, not max turbo)"
    return None, UNKNOWN


def detect_cpu(cpuinfo: Path = _CPUINFO, cpufreq_max: Path = _CPUFREQ_MAX) -> CpuInfo:
    """Read the CPU's model, cores, clock and SIMD flags; off Linux, the clock is unknown (so is the peak)."""
    logical_os = os.cpu_count() or 1
    try:
        blocks = _cpuinfo_blocks(cpuinfo.read_text(errors="replace"))
    except OSError:
        blocks = []
    if not blocks:
        return CpuInfo(
            model=cpu_model_name(),
            cores=logical_os,
            logical_cpus=logical_os,
            max_clock_hz=None,
            simd_flags=(),
        )

    processors = [b for b in blocks if "processor" in b]
    logical = len(processors) or logical_os
    core_ids = {(b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b}
    cores = min(len(core_ids), logical) if core_ids else logical

    first = processors[0] if processors else blocks[0]
    # x86 calls the list "flags", arm64 "Features".
    present = set((first.get("flags") or first.get("features") or "").split())
    simd = tuple(flag for flag in SIMD_FLAGS if flag in present)
    family = first.get("cpu family")
    clock, clock_source = _max_clock(blocks, cpufreq_max)
    model = first.get("model name") or cpu_model_name()
    return CpuInfo(
        model=model,
        cores=cores,
        logical_cpus=logical,
        max_clock_hz=clock,
        simd_flags=simd,
        vendor=first.get("vendor_id"),
        cpu_family=int(family) if family and family.isdigit() else None,
        clock_source=clock_source,
    )


def _vector_plan(cpu: CpuInfo) -> tuple[int, int, str] | None:
    """(fp32 lanes per vector op, FMA units per core, label) from the widest SIMD the flags show.

    Assumed FMA units when ``cpu.fma_units`` is None: 2 for AVX-512 and AVX2+FMA cores (every Intel
    server core since Haswell except parts with one AVX-512 pipe, and AMD Zen 1-5) and for Arm NEON/ASIMD
    server cores (Neoverse N1/N2 have two 128-bit pipes; V1/V2 and Apple cores have more, so this is low
    there). Without FMA (plain AVX, SSE) a core issues one add and one mul per cycle: 1 unit counted twice.
    AMD family 25 with AVX-512 is Zen 4, whose 512-bit ops run on 256-bit pipes: 8 lanes, not 16.
    """
    flags = set(cpu.simd_flags)
    if "avx512f" in flags:
        if cpu.vendor == "AuthenticAMD" and cpu.cpu_family == 25:
            lanes, units, label = 8, 2, "avx512f on Zen 4's 256-bit pipes"
        else:
            lanes, units, label = 16, 2, "avx512f"
    elif "avx2" in flags and "fma" in flags:
        lanes, units, label = 8, 2, "avx2+fma"
    elif "avx" in flags:
        lanes, units, label = 8, 1, "avx without fma: 1 add + 1 mul"
    elif "sse4_2" in flags:
        lanes, units, label = 4, 1, "sse: 1 add + 1 mul"
    elif "asimd" in flags or "neon" in flags:
        lanes, units, label = 4, 2, "neon/asimd"
    else:
        return None
    if cpu.fma_units is not None:
        units, label = cpu.fma_units, f"{label}, fma_units set to {cpu.fma_units}"
    return lanes, units, label


def cpu_peak_flops(cpu: CpuInfo, precision: str, cores: int | None = None) -> tuple[float | None, str]:
    """cores × clock × (2 FLOP per FMA × lanes × FMA units), with the numbers spelled out in the source.

    ``cores`` overrides ``cpu.cores`` (``peak_flops_for`` passes the cores torch actually uses).
    bf16/fp16 are priced at the fp32 rate: without bf16 hardware PyTorch computes them in fp32, and where
    avx512_bf16/amx is present its higher rate is not modelled, so the peak is then a floor — the source says
    so, because utilization against it may be overstated.
    """
    precision = _check_precision(precision)
    n = cpu.cores if cores is None else cores
    plan = _vector_plan(cpu)
    if not n or n < 1 or cpu.max_clock_hz is None or cpu.max_clock_hz <= 0 or plan is None:
        return None, UNKNOWN
    lanes, units, label = plan
    per_cycle = 2 * lanes * units
    value = n * cpu.max_clock_hz * per_cycle
    source = (
        f"cpu formula: {n} cores × {_sci(cpu.max_clock_hz)} Hz × {per_cycle} FLOP/cycle "
        f"({label}: {lanes} lanes × {units} FMA units × 2); clock from {cpu.clock_source}"
    )
    if precision == "tf32":
        source += "; tf32 is a GPU format, priced at the CPU's fp32 rate"
    elif precision in ("bf16", "fp16"):
        fast = [f for f in cpu.simd_flags if f.endswith(("_bf16", "_fp16"))]
        if fast:
            source += (
                f"; {precision} priced at the fp32 rate although {'/'.join(fast)} is present, "
                "so this peak may be low and utilization high"
            )
        else:
            source += f"; {precision} priced at the fp32 rate (no {precision} vector hardware flagged)"
    return value, source


# --------------------------------------------------------------------------------------------------- GPU


def load_peak_table() -> list[dict]:
    """The rows of peak_flops.csv in file order (order matters: first matching regex wins)."""
    text = resources.files("harness.compute").joinpath("peak_flops.csv").read_text(encoding="utf-8")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        rows.append({**row, "peak_flops": float(row["peak_flops"])})
    return rows


def lookup_peak(device_name: str, precision: str, table: list[dict] | None = None) -> PeakFlops:
    """Datasheet peak for a GPU name at a precision; the first row whose regex matches picks the device."""
    precision = _check_precision(precision)
    rows = load_peak_table() if table is None else table
    device = next((r["device"] for r in rows if re.search(r["match"], device_name, re.IGNORECASE)), None)
    if device is None:
        return PeakFlops(None, UNKNOWN, None)
    for row in rows:
        if row["device"] == device and row["precision"] == precision:
            return PeakFlops(float(row["peak_flops"]), row["source"], device)
    return PeakFlops(None, UNKNOWN, device)


def gpu_names() -> list[str]:
    """Names of the visible CUDA devices, as torch reports them (empty without CUDA)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


# ---------------------------------------------------------------------------------------------- burden


def _check_override(override: object) -> float:
    if (
        isinstance(override, bool)
        or not isinstance(override, numbers.Real)
        or not math.isfinite(override)
        or override <= 0
    ):
        raise ConfigError(
            f"hardware.peak_flops={override} is not a positive FLOP/s figure; "
            "set it to the device's peak, e.g. hardware.peak_flops=3.12e14, or leave it null"
        )
    return float(override)


def peak_flops_for(device: torch.device, precision: str, override: float | None = None) -> PeakFlops:
    """Peak FLOP/s for training on ``device`` at ``precision``: override, else table (GPU) or formula (CPU).

    On the CPU only the cores torch's intra-op pool uses count: min(physical cores, torch.get_num_threads()),
    so a run limited to 2 threads on a 64-core machine is not charged for 64 cores.
    An unknown peak warns (Python shows a given warning once per call site) and returns value None.
    """
    precision = _check_precision(precision)
    if override is not None:
        return PeakFlops(_check_override(override), OVERRIDE_SOURCE, device_name(device))

    if device.type == "cuda":
        name = device_name(device)
        peak = lookup_peak(name, precision)
        if peak.value is not None and precision == "fp32" and torch.backends.cuda.matmul.allow_tf32:
            peak = PeakFlops(
                peak.value,
                peak.source + "; note: TF32 matmuls are enabled, so fp32 matmuls "
                "may run on tensor cores faster than this fp32 peak",
                peak.device,
            )
    elif device.type == "cpu":
        cpu = detect_cpu()
        name = cpu.model
        value, source = cpu_peak_flops(cpu, precision, cores=min(cpu.cores, torch.get_num_threads()))
        peak = PeakFlops(value, source, name)
    else:
        name = str(device)
        peak = PeakFlops(None, UNKNOWN, None)

    if peak.value is None:
        warnings.warn(
            f"no peak FLOP/s known for {name} at {precision}, so hardware burden and utilization will be "
            "null; set hardware.peak_flops=<FLOP/s> from the device's datasheet",
            UserWarning,
            stacklevel=2,
        )
    return peak


def count_processors(device: torch.device) -> int:
    """Processors (chips) the run used, as the paper counts them.

    The harness trains on one device, so a cuda device is 1 GPU. A CPU run is 1 processor too: the paper
    counts chips, and the CPU peak already multiplies by the cores used, so counting cores again here would
    double-charge them.
    """
    if device.type in ("cuda", "cpu"):
        return 1
    raise ConfigError(f"trainer.device={device} has no processor count; use cpu or cuda")


def hardware_burden(
    n_processors: int, peak: PeakFlops, train_time_s: float, network_operations: float | None
) -> HardwareBurden:
    """burden = processors × peak × time (FLOP); utilization = network operations / burden."""
    if n_processors < 1:
        raise ValueError(f"n_processors must be >= 1, got {n_processors}")
    if train_time_s < 0:
        raise ValueError(f"train_time_s must be >= 0, got {train_time_s}")
    burden = None if peak.value is None else n_processors * peak.value * train_time_s
    utilization = None
    if burden and network_operations is not None:
        utilization = network_operations / burden
    return HardwareBurden(
        n_processors=n_processors,
        peak_flops=peak.value,
        peak_source=peak.source,
        train_time_s=float(train_time_s),
        hardware_burden=burden,
        utilization=utilization,
    )
