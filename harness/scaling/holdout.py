"""Out-of-sample check: fit without the largest scale(s), predict them, report the relative error.

A scaling law is only worth extrapolating if it predicts scales it has not seen. Two checks:
- `holdout_line` / `holdout_parametric` hold out the largest distinct values of one scale (compute for the
  paper's lines, N·D for the parametric fit);
- `holdout_line_grid` / `holdout_parametric_grid` hold out, for each model, every configuration at its
  largest width (most parameters) or at the largest training set: the fit sees neither the largest model
  nor the most data, and must predict both, the corner where they meet included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.scaling.parametric import fit_parametric, why_not_parametric
from harness.scaling.regressions import MIN_POINTS, Plan, fit_plan

PARAMETRIC_LABEL = "parametric: E + A/N^alpha + B/D^beta"


def largest(scale: pd.Series, fraction: float) -> pd.Series:
    """True for rows at the largest ⌈fraction⌉ of distinct scale values (at least one value)."""
    distinct = np.sort(scale.dropna().unique())
    count = max(1, round(fraction * len(distinct)))
    return scale >= distinct[-count]


# The scale named in holdout rows of the width-and-data check.
GRID_SCALE = "largest width and n_train"
# Columns of holdout.csv; the grid check fills the last four (the others leave them empty).
HOLDOUT_COLUMNS = (
    "benchmark",
    "model",
    "points",  # our runs: the fit's point set (all configurations, or the frontier)
    "scale",
    "scale_value",
    "observed_error",
    "predicted_error",
    "relative_error",
    "n_fit",
    "architecture",
    "params",
    "n_train",
    "corner",
)


def _rows(benchmark, model, scale_name, held, predicted, n_fit, *, grid: bool) -> list[dict]:
    """One row per held-out point; the width-and-data check (`grid`) also names its configuration."""
    observed = held["error"].to_numpy(dtype=float)
    rows = []
    for (_, point), obs, pred in zip(held.iterrows(), observed, predicted, strict=True):
        rows.append(
            {
                "benchmark": benchmark,
                "model": model,
                "scale": scale_name,
                "scale_value": float(point["_scale"]),
                "observed_error": float(obs),
                "predicted_error": float(pred),
                "relative_error": float(abs(pred - obs) / obs),
                "n_fit": n_fit,
                "architecture": str(point["model"]) if grid and "model" in point else None,
                "params": float(point["params"]) if grid else None,
                "n_train": float(point["n_train"]) if grid else None,
                "corner": bool(point["_corner"]) if grid else None,
            }
        )
    return rows


def largest_width_and_data(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(held, corner): rows at their model's largest params or largest n_train, and rows at both.

    Per model (column `model` when present), since widths are only comparable within an architecture.
    """
    groups = frame["model"] if "model" in frame.columns else pd.Series(0, index=frame.index)
    top_params = frame.groupby(groups, observed=True)["params"].transform("max")
    top_data = frame.groupby(groups, observed=True)["n_train"].transform("max")
    at_params, at_data = frame["params"] >= top_params, frame["n_train"] >= top_data
    return at_params | at_data, at_params & at_data


def _grid_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(rest, held) for the width-and-data check, or None when the columns or the variety are missing."""
    if not {"params", "n_train"} <= set(frame.columns):
        return None
    points = frame.dropna(subset=["params", "n_train", "error"])
    held_mask, corner = largest_width_and_data(points)
    points = points.assign(_scale=points["params"] * points["n_train"], _corner=corner)
    rest, held = points[~held_mask], points[held_mask]
    if rest.empty or held.empty:
        return None
    return rest, held


def _line_check(
    rest: pd.DataFrame, held: pd.DataFrame, plan: Plan, *, benchmark: str, grid: bool
) -> list[dict]:
    """Refit `plan` on `rest` and predict the error of `held`; [] if too few points or x values remain."""
    if len(rest) < MIN_POINTS or rest[plan.x].nunique() < 2:
        return []
    fit = fit_plan(rest, plan, benchmark=benchmark)
    a, b = (float(v) for v in np.asarray(fit.model.params)[:2])
    predicted = plan.response.inverse(a + b * np.log10(held[plan.x].to_numpy(dtype=float)))
    scale = GRID_SCALE if grid else plan.x
    return _rows(benchmark, f"{plan.spec}: {plan.formula}", scale, held, predicted, len(rest), grid=grid)


def _parametric_check(
    rest: pd.DataFrame, held: pd.DataFrame, *, benchmark: str, delta: float, label: str, grid: bool
) -> list[dict]:
    """Refit L(N, D) on `rest` and predict the error of `held`; [] if `rest` cannot be fitted."""
    if why_not_parametric(rest) is not None:
        return []
    fit = fit_parametric(rest["params"], rest["n_train"], rest["error"], delta=delta)
    predicted = fit.predict(held["params"], held["n_train"])
    scale = GRID_SCALE if grid else "params × n_train"
    return _rows(benchmark, label, scale, held, predicted, len(rest), grid=grid)


def holdout_line(frame: pd.DataFrame, plan: Plan, *, benchmark: str, fraction: float) -> list[dict]:
    """Refit `plan` without the largest values of its x and predict the error there; [] if too few remain."""
    points = frame.dropna(subset=[plan.x, "error"]).assign(_scale=lambda f: f[plan.x])
    held_mask = largest(points["_scale"], fraction)
    return _line_check(points[~held_mask], points[held_mask], plan, benchmark=benchmark, grid=False)


def holdout_line_grid(frame: pd.DataFrame, plan: Plan, *, benchmark: str) -> list[dict]:
    """Refit `plan` without each model's largest width and largest training set; predict those runs."""
    split = _grid_split(frame.dropna(subset=[plan.x, "error"]))
    if split is None:
        return []
    return _line_check(*split, plan, benchmark=benchmark, grid=True)


def holdout_parametric_grid(frame: pd.DataFrame, *, benchmark: str, delta: float, label: str) -> list[dict]:
    """Refit L(N, D) without the largest width and the largest training set, predict them (one model)."""
    split = _grid_split(frame)
    if split is None:
        return []
    return _parametric_check(*split, benchmark=benchmark, delta=delta, label=label, grid=True)


def holdout_parametric(
    frame: pd.DataFrame, *, benchmark: str, fraction: float, delta: float, label: str = PARAMETRIC_LABEL
) -> list[dict]:
    """Refit L(N, D) without the largest N·D and predict the error there; [] if the rest cannot be fitted."""
    points = frame.assign(_scale=frame["params"] * frame["n_train"])
    held_mask = largest(points["_scale"], fraction)
    rest, held = points[~held_mask], points[held_mask]
    return _parametric_check(rest, held, benchmark=benchmark, delta=delta, label=label, grid=False)
