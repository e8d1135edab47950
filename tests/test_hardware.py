"""Peak FLOP/s table, CPU peak formula and hardware burden (all CPU-only and fast)."""

from __future__ import annotations

import re

import pytest
import torch

from harness.compute import hardware
from harness.compute.hardware import (
    CpuInfo,
    PeakFlops,
    count_processors,
    cpu_peak_flops,
    detect_cpu,
    hardware_burden,
    load_peak_table,
    lookup_peak,
    peak_flops_for,
)
from harness.errors import ConfigError

# Device family → the precisions the vendor publishes a peak for (no bf16/tf32 on Volta/Turing).
FAMILIES = {
    "NVIDIA H100 SXM5": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA H100 PCIe": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA H200 SXM": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA H200 NVL": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA A100 40GB (SXM4 or PCIe)": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA A100 80GB (SXM4 or PCIe)": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA V100 SXM2": {"fp32", "fp16"},
    "NVIDIA V100 PCIe": {"fp32", "fp16"},
    "NVIDIA L4": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA L40S": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA A10": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA T4": {"fp32", "fp16"},
    "NVIDIA GeForce RTX 4090": {"fp32", "tf32", "bf16", "fp16"},
    "NVIDIA GeForce RTX 3090": {"fp32", "tf32", "bf16", "fp16"},
}


def _cpu(flags, clock=2.0e9, cores=4, vendor="GenuineIntel", family=6, fma_units=None):
    return CpuInfo(
        model="fake",
        cores=cores,
        logical_cpus=cores * 2,
        max_clock_hz=clock,
        simd_flags=tuple(flags),
        vendor=vendor,
        cpu_family=family,
        clock_source="test",
        fma_units=fma_units,
    )


# ------------------------------------------------------------------------------------------------ table


def test_table_covers_required_families_with_sourced_positive_values():
    table = load_peak_table()
    listed: dict[str, set[str]] = {}
    for row in table:
        listed.setdefault(row["device"], set()).add(row["precision"])
        assert isinstance(row["peak_flops"], float) and row["peak_flops"] > 0, row
        assert row["precision"] in hardware.PEAK_PRECISIONS, row
        assert "nvidia" in row["source"].lower() and "https://" in row["source"], row
        re.compile(row["match"])
    for device, precisions in FAMILIES.items():
        assert listed.get(device) == precisions, device
    pairs = [(r["device"], r["precision"]) for r in table]
    assert len(pairs) == len(set(pairs)), "duplicate (device, precision) rows"


def test_tensor_peaks_are_never_below_the_fp32_peak():
    # A dense tensor-core figure under the FP32 figure would mean a sparse/dense or unit mix-up.
    by_device: dict[str, dict[str, float]] = {}
    for row in load_peak_table():
        by_device.setdefault(row["device"], {})[row["precision"]] = row["peak_flops"]
    for device, peaks in by_device.items():
        for precision in ("tf32", "bf16", "fp16"):
            if precision in peaks:
                assert peaks[precision] >= peaks["fp32"], (device, precision)


@pytest.mark.parametrize(
    ("name", "precision", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 9.894e14),
        ("NVIDIA H100 80GB HBM3", "fp32", 6.7e13),
        ("NVIDIA H100 PCIe", "bf16", 7.565e14),
        ("NVIDIA H100 NVL", "bf16", 8.355e14),
        ("NVIDIA A100-SXM4-40GB", "bf16", 3.12e14),
        ("NVIDIA A100 80GB PCIe", "bf16", 3.12e14),
        ("NVIDIA A100-SXM4-80GB", "tf32", 1.56e14),
        ("NVIDIA H200", "bf16", 9.894e14),
        ("NVIDIA H200 NVL", "bf16", 8.355e14),
        ("Tesla V100-SXM2-16GB", "fp16", 1.25e14),
        ("Tesla V100-PCIE-32GB", "fp16", 1.12e14),
        ("Tesla T4", "fp16", 6.5e13),
        ("NVIDIA L4", "bf16", 1.21e14),
        ("NVIDIA L40S", "bf16", 3.6205e14),
        ("NVIDIA A10", "fp32", 3.12e13),
        ("NVIDIA GeForce RTX 4090", "fp16", 1.652e14),
        ("NVIDIA GeForce RTX 3090", "bf16", 7.1e13),
    ],
)
def test_lookup_known_gpus(name, precision, expected):
    peak = lookup_peak(name, precision)
    assert peak.value == pytest.approx(expected)
    assert peak.source != "unknown" and peak.device


