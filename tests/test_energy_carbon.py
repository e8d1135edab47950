"""codecarbon on the CPU (one real ~1.5 s run), its failure paths, method tags and grid intensity."""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from types import SimpleNamespace

import codecarbon
import pytest

from harness.energy import EnergyMeter, EnergySettings
from harness.energy.carbon import CSV_NAME, CodeCarbonMeter, cpu_method, grid_intensity, ram_method
from harness.errors import ConfigError


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_codecarbon_on_cpu_writes_csv_and_scaled_tagged_figures(tmp_path, capfd):
    """The one real codecarbon run: training windows with an 'evaluation' gap between them."""
    settings = EnergySettings(measure_power_secs=1)
    meter = EnergyMeter(settings, "cpu", tmp_path)
    meter.start()
    for _ in range(2):
        with meter.window():
            _busy(0.6)
        time.sleep(0.2)  # evaluation: inside codecarbon's span, outside the windows
    fields = meter.finish()
    cc = meter.codecarbon_reading

    assert cc.error is None, cc.error
    assert (tmp_path / CSV_NAME).is_file()
    with (tmp_path / CSV_NAME).open() as handle:
        row = next(csv.DictReader(handle))
    assert float(row["cpu_energy"]) * 3.6e6 == pytest.approx(cc.cpu_j)

    # Tags: how codecarbon got each figure; here no RAPL is readable, so estimates (RAPL where it is).
    assert fields["energy_method_cpu"].split(":")[0] in ("estimate", "rapl")
    assert fields["energy_method_ram"].startswith("estimate:codecarbon_ram_dimm_rule")
    assert fields["energy_method_gpu"] == "not_used" and fields["energy_gpu_j"] is None

    fraction = fields["energy_codecarbon_fraction"]
    assert fraction == pytest.approx(meter.window_s / cc.duration_s)
    assert 0.5 < fraction < 1.0  # the evaluation gaps are excluded
    assert fields["energy_cpu_j"] == pytest.approx(cc.cpu_j * fraction) and fields["energy_cpu_j"] > 0
    assert fields["energy_ram_j"] == pytest.approx(cc.ram_j * fraction) and fields["energy_ram_j"] > 0
    assert fields["energy_total_j"] == pytest.approx(fields["energy_cpu_j"] + fields["energy_ram_j"])
    assert fields["energy_gpu_j_codecarbon"] is None

    # codecarbon's own emissions used the same intensity we record
    intensity, _ = grid_intensity("USA")
    assert cc.emissions_kg / ((cc.cpu_j + cc.ram_j) / 3.6e6) * 1000 == pytest.approx(intensity, rel=1e-6)
    assert fields["carbon_intensity_g_per_kwh"] == pytest.approx(intensity)

    assert capfd.readouterr() == ("", "")  # quiet
    print(json.dumps({k: v for k, v in fields.items() if v is not None}, indent=1))


def _real_stop_then(result):
    """A stop() that really stops the tracker (no threads left behind) but returns `result`."""
    real_stop = codecarbon.OfflineEmissionsTracker.stop

    def stop(self):
        real_stop(self)
        return result

    return stop


def test_stop_returning_none_is_recorded_as_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "stop", _real_stop_then(None))
    meter = EnergyMeter(EnergySettings(), "cpu", tmp_path)
    meter.start()
    with meter.window():
        pass
    fields = meter.finish()
    assert fields["energy_method_cpu"] == "failed: codecarbon stop() returned None"
    assert fields["energy_method_ram"] == fields["energy_method_cpu"]
    assert fields["energy_cpu_j"] is None and fields["energy_ram_j"] is None
    assert fields["energy_total_j"] is None
    assert meter.codecarbon_reading.error


def test_missing_csv_is_recorded_as_failure(tmp_path, monkeypatch):
    real_stop = codecarbon.OfflineEmissionsTracker.stop

    def stop_and_lose_the_csv(self):
        result = real_stop(self)
        (tmp_path / CSV_NAME).unlink()
        return result

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "stop", stop_and_lose_the_csv)
    meter = CodeCarbonMeter(output_dir=tmp_path)
    meter.start()
    reading = meter.stop()
    assert reading.cpu_j is None
    assert reading.method_cpu.startswith("failed: codecarbon wrote no CSV")


