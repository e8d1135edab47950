"""L(N, D) = E + A/N^α + B/D^β: known parameters recovered, bootstrap CIs, batched L-BFGS, holdout."""

import time

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from harness.scaling import parametric
from harness.scaling.holdout import (
    GRID_SCALE,
    HOLDOUT_COLUMNS,
    holdout_line_grid,
    holdout_parametric,
    holdout_parametric_grid,
    largest,
    largest_width_and_data,
)
from harness.scaling.lbfgs import minimize_batch
from harness.scaling.regressions import LOG_ERROR, Plan

TRUTH = {"E": 0.05, "A": 40.0, "alpha": 0.45, "B": 25.0, "beta": 0.55}


def _grid_runs(noise=0.02, seed=0) -> pd.DataFrame:
    """A 6 × 6 grid of model and data sizes, error from the law times log-normal noise."""
    rng = np.random.default_rng(seed)
    grid_params, grid_train = np.meshgrid(np.geomspace(1e3, 1e7, 6), np.geomspace(1e2, 1e6, 6))
    n_params, n_train = grid_params.ravel(), grid_train.ravel()
    law = TRUTH["E"] + TRUTH["A"] / n_params ** TRUTH["alpha"] + TRUTH["B"] / n_train ** TRUTH["beta"]
    return pd.DataFrame(
        {"params": n_params, "n_train": n_train, "error": law * np.exp(rng.normal(0, noise, law.size))}
    )


def test_exact_data_recovers_the_law():
    runs = _grid_runs(noise=0.0)
    fit = parametric.fit_parametric(runs["params"], runs["n_train"], runs["error"])
    assert fit.values == pytest.approx(TRUTH, rel=1e-3)
    assert fit.predict([1e9], [1e9]) == pytest.approx(
        TRUTH["E"] + TRUTH["A"] / 1e9 ** TRUTH["alpha"] + TRUTH["B"] / 1e9 ** TRUTH["beta"], rel=1e-3
    )


def test_bootstrap_cis_contain_the_truth_with_a_thousand_resamples():
    runs = _grid_runs()
    best = parametric.fit_parametric(runs["params"], runs["n_train"], runs["error"])
    start = time.perf_counter()
    table = parametric.bootstrap(runs, best, resamples=1000, seed=0)
    assert time.perf_counter() - start < 10.0, "the bootstrap is vectorised: a thousand refits take a second"
    assert list(table["parameter"]) == list(parametric.PARAMETERS) and (table["resamples"] == 1000).all()
    for row in table.to_dict("records"):
        assert row["ci_low"] < TRUTH[row["parameter"]] < row["ci_high"], row
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    alpha, beta = (table.set_index("parameter").loc[p] for p in ("alpha", "beta"))
    assert alpha["ci_high"] - alpha["ci_low"] < 0.1 and beta["ci_high"] - beta["ci_low"] < 0.1


