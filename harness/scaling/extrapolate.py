"""What a target error would cost: the fitted line inverted, with confidence and prediction intervals.

The compute needed for a target is where the fitted line crosses the target's value. Its interval is the
set of log10(compute) at which the target lies inside the line's 95% band (the classical calibration, or
inverse-prediction, interval): a quadratic in log10(compute), bounded only when the slope is clearly
non-zero. The band of the mean line gives the confidence interval; adding the residual variance gives the
prediction interval. Compute is then converted to USD and CO2 by the paper's rates and, when the runs
measured energy, to joules, CO2 and USD by the runs' own ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from harness.scaling.imputation import CONSOLIDATED
from harness.scaling.regressions import FitResult
from harness.scaling.runs import TRAINING_FLOP_COLUMNS

KG_PER_LB = 0.45359237
# The specifications whose fitted lines are inverted (single regressor, by OLS).
EXTRAPOLATED_SPECS = ("poly", "exp")
# The leading columns of every extrapolation row; conversions (usd_paper, ...) follow.
EXTRAPOLATION_COLUMNS = (
    "benchmark",
    "spec",
    "x",
    "y",
    "target_error",
    "x_needed",
    "x_ci_low",
    "x_ci_high",
    "x_pi_low",
    "x_pi_high",
)


@dataclass(frozen=True)
class Conversion:
    """A column of the extrapolation table: the compute needed times `per_x`."""

    name: str
    per_x: float


def paper_conversions(x: str, *, flop_per_usd: float, flop_per_lb_co2: float) -> list[Conversion]:
    """The paper's rates (per FLOP of hardware burden), applied to training-compute columns only."""
    if x not in (*TRAINING_FLOP_COLUMNS, CONSOLIDATED):
        return []
    return [
        Conversion("usd_paper", 1.0 / flop_per_usd),
        Conversion("co2_kg_paper", KG_PER_LB / flop_per_lb_co2),
    ]


def _median_ratio(runs: pd.DataFrame, numerator: str, denominator: str) -> float | None:
    if numerator not in runs.columns or denominator not in runs.columns:
        return None
    both = runs[[numerator, denominator]].dropna()
    both = both[(both[numerator] > 0) & (both[denominator] > 0)]
    if both.empty:
        return None
    return float((both[numerator] / both[denominator]).median())


def measured_conversions(x: str, runs: pd.DataFrame) -> list[Conversion]:
    """Joules per unit of x measured by the runs (median over runs), and their CO2 and USD per joule."""
    joules_per_x = 1.0 if x == "energy_total_j" else _median_ratio(runs, "energy_total_j", x)
    if joules_per_x is None:
        return []
    conversions = [Conversion("energy_j_measured", joules_per_x)]
    for name, column in (("co2_kg_measured", "emissions_kg"), ("usd_measured", "cost_usd_energy")):
        per_joule = _median_ratio(runs, column, "energy_total_j")
        if per_joule is not None:
            conversions.append(Conversion(name, joules_per_x * per_joule))
    return conversions


def inverse_interval(model, y_target: float, *, level: float, prediction: bool) -> tuple[float, float]:
    """log10(compute) where `y_target` lies inside the line's band; (nan, nan) when that set is unbounded.

    Solves (a + b·u − y)² ≤ t²·(Var(a + b·u) [+ s²]) for u, with Var from the coefficients' covariance.
    """
    a, b = (float(v) for v in np.asarray(model.params)[:2])
    cov = np.asarray(model.cov_params(), dtype=float)
    t2 = stats.t.ppf(0.5 + level / 2.0, model.df_resid) ** 2
    offset = a - y_target
    quad = b * b - t2 * cov[1, 1]
    if quad <= 0.0:  # the slope's interval reaches zero: no finite compute is ruled out
        return math.nan, math.nan
    lin = 2.0 * (b * offset - t2 * cov[0, 1])
    const = offset * offset - t2 * (cov[0, 0] + (float(model.scale) if prediction else 0.0))
    root = math.sqrt(max(lin * lin - 4.0 * quad * const, 0.0))
    return (-lin - root) / (2.0 * quad), (-lin + root) / (2.0 * quad)


def _power_of_ten(u: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.power(10.0, u))


def extrapolate(
    fit: FitResult, targets: Sequence[float], *, level: float, conversions: Sequence[Conversion]
) -> list[dict]:
    """One row per target error: compute needed, its CI and PI, and the conversions of each."""
    a, b = (float(v) for v in np.asarray(fit.model.params)[:2])
    rows = []
    for target in targets:
        y_target = float(fit.plan.response.forward(target))
        ci = inverse_interval(fit.model, y_target, level=level, prediction=False)
        pi = inverse_interval(fit.model, y_target, level=level, prediction=True)
        needed = {
            "x_needed": _power_of_ten((y_target - a) / b),
            "x_ci_low": _power_of_ten(ci[0]),
            "x_ci_high": _power_of_ten(ci[1]),
            "x_pi_low": _power_of_ten(pi[0]),
            "x_pi_high": _power_of_ten(pi[1]),
        }
        row = {
            "benchmark": fit.benchmark,
            "spec": fit.plan.spec,
            "x": fit.plan.x,
            "y": fit.plan.response.label,
            "target_error": float(target),
            **needed,
        }
        for conversion in conversions:
            for suffix, key in (("", "x_needed"), ("_ci_low", "x_ci_low"), ("_ci_high", "x_ci_high")):
                row[conversion.name + suffix] = needed[key] * conversion.per_x
        rows.append(row)
    return rows


def extrapolatable(fit: FitResult) -> bool:
    """Only single-regressor OLS lines of the polynomial and exponential forms are inverted."""
    plan = fit.plan
    return (
        plan is not None
        and plan.spec in EXTRAPOLATED_SPECS
        and plan.quantile is None
        and plan.year_base is None
    )
