"""One benchmark analysed end to end: the regressions, the extrapolation, the out-of-sample check, L(N, D).

`analyse_reference(name, settings)` runs the paper's specifications on its own data; `analyse_runs(runs,
settings)` runs the chosen ones on our run records, one analysis per dataset: every chosen compute column
(`x`), on all configurations and/or on the compute-efficient frontier (`frontier`). `FitSettings`
(harness.settings) carries every choice, so that nothing here depends on Hydra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import pandas as pd

from harness.errors import ConfigError
from harness.scaling import paper, reference, zoo
from harness.scaling.extrapolate import (
    EXTRAPOLATION_COLUMNS,
    Conversion,
    extrapolatable,
    extrapolate,
    measured_conversions,
    paper_conversions,
)
from harness.scaling.holdout import (
    HOLDOUT_COLUMNS,
    PARAMETRIC_LABEL,
    holdout_line,
    holdout_line_grid,
    holdout_parametric,
    holdout_parametric_grid,
)
from harness.scaling.imputation import IMPUTED, consolidate_burden
from harness.scaling.parametric import RELIABLE_POINTS, bootstrap, fit_parametric, why_not_parametric
from harness.scaling.regressions import (
    ERROR,
    FITS_COLUMNS,
    LOG_ERROR,
    MIN_POINTS,
    FitResult,
    Plan,
    fit_plan,
)
from harness.scaling.runs import AllContended, PreparedRuns, prepare_runs, select_runs
from harness.settings import ALL_POINTS, FRONTIER, FitSettings

# Columns of the reference tables carried into each fit's points, for plots (colour, imputed markers).
_REFERENCE_KEPT = ("year", "name", IMPUTED)
# The group of runs whose record names no dataset (harness.track without data=).
MISSING_DATA = "runs without a data name"


def paper_rates(settings: FitSettings, x: str) -> list[Conversion]:
    """The paper's USD and CO2 per FLOP (at the settings' rates), for a training-compute column `x`."""
    return paper_conversions(x, flop_per_usd=settings.flop_per_usd, flop_per_lb_co2=settings.flop_per_lb_co2)


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
    # per compute column: the configurations off its compute-efficient frontier, plotted in grey
    background: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    level: float = 0.95  # confidence level of the intervals (and of the plotted bands)
    tuning: pd.DataFrame | None = None  # tune=...: the runs chosen per configuration (tuning.csv)


def _finish(
    analysis: BenchmarkAnalysis,
    settings: FitSettings,
    conversions: Callable[[str], list[Conversion]],
    targets: Sequence[float],
    *,
    grid: bool = False,
) -> None:
    """Extrapolate and hold out the largest scales for every line that can be inverted.

    Each line is checked on its own points; with `grid`, lines fitted on every configuration also get the
    width-and-data check.
    """
    for fit in analysis.fits:
        if fit.plan is None or not extrapolatable(fit):
            continue
        tag = {"points": fit.row["points"]} if "points" in fit.row else {}
        rows = extrapolate(fit, targets, level=settings.level, conversions=conversions(fit.plan.x))
        analysis.extrapolation += [{**row, **tag} for row in rows]
        rows = holdout_line(fit.data, fit.plan, benchmark=analysis.name, fraction=settings.holdout_fraction)
        if grid and fit.row.get("points") == ALL_POINTS:
            rows += holdout_line_grid(fit.data, fit.plan, benchmark=analysis.name)
        analysis.holdout += [{**row, **tag} for row in rows]


def analyse_reference(name: str, settings: FitSettings | None = None) -> BenchmarkAnalysis:
    """The paper's specifications on its own data for benchmark `name`."""
    settings = settings or FitSettings()
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
    _finish(analysis, settings, partial(paper_rates, settings), settings.targets_for(name))
    return analysis


def analyse_torchvision(settings: FitSettings | None = None) -> list[BenchmarkAnalysis]:
    """The paper's ImageNet specs on forward FLOPs (zoo.plans) for the paper's survey and torchvision's zoo,
    with and without the weights pretrained on extra data: three analyses, to be read side by side."""
    settings = settings or FitSettings()
    chosen = zoo.plans(quantile=settings.quantile, year_base=settings.year_base)
    analyses = []
    for name, label, table in zoo.surveys():
        keep = (*_REFERENCE_KEPT, "extra_data")
        fits = [fit_plan(table, plan, benchmark=name, level=settings.level, keep=keep) for plan in chosen]
        analysis = BenchmarkAnalysis(
            name, "reference", label, "top-1 error", "year", fits, level=settings.level
        )
        analysis.notes.append(zoo.NOTES[name])
        _finish(analysis, settings, partial(paper_rates, settings), settings.targets_for("imagenet"))
        analyses.append(analysis)
    return analyses


