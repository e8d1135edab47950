"""Log-log plots of error against compute: the points, the fitted lines and their 95% bands.

Each figure gets its own Agg canvas, chosen inside the plotting function rather than at import, so
plotting needs no display and never switches the backend of a caller's session (no pyplot state is
touched); each figure is cleared once saved.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from harness.labels import label, model_colours
from harness.report.formatting import frontier_label, interval, number
from harness.scaling.imputation import CONSOLIDATED, IMPUTED
from harness.scaling.regressions import FitResult, design

_LINE_STYLES = MappingProxyType({"poly": "-", "exp": "--"})
# Fit lines after the first (black): named colours outside the cycle that models take (harness.labels).
_FIT_COLOURS = ("firebrick", "dimgray", "darkgoldenrod", "teal")


def plot_name(benchmark: str, x: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{benchmark}_{x}")


def _fit_label(fit: FitResult) -> str:
    row = fit.row
    slope = interval(row["slope"], row["slope_ci_low"], row["slope_ci_high"])
    text = f"{frontier_label(row['spec'], row.get('points'))}: {row['y']}, slope {slope}"
    if not np.isnan(row.get("k", np.nan)):
        text += f", k {number(row['k'])}"
    return f"{text}, R² {number(row['r2'], 2)}, N {row['n']}"


def _curve(fit: FitResult, u: np.ndarray, level: float, floor: float):
    """The fitted line over `u` = log10(x), in error units, with its confidence band (None for quantiles).

    On a log axis an error at or below zero (the `exp` fit's line and band fall through zero) cannot be
    drawn: it is held at `floor`, below the axis, so the band runs on to the axis' edge instead of ending
    in a vertical cut inside the data."""
    response = fit.plan.response
    exog = design(u)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        line = response.inverse(exog @ np.asarray(fit.model.params, dtype=float))
        band = None
        if fit.plan.quantile is None:
            low, high = np.asarray(fit.model.get_prediction(exog).conf_int(alpha=1.0 - level)).T
            ends = np.sort(np.vstack([response.inverse(low), response.inverse(high)]), axis=0)
            band = tuple(_drawable(e, floor) for e in ends)
        line = _drawable(line, floor)
    return line, band


def _drawable(values: np.ndarray, floor: float) -> np.ndarray:
    """Errors for a log axis: non-positive ones (and −inf) at `floor`, +inf and NaN left out."""
    values = np.where(np.isneginf(values) | (values <= floor), floor, values)
    return np.where(np.isfinite(values), values, np.nan)


def _scatter(ax, points: pd.DataFrame, x: str, colour: str | None, figure) -> None:
    """The points, coloured by year (a colour bar) or by model (a legend); imputed burdens hollow."""
    hollow = points[IMPUTED].astype(bool) if x == CONSOLIDATED and IMPUTED in points.columns else None
    if colour == "year" and "year" in points.columns:
        solid = points if hollow is None else points[~hollow]
        years = points["year"].astype(float)
        kwargs = {"cmap": "viridis", "vmin": years.min(), "vmax": years.max(), "s": 28}
        mappable = ax.scatter(solid[x], solid["error"], c=solid["year"].astype(float), **kwargs)
        if hollow is not None and hollow.any():
            imputed = points[hollow]
            colours = mappable.cmap(mappable.norm(imputed["year"].astype(float)))
            ax.scatter(
                imputed[x],
                imputed["error"],
                facecolors="none",
                edgecolors=colours,
                s=28,
                label="imputed burden",
            )
        figure.colorbar(mappable, ax=ax, label="year")
    elif colour == "model" and "model" in points.columns:
        colours = model_colours(points["model"].dropna().unique())  # the same per model in every figure
        for model, group in points.groupby("model", sort=True, observed=True):
            ax.scatter(group[x], group["error"], s=28, color=colours[str(model)], label=str(model))
    else:
        ax.scatter(points[x], points["error"], s=28, color="C0", label="runs")


def _error_ticks(ax, low: float, high: float) -> None:
    """Errors as plain numbers (0.1, 0.2, 0.3), with 2-3-5 minor labels when the range is narrow."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    if np.log10(high / low) <= 2.0:
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
        ax.yaxis.set_minor_formatter(plain)
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def plot_scaling(
    fits: Sequence[FitResult],
    *,
    title: str,
    error_label: str,
    colour: str | None,
    path_stem: Path,
    formats: Sequence[str],
    level: float = 0.95,
    background: pd.DataFrame | None = None,
) -> list[Path]:
    """One figure of error against one compute column, every fit on that column drawn; returns the files."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = fits[0].plan.x
    points = max(fits, key=lambda f: len(f.data)).data
    figure = Figure(figsize=(8.5, 7.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if background is not None and len(background):
        ax.scatter(background[x], background["error"], s=16, color="0.75", label="off the frontier")
    _scatter(ax, points, x, colour, figure)
    frontier = next((f.data for f in fits if f.row.get("points") == "frontier"), None)
    if frontier is not None and frontier is not points and len(frontier):
        ax.scatter(
            frontier[x],
            frontier["error"],
            s=70,
            facecolors="none",
            edgecolors="black",
            linewidths=1.0,
            label="compute-efficient frontier",
        )
    errors = points["error"].astype(float)
    low, high = errors.min() / 1.4, errors.max() * 1.4
    u = np.linspace(points["u"].min(), points["u"].max(), 200)  # over the data: no line beyond it
    for index, fit in enumerate(f for f in fits if f.plan.year_base is None):
        line, band = _curve(fit, u, level, floor=low / 10.0)
        style = ":" if fit.plan.quantile is not None else _LINE_STYLES.get(fit.plan.spec, "-.")
        colour_line = "black" if index == 0 else _FIT_COLOURS[(index - 1) % len(_FIT_COLOURS)]
        ax.plot(10.0**u, line, style, color=colour_line, linewidth=1.6, label=_fit_label(fit))
        if band is not None:
            ax.fill_between(10.0**u, *band, color=colour_line, alpha=0.12, linewidth=0)
    labels = {"x": x, "error_label": error_label, "title": title}
    return _finish(ax, figure, (low, high), labels, path_stem, formats)


def plot_surveys(
    surveys: Sequence[tuple[str, FitResult, bool]],
    *,
    title: str,
    error_label: str,
    path_stem: Path,
    formats: Sequence[str],
    level: float = 0.95,
) -> list[Path]:
    """Several surveys on one pair of axes: (label, fit, whether to draw its points) each, in its own colour,
    with its fitted line and band over its own range (a survey that is a subset of another draws its line
    only). Points with `extra_data` set are drawn hollow. Returns the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.5, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    x = surveys[0][1].plan.x
    errors = pd.concat([fit.data["error"].astype(float) for _, fit, _ in surveys])
    low, high = errors.min() / 1.3, errors.max() * 1.3
    for index, (name, fit, with_points) in enumerate(surveys):
        colour, points = f"C{index}", fit.data
        if with_points:
            extra = (
                points["extra_data"].astype(bool) if "extra_data" in points.columns else points["u"] < -np.inf
            )
            ax.scatter(points[~extra][x], points[~extra]["error"], s=22, color=colour, alpha=0.7, label=name)
            # the pretrained weights are hollow: the reader sees how much of the zoo's reach they make
            if extra.any():
                ax.scatter(
                    points[extra][x],
                    points[extra]["error"],
                    s=40,
                    facecolors="none",
                    edgecolors=colour,
                    label=f"{name}: pretrained on extra data",
                )
        u = np.linspace(points["u"].min(), points["u"].max(), 200)
        line, band = _curve(fit, u, level, floor=low / 10.0)
        row = fit.row
        text = f"{name}: slope {interval(row['slope'], row['slope_ci_low'], row['slope_ci_high'])}"
        text += f", k {number(row['k'])}, N {row['n']}"
        ax.plot(10.0**u, line, "-" if with_points else "--", color=colour, linewidth=1.8, label=text)
        if band is not None:
            ax.fill_between(10.0**u, *band, color=colour, alpha=0.15, linewidth=0)
    labels = {"x": x, "error_label": error_label, "title": title}
    return _finish(ax, figure, (low, high), labels, path_stem, formats)


def _finish(ax, figure, error_range, labels: dict[str, str], path_stem: Path, formats) -> list[Path]:
    """Log axes over `error_range`, labels with units (`labels`: x, error_label, title), grid and the legend
    below the axes; then the files, written."""
    low, high = error_range
    ax.set(xscale="log", yscale="log", ylim=(low, high))
    _error_ticks(ax, low, high)
    ax.set_xlabel(label(labels["x"]))
    ax.set_ylabel(f"{label(labels['error_label'])}, log scale")
    ax.set_title(labels["title"], fontsize=11)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.6)
    _legend_below(ax, figure)
    return save_figure(figure, path_stem, formats)


def _legend_below(ax, figure) -> None:
    """The legend below the axes, never over the points: constrained layout makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=1, fontsize=7, frameon=False)


# Without these, every SVG would differ from the last one drawn from the same data, by its date and by its
# element ids (matplotlib salts their hashes with a fresh uuid), and every PDF by its creation date.
_NO_DATES = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}


def save_figure(figure, path_stem: Path, formats: Sequence[str]) -> list[Path]:
    """`figure` as path_stem.<format> for each format, then cleared: the same data, the same bytes."""
    import matplotlib  # here, like every matplotlib import of this module: only drawing pays for it

    written = []
    with matplotlib.rc_context({"svg.hashsalt": "harness"}):
        for fmt in formats:
            path = path_stem.with_suffix(f".{fmt}")
            figure.savefig(path, dpi=150, metadata=_NO_DATES.get(fmt))
            written.append(path)
    figure.clear()
    return written
