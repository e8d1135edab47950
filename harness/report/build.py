"""Everything `harness fit out=DIR` writes: the CSV tables, the plots, and report.md / report.html tying them.

The tables are the machine-readable record; the report shows the same numbers rounded, beside the
plots, with what theory would allow (k ≥ 4) next to each fitted exponent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.labels import label
from harness.report.document import Block, Heading, Image, Paragraph, Table, to_html, to_markdown
from harness.report.formatting import bounds, frontier_label, holdout_frame, interval, number
from harness.report.plots import plot_name, plot_scaling
from harness.report.surveys import survey_blocks, survey_plot, surveys_of
from harness.scaling.analysis import (
    BenchmarkAnalysis,
    extrapolation_table,
    fits_table,
    holdout_table,
    parametric_table,
    tuning_table,
)
from harness.scaling.holdout import GRID_SCALE
from harness.scaling.regressions import K_THEORY_MIN
from harness.settings import ALL_POINTS, FRONTIER

TITLE = "Scaling fits: what does accuracy cost?"
# The converted costs shown in the report, when the extrapolation has them (see extrapolate.py).
_COSTS = (("usd_paper", "USD (paper rate)"), ("co2_kg_paper", "kg CO2e (paper rate)"))
_MEASURED = (
    ("energy_j_measured", "J (measured)"),
    ("co2_kg_measured", "kg CO2e (measured)"),
    ("usd_measured", "USD (measured)"),
)


def _write_tables(analyses: Sequence[BenchmarkAnalysis], directory: Path) -> list[str]:
    fits_table(analyses).to_csv(directory / "fits.csv", index=False)
    extrapolation_table(analyses).to_csv(directory / "extrapolation.csv", index=False)
    written = ["fits.csv", "extrapolation.csv"]
    for name, table in (
        ("holdout.csv", holdout_table(analyses)),
        ("parametric.csv", parametric_table(analyses)),
        ("tuning.csv", tuning_table(analyses)),
    ):
        if not table.empty:
            table.to_csv(directory / name, index=False)
            written.append(name)
    return written


def _plots(analysis: BenchmarkAnalysis, directory: Path, formats: Sequence[str]) -> list[Path]:
    """One plot per compute column fitted on this benchmark, PNG first (the report embeds that)."""
    by_x: dict[str, list] = {}
    for fit in analysis.fits:
        if fit.plan is not None:
            by_x.setdefault(fit.plan.x, []).append(fit)
    images = []
    for x, fits in by_x.items():
        with_all = any(f.row.get("points") == ALL_POINTS for f in fits)
        if with_all:  # every point is drawn in colour; of the frontier fits, only the log-log line
            fits = [f for f in fits if f.row.get("points") != FRONTIER or f.plan.spec == "poly"]
        files = plot_scaling(
            fits,
            title=f"{analysis.label}: {label(analysis.error_label)} vs {label(x)}",
            error_label=analysis.error_label,
            colour=analysis.colour,
            path_stem=directory / plot_name(analysis.name, x),
            formats=formats,
            level=analysis.level,
            background=None if with_all else analysis.background.get(x),
        )
        if files:
            images.append(files[0])
    return images


def _spec(row: dict) -> str:
    """The spec, marked when it was fitted on the compute-efficient frontier only."""
    return frontier_label(str(row["spec"]), row.get("points"))


def _fits_blocks(analysis: BenchmarkAnalysis) -> list[Block]:
    rows = []
    for fit in analysis.fits:
        r = fit.row
        rows.append(
            [
                _spec(r),
                f"`{r['formula']}`",
                r["method"],
                f"{r['n']} ({r['n_dropped']} dropped)",
                interval(r["slope"], r.get("slope_ci_low"), r.get("slope_ci_high")),
                interval(r.get("year_coef"), r.get("year_coef_ci_low"), r.get("year_coef_ci_high")),
                number(r.get("r2"), 2),
                number(r.get("p_value"), 2),
                interval(r.get("k"), r.get("k_ci_low"), r.get("k_ci_high")),
                r.get("note", ""),
            ]
        )
    columns = [
        "spec",
        "regression",
        "method",
        "N",
        "slope [95% CI]",
        "year coef",
        "R²",
        "p",
        "k [95% CI]",
        "note",
    ]
    return [Table(columns, rows)]


def _extrapolation_blocks(analysis: BenchmarkAnalysis) -> list[Block]:
    if not analysis.extrapolation:
        return []
    frame = pd.DataFrame(analysis.extrapolation)
    costs = [(c, label) for c, label in (*_COSTS, *_MEASURED) if c in frame.columns]
    rows = [
        [
            number(r["target_error"]),
            _spec(r),
            r["x"],
            interval(r["x_needed"], r["x_ci_low"], r["x_ci_high"], unbounded=True),
            bounds(r["x_pi_low"], r["x_pi_high"]),
            *(interval(r[c], r[f"{c}_ci_low"], r[f"{c}_ci_high"], unbounded=True) for c, _ in costs),
        ]
        for r in frame.to_dict("records")
    ]
    columns = [
        "target error",
        "spec",
        "x",
        "compute needed [95% CI]",
        "[95% PI]",
        *(label for _, label in costs),
    ]
    text = (
        "Compute at which each fitted line reaches the target error, with the confidence interval of the "
        "line and the prediction interval of one new model (unbounded where the slope is not clearly "
        "non-zero). The paper's rates are per FLOP of hardware burden; on network operations "
        "they are a lower bound."
    )
    return [Heading(3, "What the targets would cost"), Paragraph(text), Table(columns, rows)]


def _holdout_blocks(analysis: BenchmarkAnalysis) -> list[Block]:
    if not analysis.holdout:
        return []
    frame = holdout_frame(analysis.holdout)
    summary = frame.groupby(["model", "scale"], sort=False, observed=True).agg(
        held=("relative_error", "size"),
        typical=("relative_error", "median"),
        worst=("relative_error", "max"),
        n_fit=("n_fit", "first"),
    )
    rows = [
        [f"`{model}`", scale, str(r.n_fit), str(r.held), f"{r.typical:.1%}", f"{r.worst:.1%}"]
        for (model, scale), r in zip(summary.index, summary.itertuples(), strict=True)
    ]
    text = (
        "Each line refitted without the largest scale(s), then asked to predict them (all in holdout.csv). "
        f"`{GRID_SCALE}`: refitted without every configuration at its model's largest width or at the "
        "largest training set, then asked to predict those, the largest model on the most data included."
    )
    columns = ["model", "held out", "points fitted", "points held out", "median relative error", "worst"]
    blocks: list[Block] = [Heading(3, "Out-of-sample check"), Paragraph(text), Table(columns, rows)]
    corners = frame[frame["corner"].fillna(False).astype(bool)]
    if len(corners):
        corner_rows = [
            [
                f"`{r['model']}`",
                str(r.get("architecture") or ""),
                f"{r['params']:.4g}",
                f"{r['n_train']:.0f}",
                number(r["observed_error"]),
                number(r["predicted_error"]),
                f"{r['relative_error']:.1%}",
            ]
            for r in corners.to_dict("records")
        ]
        columns = ["model", "architecture", "params", "n_train", "observed", "predicted", "relative error"]
        blocks += [
            Paragraph("The corner: the largest width trained on the most data, predicted without either."),
            Table(columns, corner_rows),
        ]
    return blocks


def _parametric_blocks(analysis: BenchmarkAnalysis) -> list[Block]:
    if analysis.parametric is None:
        return []
    table = analysis.parametric
    models = list(dict.fromkeys(table["model"]))
    by_model = {m: table[table["model"] == m] for m in models}
    rows = [
        [
            parameter,
            *(
                interval(*by_model[m].set_index("parameter").loc[parameter, ["value", "ci_low", "ci_high"]])
                for m in models
            ),
        ]
        for parameter in dict.fromkeys(table["parameter"])
    ]
    points = ", ".join(f"{int(by_model[m]['n'].iloc[0])} ({m})" for m in models)
    text = (
        "`L(N, D) = E + A/N^alpha + B/D^beta` with N = parameters and D = training samples, fitted by Huber "
        "loss on log residuals (L-BFGS from a grid of starts), one fit per model; 95% bootstrap percentile "
        f"CIs over {int(table['resamples'].iloc[0])} resamples of the points: {points}."
    )
    return [
        Heading(3, "Beyond the paper: L(N, D)"),
        Paragraph(text),
        Table(["parameter", *(f"{m}: value [95% CI]" for m in models)], rows),
    ]


def _summary_blocks(analyses: Sequence[BenchmarkAnalysis]) -> list[Block]:
    rows = [
        [
            a.label,
            _spec(f.row),
            f.row["x"],
            str(f.row["n"]),
            number(f.row["r2"], 2),
            interval(f.row["slope"], f.row["slope_ci_low"], f.row["slope_ci_high"]),
            interval(f.row["k"], f.row["k_ci_low"], f.row["k_ci_high"]),
        ]
        for a in analyses
        for f in a.fits
        if f.plan is not None and f.plan.response.log_form
    ]
    text = (
        "In the log-log forms compute grows like error^−k, k = 1/|slope|. Theory allows an "
        f"over-parameterised model k ≥ {K_THEORY_MIN:g}; the paper found that published models needed more."
    )
    columns = ["benchmark", "spec", "x", "N", "R²", "slope [95% CI]", "k [95% CI]"]
    return [Heading(2, "The exponent k, benchmark by benchmark"), Paragraph(text), Table(columns, rows)]


def build_blocks(
    analyses: Sequence[BenchmarkAnalysis],
    images: dict[str, list[Path]],
    files: list[str],
    survey_images: Sequence[Path] = (),
) -> list[Block]:
    sources = sorted({a.source for a in analyses})
    blocks: list[Block] = [
        Heading(1, TITLE),
        Paragraph(
            f"Written by `harness fit` from {' and '.join(sources)} data: the regressions of Thompson et "
            "al., The Computational Limits of Deep Learning, with 95% confidence intervals. Files: "
            + ", ".join(f"`{f}`" for f in files)
            + "."
        ),
        *_summary_blocks(analyses),
        *survey_blocks(surveys_of(analyses), list(survey_images)),
    ]
    for analysis in analyses:
        blocks += [Heading(2, analysis.label)]
        blocks += [Paragraph(note) for note in analysis.notes]
        blocks += _fits_blocks(analysis)
        blocks += [Image(path.name, f"{analysis.label}: {path.stem}") for path in images[analysis.name]]
        blocks += _extrapolation_blocks(analysis) + _holdout_blocks(analysis) + _parametric_blocks(analysis)
    return blocks


def write_outputs(
    analyses: Sequence[BenchmarkAnalysis], directory: Path, *, formats: Sequence[str] = ("png", "svg")
) -> None:
    """Write every table, plot and report file into `directory` (which exists)."""
    directory = Path(directory)
    files = _write_tables(analyses, directory)
    images = {a.name: _plots(a, directory, formats) for a in analyses}
    surveys = surveys_of(analyses)
    survey_images = survey_plot(surveys, directory, formats)[:1] if surveys and formats else []
    files += ["report.md", "report.html"]
    blocks = build_blocks(analyses, images, files, survey_images)
    (directory / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (directory / "report.html").write_text(to_html(blocks, TITLE), encoding="utf-8")
