"""The report: CSV tables with the issue's columns, plots rendered headless, Markdown and HTML agreeing."""

import math

import matplotlib
import pandas as pd
import pytest

from harness.report import write_outputs
from harness.report.document import Block, Heading, Image, Paragraph, Table, to_html, to_markdown
from harness.report.formatting import bounds, interval, number
from harness.report.plots import plot_scaling
from harness.scaling import analyse_reference
from harness.scaling.regressions import FITS_COLUMNS
from harness.settings import FitSettings


@pytest.fixture(scope="module")
def squad():
    return analyse_reference("squad", FitSettings(targets={"squad": (0.05,)}))


def test_write_outputs(squad, tmp_path):
    write_outputs([squad], tmp_path, formats=("png", "svg"))
    names = {p.name for p in tmp_path.iterdir()}
    expected = {"fits.csv", "extrapolation.csv", "holdout.csv", "report.md", "report.html"}
    assert expected | {"squad_hardware_burden.png", "squad_hardware_burden.svg"} == names
    fits = pd.read_csv(tmp_path / "fits.csv")
    assert tuple(fits.columns) == FITS_COLUMNS and list(fits["spec"]) == ["poly", "exp"]
    assert (fits["source"] == "reference").all()
    extrapolation = pd.read_csv(tmp_path / "extrapolation.csv")
    assert list(extrapolation.columns[:5]) == ["benchmark", "spec", "x", "y", "target_error"]
    assert {"usd_paper", "co2_kg_paper_ci_high"} <= set(extrapolation.columns)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "![SQuAD 1.1 (EM): squad_hardware_burden](squad_hardware_burden.png)" in markdown
    assert "k ≥ 4" in markdown and "What the targets would cost" in markdown and "Out-of-sample" in markdown
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<img src="squad_hardware_burden.png"' in page
    assert page.count("<table>") == sum(line.startswith("| --- |") for line in markdown.splitlines())


def test_plots_render_headless_and_leave_no_figures(squad, tmp_path):
    backend = matplotlib.get_backend()
    written = plot_scaling(
        squad.fits,
        title="t",
        error_label="1 − EM",
        colour="year",
        path_stem=tmp_path / "plot",
        formats=("png", "svg"),
    )
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert written[0].read_bytes().startswith(b"\x89PNG") and b"<svg" in written[1].read_bytes()[:500]
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_markdown_and_html_escape_what_they_must():
    blocks: list[Block] = [
        Heading(1, "a <title>"),
        Paragraph("see `fits.csv` & more"),
        Table(["x|y", "v"], [["1|2", "<b>"]]),
        Image("p.png", 'a "plot"'),
    ]
    markdown = to_markdown(blocks)
    assert "| x\\|y | v |" in markdown and "| 1\\|2 | <b> |" in markdown and '![a "plot"](p.png)' in markdown
    page = to_html(blocks, "t")
    assert "<h1>a &lt;title&gt;</h1>" in page and "<code>fits.csv</code> &amp; more" in page
    assert "<td>&lt;b&gt;</td>" in page and 'alt="a &quot;plot&quot;"' in page


def test_number_formatting():
    assert number(-0.083609) == "-0.0836" and number(12) == "12" and number(1.25e26) == "1.25e+26"
    assert number(math.nan) == "–" and number(None) == "–" and number(math.inf) == "∞"
    assert interval(11.96, 10.46, math.inf) == "12 [10.5, ∞]"
    assert interval(1.0, math.nan, math.nan) == "1" and interval(1.0, math.nan, math.nan, unbounded=True) == (
        "1 [unbounded]"
    )
    assert bounds(1, 2) == "[1, 2]"


def test_bands_run_over_the_whole_data_range_and_labels_have_units(squad):
    import numpy as np

    from harness.labels import label, model_colours
    from harness.report.plots import _curve, _drawable

    # The exp fit's band falls through zero inside the data: held at the floor, below the axis, not cut.
    assert list(_drawable(np.array([0.2, 0.0, -0.1, -np.inf, np.inf]), 0.01)[:4]) == [0.2, 0.01, 0.01, 0.01]
    for fit in squad.fits:
        points = fit.data["u"]
        line, band = _curve(fit, np.linspace(points.min(), points.max(), 50), 0.95, floor=1e-4)
        assert np.isfinite(line).all() and all(np.isfinite(end).all() for end in band)
    assert label("test_error") == "test error (fraction)" and label("energy_total_j") == "training energy (J)"
    assert model_colours(["mlp", "zeta", "cnn"]) == {**model_colours(["cnn", "mlp"]), "zeta": "C3"}
