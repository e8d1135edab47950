"""GPU energy over the training windows, from NVML's total-energy counter (power sampling as a fallback).

Why a counter and not power samples: `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver loaded,
Volta and newer) integrates power in the driver, so the difference of two readings is the energy of
everything between them, whatever the sampling rate. It refreshes only about every 100 ms
(`counter_update_s`), though: a reading taken at time t reports the energy up to the last refresh u(t),
with t - u(t) < T (T = refresh period).

Many windows. The training loop opens a window per evaluation interval and closes it before each
evaluation, so a run has one window per interval, separated by evaluations. The meter reads the counter
at every begin() and end() (device synchronized first, so queued kernels are inside the window they
belong to) and sums the deltas. With E(a, b) the true energy between a and b, P_max an upper bound on
power, and windows [b_i, e_i], the sum's error is

    sum_i [ E(u(b_i), b_i) - E(u(e_i), e_i) ]

i.e. the stale stretch before each begin is counted, the one before each end is missed. Adjacent windows
telescope: across a gap with no counter refresh, u(b_{i+1}) = u(e_i) and the two terms reduce to E(e_i,
b_{i+1}) <= P_max * gap. A gap with a refresh (an evaluation, typically) contributes at most P_max * T,
and so do the first begin and last end together. Hence the recorded bound

    |error| <= P_max * (T * (1 + gaps with a refresh) + sum of the gaps without one)

with P_max the larger of the enforced power limit and the highest sampled power. The meter knows which
gaps saw a refresh because it compares the counter at each end with the next begin. It is a worst case;
the typical error is a fraction of it. Keep evaluations rare (windows of seconds) for a tight bound.

Fallback. When the counter is unsupported, fails, or goes backwards (driver reload, wrap), every window's
energy comes from integrating `nvmlDeviceGetPowerUsage` samples taken by a background thread
(`sample_hz`, default 10 Hz), piecewise-linear between samples, method `nvml_power_integral`, no bound.
On Ampere (except GA100) and newer, NVML reports power averaged over about 1 s, so this integral lags
and smooths; the same caveat applies to power_peak_w (a peak of 1-s averages there).

Other processes. `nvmlDeviceGetComputeRunningProcesses` is polled about once a second by the sampler (and
at start and finish): any other PID on the GPU marks the energy as shared, because the counter is
whole-GPU. Inside a container NVML may report host PIDs; when our own PID is not among them, one
process is taken to be ours and two or more mean shared. A MIG instance is flagged too: the counter and
power readings belong to the whole physical GPU.

No NVIDIA driver or no pynvml: every figure is null and the method is `unavailable`; nothing is raised or
printed, because a CPU-only machine is a normal place to run the harness.
"""

from __future__ import annotations

import bisect
import csv
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METHOD_COUNTER = "nvml_counter"
METHOD_POWER_INTEGRAL = "nvml_power_integral"
UNAVAILABLE = "unavailable"
NOT_USED = "not_used"


@dataclass(frozen=True)
class GpuEnergyReading:
    """What the meter measured over all its windows; None where a figure could not be obtained."""

    energy_j: float | None
    method: str
    window_s: float
    windows: int
    power_mean_w: float | None = None
    power_peak_w: float | None = None
    error_bound_j: float | None = None
    shared: bool | None = None
    mig: bool | None = None
    nvml_index: int | None = None
    note: str | None = None


