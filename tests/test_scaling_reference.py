"""The paper authors' tables: shipped as package data, loaded clean, hardware burden completed as they did."""

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.scaling import reference
from harness.scaling.imputation import CONSOLIDATED, IMPUTED, consolidate_burden

# Rows per table (the three header-like rows under the header excluded), as the authors' notebooks count them.
ROWS = {"imagenet": 208, "coco": 116, "squad": 41, "conll": 54, "wmt_en_de": 55, "wmt_en_fr": 42}
COCO_FIXED = (0.8944, 2.7356)  # conf/fit.yaml: imputation.coco


def test_package_data_is_shipped_with_its_source_and_license():
    folder = files("harness.scaling.reference")
    # the paper's six, and torchvision's zoo with its architectures' papers (built by us, see SOURCE.md)
    ours = (reference.TORCHVISION.file, "torchvision_papers.csv")
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".csv")) == sorted(
        (*(b.file for b in reference.BENCHMARKS), *ours)
    )
    source = (folder / "SOURCE.md").read_text(encoding="utf-8")
    assert "MIT-FutureTech/TheComputationalLimitsOfDeepLearning" in source and "GPL-3.0" in source


@pytest.mark.parametrize("name", reference.NAMES)
def test_load_is_clean(name):
    table = reference.load(name)
    assert len(table) == ROWS[name]
    assert table["year"].between(2012, 2022).all(), "a header row leaked into the data"
    assert table["score"].dropna().between(0, 1).all()
    assert np.allclose(table["error"], 1 - table["score"], equal_nan=True)
    for column in ("ops_forward_pass", "network_operations", "hardware_burden"):
        assert pd.api.types.is_float_dtype(table[column])


def test_ops_forward_pass_is_flops_else_twice_multiadds():
    table = reference.load("imagenet")
    only_multiadds = table["flops"].isna() & table["multiadds"].notna()
    assert only_multiadds.sum() == 29
    assert np.allclose(
        table.loc[only_multiadds, "ops_forward_pass"], 2 * table.loc[only_multiadds, "multiadds"]
    )
    assert table["ops_forward_pass"].notna().sum() == 110
    alexnet = table[table["name"] == "AlexNet"].iloc[0]
    assert alexnet["top_1_score"] == pytest.approx(0.633) and alexnet["error"] == pytest.approx(0.367)


def test_unknown_benchmark_is_a_config_error():
    with pytest.raises(ConfigError, match="reference=mnist is unknown"):
        reference.load("mnist")


@pytest.mark.parametrize(("name", "fixed"), [("imagenet", None), ("coco", COCO_FIXED)])
def test_imputation_reproduces_the_authors_consolidated_burden(name, fixed):
    table, fit = consolidate_burden(reference.load(name), benchmark=name, fixed=fixed)
    authors = table["hardware_burden_consolidated_authors"]
    assert table[CONSOLIDATED].notna().sum() == authors.notna().sum()
    # The authors printed two or three significant digits: rounding alone moves a value by up to 5%.
    assert np.allclose(table[CONSOLIDATED].dropna(), authors.dropna(), rtol=0.05)
    assert np.median(np.abs(table[CONSOLIDATED].dropna() / authors.dropna() - 1)) < 0.005
    measured = table["hardware_burden"].notna()
    assert (table.loc[measured, CONSOLIDATED] == table.loc[measured, "hardware_burden"]).all()
    assert not table.loc[measured, IMPUTED].any()
    assert fit.row["spec"] == "imputation" and fit.row["method"] == ("fixed" if fixed else "ols")


def test_imagenet_imputation_reports_its_n_and_r2():
    _, fit = consolidate_burden(reference.load("imagenet"), benchmark="imagenet")
    assert fit.row["n"] == 11 and 0.8 < fit.row["r2"] < 0.9
    assert fit.row["slope_ci_low"] < fit.row["slope"] < fit.row["slope_ci_high"]
    assert "66 rows imputed" in fit.row["note"]


def test_imputation_without_rows_with_both_asks_for_fixed_coefficients():
    with pytest.raises(ConfigError, match=r"coco imputation: 0 rows have both .* \(imputation\.coco="):
        consolidate_burden(reference.load("coco"), benchmark="coco")
