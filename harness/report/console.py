"""What `harness fit` prints: the fits, the extrapolation and L(N, D), rounded, one table each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.report.formatting import frontier_label, holdout_frame, interval, number
from harness.report.surveys import side_by_side, surveys_of
from harness.scaling.analysis import BenchmarkAnalysis


def _table(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_string(index=False) if rows else "(none)"


def summary_text(analyses: Sequence[BenchmarkAnalysis], out: Path | None = None) -> str:
    parts = ["fits", _table(_fit_rows(analyses)), "", "extrapolation", _table(_extrapolation_rows(analyses))]
    surveys = surveys_of(analyses)
    if surveys:
        columns, rows = side_by_side(surveys)
        table = pd.DataFrame(rows, columns=columns).to_string(index=False)
        parts[2:2] = ["", "the same specs side by side (slope [95% CI], k, N)", table]
    for a in analyses:
        if a.parametric is not None:
            parts += ["", f"L(N, D) on {a.name}", _table(_parametric_rows(a))]
    holdout = _holdout_rows(analyses)
    if holdout:
        parts += ["", "out-of-sample check", _table(holdout)]
    notes = [f"{a.name}: {note}" for a in analyses for note in a.notes]
    if notes:
        parts += ["", "notes", *notes]
    if out is not None:
        parts += ["", f"wrote {out}/report.md, report.html, fits.csv, extrapolation.csv and plots"]
    return "\n".join(parts)


def _fit_rows(analyses: Sequence[BenchmarkAnalysis]) -> list[dict]:
    return [
        {
            "benchmark": f.row["benchmark"],
            "spec": frontier_label(f.row["spec"], f.row.get("points")),
            "y": f.row["y"],
            "x": f.row["x"],
            "slope [95% CI]": interval(f.row["slope"], f.row.get("slope_ci_low"), f.row.get("slope_ci_high")),
            "N": f.row["n"],
            "R²": number(f.row.get("r2"), 2),
            "k [95% CI]": interval(f.row.get("k"), f.row.get("k_ci_low"), f.row.get("k_ci_high")),
        }
        for a in analyses
        for f in a.fits
    ]


def _extrapolation_rows(analyses: Sequence[BenchmarkAnalysis]) -> list[dict]:
    return [
        {
            "benchmark": r["benchmark"],
            "spec": r["spec"],
            "x": r["x"],
            "target error": number(r["target_error"]),
            "compute needed [95% CI]": interval(r["x_needed"], r["x_ci_low"], r["x_ci_high"], unbounded=True),
            "USD (paper)": number(r.get("usd_paper")),
            "kg CO2e (paper)": number(r.get("co2_kg_paper")),
        }
        for a in analyses
        for r in a.extrapolation
    ]


def _parametric_rows(analysis: BenchmarkAnalysis) -> list[dict]:
    return [
        {
            "model": r["model"],
            "parameter": r["parameter"],
            "value [95% CI]": interval(r["value"], r["ci_low"], r["ci_high"]),
        }
        for r in analysis.parametric.to_dict("records")
    ]


def _holdout_rows(analyses: Sequence[BenchmarkAnalysis]) -> list[dict]:
    return [
        {
            "benchmark": a.name,
            "model": model,
            "held out": scale,
            "points": len(group),
            "median relative error": f"{group['relative_error'].median():.1%}",
            "worst": f"{group['relative_error'].max():.1%}",
        }
        for a in analyses
        if a.holdout
        for (model, scale), group in holdout_frame(a.holdout).groupby(
            ["model", "scale"], sort=False, observed=True
        )
    ]


def print_summary(analyses: Sequence[BenchmarkAnalysis], out: Path | None = None) -> None:
    print(summary_text(analyses, out))