def run_plans(settings: FitSettings, x: str) -> list[Plan]:
    """The specifications `specs=` names, on compute column `x`."""
    available = {
        "poly": Plan("poly", LOG_ERROR, x),
        "exp": Plan("exp", ERROR, x),
        paper.quantile_spec(settings.quantile): Plan(
            paper.quantile_spec(settings.quantile), LOG_ERROR, x, quantile=settings.quantile
        ),
    }
    unknown = [s for s in settings.specs if s not in available]
    if unknown or not settings.specs:
        raise ConfigError(f"specs={list(settings.specs)}: choose from {', '.join(available)}")
    return [available[s] for s in settings.specs]


def analyse_runs(runs: pd.DataFrame, settings: FitSettings | None = None) -> list[BenchmarkAnalysis]:
    """The chosen specifications on our runs, for every chosen compute column, one analysis per dataset."""
    settings = settings or FitSettings()
    plans = {x: run_plans(settings, x) for x in settings.xs}
    prepared: dict[str, PreparedRuns] = {}
    skipped = []
    # Completed runs of the chosen models and datasets, tuned: the same for every x, so selected once.
    selected = select_runs(
        runs,
        models=settings.models,
        datasets=settings.datasets,
        group_by=settings.group_by,
        tune=settings.tune_keys,
        tune_compute=settings.tune_compute,
    )
    for x in settings.xs:
        try:
            prepared[x] = prepare_runs(
                runs,
                x=x,
                error=settings.error,
                models=settings.models,
                datasets=settings.datasets,
                seeds=settings.seeds,
                group_by=settings.group_by,
                frontier=False,  # every configuration, marked on_frontier; the point sets are chosen below
                contended=settings.contended,
                collapsed=settings.collapsed,
                tune=settings.tune_keys,
                tune_compute=settings.tune_compute,
                selected=selected,
            )
        except AllContended:  # one clock-based x of several: the others still stand
            if len(settings.xs) == 1:
                raise
            skipped.append(
                f"x={x}: every run was contended, so its fits are skipped (contended=keep fits them)"
            )
            del plans[x]
    if not prepared:
        raise ConfigError(
            f"every x ({', '.join(settings.xs)}) lost all its runs to contention; rerun on a quiet machine, "
            "add x=network_operations, or pass contended=keep"
        )
    messages = (f"{count} runs dropped: {why}" for p in prepared.values() for why, count in p.dropped.items())
    dropped = "; ".join([*dict.fromkeys(messages), *skipped])  # once each, though every x drops the same runs
    first = next(iter(prepared.values())).everything
    # Runs without a dataset name (a user's own loop under harness.track, without data=) form one group of
    # their own: NaN would match no row.
    datasets = (
        [d if pd.notna(d) else MISSING_DATA for d in first["data"].unique()] if "data" in first else [None]
    )
    return [_analyse_dataset(prepared, dataset, plans, settings, dropped) for dataset in datasets]


def _subset(frame: pd.DataFrame, dataset) -> pd.DataFrame:
    if dataset is None:
        return frame
    rows = frame["data"].isna() if dataset is MISSING_DATA else frame["data"] == dataset
    return frame[rows].reset_index(drop=True)


def _fits_on(
    everything: pd.DataFrame, plans: list[Plan], settings: FitSettings, name: str
) -> tuple[list[FitResult], list[str]]:
    """Every plan on every point set of one compute column; fits.csv's `points` says which."""
    keep = tuple(c for c in ("model", "params", "n_train", "n_seeds", "seed") if c in everything.columns)
    fits, notes = [], []
    for point_set in settings.point_sets:
        points = everything if point_set == ALL_POINTS else everything[everything["on_frontier"]]
        if point_set == FRONTIER:
            x = plans[0].x
            notes.append(f"frontier on {x}: {len(points)} of {len(everything)} configurations")
            if len(points) < MIN_POINTS and len(settings.point_sets) > 1:
                notes.append(f"frontier on {x}: fewer than {MIN_POINTS} points, its fits are skipped")
                continue
        for plan in plans:
            fit = fit_plan(points, plan, benchmark=name, level=settings.level, keep=keep)
            fits.append(replace(fit, row={**fit.row, "points": point_set}))
    return fits, notes


