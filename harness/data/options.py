"""Read and validate the `data` config group once, so loaders see clean typed values."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class DataOptions:
    """The `data` config group after validation; defaults mirror the documented config keys."""

    name: str
    root: str | None = None
    fraction: float = 1.0
    n_train: int | None = None
    subsample_seed: int = 0
    download: bool = False
    normalize: bool = True
    test_fraction: float = 0.2
    num_samples: int = 4000
    generator_seed: int = 42
    # sparse_regression only: candidate features, relevant features, noise σ, feature correlation, task
    p: int = 32
    s: int = 4
    noise: float = 0.5
    correlation: float = 0.0
    task: str = "regression"


def _as_int(key: str, value: Any) -> int:
    # bool is an int subclass, and 2.5 -> 2 would silently change a run, so both are rejected.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"data.{key} must be an integer, got {value!r}; set it to a whole number")
    return value


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"data.{key} must be a number, got {value!r}; set it to a number")
    return float(value)


def _as_seed(key: str, value: Any) -> int:
    # numpy seeds must be non-negative, and np.random.seed (used by mnist1d) takes at most 32 bits.
    seed = _as_int(key, value)
    if not 0 <= seed < 2**32:
        raise ConfigError(f"data.{key} must be in [0, 2**32), got {seed}; use a non-negative seed")
    return seed


def _as_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"data.{key} must be true or false, got {value!r}; set it to true or false")
    return value


def parse_options(cfg: Mapping[str, Any], names: Sequence[str]) -> DataOptions:
    """Validate a DictConfig or plain dict holding the `data` group against the known dataset `names`."""
    name = cfg.get("name")
    if name not in names:
        raise ConfigError(f"data.name must be one of {', '.join(names)}, got {name!r}; pick one of those")

    fraction = _as_float("fraction", cfg.get("fraction", 1.0))
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(
            f"data.fraction must be in (0, 1], got {fraction}; use e.g. 0.1 for 10% of the training set"
        )
    test_fraction = _as_float("test_fraction", cfg.get("test_fraction", 0.2))
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction must be in (0, 1), got {test_fraction}; the default is 0.2")

    # The upper bound of n_train depends on the dataset, so load_dataset checks its range.
    n_train = cfg.get("n_train")
    if n_train is not None:
        n_train = _as_int("n_train", n_train)

    num_samples = _as_int("num_samples", cfg.get("num_samples", 4000))
    if num_samples < 20:
        raise ConfigError(f"data.num_samples must be at least 20, got {num_samples}; the default is 4000")

    root = cfg.get("root")
    if root is not None:
        root = os.path.expanduser(str(root))

    p = _as_int("p", cfg.get("p", 32))
    if p < 1:
        raise ConfigError(f"data.p (candidate features) must be at least 1, got {p}; the default is 32")
    s = _as_int("s", cfg.get("s", 4))
    if not 1 <= s <= p:
        raise ConfigError(
            f"data.s (relevant features) must be in [1, data.p={p}], got {s}; choose e.g. data.s={min(4, p)}"
        )
    noise = _as_float("noise", cfg.get("noise", 0.5))
    if noise < 0:
        raise ConfigError(f"data.noise is a standard deviation, got {noise}; set it to 0 or more")
    correlation = _as_float("correlation", cfg.get("correlation", 0.0))
    if not 0.0 <= correlation < 1.0:
        # Σ = (1 − ρ)I + ρ11ᵀ is a valid covariance with unit variances only for 0 <= ρ < 1 here.
        raise ConfigError(f"data.correlation must be in [0, 1), got {correlation}; the default is 0")
    task = cfg.get("task", "regression")
    if task not in ("regression", "classification"):
        raise ConfigError(f"data.task must be regression or classification, got {task!r}; pick one of those")

    return DataOptions(
        name=name,
        root=root,
        fraction=fraction,
        n_train=n_train,
        subsample_seed=_as_seed("subsample_seed", cfg.get("subsample_seed", 0)),
        download=_as_bool("download", cfg.get("download", False)),
        normalize=_as_bool("normalize", cfg.get("normalize", True)),
        test_fraction=test_fraction,
        num_samples=num_samples,
        generator_seed=_as_seed("generator_seed", cfg.get("generator_seed", 42)),
        p=p,
        s=s,
        noise=noise,
        correlation=correlation,
        task=task,
    )
