"""load_dataset: call the `data._target_` loader, read its splits, standardize, take the training subset.

Every dataset, built-in or a user's, comes through here the same way. What comes out is one of two
records sharing the same descriptive fields (name, sizes, input shape, classes, task, source):
- `Dataset`: in-memory tensors on the CPU, which every trainer mode moves to its device whole;
- `StreamedDataset`: a map-style torch Dataset read batch by batch through a DataLoader (trainer.mode=eager
  only: the graph and ensemble modes keep the training set resident on the device, and say so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from harness.data.splits import InMemory, Splits, in_memory, read_splits
from harness.data.streamed import Streamed, scan
from harness.data.subsample import holdout_split, nested_subset, stratified_subset
from harness.errors import ConfigError, HarnessError, one_line
from harness.plugins import checked_arguments, resolve
from harness.settings import DataSettings


@dataclass(frozen=True, kw_only=True)
class DataInfo:
    """What describes a dataset in a record, whichever way its samples are held."""

    name: str
    input_shape: tuple[int, ...]  # per sample
    num_classes: int  # classification: classes; regression: target columns (one model output each)
    n_train_full: int  # training pool size before subsampling
    source: str  # where the data came from: a directory, or the call that generated it
    # classification: y int64 class labels, num_classes outputs; regression: y float32 targets
    task: str = "classification"


@dataclass(frozen=True, kw_only=True)
class Dataset(DataInfo):
    """In-memory splits on the CPU; the trainer moves them to its device. Tensors are left out of repr."""

    x_train: torch.Tensor = field(repr=False)  # (N, *input_shape) float32 (int64 token ids)
    y_train: torch.Tensor = field(repr=False)  # (N,) int64 labels | float32 targets
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    # The validation split (the loader's own `val`, or data.val_fraction of the training pool held out
    # before subsampling); None when there is none. Evaluated beside the test set; tuning selects on it.
    x_val: torch.Tensor | None = field(default=None, repr=False)
    y_val: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    @property
    def n_val(self) -> int:
        return 0 if self.y_val is None else len(self.y_val)

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n training samples (a real batch to count FLOPs on)."""
        return self.x_train[:n], self.y_train[:n]


@dataclass(frozen=True, kw_only=True)
class StreamedDataset(DataInfo):
    """Map-style Datasets, read through a DataLoader (harness.data.streamed)."""

    train: Streamed
    test: Streamed
    val: Streamed | None = None  # the validation split, as Dataset's

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_test(self) -> int:
        return len(self.test)

    @property
    def n_val(self) -> int:
        return 0 if self.val is None else len(self.val)

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train.head(n)


TrainingData = Dataset | StreamedDataset


