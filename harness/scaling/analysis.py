"""One benchmark analysed end to end: the regressions, the extrapolation, the out-of-sample check, L(N, D).

`analyse_reference(name, settings)` runs the paper's specifications on its own data; `analyse_runs(runs,
settings)` runs the chosen ones on our run records, one analysis per dataset. `Settings` carries every
choice, so that nothing here depends on Hydra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from harness.errors import ConfigError
from harness.scaling import paper, reference
from harness.scaling.extrapolate import (
    EXTRAPOLATION_COLUMNS,
    Conversion,
    extrapolatable,
    extrapolate,
    measured_conversions,
    paper_conversions,
)
from harness.scaling.holdout import holdout_line, holdout_parametric
from harness.scaling.imputation import IMPUTED, consolidate_burden
from harness.scaling.parametric import bootstrap, fit_parametric, why_not_parametric
from harness.scaling.regressions import ERROR, FITS_COLUMNS, LOG_ERROR, FitResult, Plan, fit_plan
from harness.scaling.runs import PreparedRuns, prepare_runs

# Columns of the reference tables carried into each fit's points, for plots (colour, imputed markers).
_REFERENCE_KEPT = ("year", "name", IMPUTED)


@dataclass(frozen=True)
class Settings:
    """Every choice of an analysis; the defaults are the paper's where it made one."""

    level: float = 0.95
    quantile: float = 0.1
    year_base: int = 2012
    targets: Mapping[str, Sequence[float]] = field(default_factory=lambda: {"default": (0.05, 0.02, 0.01)})
    imputation: Mapping[str, Sequence[float]] = field(default_factory=dict)
    flop_per_usd: float = 6.874e16
    flop_per_lb_co2: float = 3.498e17
    holdout_fraction: float = 0.1
    # our runs
    x: str = "network_operations"
    error: str = "test_error"
    specs: Sequence[str] = ("poly", "exp", "quantile10")
    models: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    seeds: str = "mean"
    group_by: Sequence[str] = ("model", "data", "model_width", "model_depth", "n_train", "epochs")
    frontier: bool = False
    parametric: bool = True
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    huber_delta: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"level={self.level} must lie strictly between 0 and 1")
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"quantile={self.quantile} must lie strictly between 0 and 1")
        for name, values in self.targets.items():
            bad = [v for v in values if not 0.0 < float(v) < 1.0]
            if bad:
                raise ConfigError(f"extrapolation.targets.{name}: {bad} are not errors between 0 and 1")
        if self.bootstrap < 1:
            raise ConfigError(f"parametric.bootstrap={self.bootstrap} must be at least 1")

    def paper_rates(self, x: str) -> list[Conversion]:
        """The paper's USD and CO2 per FLOP, for a training-compute column `x`."""
        return paper_conversions(x, flop_per_usd=self.flop_per_usd, flop_per_lb_co2=self.flop_per_lb_co2)

    def targets_for(self, *names: str) -> tuple[float, ...]:
        """The target errors of the first of `names` that has some, else the default ones."""
        for name in (*names, "default"):
            if name in self.targets:
                return tuple(float(v) for v in self.targets[name])
        return ()


@dataclass
class BenchmarkAnalysis:
    """Everything computed for one benchmark (a reference table, or one dataset of our runs)."""

    name: str
    source: str  # reference | results
    label: str
    error_label: str
    colour: str | None  # the column that colours the points in plots: year or model
    fits: list[FitResult]
    extrapolation: list[dict] = field(default_factory=list)
    holdout: list[dict] = field(default_factory=list)
    parametric: pd.DataFrame | None = None
    background: pd.DataFrame | None = None  # runs off the compute-efficient frontier, plotted in grey
    notes: list[str] = field(default_factory=list)
    level: float = 0.95  # confidence level of the intervals (and of the plotted bands)


def _finish(
    analysis: BenchmarkAnalysis,
    frame: pd.DataFrame,
    settings: Settings,
    conversions: Callable[[str], list[Conversion]],
    targets: Sequence[float],
) -> None:
    """Extrapolate and hold out the largest scales for every line that can be inverted."""
    for fit in analysis.fits:
        if fit.plan is None or not extrapolatable(fit):
            continue
        analysis.extrapolation += extrapolate(
            fit, targets, level=settings.level, conversions=conversions(fit.plan.x)
        )
        analysis.holdout += holdout_line(
            frame, fit.plan, benchmark=analysis.name, fraction=settings.holdout_fraction
        )


def analyse_reference(name: str, settings: Settings | None = None) -> BenchmarkAnalysis:
    """The paper's specifications on its own data for benchmark `name`."""
    settings = settings or Settings()
    entry = reference.benchmark(name)
    frame = reference.load(name)
    fits: list[FitResult] = []
    if paper.needs_imputation(name):
        fixed = settings.imputation.get(name)
        frame, imputation = consolidate_burden(frame, benchmark=name, fixed=fixed, level=settings.level)
        fits.append(imputation)
    for plan in paper.plans(name, quantile=settings.quantile, year_base=settings.year_base):
        fits.append(fit_plan(frame, plan, benchmark=name, level=settings.level, keep=_REFERENCE_KEPT))
    analysis = BenchmarkAnalysis(
        name, "reference", entry.label, entry.error_label, "year", fits, level=settings.level
    )
    analysis.notes.append(
        f"{len(frame)} models in the authors' table (reference/SOURCE.md); error = {entry.error_label}, "
        "as a fraction; rows without a fit's compute column are dropped and counted (N dropped)."
    )
    _finish(analysis, frame, settings, settings.paper_rates, settings.targets_for(name))
    return analysis


