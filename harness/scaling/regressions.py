"""The regressions themselves: performance on log10(compute), by OLS or quantile regression, with 95% CIs.

A `Plan` names one specification (spec name, how error becomes the regressand, the compute column, an
optional year term or quantile); `fit_plan` checks the data, fits it with statsmodels and returns a
`FitResult` whose `row` is one line of fits.csv.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

from harness.errors import ConfigError

# Theory's lower bound on k (compute ∝ error^-k) for an over-parameterised model, the paper's yardstick.
K_THEORY_MIN = 4.0
MIN_POINTS = 3


def _negative_log10(values):
    return -np.log10(values)


def _power_of_ten(values):
    return np.power(10.0, values)


def _inverse_power_of_ten(values):
    return np.power(10.0, -np.asarray(values, dtype=float))


def _identity(values):
    return values


@dataclass(frozen=True)
class Response:
    """How the error becomes the regressand, and back (for extrapolation and plotting)."""

    label: str
    forward: Callable[[Any], Any]
    inverse: Callable[[Any], Any]
    log_form: bool  # a log-log form: the slope is an exponent and k = 1/|slope| is defined
    needs_unit_interval: bool  # a log or reciprocal of the error: 0 < error < 1 required


LOG_ERROR = Response("log10(error)", np.log10, _power_of_ten, True, True)
LOG_INV_ERROR = Response("log10(1/error)", _negative_log10, _inverse_power_of_ten, True, True)
ERROR = Response("error", _identity, _identity, False, False)
INV_ERROR = Response("1/error", np.reciprocal, np.reciprocal, False, True)


@dataclass(frozen=True)
class Plan:
    """One specification: `response ~ log10(x) [+ (year - year_base)]`, by OLS or at a quantile."""

    spec: str
    response: Response
    x: str
    year_base: int | None = None
    quantile: float | None = None

    @property
    def formula(self) -> str:
        year = f" + (year - {self.year_base})" if self.year_base is not None else ""
        return f"{self.response.label} ~ log10({self.x}){year}"


@dataclass(frozen=True)
class FitResult:
    """One fitted specification: its fits.csv row, and the model and points behind it."""

    benchmark: str
    plan: Plan | None
    row: dict[str, Any]
    model: Any = None  # statsmodels results; None for fixed coefficients
    data: pd.DataFrame = field(default_factory=pd.DataFrame)  # the points used, with column `u` = log10(x)


def k_interval(slope_low: float, slope_high: float) -> tuple[float, float]:
    """CI of k = 1/|slope| from the slope's CI; unbounded above when the slope's CI reaches zero."""
    if slope_low <= 0.0 <= slope_high:
        return 1.0 / max(abs(slope_low), abs(slope_high)), math.inf
    low, high = sorted((abs(slope_low), abs(slope_high)))
    return 1.0 / high, 1.0 / low


def usable_rows(
    frame: pd.DataFrame, columns: list[str], *, what: str, positive: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, int]:
    """The rows with every column present, and how many were dropped; bad input raises a one-line error."""
    for column in columns:
        if column not in frame.columns:
            raise ConfigError(f"{what}: column {column} does not exist")
        if frame[column].isna().all():
            raise ConfigError(f"{what}: column {column} has no values in {len(frame)} rows")
    usable = frame.dropna(subset=columns)
    for column in positive:
        bad = int((usable[column] <= 0).sum())
        if bad:
            raise ConfigError(
                f"{what}: {bad} rows have {column} <= 0; log10 needs positive values (filter them out)"
            )
    return usable, len(frame) - len(usable)


def _check_error(errors: pd.Series, response: Response, what: str) -> None:
    if not response.needs_unit_interval:
        return
    bad = int(((errors <= 0) | (errors >= 1)).sum())
    if bad:
        raise ConfigError(
            f"{what}: {bad} rows have error <= 0 or >= 1, where {response.label} needs 0 < error < 1"
        )


def design(log10_x, year=None, year_base: int | None = None) -> np.ndarray:
    """The regressors: intercept, log10(x) and, for the year form, (year - year_base)."""
    columns = [np.ones_like(log10_x, dtype=float), np.asarray(log10_x, dtype=float)]
    if year_base is not None:
        columns.append(np.asarray(year, dtype=float) - year_base)
    return np.column_stack(columns)


def fit_plan(
    frame: pd.DataFrame, plan: Plan, *, benchmark: str, level: float = 0.95, keep: tuple[str, ...] = ()
) -> FitResult:
    """Fit one specification on `frame` (columns `error`, `plan.x`, `year` when needed, `keep` passed on)."""
    what = f"{benchmark} {plan.spec} on {plan.x}"
    needed = [plan.x, "error", *(["year"] if plan.year_base is not None else [])]
    usable, dropped = usable_rows(frame, needed, what=what, positive=(plan.x,))
    if len(usable) < MIN_POINTS:
        raise ConfigError(
            f"{what}: {len(usable)} usable points, at least {MIN_POINTS} needed "
            f"({dropped} rows lack one of {', '.join(needed)})"
        )
    _check_error(usable["error"], plan.response, what)
    data = usable[[c for c in dict.fromkeys([*needed, *keep]) if c in usable.columns]].copy()
    data["u"] = np.log10(data[plan.x].to_numpy(dtype=float))
    exog = design(data["u"].to_numpy(), data.get("year"), plan.year_base)
    endog = plan.response.forward(data["error"].to_numpy(dtype=float))
    if plan.quantile is None:
        model = sm.OLS(endog, exog).fit()
        r2, method, note = float(model.rsquared), "ols", ""
    else:
        model, note = _quantile_fit(endog, exog, plan.quantile)
        r2, method = float(model.prsquared), f"quantreg q={plan.quantile:g}"
    row = coefficient_row(model, level=level, log_form=plan.response.log_form)
    row = {
        "benchmark": benchmark,
        "spec": plan.spec,
        "x": plan.x,
        "y": plan.response.label,
        "formula": plan.formula,
        "method": method,
        **row,
        "n": len(data),
        "n_dropped": dropped,
        "r2": r2,
        "note": note,
    }
    return FitResult(benchmark, plan, row, model, data.reset_index(drop=True))


def _quantile_fit(endog, exog, quantile: float):
    """Quantile regression; with few points the default (Hall–Sheather) bandwidth reaches past q and its
    standard errors are NaN, so the narrower Chamberlain bandwidth is tried before giving up on the CI."""
    note = "r2 is the quantile regression's pseudo R²"
    for bandwidth in ("hsheather", "chamberlain"):
        model = sm.QuantReg(endog, exog).fit(q=quantile, bandwidth=bandwidth)
        if np.isfinite(np.asarray(model.bse)).all():
            return model, note + ("" if bandwidth == "hsheather" else "; CI with the Chamberlain bandwidth")
    return model, note + "; no CI: too few points to estimate the sparsity at this quantile"


def coefficient_row(model, *, level: float, log_form: bool) -> dict[str, Any]:
    """Slope, intercept, year coefficient (when fitted), their CIs, the slope's p-value, and k."""
    params = np.asarray(model.params, dtype=float)
    ci = np.asarray(model.conf_int(alpha=1.0 - level), dtype=float)
    pvalues = np.asarray(model.pvalues, dtype=float)
    row = {
        "slope": params[1],
        "slope_ci_low": ci[1, 0],
        "slope_ci_high": ci[1, 1],
        "p_value": pvalues[1],
        "intercept": params[0],
        "intercept_ci_low": ci[0, 0],
        "intercept_ci_high": ci[0, 1],
        "year_coef": params[2] if len(params) > 2 else math.nan,
        "year_coef_ci_low": ci[2, 0] if len(params) > 2 else math.nan,
        "year_coef_ci_high": ci[2, 1] if len(params) > 2 else math.nan,
    }
    row.update(k_columns(row["slope"], row["slope_ci_low"], row["slope_ci_high"], log_form))
    return row


def k_columns(slope: float, low: float, high: float, log_form: bool) -> dict[str, float]:
    """k = 1/|slope| and its CI for a log-log form (compute ∝ error^-k), theory's k >= 4 beside it."""
    if not log_form:
        return {"k": math.nan, "k_ci_low": math.nan, "k_ci_high": math.nan, "k_theory_min": math.nan}
    k_low, k_high = k_interval(low, high)
    k = 1.0 / abs(slope) if slope else math.inf
    return {"k": k, "k_ci_low": k_low, "k_ci_high": k_high, "k_theory_min": K_THEORY_MIN}


FITS_COLUMNS = (
    "benchmark",
    "source",
    "spec",
    "x",
    "y",
    "formula",
    "method",
    "slope",
    "slope_ci_low",
    "slope_ci_high",
    "p_value",
    "intercept",
    "intercept_ci_low",
    "intercept_ci_high",
    "year_coef",
    "year_coef_ci_low",
    "year_coef_ci_high",
    "n",
    "n_dropped",
    "r2",
    "k",
    "k_ci_low",
    "k_ci_high",
    "k_theory_min",
    "note",
)