def test_swallowed_exception_becomes_the_failure_reason(tmp_path, monkeypatch):
    real_stop = codecarbon.OfflineEmissionsTracker.stop

    # codecarbon wraps stop() in its suppress decorator: reproduce that, the error only goes to its log
    def suppressed_stop(self):
        real_stop(self)
        try:
            raise RuntimeError("sensor exploded")
        except RuntimeError:
            logging.getLogger("codecarbon").warning("graceful shutdown. Exceptions:", exc_info=True)

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "stop", suppressed_stop)
    meter = CodeCarbonMeter(output_dir=tmp_path)
    meter.start()
    reading = meter.stop()
    assert reading.method_cpu == "failed: codecarbon stop() returned None (RuntimeError: sensor exploded)"


def test_codecarbon_logger_is_restored_after_stop(tmp_path):
    logger = logging.getLogger("codecarbon")
    before = (logger.level, list(logger.handlers), logger.propagate)
    meter = CodeCarbonMeter(output_dir=tmp_path)
    meter.start()
    meter.stop()
    assert (logger.level, list(logger.handlers), logger.propagate) == before


def test_codecarbon_not_importable_fails_softly(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "codecarbon", None)
    meter = CodeCarbonMeter(output_dir=tmp_path)
    meter.start()
    reading = meter.stop()
    assert reading.method_cpu.startswith("failed: codecarbon not importable")


# -------------------------------------------------------------------------- set-up in a background thread

SETUP_THREAD = "harness-codecarbon-setup"


def _setup_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == SETUP_THREAD]


@pytest.mark.parametrize("prepared", [True, False], ids=["background", "in_line"])
def test_hardware_setup_failure_is_the_failure_reason_either_way(tmp_path, monkeypatch, prepared):
    """A failure in codecarbon's hardware detection becomes the same failed reading, run aside or in line."""
    ran_in = []

    def broken_detection(self):
        ran_in.append(threading.current_thread().name)
        raise RuntimeError("cpuinfo subprocess died")

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "_ensure_hardware_ready", broken_detection)
    meter = CodeCarbonMeter(output_dir=tmp_path)
    if prepared:
        meter.prepare()
    meter.start()
    reading = meter.stop()
    assert ran_in == [SETUP_THREAD if prepared else threading.current_thread().name]
    assert reading.method_cpu == "failed: codecarbon start failed: RuntimeError: cpuinfo subprocess died"
    assert reading.method_ram == reading.method_cpu
    assert reading.cpu_j is None and reading.ram_j is None and reading.emissions_kg is None
    assert not _setup_threads()


def test_cpu_meter_prepares_the_tracker_it_starts_and_measures_from_start(tmp_path, capfd):
    logger = logging.getLogger("codecarbon")
    before = (logger.level, list(logger.handlers), logger.propagate)
    meter = EnergyMeter(EnergySettings(), "cpu", tmp_path)
    carbon = meter._codecarbon
    tracker, gpu_ids = carbon._prepared
    assert gpu_ids is None
    meter.wait_ready()
    assert not _setup_threads()
    assert tracker._start_time is None  # set up, not started: nothing measured before start()
    meter.start()
    assert carbon._tracker is tracker
    with meter.window():
        _busy(0.05)
    fields = meter.finish()
    assert meter.codecarbon_reading.error is None, meter.codecarbon_reading.error
    assert fields["energy_method_cpu"].split(":")[0] in ("estimate", "rapl")
    assert fields["energy_cpu_j"] is not None and fields["energy_ram_j"] is not None
    assert (logger.level, list(logger.handlers), logger.propagate) == before
    assert capfd.readouterr() == ("", "")  # the thread's codecarbon logging was captured too


def test_run_ending_before_start_joins_the_setup_and_restores_the_logger(tmp_path, monkeypatch):
    """A crash between the meter's construction and start(): finish() leaves no thread and a clean logger."""
    release = threading.Event()
    real_detection = codecarbon.OfflineEmissionsTracker._ensure_hardware_ready

    def slow_detection(self):
        release.wait(timeout=60)
        real_detection(self)

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "_ensure_hardware_ready", slow_detection)
    logger = logging.getLogger("codecarbon")
    before = (logger.level, list(logger.handlers), logger.propagate)
    meter = EnergyMeter(EnergySettings(), "cpu", tmp_path)
    assert [t.daemon for t in _setup_threads()] == [True]  # still detecting; cannot keep a process alive
    release.set()
    fields = meter.finish()
    assert not _setup_threads()
    assert fields["energy_method_cpu"] == "failed: codecarbon was never started"
    assert fields["energy_cpu_j"] is None and fields["energy_total_j"] is None
    assert (logger.level, list(logger.handlers), logger.propagate) == before
    assert not (tmp_path / CSV_NAME).exists()


