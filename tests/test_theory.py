"""The theory experiment: sparse_regression data, linear and NTK models, closed-form solvers and their FLOP
formulas, the +sweep=theory preset, and fitting error against n."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from harness.compute.analytic import lasso_flops, least_squares_flops
from harness.data import load_dataset
from harness.errors import ConfigError
from harness.models import build_model
from harness.scaling import analyse_runs
from harness.settings import DataSettings, FitSettings, TrainerSettings
from harness.train import run
from harness.training.closed_form import fit_closed_form, least_squares
from harness.training.spec import TrainingJob

CPU = torch.device("cpu")


def _data(**overrides):
    target = "harness.data.sparse_regression.sparse_regression"
    cfg = {
        "_target_": target,
        "name": "sparse_regression",
        "p": 16,
        "s": 2,
        "noise": 0.5,
        "num_samples": 5120,
    }
    cfg.update(overrides)
    return load_dataset(DataSettings.from_config(cfg))


def _solve(model_name: str, data, solver: str = "least_squares", **trainer):
    kwargs = {"features": 2} if model_name == "linear_expert" else {}
    model = build_model(model_name, data.input_shape, 1, **kwargs)
    trainer = {"alpha": 0.5, **trainer}
    settings = TrainerSettings(mode="closed_form", solver=solver, eval_batch_size=4096, **trainer)
    (result,) = fit_closed_form(TrainingJob([model], [0], data, settings, CPU, torch.float32))
    return model, result


# --- data ------------------------------------------------------------------------------------------------


def test_generator_is_deterministic_with_expected_shapes_and_nested_subsets():
    a, b = _data(generator_seed=3, n_train=256), _data(generator_seed=3, n_train=256)
    assert a.task == "regression" and a.num_classes == 1 and a.input_shape == (16,)
    assert a.x_train.shape == (256, 16) and a.y_train.shape == (256,) and a.y_train.dtype == torch.float32
    assert a.n_train_full == 4096 and a.x_test.shape == (1024, 16)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.x_test, _data(generator_seed=4, n_train=256).x_test)
    small = _data(generator_seed=3, n_train=64)
    rows = {row.numpy().tobytes() for row in a.x_train}
    assert all(row.numpy().tobytes() in rows for row in small.x_train)  # nested across n


def test_signal_has_unit_variance_test_targets_are_noise_free_and_correlation_holds():
    data = _data(noise=0.0, correlation=0.3, num_samples=20000)
    assert float(data.y_test.var()) == pytest.approx(1.0, abs=0.05)
    corr = np.corrcoef(data.x_train.numpy(), rowvar=False)
    assert corr[~np.eye(16, dtype=bool)].mean() == pytest.approx(0.3, abs=0.02)
    # Noise-free targets are linear in the first s features only: least squares on them is exact.
    noisy = _data(noise=1.0, correlation=0.3, num_samples=20000)
    coef, _ = least_squares(noisy.x_test.numpy().astype(np.float64), noisy.y_test.numpy().astype(np.float64))
    assert np.abs(coef[2:]).max() < 1e-4 and np.abs(coef[:2]).min() > 0.01


def test_classification_variant_has_two_balanced_ish_classes():
    data = _data(task="classification", n_train=512)
    assert data.task == "classification" and data.num_classes == 2 and data.y_train.dtype == torch.int64
    assert set(data.y_test.unique().tolist()) == {0, 1}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"s": 17}, "data.s (relevant features) must be in [1, data.p=16]"),
        ({"p": 0}, "data.p (candidate features) must be at least 1"),
        ({"noise": -1.0}, "data.noise is a standard deviation"),
        ({"correlation": 1.0}, "data.correlation must be in [0, 1)"),
        ({"task": "ranking"}, "data.task must be one of regression, classification"),
    ],
)
def test_bad_generator_options_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        _data(**overrides)
    assert "\n" not in str(error.value)


# --- solvers and their FLOPs -----------------------------------------------------------------------------


def test_least_squares_flops_formulas():
    n, d = 100, 8
    flops, formula = least_squares_flops(n, d)
    assert flops == (2 * n * d + 2 * n) + 2 * n * d * d + 2 * n * d + d**3 / 3 + 2 * d * d + 2 * d
    assert "Cholesky" in formula and "n=100" in formula
    flops, formula = least_squares_flops(4, 8)  # underdetermined: minimum norm on A = [X 1], no centring
    assert flops == 2 * 16 * 9 + 64 / 3 + 2 * 16 + 2 * 4 * 9
    assert "AAᵀ" in formula
    flops, _ = lasso_flops(100, 8, sweeps=5)
    assert flops == (2 * 100 * 8 + 2 * 100) + 2 * 100 * 64 + 2 * 100 * 8 + 5 * (2 * 64 + 16 * 8)


def test_minimum_norm_least_squares_interpolates_when_n_is_at_most_d():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 8)), rng.standard_normal(5)
    coef, intercept = least_squares(x, y)
    assert np.allclose(x @ coef + intercept, y)
    reference = np.linalg.lstsq(np.hstack([x, np.ones((5, 1))]), y, rcond=None)[0]
    assert np.allclose(np.append(coef, intercept), reference)


def test_closed_form_writes_coefficients_into_the_model_and_records_flops():
    data = _data(n_train=512)
    model, result = _solve("linear_flexible", data)
    assert result.status == "completed" and result.steps == 1 and result.samples_seen == 512
    assert result.flops_train == least_squares_flops(512, 16)[0]
    with torch.no_grad():
        rmse = float((model(data.x_test).squeeze(1) - data.y_test).square().mean().sqrt())
    assert rmse == pytest.approx(result.last("test_error"), rel=1e-5)


def test_an_interrupt_during_the_solve_is_recorded_not_lost(monkeypatch):
    import harness.training.closed_form as closed_form

    def interrupted(x, y):
        raise KeyboardInterrupt("signal 15")  # what interrupt_on_signals raises on SLURM's time limit

    monkeypatch.setattr(closed_form, "least_squares", interrupted)
    _, result = _solve("linear_flexible", _data(n_train=256))
    assert result.status == "interrupted" and "signal 15" in result.error
    assert result.steps == 0 and result.samples_seen == 0, "the solve never returned"


def test_lasso_recovers_the_relevant_features_on_an_easy_case():
    data = _data(n_train=2048, noise=0.1, generator_seed=1)
    model, result = _solve("linear_lasso", data, solver="lasso", alpha=0.1)
    weights = model.linear.weight.detach().numpy().ravel()
    assert set(np.flatnonzero(weights)) == {0, 1}
    assert result.flops_train_method.startswith("lasso") and result.flops_train > 2 * 2048 * 16 * 16


def test_expert_error_falls_as_one_over_root_n():
    sizes = [64, 128, 256, 512, 1024, 2048, 4096]
    errors = [
        np.mean(
            [
                _solve("linear_expert", _data(n_train=n, generator_seed=s))[1].last("test_error")
                for s in range(4)
            ]
        )
        for n in sizes
    ]
    slope = np.polyfit(np.log10(sizes), np.log10(errors), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.08)


@pytest.mark.parametrize(
    ("model_name", "overrides", "message"),
    [
        ("mlp", {}, "fits linear models with one output"),
        ("linear_flexible", {"task": "classification"}, "solves regression"),
    ],
)
def test_closed_form_misuse_is_a_one_line_error(model_name, overrides, message):
    data = _data(n_train=128, **overrides)
    kwargs = {"width": 8, "depth": 1} if model_name == "mlp" else {}
    model = build_model(model_name, data.input_shape, data.num_classes, **kwargs)
    settings = TrainerSettings(mode="closed_form", solver="least_squares", eval_batch_size=64)
    with pytest.raises(ConfigError, match=message) as error:
        fit_closed_form(TrainingJob([model], [0], data, settings, CPU, torch.float32))
    assert "\n" not in str(error.value)


def test_ntk_mlp_keeps_activations_of_order_one_at_any_width():
    x = torch.randn(256, 16)
    outputs = [build_model("mlp_ntk", (16,), 1, width=w, depth=1)(x).std().item() for w in (64, 4096)]
    assert all(0.2 < value < 2.0 for value in outputs)


# --- the preset, end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arm", "model", "mode"),
    [
        ("expert", "linear_expert", "closed_form"),
        ("flexible", "linear_flexible", "closed_form"),
        ("lasso", "linear_lasso", "closed_form"),
        ("deep", "mlp_ntk", "eager"),
    ],
)
def test_each_arm_runs_and_records_its_training_flops(compose_train, tmp_path, arm, model, mode):
    cfg = compose_train("+sweep=theory", f"+theory={arm}", "data.n_train=64", "trainer.epochs=1")
    record = run(cfg, tmp_path / arm)
    assert record.status == "completed" and record.model == model and record.trainer_mode == mode
    assert record.task == "regression" and record.error_metric == "rmse" and record.test_error > 0
    assert record.network_operations > 0 and record.flops_train_method
    if arm in ("expert", "flexible"):  # the solver's exact count, not the paper's forward × 3 estimate
        flops, formula = least_squares_flops(64, 2 if arm == "expert" else 16)
        assert record.network_operations == flops and record.flops_train_method == formula
    if arm == "lasso":
        assert record.flops_train_method.startswith("lasso")
    if arm == "deep":
        assert record.model_width == 64 and record.params == (16 + 2) * 64 + 1


def test_theory_sweep_preset_has_eight_sizes_four_arms_three_seeds(compose_train):
    cfg = compose_train("+sweep=theory")
    params = cfg.hydra.sweeper.params if "hydra" in cfg else None
    if params is None:  # compose() drops the hydra node: read the preset file itself
        from importlib.resources import files

        params = OmegaConf.load(files("harness.conf") / "sweep" / "theory.yaml").hydra.sweeper.params
    sizes = [int(v) for v in str(params["data.n_train"]).split(",")]
    assert len(sizes) >= 8 and all(b == 2 * a for a, b in zip(sizes, sizes[1:], strict=False))
    assert str(params["+theory"]).split(",") == ["expert", "flexible", "lasso", "deep"]
    assert len(str(params["seed"]).split(",")) >= 3


def test_fit_accepts_n_train_as_x_and_recovers_the_data_exponent():
    n = np.array([64, 128, 256, 512, 1024] * 2)
    runs = pd.DataFrame(
        {
            "model": "linear_expert",
            "data": "sparse_regression",
            "n_train": n,
            "seed": [0] * 5 + [1] * 5,
            "status": "completed",
            "test_error": 2.0 / np.sqrt(n) * np.where(np.arange(10) < 5, 1.01, 0.99),
        }
    )
    keys = ("model", "data", "n_train")
    settings = FitSettings(x="n_train", specs=("poly",), parametric=False, group_by=keys)
    (analysis,) = analyse_runs(runs, settings)
    assert analysis.fits[0].row["slope"] == pytest.approx(-0.5, abs=1e-6)
    assert analysis.fits[0].row["k"] == pytest.approx(2.0, abs=1e-5)
    assert math.isfinite(analysis.fits[0].row["slope_ci_low"])