def _analyse_dataset(
    prepared: Mapping[str, PreparedRuns],
    dataset,
    plans: Mapping[str, list[Plan]],
    settings: FitSettings,
    dropped,
) -> BenchmarkAnalysis:
    """One dataset of our runs: its fits, extrapolation (with measured energy rates), holdout, L(N, D)."""
    name = "runs" if dataset is None or dataset is MISSING_DATA else str(dataset)
    notes = [dropped] if dropped else []
    notes.append(f"error = {settings.error}; seeds {'averaged' if settings.seeds == 'mean' else 'kept'}")
    some = next(iter(prepared.values()))
    tuning = some.tuning  # the choice is the same for every x (made before any x filter)
    if tuning is not None:
        notes.append(tuning.note())
    mixed = some.mixed
    if mixed:
        notes.append(
            f"runs of one configuration and seed differ in {', '.join(mixed)} and were averaged together; "
            f"tune=[{mixed[0]}] would choose among them on validation (or add config.{mixed[0]} to group_by)"
        )
    fits: list[FitResult] = []
    background: dict[str, pd.DataFrame] = {}
    for x, x_plans in plans.items():
        everything = _subset(prepared[x].everything, dataset)
        x_fits, x_notes = _fits_on(everything, x_plans, settings, name)
        fits += x_fits
        notes += x_notes
        if FRONTIER in settings.point_sets:
            background[x] = everything[~everything["on_frontier"]]
    first = _subset(some.everything, dataset)
    analysis = BenchmarkAnalysis(
        name,
        "results",
        f"{name} (our runs, {'/'.join(k.rpartition('.')[2] for k in tuning.keys)} tuned on validation"
        f"{', search compute' if tuning.compute == 'sum' else ''})"
        if tuning is not None
        else f"{name} (our runs)",
        settings.error,
        "model" if "model" in first.columns else None,
        fits,
        background=background,
        notes=notes,
        level=settings.level,
        tuning=None if tuning is None else _subset(tuning.chosen, dataset),
    )
    measured = {x: measured_conversions(x, _subset(prepared[x].runs, dataset)) for x in plans}
    _finish(
        analysis,
        settings,
        lambda x: paper_rates(settings, x) + measured[x],
        settings.targets_for(name, "runs"),
        grid=settings.holdout_grid,
    )
    if settings.parametric:  # on every configuration: L(N, D) describes all of them, not just the frontier
        _parametric(analysis, first, settings)
    return analysis


def _parametric_groups(points: pd.DataFrame, settings: FitSettings) -> list[tuple[str, pd.DataFrame]]:
    """(model, its points) for each model when fitting per model and there are several; else one group."""
    models = sorted(points["model"].dropna().unique()) if "model" in points.columns else []
    if settings.parametric_by_model and len(models) > 1:
        return [(str(m), points[points["model"] == m]) for m in models]
    return [(str(models[0]) if len(models) == 1 else "all", points)]


def _parametric(analysis: BenchmarkAnalysis, points: pd.DataFrame, settings: FitSettings) -> None:
    """L(N, D) with bootstrap CIs and its out-of-sample checks (per model when there are several), or a
    note saying why it was skipped."""
    tables = []
    for model, group in _parametric_groups(points, settings):
        frame = group.dropna(subset=[c for c in ("params", "n_train", "error") if c in group.columns])
        reason = why_not_parametric(frame, min_points=RELIABLE_POINTS)
        if reason is not None:
            analysis.notes.append(f"L(N, D) for {model} not fitted: {reason}")
            continue
        delta = settings.huber_delta
        best = fit_parametric(frame["params"], frame["n_train"], frame["error"], delta=delta)
        table = bootstrap(
            frame,
            best,
            resamples=settings.bootstrap,
            seed=settings.bootstrap_seed,
            delta=delta,
            level=settings.level,
        )
        tables.append(table.assign(benchmark=analysis.name, model=model))
        label = PARAMETRIC_LABEL if model == "all" else f"{PARAMETRIC_LABEL} ({model})"
        rows = holdout_parametric(
            frame, benchmark=analysis.name, fraction=settings.holdout_fraction, delta=delta, label=label
        )
        if settings.holdout_grid:
            rows += holdout_parametric_grid(frame, benchmark=analysis.name, delta=delta, label=label)
        analysis.holdout += [{**row, "points": ALL_POINTS} for row in rows]
    if tables:
        table = pd.concat(tables, ignore_index=True)
        analysis.parametric = table[
            ["benchmark", "model", *(c for c in tables[0].columns if c not in ("benchmark", "model"))]
        ]


def fits_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    """fits.csv: one row per fitted specification, in the columns the issue lists; fits of our runs add
    `points` (all configurations, or the compute-efficient frontier) after `spec`."""
    rows = [{**fit.row, "source": a.source} for a in analyses for fit in a.fits]
    columns = list(FITS_COLUMNS)
    if any("points" in row for row in rows):
        columns.insert(columns.index("spec") + 1, "points")
    return pd.DataFrame(rows).reindex(columns=columns)


def extrapolation_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    """extrapolation.csv: one row per fit and target (its columns even when there is none)."""
    rows = [row for a in analyses for row in a.extrapolation]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(EXTRAPOLATION_COLUMNS))


def holdout_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    """holdout.csv: one row per held-out point; the width-and-data columns only when that check ran."""
    frame = pd.DataFrame([row for a in analyses for row in a.holdout])
    if frame.empty:
        return frame
    frame = frame.reindex(columns=list(HOLDOUT_COLUMNS))
    return frame.dropna(axis="columns", how="all")


def tuning_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    """tuning.csv: the run chosen for each configuration and seed, with its validation and test error and
    the size of its search (empty without tune=)."""
    tables = [a.tuning for a in analyses if a.tuning is not None]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def parametric_table(analyses: Sequence[BenchmarkAnalysis]) -> pd.DataFrame:
    tables = [a.parametric for a in analyses if a.parametric is not None]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
