"""Dollars and CO2, two ways: the paper's conversion of hardware burden, and from what was measured.

(a) Paper (Thompson et al., "The Computational Limits of Deep Learning"): the authors turn computation into
money and emissions with fixed factors, 1 USD per 6.874e16 FLOP and 1 lb CO2e per 3.498e17 FLOP, applied
to the hardware burden (processors × peak FLOP/s × training time). Constants as given on the authors'
published site (quoted in this project's issue 4); 1 lb = 0.45359237 kg exactly (international pound).

(b) Measured: the training window's energy × PUE × electricity price (cost_usd_energy) and × grid carbon
intensity (emissions_kg); device-hours of training × an on-demand cloud price per device-hour from
cloud_prices.csv (cost_usd_cloud). Device-hours count training windows only, like train_time_s: a
rented machine would also bill warm-up, evaluation and idle time, so this is a lower bound on a bill.

Nothing here invents a number: a price or intensity comes from a table row or the config, each with its
source string, and a missing one leaves the figure null.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.record_parts import CostFields

FLOP_PER_USD_PAPER = 6.874e16
FLOP_PER_LB_CO2_PAPER = 3.498e17
KG_PER_LB = 0.45359237
PAPER_SOURCE = (
    "Thompson et al., The Computational Limits of Deep Learning: 1 USD per 6.874e16 FLOP and "
    "1 lb CO2e per 3.498e17 FLOP of hardware burden"
)
CLOUD_COLUMNS = ("device", "match", "usd_per_device_hour", "source")


@dataclass(frozen=True)
class CloudPrice:
    """One row of a cloud price table: the first row whose regex matches the device name prices it."""

    device: str
    match: str
    usd_per_device_hour: float
    source: str


def paper_cost(hardware_burden: float | None) -> tuple[float | None, float | None]:
    """(USD, kg CO2e) of a hardware burden (FLOP) at the paper's conversion factors."""
    if hardware_burden is None:
        return None, None
    return hardware_burden / FLOP_PER_USD_PAPER, hardware_burden / FLOP_PER_LB_CO2_PAPER * KG_PER_LB


def energy_cost_usd(
    energy_kwh: float | None, price_usd_per_kwh: float | None, pue: float = 1.0
) -> float | None:
    """Electricity bill of the energy drawn at the wall: device energy × PUE × price."""
    if energy_kwh is None or price_usd_per_kwh is None:
        return None
    return energy_kwh * pue * price_usd_per_kwh


def emissions_kg(
    energy_kwh: float | None, intensity_g_per_kwh: float | None, pue: float = 1.0
) -> float | None:
    """Operational emissions of the energy drawn at the wall: device energy × PUE × grid intensity."""
    if energy_kwh is None or intensity_g_per_kwh is None:
        return None
    return energy_kwh * pue * intensity_g_per_kwh / 1000.0


def load_cloud_prices(path: str | Path | None = None) -> list[CloudPrice]:
    """The shipped table (harness/energy/cloud_prices.csv) or a user's CSV with the same columns."""
    if path is None:
        text = resources.files("harness.energy").joinpath("cloud_prices.csv").read_text(encoding="utf-8")
        where = "harness/energy/cloud_prices.csv"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"energy.cloud_prices={path} cannot be read ({exc}); give a CSV path or null"
            ) from None
        where = str(path)
    reader = csv.DictReader(text.splitlines())
    missing = set(CLOUD_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(
            f"{where} lacks column(s) {', '.join(sorted(missing))}; expected {', '.join(CLOUD_COLUMNS)}"
        )
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            price = float(row["usd_per_device_hour"])
            re.compile(row["match"])
        except (TypeError, ValueError, re.error) as exc:
            raise ConfigError(f"{where} line {line}: {exc}") from None
        if not price >= 0 or not (row["source"] or "").strip():
            raise ConfigError(f"{where} line {line}: needs a non-negative price and a source")
        rows.append(CloudPrice(row["device"], row["match"], price, row["source"].strip()))
    return rows


def lookup_cloud_price(device_name: str | None, table: list[CloudPrice]) -> CloudPrice | None:
    """First row whose regex is found (case-insensitively) in the device name; None when none matches."""
    if not device_name:
        return None
    return next((row for row in table if re.search(row.match, device_name, re.IGNORECASE)), None)


def cost_fields(
    *,
    energy_total_kwh: float | None,
    carbon_intensity_g_per_kwh: float | None,
    hardware_burden: float | None,
    device_name: str | None,
    device_count: int | None,
    train_time_s: float | None,
    settings: Any,
) -> CostFields:
    """The record's carbon and cost fields. `settings` is an EnergySettings (pue, price, cloud table).

    Paper figures and the cloud price need no energy measurement, so they are filled even with
    energy.enabled=false; the energy-based ones stay null then.
    """
    usd_paper, co2_paper = paper_cost(hardware_burden)
    price = lookup_cloud_price(device_name, load_cloud_prices(settings.cloud_prices))
    cloud_usd = None
    if price is not None and device_count and train_time_s is not None:
        cloud_usd = device_count * train_time_s / 3600.0 * price.usd_per_device_hour
    return CostFields(
        emissions_kg=emissions_kg(energy_total_kwh, carbon_intensity_g_per_kwh, settings.pue),
        cost_usd_energy=energy_cost_usd(
            energy_total_kwh, settings.electricity_price_usd_per_kwh, settings.pue
        ),
        cost_usd_cloud=cloud_usd,
        cost_usd_paper=usd_paper,
        co2_kg_paper=co2_paper,
        pue=settings.pue,
        electricity_price_usd_per_kwh=settings.electricity_price_usd_per_kwh,
        electricity_price_source=settings.electricity_price_source,
        cloud_price_usd_per_hour=None if price is None else price.usd_per_device_hour,
        cloud_price_source=None if price is None else f"{price.device}: {price.source}",
    )
