"""trainer.mode=closed_form: fit a linear model by a direct solver instead of gradient steps.

Least squares (trainer.solver=least_squares) solves the normal equations by Cholesky, or, with no more
samples than features, takes the minimum-norm interpolating solution; the Lasso (trainer.solver=lasso) is
scikit-learn's coordinate descent on a precomputed Gram matrix. Both run on the CPU in float32, the
precision whose peak prices the hardware burden. The learned coefficients are written into the model's
`linear` layer, so the model stays a plain torch module that is evaluated like any other.

Timing and energy follow the loop: the meter starts first, the solve is one train segment inside one
energy window, evaluation is timed apart. The training FLOPs are the solver's operation count
(harness.compute.analytic), recorded with its formula.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso  # imported here, not in the timed solve

from harness.compute.analytic import lasso_flops, least_squares_flops
from harness.data import Dataset
from harness.energy import EnergyMeter
from harness.errors import ConfigError
from harness.progress import LogProgress, Progress
from harness.training.clock import Stopwatch
from harness.training.loop import TrainResult, evaluate
from harness.training.objective import objective_for

log = logging.getLogger(__name__)

SOLVERS = ("least_squares", "lasso")
ALPHA_RULES = ("fixed", "universal")


def least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(coefficients, intercept) minimizing ||y − Xβ − b||², minimum-norm when n <= d.

    Raises numpy.linalg.LinAlgError when the system is numerically singular.
    """
    n, d = x.shape
    if n > d:
        x_mean, y_mean = x.mean(axis=0), y.mean()
        xc, yc = x - x_mean, y - y_mean
        factor = scipy.linalg.cho_factor(xc.T @ xc)
        beta = scipy.linalg.cho_solve(factor, xc.T @ yc)
        return beta, float(y_mean - x_mean @ beta)
    # Centred rows sum to zero, so their Gram matrix is singular: interpolate with the intercept as an
    # extra column of ones instead, at the minimum norm of (β, b).
    a = np.hstack([x, np.ones((n, 1), dtype=x.dtype)])
    factor = scipy.linalg.cho_factor(a @ a.T)
    solution = a.T @ scipy.linalg.cho_solve(factor, y)
    return solution[:d], float(solution[d])


def lasso_alpha(cfg: Any, n: int, d: int) -> float:
    """trainer.alpha as given (alpha_rule=fixed), or the universal rate alpha·√(2 ln d / n) (Bickel, Ritov &
    Tsybakov 2009), which with alpha = σ shrinks the penalty as data grows, as the theory requires."""
    alpha, rule = cfg.get("alpha"), cfg.get("alpha_rule", "universal")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ConfigError(f"trainer.alpha must be a positive number, got {alpha!r}; e.g. trainer.alpha=0.5")
    if rule not in ALPHA_RULES:
        raise ConfigError(f"trainer.alpha_rule must be one of {', '.join(ALPHA_RULES)}, got {rule!r}")
    return float(alpha) if rule == "fixed" else float(alpha) * math.sqrt(2.0 * math.log(max(d, 2)) / n)


def lasso(x: np.ndarray, y: np.ndarray, alpha: float, cfg: Any) -> tuple[np.ndarray, float, int]:
    """(coefficients, intercept, coordinate-descent sweeps) of scikit-learn's Lasso with a Gram matrix."""
    estimator = Lasso(
        alpha=alpha,
        precompute=True,
        max_iter=int(cfg.get("max_iter", 10000)),
        tol=float(cfg.get("tol", 1e-4)),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, y)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            log.warning("lasso did not converge in %d sweeps; raise trainer.max_iter", estimator.n_iter_)
    return estimator.coef_, float(estimator.intercept_), int(estimator.n_iter_)


