"""The paper's ImageNet survey beside torchvision's zoo (`harness fit reference=torchvision`): one figure with
both on the same axes, and a table of the same specs side by side, for the report and the console."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.report.document import Block, Heading, Image, Paragraph, Table
from harness.report.formatting import interval
from harness.report.plots import plot_surveys
from harness.scaling import zoo
from harness.scaling.analysis import BenchmarkAnalysis


def surveys_of(analyses: Sequence[BenchmarkAnalysis]) -> list[BenchmarkAnalysis]:
    """The paper's survey and the zoo's, when `harness fit reference=torchvision` made them; else none."""
    by_name = {a.name: a for a in analyses}
    names = (zoo.PAPER, zoo.ZOO, zoo.ZOO_IMAGENET_ONLY)
    return [by_name[n] for n in names] if all(n in by_name for n in names) else []


def survey_plot(surveys: Sequence[BenchmarkAnalysis], directory: Path, formats: Sequence[str]) -> list[Path]:
    """Both surveys' points and poly lines on one pair of axes (the zoo without extra data: its line only)."""
    poly = [next(f for f in a.fits if f.plan.spec == "poly") for a in surveys]
    return plot_surveys(
        [(a.label, fit, a.name != zoo.ZOO_IMAGENET_ONLY) for a, fit in zip(surveys, poly, strict=True)],
        title="Two surveys of ImageNet: top-1 error vs forward-pass FLOPs",
        error_label="top-1 error",
        path_stem=directory / "surveys_ops_forward_pass",
        formats=formats,
        level=surveys[0].level,
    )


def side_by_side(surveys: Sequence[BenchmarkAnalysis]) -> tuple[list[str], list[list[str]]]:
    """One row per spec, one column per survey: slope [CI], k and N (the same spec on the same x)."""
    columns = ["spec", *(a.name for a in surveys)]
    specs = [f.row["spec"] for f in surveys[0].fits]
    rows = []
    for spec in specs:
        cells = []
        for analysis in surveys:
            row = next(f.row for f in analysis.fits if f.row["spec"] == spec)
            cell = interval(row["slope"], row["slope_ci_low"], row["slope_ci_high"])
            if row["y"] == "log10(error)":
                cell += f", k {interval(row['k'], row['k_ci_low'], row['k_ci_high'])}"
            cells.append(f"{cell}, N {row['n']}")
        rows.append([spec, *cells])
    return columns, rows


def survey_blocks(surveys: Sequence[BenchmarkAnalysis], images: list[Path]) -> list[Block]:
    if not surveys:
        return []
    columns, rows = side_by_side(surveys)
    text = (
        "The paper's ImageNet specifications, each on operations per forward pass for both surveys "
        f"({', '.join(f'`{a.name}`: {a.label}' for a in surveys)}). poly, poly_year and the quantile: "
        "log10(error) ~ log10(FLOPs); exp: error ~ log10(FLOPs) (no k)."
    )
    blocks: list[Block] = [Heading(2, "Both surveys side by side"), Paragraph(text), Table(columns, rows)]
    return blocks + [Image(path.name, "both surveys: top-1 error vs forward FLOPs") for path in images]
