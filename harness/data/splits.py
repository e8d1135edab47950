"""What a dataset loader returns (a built-in's or a user's `data._target_`), and how the harness reads it.

A loader returns its splits as a `Splits`, or as any mapping or object with the same names: `train` and
`test` (and optionally `val`), each either an `(x, y)` pair of tensors or numpy arrays, or a map-style
`torch.utils.data.Dataset` whose items are `(x, y)`; optionally `num_classes` (else inferred from integer
labels), `source` (where the data came from, for the record). Integer labels mean classification; float
targets mean regression (one output per target column).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError

SPLIT_NAMES = ("train", "test", "val")


@dataclass(frozen=True)
class Splits:
    """A loader's full (not yet subsampled or standardized) splits; see the module doc."""

    train: Any
    test: Any
    val: Any = None
    num_classes: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class InMemory:
    """One split as tensors: x float32 (or int64 for token ids), y int64 labels or float32 targets."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def read_splits(result: Any, label: str) -> Splits:
    """The loader's return value as a Splits, whatever shape of the documented ones it came in."""
    if isinstance(result, Splits):
        return result
    get = (
        result.get if isinstance(result, Mapping) else lambda key, default=None: getattr(result, key, default)
    )
    if get("train") is None or get("test") is None:
        raise ConfigError(
            f"{label} returned {type(result).__name__} without train and test splits; return "
            "harness.data.Splits(train=(x, y), test=(x, y)) or a dict with keys train and test"
        )
    return Splits(get("train"), get("test"), get("val"), get("num_classes"), get("source"))


def in_memory(split: Any, where: str) -> InMemory | torch.utils.data.Dataset:
    """An `(x, y)` pair as tensors of the dtypes InMemory documents; a map-style Dataset as it is."""
    if isinstance(split, torch.utils.data.Dataset) and not isinstance(split, tuple | list):
        if not hasattr(split, "__getitem__") or not hasattr(split, "__len__"):
            raise ConfigError(
                f"{where} is a Dataset without __getitem__ and __len__; return a map-style Dataset"
            )
        return split
    if not isinstance(split, tuple | list) or len(split) != 2:
        raise ConfigError(
            f"{where} must be an (x, y) pair of tensors or arrays, or a map-style torch Dataset; "
            f"got {type(split).__name__}"
        )
    x, y = (_tensor(part, f"{where} {name}") for part, name in zip(split, "xy", strict=True))
    if len(x) != len(y):
        raise ConfigError(f"{where}: x has {len(x)} samples but y has {len(y)}; give one target per sample")
    if len(y) == 0:
        raise ConfigError(f"{where} is empty; give it at least one sample")
    return InMemory(_inputs(x), _targets(y, where))


def _tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        return torch.from_numpy(np.ascontiguousarray(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where} is not an array or tensor ({exc}); give numpy arrays or tensors"
        ) from None


def _inputs(x: torch.Tensor) -> torch.Tensor:
    """Floating inputs in float32; integer inputs (token ids) in int64, left as they are."""
    if x.is_floating_point():
        return x.float()
    if x.dtype == torch.bool:
        return x.float()
    return x.long()


def _targets(y: torch.Tensor, where: str) -> torch.Tensor:
    """Integer labels as int64 (classification); float targets as float32 (regression)."""
    if y.is_floating_point():
        return y.float()
    if y.dtype == torch.bool or y.is_complex():
        raise ConfigError(f"{where} y has dtype {y.dtype}; give integer class labels or float targets")
    if y.ndim != 1:
        raise ConfigError(
            f"{where} y has shape {tuple(y.shape)}; integer class labels are one per sample (N,)"
        )
    if len(y) and int(y.min()) < 0:
        raise ConfigError(f"{where} y has negative labels; classes are numbered 0, 1, ..., num_classes - 1")
    return y.long()
