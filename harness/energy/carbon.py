"""CPU and RAM energy from codecarbon's OfflineEmissionsTracker, and the grid carbon intensity we apply.

Offline only: the online tracker geolocates the machine over the network. Every setting that could make
codecarbon reach the network or read a different location (API output, HTTP endpoint, Electricity Maps
token, cloud provider) is passed explicitly, so a ~/.codecarbon.config or CODECARBON_* variable cannot
switch it on.

Evaluation windows. codecarbon cannot pause. Its task API (start_task/stop_task) would work per window,
but each call re-reads every hardware interface and rebuilds an emissions record, which is far too slow
for the loop's many training windows, one per evaluation interval (measuring must stay under 1% of
throughput). So the tracker runs once, from the meter's start() (after warm-up) to finish(), and the
energy meter scales its CPU and RAM (and GPU cross-check) totals by train-window time / tracked time.
That is exact where power is constant over the span (RAM's rule of thumb, a constant TDP) and otherwise
assumes evaluation draws the same CPU power as training: the error is at most
|P_eval - P_train| × eval time, a small share whenever evaluation is a small share of the span.

It swallows its own errors. Its public methods are wrapped in a suppress-and-log decorator, so a
failure shows up only as stop() returning None, a missing CSV, or a log record. stop() here checks all
three and records "failed: <reason>" (the reason taken from codecarbon's own log record) as the method,
with null figures, instead of inventing a zero.

Set-up in the background. Constructing the tracker is quick, but its hardware detection takes a second or
more (most of it a py-cpuinfo subprocess that reads the CPU model). prepare() constructs the tracker and runs
that detection in a daemon thread while the run does other untimed work (harness.train: FLOP counting);
start() (or wait_ready()) joins the thread, then starts the tracker exactly where it started before: the
measured span is start()..stop() either way, and codecarbon resets its CPU-load baseline at start(). A
failure in the thread is kept and becomes this meter's failed reading, as a failure in start() does; stop()
joins the thread too, so none outlives the meter. Without prepare(), start() does the same work in line.

Quiet. From prepare() (or start()) to stop(), codecarbon's logger (which it configures itself,
process-wide) is pointed at an in-memory capture instead of stderr; its previous state is restored at stop().

Method tags say how codecarbon got each figure, read from its hardware objects after stop():
`rapl:...` (Linux powercap energy counters), `estimate:codecarbon_cpu_load_x_tdp(...)` (CPU load × TDP
from its CPU table, or its generic TDP when the model is not in the table), `estimate:codecarbon_ram_...`
(RAM power from the estimated DIMM count, 5 W per x86 DIMM), `user_constant(...)` (forced values).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

log = logging.getLogger(__name__)

CSV_NAME = "codecarbon_emissions.csv"
J_PER_KWH = 3.6e6
_CODECARBON_LOGGER = "codecarbon"


@dataclass(frozen=True)
class CodeCarbonReading:
    """codecarbon's totals over its whole tracked span (not yet scaled to the training windows)."""

    cpu_j: float | None
    ram_j: float | None
    gpu_j: float | None
    duration_s: float | None
    emissions_kg: float | None
    method_cpu: str
    method_ram: str
    gpu_count: int = 0
    csv_path: Path | None = None
    error: str | None = None


