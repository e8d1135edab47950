"""trainer.mode=closed_form: fit a linear model by a direct solver instead of gradient steps.

Least squares (trainer.solver=least_squares) solves the normal equations by Cholesky, or, with no more
samples than features, takes the minimum-norm interpolating solution; the Lasso (trainer.solver=lasso) is
scikit-learn's coordinate descent on a precomputed Gram matrix. Both run on the CPU in float32, the
precision whose peak prices the hardware burden. The learned coefficients are written into the model's
`linear` layer, so the model stays a plain torch module that is evaluated like any other.

The solve runs through the loop's own machinery (`run_steps`): it is one step over all n samples, one
train segment inside one energy window, followed by one evaluation timed apart, with the same progress and
curve rows as gradient training. The training FLOPs are the solver's operation count
(harness.compute.analytic), recorded with its formula.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings

import numpy as np
import scipy.linalg
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso  # imported here, not in the timed solve

from harness.compute.analytic import lasso_flops, least_squares_flops
from harness.errors import ConfigError
from harness.settings import TrainerSettings
from harness.training.loop import Diverged, ModuleCore, Plan, run_steps
from harness.training.spec import TrainingJob, TrainResult

log = logging.getLogger(__name__)


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


def lasso_alpha(settings: TrainerSettings, n: int, d: int) -> float:
    """trainer.alpha as given (alpha_rule=fixed), or the universal rate alpha·√(2 ln d / n) (Bickel, Ritov &
    Tsybakov 2009), which with alpha = σ shrinks the penalty as data grows, as the theory requires."""
    alpha = settings.alpha
    if settings.alpha_rule == "fixed":
        return alpha
    return alpha * math.sqrt(2.0 * math.log(max(d, 2)) / n)


def lasso(
    x: np.ndarray, y: np.ndarray, alpha: float, settings: TrainerSettings
) -> tuple[np.ndarray, float, int]:
    """(coefficients, intercept, coordinate-descent sweeps) of scikit-learn's Lasso with a Gram matrix."""
    estimator = Lasso(alpha=alpha, precompute=True, max_iter=settings.max_iter, tol=settings.tol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, y)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            log.warning("lasso did not converge in %d sweeps; raise trainer.max_iter", estimator.n_iter_)
    return estimator.coef_, float(estimator.intercept_), int(estimator.n_iter_)


def check_closed_form(job: TrainingJob) -> tuple[torch.nn.Module, torch.nn.Linear, int]:
    """The model, its linear layer and its number of input features; ConfigError on misuse."""
    model, _ = job.only_model()
    if job.data.task != "regression":
        raise ConfigError(
            f"trainer.mode=closed_form solves regression; {job.data.name} is a {job.data.task} task: "
            "use trainer.mode=eager (SGD) for it"
        )
    linear, features = getattr(model, "linear", None), getattr(model, "input_features", None)
    if not isinstance(linear, torch.nn.Linear) or not isinstance(features, int) or linear.out_features != 1:
        raise ConfigError(
            f"trainer.mode=closed_form fits linear models with one output (linear_expert, linear_flexible, "
            f"linear_lasso), not {type(model).__name__}; use trainer.mode=eager for it"
        )
    if job.device.type != "cpu" or job.dtype is not torch.float32:
        raise ConfigError(
            "trainer.mode=closed_form solves on the CPU in float32; "
            "set trainer.device=cpu trainer.precision=fp32"
        )
    return model, linear, features


class SolverStepper:
    """The Stepper of loop.py for a direct solve: its one step solves for the coefficients of the core's
    model on all samples and writes them into its linear layer."""

    def __init__(self, core: ModuleCore, linear: torch.nn.Linear, features: int, settings: TrainerSettings):
        self.core, self.linear, self.settings = core, linear, settings
        self.x = core.x.flatten(1)[:, :features].numpy().astype(np.float32)
        self.y = core.y.numpy().astype(np.float32)
        self.coef, self.intercept = None, 0.0
        self.flops_train: float | None = None
        self.flops_train_method: str | None = None

    def warmup(self, steps: int) -> None:
        """Nothing to warm up: a solver has no compilation or lazy state."""

    def step(self, idx: torch.Tensor) -> None:
        n, features = self.x.shape
        try:
            if self.settings.solver == "least_squares":
                self.coef, self.intercept = least_squares(self.x, self.y)
                self.flops_train, self.flops_train_method = least_squares_flops(n, features)
            else:
                alpha = lasso_alpha(self.settings, n, features)
                self.coef, self.intercept, sweeps = lasso(self.x, self.y, alpha, self.settings)
                self.flops_train, method = lasso_flops(n, features, sweeps)
                self.flops_train_method = f"{method}; alpha={alpha:.4g}"
        except np.linalg.LinAlgError as exc:
            # A singular system is an outcome of this configuration (n close to d): recorded as divergence.
            raise Diverged(f"least-squares system is numerically singular ({exc})") from exc
        with torch.no_grad():
            weight = torch.as_tensor(np.asarray(self.coef), dtype=self.linear.weight.dtype)
            self.linear.weight.copy_(weight.reshape(1, -1))
            self.linear.bias.fill_(self.intercept)

    @property
    def loss_sum(self) -> torch.Tensor:
        """The training MSE of the solution, in float64, computed when the loop reads it: after the timed
        solve, outside the train clock. A fresh tensor each read, so the loop's zero_() after its one
        evaluation has nothing to reset."""
        if self.coef is None:
            return torch.zeros(1, dtype=torch.float64)
        residual = self.y - self.x @ self.coef - self.intercept
        return torch.tensor([float(np.mean(residual.astype(np.float64) ** 2))], dtype=torch.float64)

    def lr(self) -> None:
        return None


def fit_closed_form(job: TrainingJob) -> list[TrainResult]:
    """Solve for the job's model's coefficients as its settings say (trainer.solver).

    One solve is one step over all n samples (samples_seen = n, one epoch). The seed is unused: the solvers
    are deterministic (the Lasso's cyclic coordinate order included).
    """
    model, linear, features = check_closed_form(job)
    n = job.data.n_train
    one_batch = dataclasses.replace(job.settings, batch_size=n, epochs=1.0, max_steps=None)
    plan = Plan.make(job.data, one_batch, job.device, drop_last=False)  # one step, then one evaluation
    core = ModuleCore(model, model, plan.x_train, plan.y_train, plan.objective, job.device, job.dtype)
    stepper = SolverStepper(core, linear, features, job.settings)
    results = run_steps(stepper, iter([torch.arange(n)]), plan, job)
    for result in results:
        result.flops_train, result.flops_train_method = stepper.flops_train, stepper.flops_train_method
    return results
