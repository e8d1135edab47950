"""The one object the training loop talks to: GPU counter windows + codecarbon, combined into record fields.

Lifecycle, matching the loop (see harness/energy/__init__.py for the integration recipe):

    meter = EnergyMeter(settings.energy, device, run_dir)   # settings validated when the config was read;
                                           # on a CPU device codecarbon's set-up begins, in a thread
    ...                                    # untimed work (FLOP counting): the set-up runs beside it
    meter.wait_ready()                     # before the timed phase: the set-up has ended
    meter.start()                          # after warm-up: NVML, power sampler, codecarbon (untimed)
    meter.begin()                          # before training; a no-op while a window is open
    with watch.segment("train"):           # training chunks (loss checks between them stay inside)
        ...
    meter.end()                            # before each evaluation: evaluation stays outside the windows
    fields = meter.finish()                # record fields; safe on every exit path, idempotent

The GPU figure is the sum of per-window NVML counter deltas (harness.energy.nvml). CPU and RAM come from
one codecarbon tracker over start()..finish(), scaled by the share of that span spent in training windows
(harness.energy.carbon explains why and what it costs in accuracy). codecarbon's own GPU figure, scaled
the same way, is kept as energy_gpu_j_codecarbon: a cross-check, never part of the total.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from harness.energy.carbon import J_PER_KWH, CodeCarbonMeter, CodeCarbonReading, grid_intensity
from harness.energy.nvml import NOT_USED, GpuEnergyReading, NvmlEnergyMeter
from harness.record_parts import EnergyFields
from harness.settings import EnergySettings

TIMELINE_NAME = "power.csv"
DISABLED = "disabled"

# The record's energy part (harness.results.schema.EnergyFields) names them, once.
ENERGY_FIELDS = tuple(f.name for f in dataclasses.fields(EnergyFields))


def _cuda_identity(device: torch.device) -> tuple[int, str | None]:
    """(CUDA index, UUID string) of a cuda device; the UUID lets NVML find the same physical GPU."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:  # older torch without .uuid, or a device that cannot be queried
        uuid = None
    return index, uuid


