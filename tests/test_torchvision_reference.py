"""The torchvision zoo as a second ImageNet survey: its table, its fits beside the paper's, placing a model.

The table is built by scripts/build_torchvision_reference.py from the installed torchvision; these tests
check it against that torchvision, the papers table against the arXiv ids, and rebuild a few cheap rows.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torchvision

from harness.compute.zoo import reference_row, torchvision_weights
from harness.errors import ConfigError
from harness.report import write_outputs
from harness.scaling import reference, zoo
from harness.scaling.analysis import analyse_reference, analyse_torchvision
from harness.scaling.placement import place


@pytest.fixture(scope="module")
def table():
    return reference.load_torchvision()


@pytest.fixture(scope="module")
def analyses():
    return analyse_torchvision()


def test_the_table_has_every_weights_of_the_installed_torchvision(table):
    assert (table["torchvision"] == torchvision.__version__).all(), (
        "rebuild: scripts/build_torchvision_reference.py"
    )
    assert set(zip(table["model"], table["weights"], strict=True)) == set(torchvision_weights())
    assert table["model"].nunique() == 80 and len(table) == 115
    # vgg16's IMAGENET1K_FEATURES weights have no classifier and no accuracy: kept, and left out of the fits
    assert table.loc[table["error"].isna(), "name"].tolist() == ["vgg16.IMAGENET1K_FEATURES"]
    assert ((table["error"] > 0) & (table["error"] < 1)).sum() == 114
    assert (table["flops_forward"] == 2 * table["macs_forward"]).all()
    # torchvision's _ops counts matmul, convolution, attention; ours adds norms and pools (6% on mnasnet0_5)
    ratio = table["macs_forward"] / (table["torchvision_ops_gmacs"] * 1e9)
    assert ratio.between(0.99, 1.07).all(), table.loc[~ratio.between(0.99, 1.07), ["name"]]


def test_extra_data_is_exactly_the_swag_weights(table):
    swag = table["weights"].str.contains("SWAG")
    assert swag.sum() == 12  # six architectures, each fine-tuned end to end and as a linear probe
    assert (table["extra_data"] == swag).all()
    assert len(reference.load_torchvision(extra_data=False)) == len(table) - 12


def test_the_table_reuses_the_zoo_count_where_it_has_the_same_crop(table):
    counted = pd.read_csv(Path(__file__).parents[1] / "results/measure/torchvision.csv")
    both = table.merge(counted, on=["model", "resolution"], suffixes=("", "_zoo"))
    assert len(both) >= 100
    assert (both["macs_forward"] == both["macs"]).all()


def test_the_papers_years_are_their_arxiv_months():
    papers = reference.torchvision_papers()
    ids = papers["arxiv"].map(lambda a: f"{a:.4f}" if isinstance(a, float) else str(a))
    assert (papers["year"] == 2000 + ids.str[:2].astype(int)).all()
    assert (papers["month"] == ids.str[2:4].astype(int)).all()
    assert papers["source"].str.startswith("https://arxiv.org/abs/").all()


@pytest.mark.parametrize(
    ("model", "weights"), [("alexnet", "IMAGENET1K_V1"), ("squeezenet1_1", "IMAGENET1K_V1")]
)
def test_rebuilding_a_row_counts_the_same_flops(table, model, weights):
    row = reference_row(model, weights, reference.torchvision_papers(), counted=None)  # counted afresh
    stored = table[(table["model"] == model) & (table["weights"] == weights)].iloc[0]
    for column in ("flops_forward", "resolution", "params", "year", "top1_error"):
        assert row[column] == stored[column], column


def test_the_paper_specs_on_both_surveys(analyses):
    assert [a.name for a in analyses] == [zoo.PAPER, zoo.ZOO, zoo.ZOO_IMAGENET_ONLY]
    for analysis in analyses:
        assert [f.row["spec"] for f in analysis.fits] == ["poly", "exp", "poly_year", "quantile10"]
        assert {f.row["x"] for f in analysis.fits} == {"ops_forward_pass"}
    paper, everything, imagenet_only = (a.fits[0].row for a in analyses)
    # the paper's poly on forward FLOPs is the one `harness fit reference=imagenet` fits
    same = next(f.row for f in analyse_reference("imagenet").fits if f.row["x"] == "ops_forward_pass")
    assert paper["slope"] == pytest.approx(same["slope"]) and paper["n"] == same["n"]
    assert everything["n"] == 114 and imagenet_only["n"] == 102  # vgg16's feature weights: no error
    assert everything["slope"] < 0 and imagenet_only["slope"] < 0


def test_the_report_has_both_surveys_on_one_figure(analyses, tmp_path):
    write_outputs(analyses, tmp_path, formats=("png",))
    assert (tmp_path / "surveys_ops_forward_pass.png").stat().st_size > 10_000
    report = (tmp_path / "report.md").read_text()
    assert "Both surveys side by side" in report and "surveys_ops_forward_pass.png" in report


def test_a_model_on_the_trend_is_as_efficient_as_the_field(analyses):
    fit = analyses[1].fits[0]
    a, b = fit.model.params[:2]
    flops = 1e10
    error = 10 ** (a + b * math.log10(flops))
    (row,) = [r for r in place(flops, error, ["torchvision"]) if r["reference"] == zoo.ZOO]
    assert row["efficiency"] == pytest.approx(1.0)
    assert row["efficiency_ci_low"] < 1.0 < row["efficiency_ci_high"]
    rows = place(flops / 10, error)  # ten times cheaper for the same error
    assert [r["reference"] for r in rows] == ["imagenet", zoo.ZOO, zoo.ZOO_IMAGENET_ONLY]
    assert rows[1]["efficiency"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("error", "references", "message"),
    [
        (1.2, ["imagenet"], "strictly between 0 and 1"),
        (0.0, ["imagenet"], "strictly between 0 and 1"),
        (0.2, ["coco"], "coco has no fit on forward-pass FLOPs"),
        (0.2, [], "none given has no fit"),
    ],
)
def test_bad_placement_is_one_line(error, references, message):
    with pytest.raises(ConfigError, match=message) as info:
        place(1e9, error, references)
    assert "\n" not in str(info.value)


def test_measure_places_a_model(harness_cli):
    args = ("measure", "model=mlp", "latency.enabled=false", "output=json")
    proc = harness_cli(*args, "error=0.3")
    assert proc.returncode == 0, proc.stderr

    rows = json.loads(proc.stdout)["placement"]
    assert [r["reference"] for r in rows] == ["imagenet", zoo.ZOO, zoo.ZOO_IMAGENET_ONLY]
    assert all(r["efficiency"] > 0 for r in rows)
    proc = harness_cli(*args, "error=1.5")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "error=1.5 must be a top-1 error" in line
