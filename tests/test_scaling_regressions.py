"""The paper's regressions: every spec on its own data, known exponents recovered, bad input refused."""

import math

import numpy as np
import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.scaling import analyse_reference, reference
from harness.scaling.extrapolate import inverse_interval
from harness.scaling.regressions import ERROR, INV_ERROR, LOG_ERROR, LOG_INV_ERROR, Plan, fit_plan, k_interval
from harness.settings import FitSettings

SETTINGS = FitSettings(imputation={"coco": (0.8944, 2.7356)})


@pytest.fixture(scope="module")
def paper():
    """Every benchmark analysed once (they are cheap; the module shares them)."""
    return {name: analyse_reference(name, SETTINGS) for name in reference.NAMES}


def _rows(analysis):
    return {(f.row["spec"], f.row["x"]): f.row for f in analysis.fits}


def test_every_specification_is_sane(paper):
    for analysis in paper.values():
        for fit in analysis.fits:
            row = fit.row
            if row["method"] == "fixed":
                continue
            assert row["n"] >= 3 and row["n"] + row["n_dropped"] == len(reference.load(analysis.name))
            assert 0.0 <= row["r2"] <= 1.0
            assert row["slope_ci_low"] <= row["slope"] <= row["slope_ci_high"]
            if row["y"] in ("log10(error)", "error"):
                assert row["slope"] < 0, "error falls with compute"
            else:
                assert row["slope"] > 0, "1/error rises with compute"
            if fit.plan is not None and fit.plan.response.log_form:
                assert row["k"] == pytest.approx(1 / abs(row["slope"]))
                assert row["k_ci_low"] <= row["k"] <= row["k_ci_high"] and row["k_theory_min"] == 4


def test_imagenet_reproduces_the_paper(paper):
    """The authors' notebook: slopes -0.0821 (N 110), -0.0836 (N 77), -0.0933 (N 36); k ≈ 11-12."""
    rows = _rows(paper["imagenet"])
    for x, slope, n in (
        ("ops_forward_pass", -0.0821, 110),
        ("network_operations", -0.0836, 77),
        ("hardware_burden", -0.0933, 36),
    ):
        row = rows[("poly", x)]
        assert row["slope"] == pytest.approx(slope, abs=5e-5) and row["n"] == n
    netops = rows[("poly", "network_operations")]
    assert (netops["slope_ci_low"], netops["slope_ci_high"]) == pytest.approx((-0.0956, -0.0716), abs=5e-4)
    assert 11 < netops["k"] < 12.5
    year = rows[("poly_year", "network_operations")]
    assert year["year_coef"] < 0 and year["year_coef_ci_high"] < 0, "later years are better at equal compute"
    assert year["r2"] > netops["r2"]
    assert rows[("quantile10", "network_operations")]["method"] == "quantreg q=0.1"
    assert rows[("poly", "hardware_burden_consolidated")]["n"] == 102


def test_coco_exponential_form_matches_the_authors(paper):
    """The authors' notebook: 1/(1 - AP) ~ log10(burden): 0.2701 [0.206, 0.334], N 20, R² 0.814."""
    row = _rows(paper["coco"])[("exp", "hardware_burden_consolidated")]
    assert row["slope"] == pytest.approx(0.2701, abs=2e-4) and row["n"] == 20
    assert (row["slope_ci_low"], row["slope_ci_high"]) == pytest.approx((0.206, 0.334), abs=1e-3)
    assert row["r2"] == pytest.approx(0.814, abs=1e-3)


def test_exponential_slope_is_the_same_on_alexnet_normalised_compute():
    table = reference.load("imagenet")
    alexnet = table.loc[table["name"] == "AlexNet", "network_operations"].iloc[0]
    plan = Plan("exp", ERROR, "network_operations")
    raw = fit_plan(table, plan, benchmark="imagenet").row
    normalised = fit_plan(
        table.assign(network_operations=table["network_operations"] / alexnet), plan, benchmark="i"
    )
    assert normalised.row["slope"] == pytest.approx(raw["slope"])
    assert normalised.row["intercept"] != pytest.approx(raw["intercept"])


def _synthetic(slope=-0.2, intercept=0.5, n=40, noise=0.03, seed=0):
    rng = np.random.default_rng(seed)
    x = 10.0 ** rng.uniform(8, 14, n)
    error = 10.0 ** (intercept + slope * np.log10(x) + rng.normal(0, noise, n))
    return pd.DataFrame({"compute": x, "error": error})


@pytest.mark.parametrize("response", [LOG_ERROR, LOG_INV_ERROR])
def test_a_known_exponent_is_recovered_inside_its_ci(response):
    row = fit_plan(_synthetic(), Plan("poly", response, "compute"), benchmark="synthetic").row
    truth = -0.2 if response is LOG_ERROR else 0.2
    assert row["slope_ci_low"] < truth < row["slope_ci_high"]
    assert row["k_ci_low"] < 5.0 < row["k_ci_high"]


