"""GPU energy windows against a fake NVML (monkeypatched pynvml functions, a fake clock): CPU only."""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from types import SimpleNamespace

import pynvml
import pytest

from harness.energy import ENERGY_FIELDS, EnergyMeter, EnergySettings
from harness.energy.carbon import CodeCarbonMeter, CodeCarbonReading
from harness.energy.nvml import NvmlEnergyMeter, integrate_power

OWN_PID = 4242


class FakeGpu:
    """A GPU whose time, power and energy the test drives; the counter refreshes every `refresh_s`."""

    def __init__(self, refresh_s: float = 0.1, limit_w: float = 700.0):
        self.t = 0.0
        self.watts = 60.0
        self.refresh_s = refresh_s
        self.limit_w = limit_w
        self.segments: list[tuple[float, float, float]] = []  # (t0, t1, W)
        self.counter_offset_mj = 5_000_000  # the driver's counter starts wherever it likes
        self.counter_supported = True
        self.mig_mode: int | None = 0
        self.mig_handle = False
        self.pids: list[int] | None = [OWN_PID]
        self.init_error: Exception | None = None
        self.syncs = 0

    # the test's side
    def run(self, seconds: float, watts: float) -> None:
        self.segments.append((self.t, self.t + seconds, watts))
        self.t += seconds
        self.watts = watts

    def energy_at(self, t: float) -> float:
        return sum(w * (min(t, b) - a) for a, b, w in self.segments if a < t)

    def clock(self) -> float:
        return self.t

    def sync(self) -> None:
        self.syncs += 1

    # NVML's side
    def counter_mj(self, _handle) -> int:
        if not self.counter_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        last_refresh = math.floor(self.t / self.refresh_s + 1e-9) * self.refresh_s
        return self.counter_offset_mj + int(round(self.energy_at(last_refresh) * 1000))

    def install(self, monkeypatch) -> None:
        def init():
            if self.init_error is not None:
                raise self.init_error

        def mig_mode(_h):
            if self.mig_mode is None:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return self.mig_mode, self.mig_mode

        def processes(_h):
            if self.pids is None:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
            return [SimpleNamespace(pid=p, usedGpuMemory=0) for p in self.pids]

        def by_uuid(_uuid):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

        fakes = {
            "nvmlInit": init,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetHandleByUUID": by_uuid,
            "nvmlDeviceGetHandleByIndex": lambda i: f"gpu{i}",
            "nvmlDeviceIsMigDeviceHandle": lambda h: self.mig_handle and h.startswith("mig"),
            "nvmlDeviceGetDeviceHandleFromMigDeviceHandle": lambda h: "gpu0",
            "nvmlDeviceGetMigMode": mig_mode,
            "nvmlDeviceGetIndex": lambda h: 0,
            "nvmlDeviceGetEnforcedPowerLimit": lambda h: int(self.limit_w * 1000),
            "nvmlDeviceGetTotalEnergyConsumption": self.counter_mj,
            "nvmlDeviceGetPowerUsage": lambda h: int(self.watts * 1000),
            "nvmlDeviceGetComputeRunningProcesses": processes,
        }
        for name, fake in fakes.items():
            monkeypatch.setattr(pynvml, name, fake)

    def meter(self, **kwargs) -> NvmlEnergyMeter:
        options = dict(sample_hz=0, synchronize=self.sync, clock=self.clock, own_pid=OWN_PID)
        return NvmlEnergyMeter(**{**options, **kwargs})


@pytest.fixture
def gpu(monkeypatch):
    fake = FakeGpu()
    fake.install(monkeypatch)
    return fake


def _windowed(meter: NvmlEnergyMeter, gpu: FakeGpu, plan, sample_every: float | None = None):
    """Run `plan` [(seconds, watts, in_window)], opening/closing windows; optionally sample power."""
    inside = False
    for seconds, watts, window in plan:
        if window and not inside:
            meter.begin()
        if not window and inside:
            meter.end()
        inside = window
        if sample_every is None:
            gpu.run(seconds, watts)
            continue
        steps = round(seconds / sample_every)
        for _ in range(steps):
            gpu.run(seconds / steps, watts)
            meter.sample_now()
    if inside:
        meter.end()