def test_lookup_prefers_the_specific_row():
    # "H100 PCIe" must not be read as the SXM part, nor "A100" as the A10, nor "L40S" as the L40/L4.
    assert lookup_peak("NVIDIA H100 PCIe", "fp32").device == "NVIDIA H100 PCIe"
    assert lookup_peak("NVIDIA A100-PCIE-40GB", "fp32").device == "NVIDIA A100 40GB (SXM4 or PCIe)"
    assert lookup_peak("NVIDIA L40S", "fp32").device == "NVIDIA L40S"
    assert lookup_peak("NVIDIA L40", "fp32").device == "NVIDIA L40"
    assert lookup_peak("nvidia h100 80gb hbm3", "fp16").value == pytest.approx(9.894e14)


def test_lookup_unknown_gpu_and_missing_precision_are_not_invented():
    unknown = lookup_peak("NVIDIA GeForce GTX 1080", "fp32")
    assert unknown == PeakFlops(None, "unknown", None)
    v100_bf16 = lookup_peak("Tesla V100-SXM2-16GB", "bf16")
    assert v100_bf16.value is None and v100_bf16.source == "unknown"
    assert lookup_peak("Tesla T4", "bf16").value is None
    # RTX 3090 Ti is a different card with different peaks: no silent match to the 3090 row.
    assert lookup_peak("NVIDIA GeForce RTX 3090 Ti", "fp32").value is None


def test_lookup_uses_a_given_table_in_order():
    table = [
        {"device": "special", "match": "X1 Pro", "precision": "fp32", "peak_flops": 2.0, "source": "a"},
        {"device": "generic", "match": "X1", "precision": "fp32", "peak_flops": 1.0, "source": "b"},
    ]
    assert lookup_peak("Acme X1 Pro", "fp32", table).value == 2.0
    assert lookup_peak("Acme X1", "fp32", table).value == 1.0


def test_bad_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="fp64"):
        lookup_peak("NVIDIA H100 80GB HBM3", "fp64")


# -------------------------------------------------------------------------------------------------- CPU


def test_cpu_formula_avx512():
    value, source = cpu_peak_flops(_cpu(["avx512f", "avx2", "fma", "avx"], clock=2.0e9, cores=4), "fp32")
    assert value == pytest.approx(4 * 2.0e9 * 64)  # 16 lanes × 2 FMA units × 2
    assert "4 cores" in source and "2e9 Hz" in source and "64 FLOP/cycle" in source


def test_cpu_formula_avx2_matches_the_documented_example():
    value, source = cpu_peak_flops(_cpu(["avx2", "fma", "avx", "sse4_2"], clock=2.45e9, cores=2), "fp32")
    assert value == pytest.approx(2 * 2.45e9 * 32)
    assert source.startswith("cpu formula: 2 cores × 2.45e9 Hz × 32 FLOP/cycle (avx2+fma: 8 lanes × 2")


def test_cpu_formula_zen4_avx512_runs_on_256_bit_pipes():
    value, _ = cpu_peak_flops(_cpu(["avx512f", "avx2", "fma"], vendor="AuthenticAMD", family=25), "fp32")
    assert value == pytest.approx(4 * 2.0e9 * 32)


def test_cpu_formula_neon_and_fma_override():
    value, _ = cpu_peak_flops(_cpu(["asimd"], clock=3.0e9, cores=8, vendor=None, family=None), "fp32")
    assert value == pytest.approx(8 * 3.0e9 * 16)  # 4 lanes × 2 units × 2
    value, source = cpu_peak_flops(_cpu(["avx512f"], fma_units=1), "fp32")
    assert value == pytest.approx(4 * 2.0e9 * 32) and "fma_units set to 1" in source


def test_cpu_formula_unknown_inputs_give_none():
    assert cpu_peak_flops(_cpu(["avx2", "fma"], clock=None), "fp32") == (None, "unknown")
    assert cpu_peak_flops(_cpu([]), "fp32") == (None, "unknown")
    assert cpu_peak_flops(_cpu(["avx2", "fma"]), "fp32", cores=0) == (None, "unknown")


def test_cpu_bf16_uses_fp32_rate_and_says_so():
    plain = _cpu(["avx2", "fma"])
    fast = _cpu(["avx512f", "avx512_bf16", "amx_bf16"])
    assert cpu_peak_flops(plain, "bf16")[0] == cpu_peak_flops(plain, "fp32")[0]
    value, source = cpu_peak_flops(fast, "bf16")
    assert value == cpu_peak_flops(fast, "fp32")[0]
    assert "avx512_bf16" in source and "amx_bf16" in source and "may be low" in source


def test_cpu_cores_argument_limits_the_peak():
    cpu = _cpu(["avx2", "fma"], cores=16)
    assert cpu_peak_flops(cpu, "fp32", cores=2)[0] == pytest.approx(cpu_peak_flops(cpu, "fp32")[0] / 8)


def test_detect_cpu_on_this_machine():
    cpu = detect_cpu()
    assert cpu.cores >= 1 and cpu.logical_cpus >= cpu.cores
    assert cpu.model
    assert cpu.max_clock_hz is None or cpu.max_clock_hz > 1e8


