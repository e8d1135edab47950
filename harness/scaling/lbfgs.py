"""L-BFGS for many small independent problems at once, vectorised over a batch with numpy.

The parametric fit minimises one five-parameter objective from many starting points, and the bootstrap
minimises a thousand resampled versions of it; solving them one scipy call at a time costs seconds.
Here every row of `theta` is its own problem with its own history, step and stopping test; each
iteration evaluates the objective once for the rows still moving (plus backtracking steps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# objective(theta, rows): theta (k, p) holds the parameters of problems `rows` (k indices into the batch);
# it returns their values (k,) and gradients (k, p).
Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _direction(grad, steps, changes, rho, gamma) -> np.ndarray:
    """The two-loop recursion, row by row: -H·grad from each row's stored (step, change) pairs."""
    q = grad.copy()
    memory = steps.shape[1]
    alphas = np.zeros((grad.shape[0], memory))
    for i in range(memory - 1, -1, -1):
        alphas[:, i] = rho[:, i] * np.einsum("bp,bp->b", steps[:, i], q)
        q -= alphas[:, i, None] * changes[:, i]
    r = gamma[:, None] * q
    for i in range(memory):
        beta = rho[:, i] * np.einsum("bp,bp->b", changes[:, i], r)
        r += steps[:, i] * (alphas[:, i] - beta)[:, None]
    return -r


def minimize_batch(
    objective: Objective,
    theta: np.ndarray,
    *,
    memory: int = 8,
    max_iter: int = 500,
    gtol: float = 1e-8,
    ftol: float = 1e-12,
    max_halvings: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise each row of `theta` independently; returns the minimisers and their objective values."""
    theta = np.array(theta, dtype=float)
    batch, dim = theta.shape
    f, grad = objective(theta, np.arange(batch))
    steps = np.zeros((batch, memory, dim))
    changes = np.zeros((batch, memory, dim))
    rho = np.zeros((batch, memory))  # 0 marks an empty or rejected pair: it then has no effect
    gamma = np.ones(batch)
    active = np.isfinite(f)
    for _ in range(max_iter):
        if not active.any():
            break
        direction = _direction(grad, steps, changes, rho, gamma)
        slope = np.einsum("bp,bp->b", grad, direction)
        uphill = slope >= 0
        direction[uphill] = -grad[uphill] / np.maximum(1.0, np.linalg.norm(grad[uphill], axis=1))[:, None]
        slope = np.einsum("bp,bp->b", grad, direction)
        # Backtracking (Armijo) line search, each row with its own step length.
        step = np.ones(batch)
        pending = active.copy()
        new_theta, new_f, new_grad = theta.copy(), f.copy(), grad.copy()
        for _ in range(max_halvings):
            rows = np.flatnonzero(pending)
            trial = theta[rows] + step[rows, None] * direction[rows]
            trial_f, trial_grad = objective(trial, rows)
            ok = np.isfinite(trial_f) & (trial_f <= f[rows] + 1e-4 * step[rows] * slope[rows])
            accepted = rows[ok]
            new_theta[accepted], new_f[accepted], new_grad[accepted] = trial[ok], trial_f[ok], trial_grad[ok]
            pending[accepted] = False
            if not pending.any():
                break
            step[pending] *= 0.5
        stuck = pending  # no acceptable step: this row is as good as it gets
        moved = active & ~stuck
        s, y = new_theta - theta, new_grad - grad
        curvature = np.einsum("bp,bp->b", s, y)
        good = moved & (curvature > 1e-12 * np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1))
        steps[good] = np.roll(steps[good], -1, axis=1)
        changes[good] = np.roll(changes[good], -1, axis=1)
        rho[good] = np.roll(rho[good], -1, axis=1)
        steps[good, -1], changes[good, -1], rho[good, -1] = s[good], y[good], 1.0 / curvature[good]
        gamma[good] = curvature[good] / np.einsum("bp,bp->b", y[good], y[good])
        decrease = f - new_f
        theta, f, grad = new_theta, new_f, new_grad
        small_grad = np.abs(grad).max(axis=1) <= gtol
        flat = decrease <= ftol * np.maximum(np.abs(f), 1.0)
        active &= ~(stuck | small_grad | (moved & flat))
    return theta, f