# ---------------------------------------------------------------------------------------- counter windows


def test_counter_deltas_are_summed_across_windows_and_bounded(gpu):
    meter = gpu.meter()
    assert meter.start()
    gpu.run(0.033, 60.0)  # idle before the first window
    plan = [
        (1.0, 300.0, True),  # a training chunk
        (0.002, 300.0, False),  # tiny gap (loss check): adjacent windows should telescope
        (0.9, 320.0, True),
        (0.45, 120.0, False),  # evaluation, excluded
        (1.2, 310.0, True),
    ]
    _windowed(meter, gpu, plan)
    reading = meter.finish()

    true_j = 300.0 * 1.0 + 320.0 * 0.9 + 310.0 * 1.2
    assert reading.method == "nvml_counter"
    assert reading.windows == 3
    assert reading.window_s == pytest.approx(3.1)
    # The meter's figure is exactly the sum of the counter deltas it read...
    windows = [(0.033, 1.033), (1.035, 1.935), (2.385, 3.585)]
    expected_counter = sum(_delta(gpu, a, b) for a, b in windows) / 1000
    assert reading.energy_j == pytest.approx(expected_counter)
    # ...which the 100 ms refresh makes differ from the truth, but within the recorded bound.
    assert reading.energy_j != pytest.approx(true_j, abs=1e-6)
    assert abs(reading.energy_j - true_j) <= reading.error_bound_j
    # Bound: P_max (the 700 W limit) × (T × (1 + one refreshed gap, the evaluation) + the 2 ms quiet gap).
    assert reading.error_bound_j == pytest.approx(700.0 * (0.1 * 2 + 0.002))
    assert reading.power_mean_w == pytest.approx(reading.energy_j / 3.1)
    assert reading.shared is False and reading.mig is False
    assert gpu.syncs >= 6  # every begin and end synchronized before reading


def _delta(gpu: FakeGpu, a: float, b: float) -> float:
    """Counter delta (mJ) the fake would show between times a and b."""

    def shown(t: float) -> float:
        last = math.floor(t / gpu.refresh_s + 1e-9) * gpu.refresh_s
        return round(gpu.energy_at(last) * 1000)

    return shown(b) - shown(a)


def test_counter_going_backwards_falls_back_to_power_integral(gpu):
    meter = gpu.meter()
    meter.start()
    _windowed(meter, gpu, [(1.0, 250.0, True), (0.3, 250.0, False)], sample_every=0.05)
    gpu.counter_offset_mj -= 4_000_000  # driver reload: the counter restarts lower
    _windowed(meter, gpu, [(1.0, 250.0, True)], sample_every=0.05)
    reading = meter.finish()
    assert reading.method == "nvml_power_integral"
    assert "backwards" in reading.note
    assert reading.error_bound_j is None
    assert reading.energy_j == pytest.approx(250.0 * 2.0, rel=1e-6)
    assert reading.power_peak_w == pytest.approx(250.0)


def test_unsupported_counter_uses_power_samples(gpu):
    gpu.counter_supported = False
    meter = gpu.meter()
    meter.start()
    _windowed(meter, gpu, [(0.5, 200.0, True), (0.5, 80.0, False), (0.5, 200.0, True)], sample_every=0.1)
    reading = meter.finish()
    assert reading.method == "nvml_power_integral"
    # Linear interpolation smears the 200→80 W steps over one sample interval at each window edge.
    assert reading.energy_j == pytest.approx(200.0, rel=0.1)


def test_unsupported_counter_without_sampling_is_unavailable_not_zero(gpu):
    gpu.counter_supported = False
    meter = gpu.meter()
    meter.start()
    _windowed(meter, gpu, [(0.5, 200.0, True)])
    reading = meter.finish()
    assert reading.energy_j is None
    assert reading.method.startswith("unavailable: ")