def test_tracker_prepared_for_other_gpus_is_replaced(tmp_path, monkeypatch):
    """start() with other GPU ids than prepare() got builds its own tracker (codecarbon's gpu_ids differ)."""
    built = []
    real_init = codecarbon.OfflineEmissionsTracker.__init__

    def init(self, *args, **kwargs):
        built.append(kwargs["gpu_ids"])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "__init__", init)
    meter = CodeCarbonMeter(output_dir=tmp_path)
    meter.prepare(gpu_ids=[3])
    meter.start(gpu_ids=None)
    reading = meter.stop()
    assert built == [[3], None]
    assert reading.error is None, reading.error


# ------------------------------------------------------------------------------------------- method tags


def _tracker(*hardware):
    return SimpleNamespace(_hardware=list(hardware))


def _cpu(mode, tdp=65, generic=False):
    cpu = type("CPU", (), {})()
    cpu._mode, cpu._tdp, cpu._is_generic_tdp, cpu._tracking_mode = mode, tdp, generic, "machine"
    return cpu


def _ram(forced=None):
    ram = type("RAM", (), {})()
    ram._force_ram_power, ram._tracking_mode = forced, "machine"
    return ram


def test_cpu_method_tags():
    assert cpu_method(_tracker(_ram(), _cpu("intel_rapl"))) == "rapl:codecarbon_linux_powercap"
    assert cpu_method(_tracker(_cpu("cpu_load", 65))).startswith(
        "estimate:codecarbon_cpu_load_x_tdp(tdp=65 W table"
    )
    assert "85 W generic" in cpu_method(_tracker(_cpu("cpu_load", 85, generic=True)))
    assert "120 W user" in cpu_method(_tracker(_cpu("cpu_load", 120)), forced=True)
    assert cpu_method(_tracker(_cpu("constant", 85))).startswith("estimate:codecarbon_half_tdp_constant")
    assert cpu_method(_tracker(_ram())) == "failed: codecarbon tracked no CPU"


def test_ram_method_tags():
    assert ram_method(_tracker(_ram()), 20.0) == "estimate:codecarbon_ram_dimm_rule(20 W, machine)"
    assert ram_method(_tracker(_ram(forced=12))) == "user_constant(12 W)"


# ---------------------------------------------------------------------------------------- grid intensity


def test_grid_intensity_country_and_region_with_sources():
    usa, source = grid_intensity("USA")
    assert usa == pytest.approx(369.473)  # codecarbon's global_energy_mix.json value for USA
    assert "United States" in source and "codecarbon" in source
    france, _ = grid_intensity("fra")
    assert france < usa
    california, source = grid_intensity("USA", "California")
    assert california != pytest.approx(usa)
    assert "eGRID" in source


@pytest.mark.parametrize(("country", "region"), [("XYZ", None), ("USA", "atlantis")])
def test_grid_intensity_rejects_unknown_places(country, region):
    with pytest.raises(ConfigError):
        grid_intensity(country, region)


def test_meter_rejects_unknown_country_before_running(tmp_path):
    with pytest.raises(ConfigError, match="country_iso_code"):
        EnergyMeter(EnergySettings(country_iso_code="XYZ"), "cpu", tmp_path)


def test_intensity_override_needs_and_keeps_its_source(tmp_path):
    settings = EnergySettings(
        carbon_intensity_g_per_kwh=50.0, carbon_intensity_source="utility contract 2026"
    )
    meter = EnergyMeter(settings, "cpu", tmp_path)
    assert meter.intensity == (50.0, "config: utility contract 2026")
    meter.finish()  # ends the codecarbon set-up the meter began


def test_a_run_refused_before_training_leaves_no_setup_thread(compose_train, tmp_path):
    """The meter is made with the job (its set-up starts then); a job refused by its mode's checks, before
    anything is trained, still finishes it: no thread outlives the job, codecarbon's logger is given back."""
    from harness.train import run_all

    logger = logging.getLogger("codecarbon")
    before = (logger.level, list(logger.handlers), logger.propagate)
    misuse = ("trainer=least_squares", "data=sparse_regression", "model=mlp")
    cfg = compose_train("energy.codecarbon=true", *misuse)
    with pytest.raises(ConfigError, match="fits linear models with one output"):
        run_all(cfg, tmp_path / "job")
    assert not _setup_threads()
    assert (logger.level, list(logger.handlers), logger.propagate) == before
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "refused before training: nothing written"