def integrate_power(samples: Sequence[tuple[float, float]], windows: Sequence[tuple[float, float]]) -> float:
    """Joules in `windows` [(t0, t1)] from power samples [(t, W)], linear between samples, held flat
    before the first and after the last (the best guess there; the sampler brackets the windows anyway)."""
    if not samples:
        raise ValueError("no power samples to integrate")
    ordered = sorted(samples)
    times = [t for t, _ in ordered]
    watts = [w for _, w in ordered]

    def power_at(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return watts[0]
        if i == len(times):
            return watts[-1]
        t0, t1 = times[i - 1], times[i]
        return watts[i - 1] + (watts[i] - watts[i - 1]) * (t - t0) / (t1 - t0)

    total = 0.0
    for start, stop in windows:
        if stop <= start:
            continue
        lo, hi = bisect.bisect_right(times, start), bisect.bisect_left(times, stop)
        points = [
            (start, power_at(start)),
            *zip(times[lo:hi], watts[lo:hi], strict=True),
            (stop, power_at(stop)),
        ]
        total += sum(
            (tb - ta) * (wa + wb) / 2 for (ta, wa), (tb, wb) in zip(points[:-1], points[1:], strict=True)
        )
    return total


def _no_sync() -> None:
    """Default synchronize: nothing to wait for (tests, or a caller that synchronizes itself)."""


class NvmlEnergyMeter:
    """Energy of one GPU over begin()/end() windows. See the module docstring for method and error bound.

    `synchronize` must wait for the GPU's queued work (the energy meter passes torch.cuda.synchronize);
    `clock` is the monotonic clock the windows are timed with (time.perf_counter, injectable for tests).
    The device is found by CUDA UUID when given (robust to CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER),
    else by index through CUDA_VISIBLE_DEVICES.
    """

    def __init__(
        self,
        *,
        cuda_index: int = 0,
        cuda_uuid: str | None = None,
        sample_hz: float = 10.0,
        counter_update_s: float = 0.1,
        synchronize: Callable[[], None] = _no_sync,
        clock: Callable[[], float] = time.perf_counter,
        own_pid: int | None = None,
    ):
        self._cuda_index = cuda_index
        self._cuda_uuid = cuda_uuid
        self._sample_hz = float(sample_hz)
        self._counter_update_s = float(counter_update_s)
        self._sync = synchronize
        self._clock = clock
        self._own_pid = os.getpid() if own_pid is None else own_pid

        self._nvml: Any = None
        self._handle: Any = None
        self._started = False
        self._finished: GpuEnergyReading | None = None
        self.unavailable_reason: str | None = None
        self.nvml_index: int | None = None
        self._mig: bool | None = None
        self._power_limit_w: float | None = None
        self._t_start = 0.0

        self._counter_ok = False
        self._counter_problem: str | None = None
        self._last_counter: int | None = None
        self._counter_mj = 0
        self._open: tuple[float, int | None] | None = None
        self._prev_end: tuple[float, int | None] | None = None
        self._gaps_with_refresh = 0
        self._quiet_gap_s = 0.0
        self._windows: list[tuple[float, float]] = []

        self._samples: list[tuple[float, float]] = []
        self._sample_count = 0
        self._process_every = max(1, round(self._sample_hz)) if self._sample_hz > 0 else 1
        self._shared: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    @property
    def available(self) -> bool:
        return self._started and self.unavailable_reason is None

    def start(self) -> bool:
        """Open NVML, find the GPU, probe the counter, start the sampler. False (quietly) without a driver."""
        if self._started:
            return self.available
        self._started = True
        self._t_start = self._clock()
        try:
            import pynvml
        except ImportError as exc:
            return self._give_up(f"pynvml not importable: {exc}")
        error = getattr(pynvml, "NVMLError", Exception)
        try:
            pynvml.nvmlInit()
        except error as exc:
            return self._give_up(f"nvmlInit failed: {exc}")
        self._nvml = pynvml
        try:
            self._handle = self._find_handle()
        except error as exc:
            return self._give_up(f"GPU not found through NVML: {exc}", shutdown=True)
        self._probe()
        self._check_processes()
        if self._sample_hz > 0:
            self.sample_now()
            self._thread = threading.Thread(target=self._sample_loop, name="harness-gpu-power", daemon=True)
            self._thread.start()
        return True

    def _give_up(self, reason: str, shutdown: bool = False) -> bool:
        # Debug only: no driver is the normal state of a CPU machine, not something to warn about.
        log.debug("GPU energy unavailable: %s", reason)
        self.unavailable_reason = reason
        if shutdown:
            self._shutdown()
        return False

    def _find_handle(self) -> Any:
        nvml = self._nvml
        error = nvml.NVMLError
        handle = None
        if self._cuda_uuid:
            uuid = self._cuda_uuid
            candidates = [uuid] if uuid.startswith(("GPU-", "MIG-")) else [f"GPU-{uuid}", f"MIG-{uuid}"]
            for candidate in candidates:
                try:
                    handle = nvml.nvmlDeviceGetHandleByUUID(candidate)
                    break
                except error:
                    continue
        if handle is None:
            handle = nvml.nvmlDeviceGetHandleByIndex(self._physical_index())
        self._mig = False
        try:
            if nvml.nvmlDeviceIsMigDeviceHandle(handle):
                self._mig = True
                handle = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
        except error:
            pass
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(handle)
            self._mig = self._mig or current == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1)
        except error:
            pass  # pre-Ampere GPUs have no MIG mode: not MIG
        try:
            self.nvml_index = int(nvml.nvmlDeviceGetIndex(handle))
        except error:
            self.nvml_index = None
        return handle

    def _physical_index(self) -> int:
        """CUDA index → NVML index through a numeric CUDA_VISIBLE_DEVICES (NVML ignores that variable)."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        parts = [p.strip() for p in visible.split(",") if p.strip()]
        if parts and all(p.isdigit() for p in parts) and self._cuda_index < len(parts):
            return int(parts[self._cuda_index])
        return self._cuda_index

    def _probe(self) -> None:
        nvml = self._nvml
        try:
            self._power_limit_w = nvml.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1000.0
        except nvml.NVMLError:
            self._power_limit_w = None
        try:
            self._last_counter = int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            self._counter_ok = True
        except nvml.NVMLError as exc:
            self._counter_problem = f"energy counter not supported: {exc}"

    # -------------------------------------------------------------------------------------------- windows

    def begin(self) -> None:
        """Open a window: synchronize the GPU, then read clock and counter."""
        if not self.available or self._finished is not None or self._open is not None:
            return
        self._sync()
        t = self._clock()
        counter = self._read_counter()
        if self._prev_end is not None:
            t_end, counter_end = self._prev_end
            if counter is not None and counter_end is not None and counter == counter_end:
                self._quiet_gap_s += t - t_end
            else:
                self._gaps_with_refresh += 1
        self._open = (t, counter)

    def end(self) -> None:
        """Close the window: synchronize (the window's kernels finish inside it), read clock and counter."""
        if self._open is None:
            return
        self._sync()
        t = self._clock()
        counter = self._read_counter()
        t0, counter0 = self._open
        self._open = None
        self._windows.append((t0, t))
        if counter0 is not None and counter is not None:
            self._counter_mj += counter - counter0
        self._prev_end = (t, counter)

    def _read_counter(self) -> int | None:
        if not self._counter_ok:
            return None
        nvml = self._nvml
        try:
            value = int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except nvml.NVMLError as exc:
            self._counter_failed(f"energy counter read failed: {exc}")
            return None
        if self._last_counter is not None and value < self._last_counter:
            self._counter_failed(f"energy counter went backwards ({self._last_counter} -> {value} mJ)")
            return None
        self._last_counter = value
        return value

    def _counter_failed(self, reason: str) -> None:
        log.info("GPU energy falls back to integrating power samples: %s", reason)
        self._counter_ok = False
        self._counter_problem = reason

    # ------------------------------------------------------------------------------------------- sampling

    def sample_now(self) -> None:
        """Take one power sample (and, about once a second, look for other processes on the GPU)."""
        if not self.available:
            return
        nvml = self._nvml
        t = self._clock()
        try:
            watts = nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except nvml.NVMLError:
            return
        self._samples.append((t, watts))
        self._sample_count += 1
        if self._sample_count % self._process_every == 0:
            self._check_processes()

    def _sample_loop(self) -> None:
        period = 1.0 / self._sample_hz
        while not self._stop.wait(period):
            self.sample_now()

    def _check_processes(self) -> None:
        nvml = self._nvml
        try:
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except nvml.NVMLError:
            return  # not supported or no permission: sharing stays unknown unless another read works
        pids = {int(p.pid) for p in processes}
        others = pids - {self._own_pid} if self._own_pid in pids else (pids if len(pids) > 1 else set())
        self._shared = bool(self._shared) or bool(others)

    @property
    def samples(self) -> list[tuple[float, float]]:
        """(clock time, W) power samples so far."""
        return list(self._samples)

    # ------------------------------------------------------------------------------------------- results

    def finish(self) -> GpuEnergyReading:
        """Stop sampling, close NVML, return the reading. Safe to call twice and after a failed start."""
        if self._finished is not None:
            return self._finished
        if self._open is not None:
            try:
                self.end()
            except Exception as exc:  # a crashed CUDA context must not hide the run's own error
                log.debug("closing the open energy window failed: %s", exc)
                self._open = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.available:
            self._check_processes()
        self._finished = self._reading()
        self._shutdown()
        return self._finished

    def _reading(self) -> GpuEnergyReading:
        window_s = sum(t1 - t0 for t0, t1 in self._windows)
        base: dict[str, Any] = dict(window_s=window_s, windows=len(self._windows), nvml_index=self.nvml_index)
        if not self.available:
            return GpuEnergyReading(energy_j=None, method=UNAVAILABLE, note=self.unavailable_reason, **base)
        peak = self._peak_in_windows()
        bound = None
        if self._counter_ok:
            energy, method = self._counter_mj / 1000.0, METHOD_COUNTER
            limits = [w for w in (self._power_limit_w, peak) if w is not None]
            if limits:
                refreshes = 1 + self._gaps_with_refresh if self._windows else 0
                bound = max(limits) * (self._counter_update_s * refreshes + self._quiet_gap_s)
        elif self._samples:
            energy = integrate_power(self._samples, self._windows) if self._windows else 0.0
            method = METHOD_POWER_INTEGRAL
        else:
            note = f"{self._counter_problem}; no power samples (energy.sample_hz=0)"
            return GpuEnergyReading(
                energy_j=None,
                method=f"{UNAVAILABLE}: {note}",
                shared=self._shared,
                mig=self._mig,
                note=note,
                **base,
            )
        return GpuEnergyReading(
            energy_j=energy,
            method=method,
            power_mean_w=energy / window_s if window_s > 0 else None,
            power_peak_w=peak,
            error_bound_j=bound,
            shared=self._shared,
            mig=self._mig,
            note=self._counter_problem,
            **base,
        )

    def _peak_in_windows(self) -> float | None:
        if not self._samples or not self._windows:
            return None
        ordered = sorted(self._samples)
        times = [t for t, _ in ordered]
        peak = None
        for t0, t1 in self._windows:
            inside = [w for _, w in ordered[bisect.bisect_left(times, t0) : bisect.bisect_right(times, t1)]]
            if inside:
                peak = max(peak or 0.0, *inside)
        return peak

    def write_timeline(self, path: Path) -> Path | None:
        """Power samples as CSV (t_s since start, power_w, in_window 0/1); None when there are none."""
        if not self._samples:
            return None
        windows = sorted(self._windows)
        starts = [t0 for t0, _ in windows]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t_s", "power_w", "in_window"])
            for t, watts in sorted(self._samples):
                i = bisect.bisect_right(starts, t) - 1
                inside = i >= 0 and t <= windows[i][1]
                writer.writerow([f"{t - self._t_start:.4f}", f"{watts:.3f}", int(inside)])
        return path

    def _shutdown(self) -> None:
        if self._nvml is None:
            return
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:  # shutting down must never mask a result
            log.debug("nvmlShutdown failed: %s", exc)
        self._nvml = None