def test_inverse_prediction_interval_brackets_the_line_crossing():
    fit = fit_plan(_synthetic(), Plan("poly", LOG_ERROR, "compute"), benchmark="synthetic")
    a, b = fit.model.params
    y = np.log10(0.01)
    ci = inverse_interval(fit.model, y, level=0.95, prediction=False)
    pi = inverse_interval(fit.model, y, level=0.95, prediction=True)
    assert pi[0] < ci[0] < (y - a) / b < ci[1] < pi[1]


def test_an_insignificant_slope_gives_an_unbounded_interval():
    rng = np.random.default_rng(1)
    flat = pd.DataFrame({"compute": 10.0 ** rng.uniform(8, 10, 12), "error": rng.uniform(0.2, 0.3, 12)})
    fit = fit_plan(flat, Plan("poly", LOG_ERROR, "compute"), benchmark="flat")
    assert fit.row["slope_ci_low"] < 0 < fit.row["slope_ci_high"] and math.isinf(fit.row["k_ci_high"])
    assert all(math.isnan(v) for v in inverse_interval(fit.model, -2.0, level=0.95, prediction=False))


def test_k_interval():
    assert k_interval(-0.1, -0.05) == pytest.approx((10.0, 20.0))
    assert k_interval(0.05, 0.1) == pytest.approx((10.0, 20.0))
    assert k_interval(-0.1, 0.02) == (pytest.approx(10.0), math.inf)


@pytest.mark.parametrize(
    ("frame", "plan", "message"),
    [
        (_synthetic(n=2), Plan("poly", LOG_ERROR, "compute"), "2 usable points, at least 3 needed"),
        (
            _synthetic().assign(compute=lambda f: f["compute"].where(f.index > 4)).head(7),
            Plan("poly", LOG_ERROR, "compute"),
            r"2 usable points, at least 3 needed \(5 rows lack",
        ),
        (
            _synthetic().assign(compute=lambda f: f["compute"].where(f.index > 0, -1.0)),
            Plan("poly", LOG_ERROR, "compute"),
            "1 rows have compute <= 0",
        ),
        (
            _synthetic().assign(error=lambda f: f["error"].where(f.index > 1, 1.0)),
            Plan("poly", LOG_ERROR, "compute"),
            r"2 rows have error <= 0 or >= 1, where log10\(error\)",
        ),
        (
            _synthetic().assign(error=lambda f: f["error"].where(f.index > 0, 0.0)),
            Plan("exp", INV_ERROR, "compute"),
            r"where 1/error needs 0 < error < 1",
        ),
        (_synthetic(), Plan("poly", LOG_ERROR, "flops"), "column flops does not exist"),
        (
            _synthetic().assign(compute=np.nan),
            Plan("poly", LOG_ERROR, "compute"),
            "column compute has no values",
        ),
    ],
)
def test_bad_input_is_one_line(frame, plan, message):
    with pytest.raises(ConfigError, match=message) as info:
        fit_plan(frame, plan, benchmark="synthetic")
    assert "\n" not in str(info.value) and "synthetic" in str(info.value)


def test_an_exponential_form_accepts_any_error_but_logs_do_not():
    frame = _synthetic().assign(error=lambda f: f["error"].where(f.index > 0, 1.2))
    assert fit_plan(frame, Plan("exp", ERROR, "compute"), benchmark="synthetic").row["n"] == 40


@pytest.mark.slow
def test_ci_coverage_is_near_nominal_over_many_datasets():
    """95% CIs of the slope, and of the compute needed for a target, cover the truth ~95% of the time."""
    rng = np.random.default_rng(2024)
    slope, intercept, trials, n = -0.25, 1.0, 1000, 25
    target = np.log10(0.02)
    true_u = (target - intercept) / slope
    plan = Plan("poly", LOG_ERROR, "compute")
    slope_hits = inverse_hits = 0
    for _ in range(trials):
        u = rng.uniform(6, 12, n)
        frame = pd.DataFrame(
            {"compute": 10.0**u, "error": 10.0 ** (intercept + slope * u + rng.normal(0, 0.1, n))}
        )
        fit = fit_plan(frame, plan, benchmark="simulated")
        slope_hits += fit.row["slope_ci_low"] <= slope <= fit.row["slope_ci_high"]
        low, high = inverse_interval(fit.model, target, level=0.95, prediction=False)
        inverse_hits += low <= true_u <= high
    # Binomial sd at 1000 trials is 0.7 points: allow three of them.
    assert 0.929 <= slope_hits / trials <= 0.971
    assert 0.929 <= inverse_hits / trials <= 0.971