class _Capture(logging.Handler):
    """Keeps codecarbon's recent warnings and errors in memory: the failure reason, without the noise."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[logging.LogRecord] = collections.deque(maxlen=50)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def reason(self) -> str | None:
        """The last exception codecarbon swallowed, else its last error message."""
        for record in reversed(self.records):
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                return f"{type(exc).__name__}: {exc}"
        for record in reversed(self.records):
            if record.levelno >= logging.ERROR:
                return record.getMessage()
        return None


class CodeCarbonMeter:
    """One OfflineEmissionsTracker over the training phase; start() and stop() never raise."""

    def __init__(
        self,
        *,
        output_dir: Path,
        country_iso_code: str = "USA",
        region: str | None = None,
        measure_power_secs: float = 10.0,
        tracking_mode: str = "machine",
        force_cpu_power_w: float | None = None,
        force_ram_power_w: float | None = None,
        output_file: str = CSV_NAME,
    ):
        self.output_dir = Path(output_dir)
        self.output_file = output_file
        self._country = country_iso_code
        self._region = region
        self._measure_power_secs = float(measure_power_secs)
        self._tracking_mode = tracking_mode
        self._force_cpu = force_cpu_power_w
        self._force_ram = force_ram_power_w
        self._tracker: Any = None
        self._capture = _Capture()
        self._saved_logger: tuple[int, list[logging.Handler], bool] | None = None
        self._start_error: str | None = None
        self._reading: CodeCarbonReading | None = None
        # prepare(): a constructed tracker and the GPU ids it was built for; the thread detecting its hardware
        self._prepared: tuple[Any, list[int] | None] | None = None
        self._setup_thread: threading.Thread | None = None
        self._setup_error: str | None = None

    @property
    def csv_path(self) -> Path:
        return self.output_dir / self.output_file

    def prepare(self, gpu_ids: list[int] | None = None) -> None:
        """Construct the tracker and begin its hardware detection in a background thread; measures nothing.

        Call it early, before the run's untimed preparation (data, FLOP counting), with the `gpu_ids` that
        start() will get: start() uses the prepared tracker only for the same ids, else builds its own."""
        if self._prepared is not None or self._tracker is not None or self._start_error is not None:
            return
        tracker = self._construct(gpu_ids)
        if tracker is None:
            return
        self._prepared = (tracker, None if gpu_ids is None else list(gpu_ids))
        self._setup_thread = threading.Thread(
            target=self._detect_hardware, args=(tracker,), name="harness-codecarbon-setup", daemon=True
        )
        self._setup_thread.start()

    def wait_ready(self) -> None:
        """Wait for prepare()'s background set-up to end (no-op without one); a failure waits for start()."""
        thread, self._setup_thread = self._setup_thread, None
        if thread is not None:
            thread.join()

    def start(self, gpu_ids: list[int] | None = None) -> None:
        """Start the tracker: its measured span begins here. Without prepare() this first constructs it and
        detects the hardware (over a second: call it outside the timed windows). `gpu_ids` are NVML indices
        of the GPUs the run uses, for the GPU cross-check."""
        self.wait_ready()
        prepared, self._prepared = self._prepared, None
        if self._tracker is not None or self._start_error is not None:
            return
        wanted = None if gpu_ids is None else list(gpu_ids)
        if prepared is not None and prepared[1] == wanted:
            tracker = prepared[0]
        else:  # not prepared, or prepared for other GPUs (a tracker not yet started holds nothing)
            self._setup_error = None
            tracker = self._construct(gpu_ids)
            if tracker is None:
                return
            self._detect_hardware(tracker)
        if self._setup_error is not None:
            self._start_error = self._setup_error
            return
        self._quiet_logger()
        try:
            tracker.start()
        except Exception as exc:
            self._start_error = f"codecarbon start failed: {type(exc).__name__}: {exc}"
            return
        self._tracker = tracker

    def _construct(self, gpu_ids: list[int] | None) -> Any:
        """A new OfflineEmissionsTracker (not started), or None with the reason in _start_error."""
        try:
            from codecarbon import OfflineEmissionsTracker
            from codecarbon.output_methods.base_output import OutputMethod
        except Exception as exc:  # ImportError, or a broken install failing at import time
            self._start_error = f"codecarbon not importable: {type(exc).__name__}: {exc}"
            return None
        self._quiet_logger()  # after the import: importing codecarbon installs its own stderr handler

        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            tracker = OfflineEmissionsTracker(
                country_iso_code=self._country,
                region=self._region,
                cloud_provider=None,
                cloud_region=None,
                project_name="harness",
                measure_power_secs=self._measure_power_secs,
                api_call_interval=-1,
                output_dir=str(self.output_dir),
                output_file=self.output_file,
                output_methods=[OutputMethod.CSV],
                emissions_endpoint=None,
                electricitymaps_api_token=None,
                gpu_ids=gpu_ids,
                tracking_mode=self._tracking_mode,
                log_level="error",
                pue=1.0,  # PUE is applied once, to emissions and energy cost (harness.energy.cost)
                force_cpu_power=self._force_cpu,
                force_ram_power=self._force_ram,
                allow_multiple_runs=True,  # no lock file in /tmp; concurrent sweep jobs must not block
            )
            # A deprecated CODECARBON_CO2_SIGNAL_API_TOKEN is read even when the new token is None; drop it
            # so the offline tracker can never call the Electricity Maps API.
            tracker._electricitymaps_api_token = None
        except Exception as exc:
            self._start_error = f"codecarbon start failed: {type(exc).__name__}: {exc}"
            return None
        finally:
            self._quiet_logger()  # the tracker re-installs its own stderr handler when constructed
        return tracker

    def _detect_hardware(self, tracker: Any) -> None:
        """codecarbon's hardware detection, which its start() would otherwise run first (codecarbon >= 3
        defers it to start(); older versions detect in the constructor and have nothing left to do here).
        Runs in prepare()'s thread or in line; a failure is kept in _setup_error, never raised."""
        detect = getattr(tracker, "_ensure_hardware_ready", None)
        if detect is None:
            return
        try:
            detect()
        except Exception as exc:
            self._setup_error = f"codecarbon start failed: {type(exc).__name__}: {exc}"

    def stop(self) -> CodeCarbonReading:
        """Stop the tracker and read its totals; a failure becomes method 'failed: <reason>', never raised."""
        if self._reading is not None:
            return self._reading
        try:
            self.wait_ready()  # a run that ends before start(): no set-up thread outlives the meter
            self._prepared = None
            self._reading = self._stop()
        finally:
            self._restore_logger()
        return self._reading

    def _stop(self) -> CodeCarbonReading:
        if self._tracker is None:
            reason = self._start_error or self._capture.reason()
            # Never started and nothing went wrong: the job ended before training (a refused configuration),
            # and its own error says why; a warning about codecarbon here would point the wrong way.
            return self._failed(reason or "codecarbon was never started", warn=reason is not None)
        try:
            emissions = self._tracker.stop()
        except Exception as exc:  # stop() is wrapped by codecarbon, but be sure
            return self._failed(f"codecarbon stop() raised {type(exc).__name__}: {exc}")
        if (
            isinstance(emissions, bool)
            or not isinstance(emissions, (int, float))
            or not math.isfinite(emissions)
        ):
            detail = self._capture.reason()
            return self._failed(
                f"codecarbon stop() returned {emissions!r}" + (f" ({detail})" if detail else "")
            )
        data = getattr(self._tracker, "final_emissions_data", None)
        if data is None:
            return self._failed("codecarbon kept no emissions data")
        if not self.csv_path.is_file():
            return self._failed(f"codecarbon wrote no CSV at {self.csv_path}")
        gpu_count = int(getattr(data, "gpu_count", 0) or 0)
        return CodeCarbonReading(
            cpu_j=float(data.cpu_energy) * J_PER_KWH,
            ram_j=float(data.ram_energy) * J_PER_KWH,
            gpu_j=float(data.gpu_energy) * J_PER_KWH if gpu_count > 0 else None,
            duration_s=float(data.duration),
            emissions_kg=float(emissions),
            method_cpu=cpu_method(self._tracker, forced=self._force_cpu is not None),
            method_ram=ram_method(self._tracker, getattr(data, "ram_power", None)),
            gpu_count=gpu_count,
            csv_path=self.csv_path,
        )

    def _failed(self, reason: str, warn: bool = True) -> CodeCarbonReading:
        if warn:
            log.warning("codecarbon measurement failed, CPU and RAM energy will be null: %s", reason)
        method = f"failed: {reason}"
        return CodeCarbonReading(
            cpu_j=None,
            ram_j=None,
            gpu_j=None,
            duration_s=None,
            emissions_kg=None,
            method_cpu=method,
            method_ram=method,
            csv_path=self.csv_path if self.csv_path.is_file() else None,
            error=reason,
        )

    def _quiet_logger(self) -> None:
        logger = logging.getLogger(_CODECARBON_LOGGER)
        if self._saved_logger is None:
            self._saved_logger = (logger.level, list(logger.handlers), logger.propagate)
        logger.handlers = [self._capture]
        logger.setLevel(logging.WARNING)
        logger.propagate = False

    def _restore_logger(self) -> None:
        if self._saved_logger is None:
            return
        level, handlers, propagate = self._saved_logger
        logger = logging.getLogger(_CODECARBON_LOGGER)
        logger.handlers = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        self._saved_logger = None


