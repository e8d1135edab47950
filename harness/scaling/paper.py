"""The paper's specifications, benchmark by benchmark, as data: what is regressed on what.

ImageNet gets the full set (three compute measures, the year control, the exponential form, the 10%
quantile, and the imputed-hardware-burden forms); the other five benchmarks the polynomial and
exponential forms on hardware burden (COCO's consolidated with imputed values, as the authors did).
"""

from __future__ import annotations

from harness.scaling.imputation import CONSOLIDATED
from harness.scaling.regressions import ERROR, INV_ERROR, LOG_ERROR, LOG_INV_ERROR, Plan


def quantile_spec(quantile: float) -> str:
    return f"quantile{round(quantile * 100):d}"


def plans(benchmark: str, *, quantile: float = 0.1, year_base: int = 2012) -> tuple[Plan, ...]:
    """The specifications the paper fits on `benchmark`."""
    if benchmark == "imagenet":
        return (
            Plan("poly", LOG_ERROR, "ops_forward_pass"),
            Plan("poly", LOG_ERROR, "network_operations"),
            Plan("poly", LOG_ERROR, "hardware_burden"),
            Plan("poly_year", LOG_ERROR, "network_operations", year_base=year_base),
            Plan("exp", ERROR, "network_operations"),
            Plan(quantile_spec(quantile), LOG_ERROR, "network_operations", quantile=quantile),
            Plan("poly", LOG_INV_ERROR, CONSOLIDATED),
            Plan("exp", INV_ERROR, CONSOLIDATED),
        )
    burden = CONSOLIDATED if needs_imputation(benchmark) else "hardware_burden"
    return (Plan("poly", LOG_INV_ERROR, burden), Plan("exp", INV_ERROR, burden))


def needs_imputation(benchmark: str) -> bool:
    """The benchmarks whose hardware burden the authors completed from network operations."""
    return benchmark in ("imagenet", "coco")