class EnergyMeter:
    """Energy of the training windows of one run; a disabled meter accepts the same calls and records nulls.

    `run_dir` receives codecarbon's CSV and the power timeline (power.csv); None keeps both off disk
    (codecarbon then is not run, since its CSV is part of the evidence).
    """

    def __init__(
        self,
        settings: EnergySettings,
        device: torch.device | str,
        run_dir: Path | None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        gpu_meter: NvmlEnergyMeter | None = None,
    ):
        self.settings = settings
        self.device = torch.device(device)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._clock = clock
        self._started = False
        self._open_t: float | None = None
        self.window_s = 0.0
        self.windows = 0
        # Wall time of the window edges themselves (device sync + NVML counter reads). They fall between
        # the stopwatch's training segments, so train_time_s cannot show what measuring costs: this does.
        self.edge_s = 0.0
        self._fields: dict[str, Any] | None = None
        self.gpu_reading: GpuEnergyReading | None = None
        self.codecarbon_reading: CodeCarbonReading | None = None

        self._gpu: NvmlEnergyMeter | None = None
        self._codecarbon: CodeCarbonMeter | None = None
        self.intensity: tuple[float | None, str | None] = (None, None)
        if not settings.enabled:
            return
        self.intensity = self._intensity()
        if self.device.type == "cuda":
            if gpu_meter is None:
                index, uuid = _cuda_identity(self.device)
                gpu_meter = NvmlEnergyMeter(
                    cuda_index=index,
                    cuda_uuid=uuid,
                    sample_hz=settings.sample_hz,
                    counter_update_s=settings.counter_update_s,
                    synchronize=self._sync,
                    clock=clock,
                )
            self._gpu = gpu_meter
        if settings.codecarbon and self.run_dir is not None:
            self._codecarbon = CodeCarbonMeter(
                output_dir=self.run_dir,
                country_iso_code=settings.country_iso_code,
                region=settings.region,
                measure_power_secs=settings.measure_power_secs,
                tracking_mode=settings.tracking_mode,
                force_cpu_power_w=settings.force_cpu_power_w,
                force_ram_power_w=settings.force_ram_power_w,
            )
            if self._gpu is None:  # no NVML meter, so start() will pass gpu_ids=None: set up now, aside
                self._codecarbon.prepare(gpu_ids=None)

    @classmethod
    def off(cls) -> EnergyMeter:
        """A meter that measures nothing (energy.enabled=false, or callers that do not measure)."""
        return cls(EnergySettings(enabled=False), "cpu", None)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def _intensity(self) -> tuple[float | None, str | None]:
        s = self.settings
        if s.carbon_intensity_g_per_kwh is not None:
            return float(s.carbon_intensity_g_per_kwh), f"config: {s.carbon_intensity_source}"
        try:
            return grid_intensity(s.country_iso_code, s.region)
        except ImportError as exc:
            return None, f"unavailable: codecarbon not importable ({exc})"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------------------------------ lifecycle

    def wait_ready(self) -> None:
        """Wait for the set-up this meter began in the background at construction (codecarbon's hardware
        detection, CPU devices only). Call it before the run's timed phase (warm-up included) so that no
        part of it runs beside what is timed; start() waits for it too."""
        if self._codecarbon is not None:
            self._codecarbon.wait_ready()

    def start(self) -> None:
        """Start measuring: call once, after warm-up and before the first window (about a second on a GPU
        device, where codecarbon's set-up waits for NVML's GPU index; near instant once wait_ready())."""
        if not self.enabled or self._started:
            return
        self._started = True
        gpu_ids = None
        if self._gpu is not None:
            self._gpu.start()
            if self._gpu.nvml_index is not None:
                gpu_ids = [self._gpu.nvml_index]
        if self._codecarbon is not None:
            self._codecarbon.start(gpu_ids=gpu_ids)

    def begin(self) -> None:
        """Open a training window (device synchronized first)."""
        if not self._started or self._open_t is not None or self._fields is not None:
            return
        t0 = time.perf_counter()
        if self._gpu is not None and self._gpu.available:
            self._gpu.begin()  # synchronizes, then reads its clock and counter
        else:
            self._sync()
        self._open_t = self._clock()
        self.edge_s += time.perf_counter() - t0

    def end(self) -> None:
        """Close the window after synchronizing, so its queued kernels count inside it."""
        if self._open_t is None:
            return
        t0 = time.perf_counter()
        if self._gpu is not None and self._gpu.available:
            self._gpu.end()  # synchronizes, then reads its clock and counter
        else:
            self._sync()
        self.edge_s += time.perf_counter() - t0
        self.window_s += self._clock() - self._open_t
        self.windows += 1
        self._open_t = None

    @contextmanager
    def window(self) -> Iterator[None]:
        """begin() ... end() around a block, closed even when the block raises (KeyboardInterrupt)."""
        self.begin()
        try:
            yield
        finally:
            self.end()

    def finish(self) -> dict[str, Any]:
        """Stop everything, write power.csv, return the record fields (ENERGY_FIELDS). Idempotent."""
        if self._fields is not None:
            return self._fields
        if self._open_t is not None:
            try:
                self.end()
            except Exception:  # a dead CUDA context: keep what was measured so far
                self._open_t = None
        if self._gpu is not None:
            self.gpu_reading = self._gpu.finish()
            if self.settings.save_timeline and self.run_dir is not None:
                self._gpu.write_timeline(self.run_dir / TIMELINE_NAME)
        if self._codecarbon is not None:
            self.codecarbon_reading = self._codecarbon.stop()
        self._fields = self._compose() if self.enabled else dict.fromkeys(ENERGY_FIELDS)
        return self._fields

    # ------------------------------------------------------------------------------------------- results

    def _compose(self) -> dict[str, Any]:
        fields: dict[str, Any] = dict.fromkeys(ENERGY_FIELDS)
        fields["carbon_intensity_g_per_kwh"], fields["carbon_intensity_source"] = self.intensity
        fields["energy_meter_s"] = self.edge_s

        uses_gpu = self.device.type == "cuda"
        if not uses_gpu:
            fields["energy_method_gpu"] = NOT_USED
        elif self.gpu_reading is not None:
            g = self.gpu_reading
            fields.update(
                energy_gpu_j=g.energy_j,
                energy_method_gpu=g.method,
                energy_gpu_shared=g.shared,
                energy_gpu_mig=g.mig,
                energy_gpu_error_j=g.error_bound_j,
                power_mean_w=g.power_mean_w,
                power_peak_w=g.power_peak_w,
            )

        cc = self.codecarbon_reading
        if cc is None:
            fields["energy_method_cpu"] = fields["energy_method_ram"] = DISABLED
        else:
            fields["energy_method_cpu"], fields["energy_method_ram"] = cc.method_cpu, cc.method_ram
            if cc.error is None and cc.duration_s:
                fraction = min(1.0, self.window_s / cc.duration_s)
                fields["energy_codecarbon_fraction"] = fraction
                fields["energy_cpu_j"] = cc.cpu_j * fraction
                fields["energy_ram_j"] = cc.ram_j * fraction
                if uses_gpu and cc.gpu_j is not None:
                    fields["energy_gpu_j_codecarbon"] = cc.gpu_j * fraction

        parts = [fields["energy_cpu_j"], fields["energy_ram_j"]]
        if uses_gpu:
            parts.append(fields["energy_gpu_j"])
        # A total that silently left out a component would understate every cost built on it.
        if all(p is not None for p in parts):
            fields["energy_total_j"] = sum(parts)
            fields["energy_total_kwh"] = fields["energy_total_j"] / J_PER_KWH
        return fields