def load_dataset(opts: DataSettings) -> TrainingData:
    """Build the dataset the `data` settings describe (one-line ConfigErrors for anything a user can fix)."""
    label = f"data._target_={opts.target}"
    loader = resolve(opts.target, "data")
    arguments = checked_arguments(loader, opts.arguments, label)
    try:
        result = loader(**arguments)
    except HarnessError:
        raise
    except Exception as exc:
        raise ConfigError(f"{label} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    splits = read_splits(result, label)
    train = in_memory(splits.train, f"{label}: train")
    test = in_memory(splits.test, f"{label}: test")
    if isinstance(train, InMemory) and isinstance(test, InMemory):
        return _resident(opts, splits, train, test, label)
    if isinstance(train, InMemory) or isinstance(test, InMemory):
        raise ConfigError(
            f"{label} returned one split as tensors and the other as a Dataset; return both the same way"
        )
    return _streamed(opts, splits, train, test, label)


def _task_and_classes(y: torch.Tensor, given: int | None, label: str) -> tuple[str, int]:
    """Float targets: regression, one output per target column; integer labels: classification, with
    `given` classes or max label + 1."""
    if y.is_floating_point():
        return "regression", 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    found = int(y.max()) + 1 if len(y) else 0
    if given is None:
        return "classification", max(found, 1)
    if found > given:
        raise ConfigError(
            f"{label}: labels go up to {found - 1} but num_classes={given}; return num_classes >= {found}"
        )
    return "classification", given


def _train_size(opts: DataSettings, n_full: int, num_classes: int, task: str) -> int:
    """data.n_train if set, else fraction * n_full rounded half up, raised to one sample per class."""
    least = num_classes if task == "classification" else 1
    if opts.n_train is None:
        return min(n_full, max(least, int(opts.fraction * n_full + 0.5)))
    if not least <= opts.n_train <= n_full:
        raise ConfigError(
            f"data.n_train must be in [{least}, {n_full}] for {opts.label}, got {opts.n_train}; "
            "set it in that range or to null to use data.fraction"
        )
    return opts.n_train


def _subset(opts: DataSettings, labels: np.ndarray | None, n_full: int, n: int) -> np.ndarray | None:
    """Sorted indices of the training subset (None: the whole pool). Class-balanced where there are
    classes; regression targets get a plain seeded subset. Nested across sizes for one seed, either way."""
    if n >= n_full:
        return None
    if labels is None:
        return nested_subset(n_full, n, opts.subsample_seed)
    return stratified_subset(labels, n, opts.subsample_seed)


def _standardize(x_train: torch.Tensor, *others: torch.Tensor) -> None:
    """In place, with one mean/std per channel (dim 1) taken from the full training pool."""
    dims = [d for d in range(x_train.ndim) if d != 1]
    std, mean = torch.std_mean(x_train, dim=dims, correction=0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is centred, not divided by 0
    for x in (x_train, *others):
        x.sub_(mean).div_(std)


def _held_out(
    opts: DataSettings, labels: np.ndarray | None, n_full: int, num_classes: int, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, validation) indices of the loader's training split for data.val_fraction: held out
    before subsampling, class-balanced, drawn with data.val_seed, so every run of a dataset (whatever its
    seed or training-set size) is validated on the same samples and never trains on them."""
    pool, held = holdout_split(labels, n_full, opts.val_fraction, opts.val_seed)
    least = num_classes if labels is not None else 1
    if len(pool) < least or len(held) < least:
        raise ConfigError(
            f"data.val_fraction={opts.val_fraction} of {label}'s {n_full} training samples leaves "
            f"{len(pool)} to train on and {len(held)} to validate on; each needs at least {least}: "
            "choose a fraction between those limits"
        )
    return pool, held


def _loader_val(opts: DataSettings, splits: Splits, label: str):
    """The loader's own validation split (InMemory or a Dataset), or None; never both it and val_fraction."""
    if splits.val is None:
        return None
    if opts.val_fraction > 0:
        raise ConfigError(
            f"{label} returns its own val split and data.val_fraction={opts.val_fraction} asks for another; "
            "set data.val_fraction=0 to use the loader's, or return no val"
        )
    return in_memory(splits.val, f"{label}: val")


def _resident(opts: DataSettings, splits: Splits, train: InMemory, test: InMemory, label: str) -> Dataset:
    x_train, y_train, x_test, y_test = train.x, train.y, test.x, test.y
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ConfigError(
            f"{label}: train samples have shape {tuple(x_train.shape[1:])} but test samples "
            f"{tuple(x_test.shape[1:])}; give both splits the same per-sample shape"
        )
    if y_train.is_floating_point() != y_test.is_floating_point():
        raise ConfigError(f"{label}: train and test targets differ in kind (labels vs floats); match them")
    task, num_classes = _task_and_classes(torch.cat([y_train, y_test]), splits.num_classes, label)
    x_val, y_val = _resident_val(opts, splits, x_train, y_train, label)
    if x_val is None and opts.val_fraction > 0:
        labels = y_train.numpy() if task == "classification" else None
        pool, held = _held_out(opts, labels, len(y_train), num_classes, label)
        x_val, y_val = x_train[torch.from_numpy(held)], y_train[torch.from_numpy(held)]
        x_train, y_train = x_train[torch.from_numpy(pool)], y_train[torch.from_numpy(pool)]
    if opts.normalize and x_train.is_floating_point():
        # Statistics come from the full training pool, so every subsample size sees the same preprocessing.
        # Copies first: the loader's own tensors are left as it made them.
        x_train, x_test = x_train.clone(), x_test.clone()
        x_val = None if x_val is None else x_val.clone()
        _standardize(x_train, x_test, *([] if x_val is None else [x_val]))
    n_full = len(y_train)
    n = _train_size(opts, n_full, num_classes, task)
    labels = y_train.numpy() if task == "classification" else None
    keep = _subset(opts, labels, n_full, n)
    if keep is not None:
        index = torch.from_numpy(keep)
        x_train, y_train = x_train[index], y_train[index]
    return Dataset(
        name=opts.label,
        input_shape=tuple(x_train.shape[1:]),
        num_classes=num_classes,
        n_train_full=n_full,
        source=splits.source or opts.target,
        task=task,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        x_val=x_val,
        y_val=y_val,
    )


def _resident_val(
    opts: DataSettings, splits: Splits, x_train: torch.Tensor, y_train: torch.Tensor, label: str
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The loader's own validation split as tensors shaped like the training split's, or (None, None)."""
    val = _loader_val(opts, splits, label)
    if val is None:
        return None, None
    if not isinstance(val, InMemory):
        raise ConfigError(f"{label} returned train as tensors and val as a Dataset; return both the same way")
    if val.x.shape[1:] != x_train.shape[1:] or val.y.is_floating_point() != y_train.is_floating_point():
        raise ConfigError(
            f"{label}: val samples have shape {tuple(val.x.shape[1:])} ({val.y.dtype} targets), train "
            f"samples {tuple(x_train.shape[1:])} ({y_train.dtype}); give val the training split's shape"
        )
    return val.x, val.y


def _streamed(
    opts: DataSettings,
    splits: Splits,
    train: torch.utils.data.Dataset,
    test: torch.utils.data.Dataset,
    label: str,
) -> StreamedDataset:
    n_full = len(train)  # type: ignore[arg-type]
    if n_full == 0 or len(test) == 0:  # type: ignore[arg-type]
        raise ConfigError(f"{label} returned an empty Dataset; give each split at least one sample")
    x0, y0 = train[0]
    x0, y0 = torch.as_tensor(x0), torch.as_tensor(y0)
    regression = y0.is_floating_point()
    # One pass over the training pool, when labels (for num_classes or a class-balanced subset) or
    # statistics (for data.normalize) are needed; none when the loader says num_classes and nothing else is.
    needs_labels = not regression and (
        splits.num_classes is None or opts.n_train is not None or opts.fraction < 1 or opts.val_fraction > 0
    )
    statistics = opts.normalize and x0.is_floating_point()
    labels, stats = (
        scan(train, opts.loader_workers, statistics) if needs_labels or statistics else (None, None)
    )
    if regression:
        task, num_classes = "regression", max(1, y0.numel())
        labels = None
    else:
        task, num_classes = _task_and_classes(
            torch.as_tensor(labels) if labels is not None else y0.reshape(1).long(), splits.num_classes, label
        )
    pool, held = np.arange(n_full), None
    own_val = _loader_val(opts, splits, label)
    if own_val is not None and not isinstance(own_val, torch.utils.data.Dataset):
        raise ConfigError(f"{label} returned train as a Dataset and val as tensors; return both the same way")
    if own_val is None and opts.val_fraction > 0:
        # The statistics (data.normalize) were read over the whole split, validation samples included.
        pool, held = _held_out(opts, labels, n_full, num_classes, label)
        labels = None if labels is None else labels[pool]
    n = _train_size(opts, len(pool), num_classes, task)
    keep = _subset(opts, labels, len(pool), n)
    mean, std = stats if stats is not None else (None, None)

    def split(dataset: torch.utils.data.Dataset, indices: np.ndarray) -> Streamed:
        return Streamed(dataset, indices, opts.loader_workers, mean, std)

    if own_val is not None:
        val = split(own_val, np.arange(len(own_val)))
    else:
        val = None if held is None else split(train, held)

    return StreamedDataset(
        name=opts.label,
        input_shape=tuple(x0.shape),
        num_classes=num_classes,
        n_train_full=len(pool),
        source=splits.source or f"{opts.target} (map-style Dataset {type(train).__name__})",
        task=task,
        train=split(train, pool if keep is None else pool[keep]),
        test=split(test, np.arange(len(test))),  # type: ignore[arg-type]
        val=val,
    )