def _check(model: torch.nn.Module, data: Dataset, cfg: Any, device: torch.device, dtype: torch.dtype):
    """The solver, the model's linear layer and its number of input features; ConfigError on misuse."""
    solver = cfg.get("solver")
    if solver not in SOLVERS:
        raise ConfigError(f"trainer.solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if data.task != "regression":
        raise ConfigError(
            f"trainer.mode=closed_form solves regression; {data.name} is a {data.task} task: "
            "use trainer.mode=eager (SGD) for it"
        )
    linear, features = getattr(model, "linear", None), getattr(model, "input_features", None)
    if not isinstance(linear, torch.nn.Linear) or not isinstance(features, int) or linear.out_features != 1:
        raise ConfigError(
            f"trainer.mode=closed_form fits linear models with one output (linear_expert, linear_flexible, "
            f"linear_lasso), not {type(model).__name__}; use trainer.mode=eager for it"
        )
    if device.type != "cpu" or dtype is not torch.float32:
        raise ConfigError(
            "trainer.mode=closed_form solves on the CPU in float32; "
            "set trainer.device=cpu trainer.precision=fp32"
        )
    return solver, linear, features


def fit_closed_form(
    model: torch.nn.Module,
    data: Dataset,
    cfg: Any,
    device: torch.device,
    dtype: torch.dtype,
    *,
    seed: int,
    progress: Progress | None = None,
    energy: EnergyMeter | None = None,
) -> TrainResult:
    """Solve for `model`'s coefficients on `data` as `cfg` (the trainer config group) says.

    One solve is one step over all n samples (samples_seen = n, one epoch). `seed` is unused: the
    solvers are deterministic (the Lasso's cyclic coordinate order included).
    """
    solver, linear, features = _check(model, data, cfg, device, dtype)
    objective = objective_for(data.task)
    x = data.x_train.flatten(1)[:, :features].numpy().astype(np.float32)
    y = data.y_train.numpy().astype(np.float32)
    n = len(x)

    watch = Stopwatch(device)
    result = TrainResult()  # steps and samples count only once the solve has returned
    energy = energy or EnergyMeter.off()
    energy.start()
    progress = progress or LogProgress(logging.DEBUG)
    progress.start(1)
    try:
        with watch.segment("train"), energy.window():
            if solver == "least_squares":
                coef, intercept = least_squares(x, y)
                result.flops_train, result.flops_train_method = least_squares_flops(n, features)
            else:
                alpha = lasso_alpha(cfg, n, features)
                coef, intercept, sweeps = lasso(x, y, alpha, cfg)
                result.flops_train, method = lasso_flops(n, features, sweeps)
                result.flops_train_method = f"{method}; alpha={alpha:.4g}"
            result.steps, result.samples_seen = 1, n
    except (np.linalg.LinAlgError, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (a SLURM time limit): keep a record
            result.status, result.error = "interrupted", f"interrupted during the solve ({exc or 'SIGINT'})"
        else:
            # A singular system is an outcome of this configuration (n close to d): recorded as divergence.
            result.status, result.error = "diverged", f"least-squares system is numerically singular ({exc})"
        log.warning(result.error)
        progress.close()
        result.train_time_s, result.train_cpu_s = watch.total("train"), watch.cpu_total("train")
        return result

    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(np.asarray(coef), dtype=linear.weight.dtype).reshape(1, -1))
        linear.bias.fill_(intercept)
    model.to(device)
    with watch.segment("eval"):
        residual = y - x @ coef - intercept
        train_loss = float(np.mean(residual.astype(np.float64) ** 2))
        test_error, test_loss = evaluate(
            model,
            data.x_test.to(device),
            data.y_test.to(device),
            int(cfg.eval_batch_size),
            device,
            dtype,
            objective,
        )
    row = {
        "step": 1,
        "epoch": 1.0,
        "samples_seen": n,
        "train_loss": train_loss,
        "test_loss": test_loss,
        "test_error": test_error,
        "train_time_s": watch.total("train"),
        "lr": None,
    }
    result.curve.append(row)
    progress.advance(1, train_loss)
    progress.evaluated(row)
    progress.close()
    result.train_time_s, result.eval_time_s = watch.total("train"), watch.total("eval")
    result.train_cpu_s = watch.cpu_total("train")
    return result