def run_plans(settings: Settings) -> list[Plan]:
    """The specifications `specs=` names, on the chosen compute column."""
    available = {
        "poly": Plan("poly", LOG_ERROR, settings.x),
        "exp": Plan("exp", ERROR, settings.x),
        paper.quantile_spec(settings.quantile): Plan(
            paper.quantile_spec(settings.quantile), LOG_ERROR, settings.x, quantile=settings.quantile
        ),
    }
    unknown = [s for s in settings.specs if s not in available]
    if unknown or not settings.specs:
        raise ConfigError(f"specs={list(settings.specs)}: choose from {', '.join(available)}")
    return [available[s] for s in settings.specs]


def analyse_runs(runs: pd.DataFrame, settings: Settings | None = None) -> list[BenchmarkAnalysis]:
    """The chosen specifications on our runs, one analysis per dataset."""
    settings = settings or Settings()
    plans = run_plans(settings)
    prepared = prepare_runs(
        runs,
        x=settings.x,
        error=settings.error,
        models=settings.models,
        datasets=settings.datasets,
        seeds=settings.seeds,
        group_by=settings.group_by,
        frontier=settings.frontier,
    )
    dropped = "; ".join(f"{count} runs dropped: {why}" for why, count in prepared.dropped.items())
    datasets = prepared.points["data"].unique() if "data" in prepared.points.columns else [None]
    return [_analyse_dataset(prepared, dataset, plans, settings, dropped) for dataset in datasets]


def _subset(frame: pd.DataFrame, dataset) -> pd.DataFrame:
    return frame if dataset is None else frame[frame["data"] == dataset].reset_index(drop=True)


def _analyse_dataset(
    prepared: PreparedRuns, dataset, plans: list[Plan], settings: Settings, dropped: str
) -> BenchmarkAnalysis:
    """One dataset of our runs: its fits, extrapolation (with measured energy rates), holdout, L(N, D)."""
    name = "runs" if dataset is None else str(dataset)
    points = _subset(prepared.points, dataset)
    keep = tuple(c for c in ("model", "params", "n_train", "n_seeds", "seed") if c in points.columns)
    fits = [fit_plan(points, plan, benchmark=name, level=settings.level, keep=keep) for plan in plans]
    notes = [dropped] if dropped else []
    notes.append(f"error = {settings.error}; seeds {'averaged' if settings.seeds == 'mean' else 'kept'}")
    background = None
    if settings.frontier:
        everything = _subset(prepared.everything, dataset)
        background = everything[~everything["on_frontier"]]
        notes.append(f"fitted on the compute-efficient frontier: {len(points)} of {len(everything)} points")
    analysis = BenchmarkAnalysis(
        name,
        "results",
        f"{name} (our runs)",
        settings.error,
        "model" if "model" in points.columns else None,
        fits,
        background=background,
        notes=notes,
        level=settings.level,
    )
    measured = measured_conversions(settings.x, _subset(prepared.runs, dataset))
    _finish(
        analysis,
        points,
        settings,
        lambda x: settings.paper_rates(x) + measured,
        settings.targets_for(name, "runs"),
    )
    if settings.parametric:  # on every configuration: L(N, D) describes all of them, not just the frontier
        _parametric(analysis, _subset(prepared.everything, dataset), settings)
    return analysis


def _parametric(analysis: BenchmarkAnalysis, points: pd.DataFrame, settings: Settings) -> None:
    """L(N, D) with bootstrap CIs and its out-of-sample check, or a note saying why it was skipped."""
    frame = points.dropna(subset=[c for c in ("params", "n_train", "error") if c in points.columns])
    reason = why_not_parametric(frame)
    if reason is not None:
        analysis.notes.append(f"parametric fit L(N, D) skipped: {reason}")
        return
    best = fit_parametric(frame["params"], frame["n_train"], frame["error"], delta=settings.huber_delta)
    table = bootstrap(
        frame,
        best,
        resamples=settings.bootstrap,
        seed=settings.bootstrap_seed,
        delta=settings.huber_delta,
        level=settings.level,
    )
    analysis.parametric = table.assign(benchmark=analysis.name)[["benchmark", *table.columns]]
    analysis.holdout += holdout_parametric(
        frame, benchmark=analysis.name, fraction=settings.holdout_fraction, delta=settings.huber_delta
    )


def fits_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    """fits.csv: one row per fitted specification, in the columns the issue lists."""
    rows = [{**fit.row, "source": a.source} for a in analyses for fit in a.fits]
    return pd.DataFrame(rows).reindex(columns=list(FITS_COLUMNS))


def extrapolation_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    """extrapolation.csv: one row per fit and target (its columns even when there is none)."""
    rows = [row for a in analyses for row in a.extrapolation]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(EXTRAPOLATION_COLUMNS))


def holdout_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    return pd.DataFrame([row for a in analyses for row in a.holdout])


def parametric_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    tables = [a.parametric for a in analyses if a.parametric is not None]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