def test_detect_cpu_parses_cpuinfo(tmp_path):
    block = (
        "processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Test Xeon\n"
        "physical id\t: 0\ncore id\t\t: {core}\ncpu MHz\t\t: 2400.000\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
    )
    # 2 physical cores with 2 hyper-threads each.
    text = "\n".join(block.format(i=i, core=i // 2) for i in range(4))
    (tmp_path / "cpuinfo").write_text(text)
    cpu = detect_cpu(tmp_path / "cpuinfo", tmp_path / "missing_max_freq")
    assert (cpu.model, cpu.cores, cpu.logical_cpus, cpu.max_clock_hz) == ("Test Xeon", 2, 4, 2.4e9)
    assert cpu.simd_flags == ("avx2", "fma", "avx", "sse4_2")
    (tmp_path / "max_freq").write_text("3500000\n")  # kHz
    assert detect_cpu(tmp_path / "cpuinfo", tmp_path / "max_freq").max_clock_hz == 3.5e9


def test_detect_cpu_without_cpuinfo_is_graceful(tmp_path):
    cpu = detect_cpu(tmp_path / "none", tmp_path / "none")
    assert cpu.cores >= 1 and cpu.max_clock_hz is None
    assert cpu_peak_flops(cpu, "fp32") == (None, "unknown")


def test_peak_for_cpu_counts_only_torch_threads(monkeypatch):
    monkeypatch.setattr(hardware, "detect_cpu", lambda: _cpu(["avx2", "fma"], cores=8))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    peak = peak_flops_for(torch.device("cpu"), "fp32")
    assert peak.value == pytest.approx(2 * 2.0e9 * 32)
    assert peak.source.startswith("cpu formula: 2 cores") and peak.device == "fake"


def test_peak_for_cuda_uses_the_table(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    peak = peak_flops_for(torch.device("cuda"), "fp16")
    assert peak.value == pytest.approx(6.5e13) and peak.device == "NVIDIA T4"


@pytest.fixture
def tf32_matmuls():
    """TF32 matmuls on through torch's public switch, and back as they were. (Not monkeypatch: the switch is
    a property that some torch versions build lazily, which monkeypatch's undo cannot restore.)"""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = True
    yield
    matmul.allow_tf32 = before


def test_fp32_on_gpu_stays_on_the_fp32_peak_but_notes_tf32(monkeypatch, tf32_matmuls):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    peak = peak_flops_for(torch.device("cuda"), "fp32")
    assert peak.value == pytest.approx(1.95e13) and "TF32 matmuls are enabled" in peak.source


# ------------------------------------------------------------------------------------ override, burden


def test_override_wins():
    peak = peak_flops_for(torch.device("cpu"), "bf16", override=1.5e12)
    assert peak.value == 1.5e12 and peak.source == "override (hardware.peak_flops)"


@pytest.mark.parametrize("bad", [0, -1, -2.5e12, float("nan"), float("inf"), True, "1e12"])
def test_bad_override_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="hardware.peak_flops"):
        peak_flops_for(torch.device("cpu"), "fp32", override=bad)


def test_count_processors():
    assert count_processors(torch.device("cpu")) == 1
    assert count_processors(torch.device("cuda", 0)) == 1


def test_burden_and_utilization_arithmetic():
    peak = PeakFlops(1.0e12, "test", "dev")
    result = hardware_burden(2, peak, 10.0, network_operations=5.0e12)
    assert result.hardware_burden == pytest.approx(2 * 1.0e12 * 10.0)
    assert result.utilization == pytest.approx(0.25)
    assert (result.n_processors, result.peak_flops, result.peak_source) == (2, 1.0e12, "test")
    assert hardware_burden(1, peak, 10.0, None).utilization is None
    zero_time = hardware_burden(1, peak, 0.0, 1.0)
    assert zero_time.hardware_burden == 0 and zero_time.utilization is None


def test_unknown_peak_gives_null_burden_and_a_warning(monkeypatch):
    monkeypatch.setattr(hardware, "detect_cpu", lambda: _cpu(["avx2", "fma"], clock=None))
    with pytest.warns(UserWarning, match=r"hardware\.peak_flops=<FLOP/s>"):
        peak = peak_flops_for(torch.device("cpu"), "fp32")
    assert peak.value is None and peak.source == "unknown"
    result = hardware_burden(count_processors(torch.device("cpu")), peak, 12.0, 1.0e9)
    assert result.hardware_burden is None and result.utilization is None
    assert result.train_time_s == 12.0 and result.peak_source == "unknown"


def test_unknown_gpu_warns(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Mystery GPU 9000")
    with pytest.warns(UserWarning, match="Mystery GPU 9000"):
        assert peak_flops_for(torch.device("cuda"), "bf16").value is None
