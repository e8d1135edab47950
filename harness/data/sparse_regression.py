"""The theory experiment's data: a sparse linear model among many candidate features, generated in memory.

Thompson et al. illustrate the statistics of deep learning with a simulation in which the outcome depends
on a few relevant features among many candidates. This generator draws one such problem per seed:

* features x ~ N(0, Σ) in p dimensions, Σ = (1 − ρ)·I + ρ·11ᵀ (every pair correlated ρ = data.correlation;
  unit variances, so the features need no standardization);
* the relevant features are the FIRST s (data.s) — with equicorrelated features position carries no
  meaning, and a model that knows the truth (linear_expert) uses exactly those; their coefficients are
  Gaussian, rescaled so that the signal x·β has variance 1;
* regression: y = x·β + σ·ε on the training pool (σ = data.noise, ε ~ N(0, 1)); the test targets are the
  noise-free x·β, so test RMSE is the error against the optimal predictor, in units of the signal's
  standard deviation (predicting 0 scores 1), and it keeps falling with n instead of stopping at σ;
* classification (data.task=classification): training labels 1[x·β + σ·ε > 0], test labels the optimal
  (Bayes) decision 1[x·β > 0], two classes.

One seeded generator (data.generator_seed) draws β, then the training pool, then the test set, so a seed
fixes the whole problem; data.n_train takes nested subsets of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.sources import check_generated, check_test_fraction
from harness.data.splits import Splits
from harness.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One simulated problem's settings (the `data` keys of conf/data/sparse_regression.yaml), checked."""

    p: int = 32  # candidate features
    s: int = 4  # relevant features (the first s)
    noise: float = 0.5  # σ of the training labels' noise
    correlation: float = 0.0  # ρ between every pair of features
    task: str = "regression"  # regression | classification
    num_samples: int = 10240
    test_fraction: float = 0.2
    generator_seed: int = 42

    def __post_init__(self) -> None:
        check_generated(self.num_samples, self.generator_seed)
        check_test_fraction(self.test_fraction)
        if self.p < 1:
            raise ConfigError(
                f"data.p (candidate features) must be at least 1, got {self.p}; the default is 32"
            )
        if not 1 <= self.s <= self.p:
            raise ConfigError(
                f"data.s (relevant features) must be in [1, data.p={self.p}], got {self.s}; "
                f"choose e.g. data.s={min(4, self.p)}"
            )
        if self.noise < 0:
            raise ConfigError(f"data.noise is a standard deviation, got {self.noise}; set it to 0 or more")
        # Σ = (1 − ρ)I + ρ11ᵀ is a valid covariance with unit variances only for 0 <= ρ < 1 here.
        if not 0.0 <= self.correlation < 1.0:
            raise ConfigError(f"data.correlation must be in [0, 1), got {self.correlation}; the default is 0")
        if self.task not in ("regression", "classification"):
            raise ConfigError(
                f"data.task must be one of regression, classification, got {self.task!r}; pick one of those"
            )


def sparse_regression(
    p: int = 32,
    s: int = 4,
    noise: float = 0.5,
    correlation: float = 0.0,
    task: str = "regression",
    num_samples: int = 10240,
    test_fraction: float = 0.2,
    generator_seed: int = 42,
) -> Splits:
    """The loader (data._target_ of conf/data/sparse_regression.yaml): the problem these settings describe."""
    return generate(Problem(p, s, noise, correlation, task, num_samples, test_fraction, generator_seed))


def coefficients(rng: np.random.Generator, p: int, s: int, correlation: float) -> np.ndarray:
    """β with s nonzero leading entries, scaled so that Var(x·β) = βᵀΣβ = 1."""
    beta = np.zeros(p)
    beta[:s] = rng.standard_normal(s)
    # βᵀΣβ for Σ = (1 − ρ)I + ρ11ᵀ, without forming Σ.
    variance = (1.0 - correlation) * beta @ beta + correlation * beta.sum() ** 2
    return beta / np.sqrt(variance)


def features(rng: np.random.Generator, n: int, p: int, correlation: float) -> np.ndarray:
    """n rows of N(0, Σ): independent parts plus one shared factor carrying the correlation ρ."""
    independent = rng.standard_normal((n, p))
    shared = rng.standard_normal((n, 1))
    return np.sqrt(1.0 - correlation) * independent + np.sqrt(correlation) * shared


def generate(opts: Problem) -> Splits:
    """Generate the training pool and the test set described by `opts` (see the module doc)."""
    rng = np.random.default_rng(opts.generator_seed)
    n_test = max(1, round(opts.test_fraction * opts.num_samples))
    n_pool = opts.num_samples - n_test
    beta = coefficients(rng, opts.p, opts.s, opts.correlation)
    x_train = features(rng, n_pool, opts.p, opts.correlation)
    noise = opts.noise * rng.standard_normal(n_pool)
    x_test = features(rng, n_test, opts.p, opts.correlation)
    signal_train, signal_test = x_train @ beta, x_test @ beta
    source = (
        f"harness.data.sparse_regression(p={opts.p}, s={opts.s}, noise={opts.noise:g}, "
        f"correlation={opts.correlation:g}, task={opts.task}, num_samples={opts.num_samples}, "
        f"seed={opts.generator_seed})"
    )
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if opts.task == "classification":
        y_train = (signal_train + noise > 0).astype(np.int64)
        y_test = (signal_test > 0).astype(np.int64)
        return Splits((x_train, y_train), (x_test, y_test), num_classes=2, source=source)
    y_train = (signal_train + noise).astype(np.float32)
    test = (x_test, signal_test.astype(np.float32))
    return Splits((x_train, y_train), test, source=source)
