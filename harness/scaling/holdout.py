"""Out-of-sample check: fit without the largest scale(s), predict them, report the relative error.

A scaling law is only worth extrapolating if it predicts scales it has not seen; this holds out the
largest distinct values of a scale column (compute for the paper's lines, N·D for the parametric fit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.scaling.parametric import fit_parametric, why_not_parametric
from harness.scaling.regressions import MIN_POINTS, Plan, fit_plan


def largest(scale: pd.Series, fraction: float) -> pd.Series:
    """True for rows at the largest ⌈fraction⌉ of distinct scale values (at least one value)."""
    distinct = np.sort(scale.dropna().unique())
    count = max(1, round(fraction * len(distinct)))
    return scale >= distinct[-count]


def _rows(benchmark, model, scale_name, held, predicted, n_fit) -> list[dict]:
    observed = held["error"].to_numpy(dtype=float)
    return [
        {
            "benchmark": benchmark,
            "model": model,
            "scale": scale_name,
            "scale_value": float(value),
            "observed_error": float(obs),
            "predicted_error": float(pred),
            "relative_error": float(abs(pred - obs) / obs),
            "n_fit": n_fit,
        }
        for value, obs, pred in zip(held["_scale"], observed, predicted, strict=True)
    ]


def holdout_line(frame: pd.DataFrame, plan: Plan, *, benchmark: str, fraction: float) -> list[dict]:
    """Refit `plan` without the largest values of its x and predict the error there; [] if too few remain."""
    points = frame.dropna(subset=[plan.x, "error"]).assign(_scale=lambda f: f[plan.x])
    held_mask = largest(points["_scale"], fraction)
    rest, held = points[~held_mask], points[held_mask]
    if len(rest) < MIN_POINTS or rest["_scale"].nunique() < 2:
        return []
    fit = fit_plan(rest, plan, benchmark=benchmark)
    a, b = (float(v) for v in np.asarray(fit.model.params)[:2])
    predicted = plan.response.inverse(a + b * np.log10(held[plan.x].to_numpy(dtype=float)))
    return _rows(benchmark, f"{plan.spec}: {plan.formula}", plan.x, held, predicted, len(rest))


def holdout_parametric(frame: pd.DataFrame, *, benchmark: str, fraction: float, delta: float) -> list[dict]:
    """Refit L(N, D) without the largest N·D and predict the error there; [] if the rest cannot be fitted."""
    points = frame.assign(_scale=frame["params"] * frame["n_train"])
    held_mask = largest(points["_scale"], fraction)
    rest, held = points[~held_mask], points[held_mask]
    if why_not_parametric(rest) is not None:
        return []
    fit = fit_parametric(rest["params"], rest["n_train"], rest["error"], delta=delta)
    predicted = fit.predict(held["params"], held["n_train"])
    model = "parametric: E + A/N^alpha + B/D^beta"
    return _rows(benchmark, model, "params × n_train", held, predicted, len(rest))