def cpu_method(tracker: Any, *, forced: bool = False) -> str:
    """How codecarbon measured the CPU, from the hardware object it chose (see the module docstring)."""
    for hardware in getattr(tracker, "_hardware", []):
        kind = type(hardware).__name__
        mode = getattr(hardware, "_mode", None)
        if kind == "CPU":
            tdp = getattr(hardware, "_tdp", None)
            tracking = getattr(hardware, "_tracking_mode", "machine")
            if mode == "intel_rapl":
                return "rapl:codecarbon_linux_powercap"
            if mode == "windows_emi":
                return "rapl:codecarbon_windows_energy_meter"
            if mode == "intel_power_gadget":
                return "power_gadget:codecarbon"
            origin = (
                "user" if forced else "generic" if getattr(hardware, "_is_generic_tdp", False) else "table"
            )
            if mode == "cpu_load":
                return f"estimate:codecarbon_cpu_load_x_tdp(tdp={tdp:g} W {origin}, {tracking})"
            if mode == "constant":
                return f"estimate:codecarbon_half_tdp_constant(tdp={tdp:g} W {origin})"
            return f"estimate:codecarbon_{mode}"
        if kind in ("AppleSiliconChip", "Raspberry") and getattr(hardware, "chip_part", None) == "CPU":
            return f"{'powermetrics' if kind == 'AppleSiliconChip' else 'pmic'}:codecarbon"
    return "failed: codecarbon tracked no CPU"


