"""The energy config group (conf/energy/default.yaml) as one validated, immutable object.

Validation happens here, before training, so a typo in a price or a country costs an error message, not a
run whose energy columns are quietly wrong. Every price or intensity the user supplies must come with its
source string: a number without provenance would end up in the record looking like a measurement.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.errors import ConfigError

TRACKING_MODES = ("machine", "process")


@dataclass(frozen=True)
class EnergySettings:
    """What to measure and the conversion factors to apply; field docs live in conf/energy/default.yaml."""

    enabled: bool = True
    sample_hz: float = 10.0
    save_timeline: bool = True
    counter_update_s: float = 0.1
    codecarbon: bool = True
    country_iso_code: str = "USA"
    region: str | None = None
    pue: float = 1.0
    measure_power_secs: float = 10.0
    tracking_mode: str = "machine"
    force_cpu_power_w: float | None = None
    force_ram_power_w: float | None = None
    carbon_intensity_g_per_kwh: float | None = None
    carbon_intensity_source: str | None = None
    electricity_price_usd_per_kwh: float | None = None
    electricity_price_source: str | None = None
    cloud_prices: str | None = None

    def __post_init__(self) -> None:
        _number(self.sample_hz, "sample_hz", minimum=0.0, allow_zero=True)
        _number(self.counter_update_s, "counter_update_s", minimum=0.0)
        _number(self.measure_power_secs, "measure_power_secs", minimum=0.0)
        _number(self.pue, "pue", minimum=1.0, allow_zero=True)
        for name in ("force_cpu_power_w", "force_ram_power_w"):
            if getattr(self, name) is not None:
                _number(getattr(self, name), name, minimum=0.0)
        if self.tracking_mode not in TRACKING_MODES:
            raise ConfigError(
                f"energy.tracking_mode={self.tracking_mode} is unknown; "
                f"use one of {', '.join(TRACKING_MODES)}"
            )
        if not isinstance(self.country_iso_code, str) or len(self.country_iso_code) != 3:
            raise ConfigError(
                f"energy.country_iso_code={self.country_iso_code} is not a 3-letter ISO code; "
                "use e.g. USA, FRA, DEU"
            )
        _sourced(self, "carbon_intensity_g_per_kwh", "carbon_intensity_source")
        _sourced(self, "electricity_price_usd_per_kwh", "electricity_price_source")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> EnergySettings:
        """Build from the `energy` config node (a DictConfig or a plain mapping); missing keys keep defaults.

        An unknown key is an error rather than ignored, so `energy.sample_rate=5` cannot silently do nothing.
        """
        if cfg is None:
            return cls()
        known = {f.name for f in fields(cls)}
        values = dict(cfg.items())
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown energy setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if values.get("country_iso_code") is not None:
            values["country_iso_code"] = str(values["country_iso_code"]).upper()
        return cls(**values)


def _number(value: Any, name: str, *, minimum: float, allow_zero: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
    if bad or value < minimum or (value == minimum and not allow_zero):
        bound = f">= {minimum}" if allow_zero else f"> {minimum}"
        raise ConfigError(f"energy.{name}={value} must be a finite number {bound}")


def _sourced(settings: EnergySettings, value_name: str, source_name: str) -> None:
    value = getattr(settings, value_name)
    if value is None:
        return
    _number(value, value_name, minimum=0.0, allow_zero=True)
    source = getattr(settings, source_name)
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(
            f"energy.{value_name}={value} needs energy.{source_name}: say where the number comes from"
        )