def test_sampler_thread_collects_power_and_stops(gpu):
    meter = NvmlEnergyMeter(sample_hz=200, synchronize=gpu.sync, own_pid=OWN_PID)  # real clock and thread
    gpu.watts = 123.0
    assert meter.start()
    meter.begin()
    import time

    time.sleep(0.1)
    meter.end()
    reading = meter.finish()
    assert len(meter.samples) >= 3
    assert reading.power_peak_w == pytest.approx(123.0)


# ------------------------------------------------------------------------------------------- shared, MIG


@pytest.mark.parametrize(
    ("pids", "shared"),
    [
        ([OWN_PID], False),
        ([OWN_PID, 777], True),
        ([9001], False),  # container: host PIDs, ours not recognisable; one process is us
        ([9001, 9002], True),  # two processes with ours unrecognisable: at least one other
        (None, None),  # no permission to list processes: unknown, not "not shared"
    ],
)
def test_shared_gpu_detection(gpu, pids, shared):
    gpu.pids = pids
    meter = gpu.meter()
    meter.start()
    _windowed(meter, gpu, [(0.5, 200.0, True)])
    assert meter.finish().shared is shared


def test_another_process_appearing_mid_run_marks_shared(gpu):
    meter = gpu.meter(sample_hz=10)
    meter._stop.set()  # no real thread: the test samples by hand, ten samples ≈ one process check
    meter.start()
    meter.begin()
    gpu.pids = [OWN_PID, 31337]
    for _ in range(10):
        gpu.run(0.1, 200.0)
        meter.sample_now()
    gpu.pids = [OWN_PID]
    meter.end()
    assert meter.finish().shared is True


def test_mig_mode_is_flagged(gpu):
    gpu.mig_mode = 1
    meter = gpu.meter()
    meter.start()
    assert meter.finish().mig is True


def test_mig_device_handle_resolves_to_parent_and_is_flagged(gpu, monkeypatch):
    gpu.mig_handle = True
    gpu.mig_mode = None
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", lambda uuid: "mig-instance")
    meter = gpu.meter(cuda_uuid="MIG-1234")
    meter.start()
    _windowed(meter, gpu, [(0.5, 200.0, True)])
    reading = meter.finish()
    assert reading.mig is True
    assert reading.method == "nvml_counter"


def test_cuda_visible_devices_maps_to_the_physical_index(gpu, monkeypatch):
    seen: list[int] = []

    def handle(i: int) -> str:
        seen.append(i)
        return f"gpu{i}"

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", handle)
    gpu.meter(cuda_index=1).start()
    assert seen == [1]
    seen.clear()
    gpu.meter(cuda_index=0).start()
    assert seen == [3]


# ------------------------------------------------------------------------------------------- no driver


@pytest.mark.parametrize("failure", ["library_missing", "driver_not_loaded", "no_module"])
def test_no_driver_gives_nulls_and_unavailable_silently(gpu, monkeypatch, capfd, caplog, failure):
    caplog.set_level(logging.INFO)
    if failure == "no_module":
        monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    else:
        code = {"library_missing": pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "driver_not_loaded": 9}[failure]
        gpu.init_error = pynvml.NVMLError(code)
    meter = gpu.meter(sample_hz=10)
    assert meter.start() is False
    meter.begin()
    meter.end()
    reading = meter.finish()
    assert reading.energy_j is None and reading.method == "unavailable"
    assert reading.power_mean_w is None and reading.shared is None and reading.error_bound_j is None
    assert capfd.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_real_pynvml_without_a_driver_is_quiet(capfd):
    """On this CPU machine the real pynvml finds no driver; nothing must escape."""
    meter = NvmlEnergyMeter(sample_hz=10)
    started = meter.start()
    meter.begin()
    meter.end()
    reading = meter.finish()
    if started:
        pytest.skip("an NVIDIA driver is present")
    assert reading.method == "unavailable" and reading.energy_j is None
    assert capfd.readouterr() == ("", "")


# -------------------------------------------------------------------------------------------- timeline


def test_integrate_power_is_trapezoidal_inside_windows():
    samples = [(0.0, 100.0), (1.0, 200.0), (2.0, 200.0)]
    # 0.5..1.5: ramp 150→200 over 0.5 s (87.5 J) + flat 200 W over 0.5 s (100 J)
    assert integrate_power(samples, [(0.5, 1.5)]) == pytest.approx(187.5)
    # before the first / after the last sample the power is held flat
    assert integrate_power(samples, [(-1.0, 0.0), (2.0, 3.0)]) == pytest.approx(100.0 + 200.0)