def ram_method(tracker: Any, mean_power_w: float | None = None) -> str:
    """How codecarbon measured RAM: a forced constant, a board sensor, or its DIMM rule of thumb."""
    power = "" if mean_power_w is None else f"{float(mean_power_w):g} W, "
    for hardware in getattr(tracker, "_hardware", []):
        kind = type(hardware).__name__
        if kind == "RAM":
            forced = getattr(hardware, "_force_ram_power", None)
            if forced is not None:
                return f"user_constant({float(forced):g} W)"
            tracking = getattr(hardware, "_tracking_mode", "machine")
            return f"estimate:codecarbon_ram_dimm_rule({power}{tracking})"
        if kind == "Raspberry" and getattr(hardware, "chip_part", None) == "RAM":
            return "pmic:codecarbon"
    return "failed: codecarbon tracked no RAM"


def grid_intensity(country_iso_code: str, region: str | None = None) -> tuple[float, str]:
    """(g CO2e per kWh, source) from codecarbon's offline data: the figure its tracker would apply.

    A region is looked up in codecarbon's regional data (US states: EPA eGRID; Canadian provinces; Chinese
    provinces; Nordic bidding zones); an unknown country or region is a ConfigError, not the world
    average that codecarbon would quietly fall back to.
    """
    from codecarbon import __version__
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    data = DataSource()
    mix = data.get_global_energy_mix_data()
    code = str(country_iso_code).upper()
    if code not in mix:
        raise ConfigError(
            f"energy.country_iso_code={country_iso_code} is not in codecarbon's grid data; "
            "use a 3-letter ISO code such as USA, FRA, DEU, or set energy.carbon_intensity_g_per_kwh "
            "with energy.carbon_intensity_source"
        )
    country = mix[code]
    geo = GeoMetadata(country_iso_code=code, country_name=country.get("country_name"), region=region)
    engine = Emissions(data)
    one_kwh = Energy.from_energy(kWh=1.0)
    if region is None:
        kg = engine.get_country_emissions(one_kwh, geo)
        source = (
            f"codecarbon {__version__} offline data: global_energy_mix.json carbon_intensity for "
            f"{country.get('country_name', code)} ({country.get('year', 'year not stated')})"
        )
        return kg * 1000.0, source
    try:
        kg = engine.get_region_emissions(one_kwh, geo)
    except Exception as exc:
        raise ConfigError(
            f"energy.region={region} has no codecarbon grid data for {code} ({type(exc).__name__}: {exc}); "
            "use a US state, Canadian or Chinese province or Nordic zone name, or region=null"
        ) from None
    regional = _regional_source(data, code)
    source = f"codecarbon {__version__} offline data for {code} region {geo.region}" + (
        f" ({regional})" if regional else ""
    )
    return kg * 1000.0, source


def _regional_source(data: Any, code: str) -> str | None:
    """The dataset codecarbon cites for a country's regional figures (e.g. EPA eGRID for the USA)."""
    try:
        meta = data.get_country_emissions_data(code.lower()).get("_source")
    except Exception:
        return None
    if isinstance(meta, dict) and meta.get("name"):
        return f"{meta['name']}, {meta.get('year', '')}".rstrip(", ")
    return None