def test_the_batched_solver_agrees_with_scipy():
    """Each row of the batch is its own problem: same minima as one scipy L-BFGS-B call per problem."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 3))
    scales = np.array([1.0, 10.0, 100.0])  # ill-conditioned on purpose

    def objective(theta, rows):
        diff = theta - centres[rows]
        return 0.5 * (scales * diff**2).sum(axis=1) + np.log1p((diff**2).sum(axis=1)), (
            scales * diff + 2 * diff / (1 + (diff**2).sum(axis=1, keepdims=True))
        )

    theta, values = minimize_batch(objective, np.zeros((5, 3)))
    for row in range(5):
        single = minimize(
            lambda t, r=row: tuple(v[0] for v in objective(t[None], np.array([r]))), np.zeros(3), jac=True
        )
        assert values[row] == pytest.approx(single.fun, abs=1e-10)
        assert theta[row] == pytest.approx(centres[row], abs=1e-5)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_grid_runs().assign(n_train=1000.0), "n_train takes one value only"),
        (_grid_runs().drop(columns="params"), "no params values"),
        (_grid_runs().iloc[::7].head(5), "5 points for its 5 parameters, at least 6 needed"),
        (_grid_runs().assign(error=lambda f: f["error"].where(f.index > 0, 0.0)), "1 points have error <= 0"),
    ],
)
def test_why_not_parametric(frame, reason):
    assert reason in parametric.why_not_parametric(frame)


def test_too_few_points_per_parameter_are_not_fitted_and_the_notes_say_why():
    runs = _grid_runs().iloc[::2].head(parametric.RELIABLE_POINTS - 1)
    reason = parametric.why_not_parametric(runs, min_points=parametric.RELIABLE_POINTS)
    assert "14 points for its 5 parameters, at least 15 needed (about 3 per parameter" in reason
    assert parametric.why_not_parametric(_grid_runs(), min_points=parametric.RELIABLE_POINTS) is None


def test_out_of_sample_check_on_exact_data_is_near_zero():
    runs = _grid_runs(noise=0.0)
    rows = holdout_parametric(runs, benchmark="grid", fraction=0.1, delta=0.1)
    scales = (runs["params"] * runs["n_train"]).sort_values()
    assert 1 <= len(rows) < 36 and min(r["scale_value"] for r in rows) >= scales.iloc[-len(rows)] * (1 - 1e-9)
    assert all(r["relative_error"] < 0.01 and r["n_fit"] == 36 - len(rows) for r in rows)


def test_largest_holds_out_at_least_one_scale():
    scale = pd.Series([1.0, 2.0, 2.0, 3.0])
    assert list(largest(scale, 0.1)) == [False, False, False, True]
    assert list(largest(scale, 0.5)) == [False, True, True, True]


def _two_model_grid(noise=0.0) -> pd.DataFrame:
    """Two models on one 6 × 6 grid: the second 1.5 times the first's error, so each needs its own law."""
    runs = _grid_runs(noise=noise)
    return pd.concat(
        [runs.assign(model="mlp"), runs.assign(model="cnn", error=runs["error"] * 1.5)], ignore_index=True
    )


def test_largest_width_and_data_is_per_model():
    runs = _two_model_grid().assign(params=lambda f: f["params"] * np.where(f["model"] == "cnn", 0.1, 1.0))
    held, corner = largest_width_and_data(runs)
    for _, group in runs.groupby("model"):
        top = (group["params"] == group["params"].max()) | (group["n_train"] == group["n_train"].max())
        assert list(held[group.index]) == list(top)
        assert corner[group.index].sum() == 1
    assert held.sum() == 2 * 11  # one row and one column of each 6 × 6 grid


def test_grid_holdout_of_the_law_predicts_the_largest_width_and_data():
    runs = _grid_runs(noise=0.0).assign(model="mlp")
    rows = holdout_parametric_grid(runs, benchmark="grid", delta=0.1, label="parametric (mlp)")
    assert len(rows) == 11 and all(r["n_fit"] == 25 and r["scale"] == GRID_SCALE for r in rows)
    assert all(r["relative_error"] < 0.01 for r in rows)
    (corner,) = [r for r in rows if r["corner"]]
    assert corner["params"] == runs["params"].max() and corner["n_train"] == runs["n_train"].max()
    assert corner["architecture"] == "mlp" and set(rows[0]) == set(HOLDOUT_COLUMNS) - {"points"}


def test_grid_holdout_of_a_line_on_compute():
    runs = _two_model_grid().assign(network_operations=lambda f: 6 * f["params"] * f["n_train"])
    runs["error"] = 10 ** (0.5 - 0.1 * np.log10(runs["network_operations"]))
    rows = holdout_line_grid(runs, Plan("poly", LOG_ERROR, "network_operations"), benchmark="grid")
    assert len(rows) == 22 and {r["architecture"] for r in rows} == {"mlp", "cnn"}
    assert max(r["relative_error"] for r in rows) < 1e-9 and sum(r["corner"] for r in rows) == 2
    assert (
        holdout_line_grid(
            runs.drop(columns="params"), Plan("poly", LOG_ERROR, "network_operations"), benchmark="grid"
        )
        == []
    )