def test_timeline_csv_marks_window_samples(gpu, tmp_path):
    meter = gpu.meter()
    meter.start()
    _windowed(meter, gpu, [(0.3, 200.0, True), (0.3, 90.0, False), (0.3, 210.0, True)], sample_every=0.1)
    reading = meter.finish()
    path = meter.write_timeline(tmp_path / "power.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(meter.samples)
    assert {row["in_window"] for row in rows} == {"0", "1"}
    # samples strictly inside the evaluation gap (0.3 s .. 0.6 s) are outside any window
    assert all(r["in_window"] == "0" for r in rows if 0.31 < float(r["t_s"]) < 0.59)
    assert all(r["in_window"] == "1" for r in rows if float(r["power_w"]) >= 200)
    assert reading.power_peak_w == pytest.approx(210.0)


# ---------------------------------------------------------------------------------- the facade on a GPU


def _fake_codecarbon(monkeypatch, reading: CodeCarbonReading):
    monkeypatch.setattr(CodeCarbonMeter, "start", lambda self, gpu_ids=None: None)
    monkeypatch.setattr(CodeCarbonMeter, "stop", lambda self: reading)


def test_meter_combines_gpu_counter_and_scaled_codecarbon(gpu, monkeypatch, tmp_path):
    cc = CodeCarbonReading(
        cpu_j=100.0,
        ram_j=40.0,
        gpu_j=900.0,
        duration_s=4.0,
        emissions_kg=1e-5,
        method_cpu="rapl:codecarbon_linux_powercap",
        method_ram="estimate:codecarbon_ram_dimm_rule(20 W, machine)",
        gpu_count=1,
    )
    _fake_codecarbon(monkeypatch, cc)
    settings = EnergySettings(sample_hz=0)
    meter = EnergyMeter(settings, "cuda:0", tmp_path, clock=gpu.clock, gpu_meter=gpu.meter())
    meter.start()
    for _ in range(3):
        with meter.window():
            gpu.run(1.0, 300.0)
        gpu.run(0.333, 100.0)  # evaluation
    fields = meter.finish()

    assert set(fields) == set(ENERGY_FIELDS)
    assert fields["energy_method_gpu"] == "nvml_counter"
    assert fields["energy_gpu_j"] == pytest.approx(900.0, abs=3 * 700 * 0.1)
    fraction = 3.0 / 4.0
    assert fields["energy_codecarbon_fraction"] == pytest.approx(fraction)
    assert fields["energy_cpu_j"] == pytest.approx(100.0 * fraction)
    assert fields["energy_ram_j"] == pytest.approx(40.0 * fraction)
    assert fields["energy_gpu_j_codecarbon"] == pytest.approx(900.0 * fraction)
    # codecarbon's GPU figure is a cross-check: the total uses the NVML figure only
    total = fields["energy_gpu_j"] + fields["energy_cpu_j"] + fields["energy_ram_j"]
    assert fields["energy_total_j"] == pytest.approx(total)
    assert fields["energy_total_kwh"] == pytest.approx(total / 3.6e6)
    assert fields["energy_method_cpu"].startswith("rapl")
    assert fields["carbon_intensity_g_per_kwh"] > 0 and "codecarbon" in fields["carbon_intensity_source"]
    assert meter.finish() is fields  # idempotent


def test_meter_total_is_null_when_a_component_failed(gpu, monkeypatch, tmp_path):
    failed = CodeCarbonReading(None, None, None, None, None, "failed: boom", "failed: boom", error="boom")
    _fake_codecarbon(monkeypatch, failed)
    meter = EnergyMeter(EnergySettings(sample_hz=0), "cuda", tmp_path, clock=gpu.clock, gpu_meter=gpu.meter())
    meter.start()
    with meter.window():
        gpu.run(1.0, 300.0)
    fields = meter.finish()
    assert fields["energy_gpu_j"] is not None
    assert fields["energy_method_cpu"] == "failed: boom"
    assert fields["energy_total_j"] is None and fields["energy_total_kwh"] is None


def test_meter_writes_power_timeline_beside_the_run(gpu, monkeypatch, tmp_path):
    settings = EnergySettings(sample_hz=10, codecarbon=False)
    gpu_meter = gpu.meter(sample_hz=10)
    meter = EnergyMeter(settings, "cuda:0", tmp_path, clock=gpu.clock, gpu_meter=gpu_meter)
    meter.start()
    with meter.window():
        for _ in range(5):
            gpu.run(0.1, 250.0)
            gpu_meter.sample_now()
    fields = meter.finish()
    assert (tmp_path / "power.csv").is_file()
    assert fields["power_peak_w"] == pytest.approx(250.0)
    assert fields["energy_method_cpu"] == "disabled"


def test_meter_on_cuda_without_driver_records_unavailable(gpu, monkeypatch, tmp_path):
    gpu.init_error = pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setattr("torch.cuda.synchronize", lambda device=None: None)
    settings = EnergySettings(codecarbon=False)
    meter = EnergyMeter(settings, "cuda:0", tmp_path, gpu_meter=gpu.meter(sample_hz=10))
    meter.start()
    with meter.window():
        pass
    fields = meter.finish()
    assert fields["energy_gpu_j"] is None and fields["energy_method_gpu"] == "unavailable"
    assert not (tmp_path / "power.csv").exists()


def test_meter_times_its_own_window_edges(gpu, monkeypatch, tmp_path):
    slow_read_s = 0.02
    counter = gpu.counter_mj

    def slow_counter(handle):
        time.sleep(slow_read_s)
        return counter(handle)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", slow_counter)
    settings = EnergySettings(codecarbon=False, sample_hz=0)
    meter = EnergyMeter(settings, "cuda:0", tmp_path, clock=gpu.clock, gpu_meter=gpu.meter())
    meter.start()
    for _ in range(2):
        with meter.window():
            gpu.run(1.0, 300.0)
    fields = meter.finish()
    assert fields["energy_meter_s"] == meter.edge_s
    assert 4 * slow_read_s <= fields["energy_meter_s"] < 4 * slow_read_s + 1.0, "two reads per window"


def test_window_closes_when_the_block_raises(gpu, tmp_path):
    meter = EnergyMeter(
        EnergySettings(codecarbon=False), "cuda:0", tmp_path, clock=gpu.clock, gpu_meter=gpu.meter()
    )
    meter.start()
    with pytest.raises(KeyboardInterrupt), meter.window():
        gpu.run(0.5, 200.0)
        raise KeyboardInterrupt
    assert meter.windows == 1
    assert meter.finish()["energy_gpu_j"] == pytest.approx(100.0, abs=0.1 * 700)


def test_inference_energy_is_one_counter_window_of_at_least_the_minimum(gpu):
    import torch

    from harness.compute.inputs import InputSpec
    from harness.measure import inference_energy

    class Busy(torch.nn.Module):
        """Each forward pass keeps the fake GPU at 300 W for 50 ms."""

        def forward(self, x):
            gpu.run(0.05, 300.0)
            return x

    settings = EnergySettings(codecarbon=False, save_timeline=False, sample_hz=0)
    meter = EnergyMeter(settings, "cuda", None, clock=gpu.clock, gpu_meter=gpu.meter())
    cpu = torch.device("cpu")  # the tensors; the meter is the one on the (fake) GPU
    batch = InputSpec((8, 3))  # a batch of 8 samples of shape (3,)
    row = inference_energy(Busy(), batch, 8, cpu, torch.float32, 2.0, meter=meter, clock=gpu.clock)
    assert row["energy_method"] == "nvml_counter"
    assert row["energy_window_s"] >= 2.0 and row["energy_iterations"] == 40
    assert row["energy_j"] == pytest.approx(600.0, abs=row["energy_error_j"])
    assert row["energy_per_sample_j"] == pytest.approx(row["energy_j"] / (40 * 8))
    assert row["energy_power_mean_w"] == pytest.approx(300.0, rel=0.05)
