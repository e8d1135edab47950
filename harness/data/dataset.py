"""The Dataset record and load_dataset: load a source, standardize it, take the training subset."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.data.sources import SOURCES
from harness.data.subsample import nested_subset, stratified_subset
from harness.errors import ConfigError
from harness.settings import DataSettings


@dataclass(frozen=True)
class Dataset:
    """In-memory splits on the CPU; the trainer moves them to its device. Tensors are left out of repr."""

    name: str
    x_train: torch.Tensor = field(repr=False)  # float32, (N, *input_shape)
    y_train: torch.Tensor = field(repr=False)  # int64 (N,); float32 (N,) for regression
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    input_shape: tuple[int, ...]  # per sample
    num_classes: int
    n_train_full: int  # training set size before subsampling
    source: str  # where the data came from: a directory, or the call that generated it
    # classification: y int64 class labels, num_classes outputs; regression: y float32 targets, one output
    task: str = "classification"
    # The validation split (data.val_fraction), held out of the training pool before subsampling; None
    # when there is none. Evaluated beside the test set; tuning selects on it, never on the test set.
    x_val: torch.Tensor | None = field(default=None, repr=False)
    y_val: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_val(self) -> int:
        return 0 if self.y_val is None else len(self.y_val)


def _train_size(opts: DataSettings, n_full: int, num_classes: int) -> int:
    """data.n_train if set, else fraction * n_full rounded half up, raised to one sample per class."""
    if opts.n_train is None:
        return min(n_full, max(num_classes, int(opts.fraction * n_full + 0.5)))
    if not num_classes <= opts.n_train <= n_full:
        raise ConfigError(
            f"data.n_train must be in [{num_classes}, {n_full}] for {opts.name}, got {opts.n_train}; "
            "set it in that range or to null to use data.fraction"
        )
    return opts.n_train


def _standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> None:
    """In place, with one mean/std per channel (dim 1) taken from the full training set."""
    dims = [d for d in range(x_train.ndim) if d != 1]
    std, mean = torch.std_mean(x_train, dim=dims, correction=0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is centred, not divided by 0
    for x in (x_train, x_test):
        x.sub_(mean).div_(std)


def load_dataset(opts: DataSettings) -> Dataset:
    """Build the dataset the `data` settings describe."""
    if opts.name not in SOURCES:
        names = ", ".join(SOURCES)
        raise ConfigError(f"data.name must be one of {names}, got {opts.name!r}; pick one of those")
    raw = SOURCES[opts.name](opts)
    x_train, y_train = torch.from_numpy(raw.x_train), torch.from_numpy(raw.y_train)
    x_test, y_test = torch.from_numpy(raw.x_test), torch.from_numpy(raw.y_test)
    if opts.normalize:
        # Statistics come from the full training set, so every subsample size sees the same preprocessing.
        _standardize(x_train, x_test)

    n_full = len(y_train)
    n = _train_size(opts, n_full, raw.num_classes)
    if n < n_full:
        # Class-balanced subsets need classes; regression targets get a plain seeded (still nested) subset.
        if raw.task == "regression":
            keep = nested_subset(n_full, n, opts.subsample_seed)
        else:
            keep = stratified_subset(raw.y_train, n, opts.subsample_seed)
        keep = torch.from_numpy(keep)
        x_train, y_train = x_train[keep], y_train[keep]

    return Dataset(
        name=opts.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(x_train.shape[1:]),
        num_classes=raw.num_classes,
        n_train_full=n_full,
        source=raw.source,
        task=raw.task,
    )
