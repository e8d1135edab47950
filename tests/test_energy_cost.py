"""Cost arithmetic (paper constants, electricity, emissions), the cloud price table, and energy settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.energy import ENERGY_FIELDS, EnergyMeter, EnergySettings, cost_fields
from harness.energy.cost import (
    KG_PER_LB,
    emissions_kg,
    energy_cost_usd,
    load_cloud_prices,
    lookup_cloud_price,
    paper_cost,
)
from harness.errors import ConfigError
from harness.results.schema import CostFields

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- paper


def test_paper_constants():
    usd, kg = paper_cost(6.874e16)
    assert usd == pytest.approx(1.0)
    assert kg == pytest.approx(6.874e16 / 3.498e17 * 0.45359237)
    usd, kg = paper_cost(3.498e17)
    assert kg == pytest.approx(KG_PER_LB) and KG_PER_LB == 0.45359237
    assert usd == pytest.approx(3.498e17 / 6.874e16)
    assert paper_cost(None) == (None, None)


def test_energy_cost_and_emissions_apply_pue_once():
    assert energy_cost_usd(2.0, 0.15) == pytest.approx(0.30)
    assert energy_cost_usd(2.0, 0.15, pue=1.5) == pytest.approx(0.45)
    assert emissions_kg(2.0, 400.0) == pytest.approx(0.8)
    assert emissions_kg(2.0, 400.0, pue=1.25) == pytest.approx(1.0)
    assert energy_cost_usd(None, 0.15) is None and emissions_kg(1.0, None) is None


# --------------------------------------------------------------------------------------------- cloud


def test_shipped_cloud_table_rows_are_sourced():
    table = load_cloud_prices()
    assert table
    for row in table:
        assert row.usd_per_device_hour > 0
        assert len(row.source) > 30 and re.search(r"\d{4}-\d{2}-\d{2}", row.source), row


@pytest.mark.parametrize(
    ("name", "device"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"),
        ("NVIDIA H100 NVL", "NVIDIA H100 NVL"),
        ("NVIDIA H200", "NVIDIA H200"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB SXM"),
        ("NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 40GB"),
        ("NVIDIA H100 PCIe", None),  # no sourced price: null, not a neighbour's price
        ("NVIDIA H200 NVL", None),
        ("AMD EPYC 7B13", None),
        (None, None),
    ],
)
def test_cloud_price_lookup(name, device):
    row = lookup_cloud_price(name, load_cloud_prices())
    assert (row.device if row else None) == device


def test_cloud_price_table_override(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text('device,match,usd_per_device_hour,source\nmy T4,\\bT4\\b,0.5,"my invoice 2026-01"\n')
    table = load_cloud_prices(path)
    assert lookup_cloud_price("Tesla T4", table).usd_per_device_hour == 0.5
    path.write_text("device,match,price\nx,y,1\n")
    with pytest.raises(ConfigError, match="lacks column"):
        load_cloud_prices(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_cloud_prices(tmp_path / "missing.csv")


def test_cost_fields_combine_everything():
    settings = EnergySettings(
        electricity_price_usd_per_kwh=0.2, electricity_price_source="test tariff", pue=1.1
    )
    fields = cost_fields(
        energy_total_kwh=0.5,
        carbon_intensity_g_per_kwh=300.0,
        hardware_burden=6.874e18,
        device_name="NVIDIA H100 80GB HBM3",
        device_count=1,
        train_time_s=1800.0,
        settings=settings,
    )
    assert fields.cost_usd_energy == pytest.approx(0.5 * 1.1 * 0.2)
    assert fields.emissions_kg == pytest.approx(0.5 * 1.1 * 0.3)
    assert fields.cost_usd_cloud == pytest.approx(0.5 * 6.88)
    assert fields.cost_usd_paper == pytest.approx(100.0)
    assert fields.co2_kg_paper == pytest.approx(6.874e18 / 3.498e17 * 0.45359237)
    assert fields.cloud_price_source.startswith("NVIDIA H100 SXM: AWS EC2 p5.48xlarge")
    assert fields.electricity_price_source == "test tariff"
    assert isinstance(fields, CostFields), "a typed part of the record"


def test_cost_fields_without_energy_keep_paper_and_cloud():
    fields = cost_fields(
        energy_total_kwh=None,
        carbon_intensity_g_per_kwh=None,
        hardware_burden=None,
        device_name="AMD EPYC",
        device_count=1,
        train_time_s=10.0,
        settings=EnergySettings(enabled=False),
    )
    assert fields.emissions_kg is None and fields.cost_usd_energy is None
    assert fields.cost_usd_cloud is None and fields.cloud_price_source is None
    assert fields.cost_usd_paper is None


# ------------------------------------------------------------------------------------------ settings


def test_shipped_energy_config_is_valid_and_sourced():
    cfg = OmegaConf.load(REPO / "conf" / "energy" / "default.yaml")
    settings = EnergySettings.from_config(cfg)
    assert settings.enabled and settings.sample_hz == 10 and settings.country_iso_code == "USA"
    assert settings.region is None and settings.pue == 1.0 and settings.tracking_mode == "machine"
    assert settings.electricity_price_usd_per_kwh > 0 and "EIA" in settings.electricity_price_source


@pytest.mark.parametrize(
    "bad",
    [
        {"pue": 0.9},
        {"sample_hz": -1},
        {"measure_power_secs": 0},
        {"tracking_mode": "cluster"},
        {"country_iso_code": "US"},
        {"electricity_price_usd_per_kwh": 0.1, "electricity_price_source": None},
        {"carbon_intensity_g_per_kwh": 100.0},
        {"sample_rate": 5},
        {"force_cpu_power_w": True},
    ],
)
def test_bad_energy_settings_are_config_errors(bad):
    with pytest.raises(ConfigError, match="energy"):
        EnergySettings.from_config(bad)


def test_country_code_is_normalised():
    assert EnergySettings.from_config({"country_iso_code": "fra"}).country_iso_code == "FRA"


def test_disabled_meter_is_a_silent_no_op(tmp_path):
    meter = EnergyMeter(EnergySettings(enabled=False), "cpu", tmp_path)
    meter.start()
    with meter.window():
        pass
    fields = meter.finish()
    assert list(fields) == list(ENERGY_FIELDS) and all(v is None for v in fields.values())
    assert list(tmp_path.iterdir()) == []
    assert EnergyMeter.off().finish() == fields
