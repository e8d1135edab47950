"""The built-in datasets: one loader each, the plugins the harness ships (conf/data/<name>.yaml names one as
its `data._target_`, exactly as a user's file names theirs).

A loader is a function whose keyword parameters are that dataset's own settings (their types and defaults
here, their ranges checked inside); it returns the full train/test splits as a `Splits` of numpy arrays,
pixels scaled to [0, 1]. Subsetting, standardization and the record are the harness's (harness.data.dataset).

Heavy or optional libraries (sklearn, mnist1d, torchvision) are imported inside the loaders so that
importing harness.data stays cheap and works without them.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.idx import read_idx
from harness.data.splits import Splits
from harness.data.subsample import stratified_split
from harness.errors import ConfigError, DataNotFoundError, one_line

# The digits test split is fixed so the test set is identical across runs; only the subsample varies.
SPLIT_SEED = 0
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
log = logging.getLogger(__name__)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def check_test_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction must be in (0, 1), got {test_fraction}; the default is 0.2")


def digits(test_fraction: float = 0.2) -> Splits:
    """sklearn's bundled 8x8 digits (values 0..16), split into train/test by a fixed stratified draw."""
    check_test_fraction(test_fraction)
    images, labels = sklearn_digits()
    x = (images / 16.0).astype(np.float32)[:, None]
    y = labels.astype(np.int64)
    train, test = stratified_split(y, test_fraction, seed=SPLIT_SEED)
    return Splits((x[train], y[train]), (x[test], y[test]), num_classes=10, source="sklearn.load_digits")


@functools.cache
def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8), labels) of scikit-learn's digits: the CSV it ships, read as its load_digits reads
    it but without importing scikit-learn (a second of start-up for the default run); its own loader where
    the file is not where this version keeps it. Read once per process: parsing the text is about 3 ms, most
    of what a tiny sweep job spends loading its data, and the file is part of an installed package. The
    arrays are read-only (every caller derives its own)."""
    spec = importlib.util.find_spec("sklearn")
    folders = spec.submodule_search_locations if spec is not None else None
    csv = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits as load_sklearn_digits

        bunch = load_sklearn_digits()
        images, labels = bunch.images, bunch.target
    else:
        data = np.loadtxt(csv, delimiter=",")  # 64 pixel columns, then the label
        images, labels = data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def check_generated(num_samples: int, generator_seed: int) -> None:
    """A generator's size and seed (np.random.seed, which mnist1d uses, takes at most 32 bits)."""
    if num_samples < 20:
        raise ConfigError(f"data.num_samples must be at least 20, got {num_samples}; e.g. mnist1d's 5000")
    if not 0 <= generator_seed < 2**32:
        raise ConfigError(
            f"data.generator_seed must be in [0, 2**32), got {generator_seed}; use a non-negative seed"
        )


def mnist1d(num_samples: int = 5000, generator_seed: int = 42, test_fraction: float = 0.2) -> Splits:
    """Generate MNIST-1D in memory with make_dataset (get_dataset would download and write a pickle). The
    defaults are the published dataset's: 5,000 samples split 4,000 train / 1,000 test."""
    check_generated(num_samples, generator_seed)
    check_test_fraction(test_fraction)
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = generator_seed
    args.train_split = 1.0 - test_fraction
    # make_dataset reseeds the global `random` and numpy RNGs; restore them so loading data leaves the
    # caller's seeding untouched.
    saved = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
    source = (
        f"mnist1d.make_dataset(num_samples={args.num_samples}, seed={args.seed}, "
        f"train_split={args.train_split:g})"
    )
    return Splits(
        (np.asarray(data["x"], dtype=np.float32)[:, None], np.asarray(data["y"], dtype=np.int64)),
        (np.asarray(data["x_test"], dtype=np.float32)[:, None], np.asarray(data["y_test"], dtype=np.int64)),
        num_classes=10,
        source=source,
    )


@dataclass(frozen=True)
class Files:
    """Where a file-backed dataset is read from: its name (a sub-folder of root), root, and whether it may
    be downloaded there."""

    name: str
    root: str | None
    download: bool

    @classmethod
    def of(cls, name: str, root: str | None, download: bool) -> Files:
        return cls(name, None if root is None else os.path.expanduser(root), download)


def _idx_dirs(opts: Files, folder: str) -> list[Path]:
    """Search order: root, root/<name>, torchvision's root/<Folder>/raw, then Debian's Fashion-MNIST."""
    dirs = []
    if opts.root is not None:
        root = Path(opts.root)
        dirs += [root, root / opts.name, root / folder / "raw"]
    if opts.name == "fashion_mnist":
        dirs.append(DEBIAN_FASHION_MNIST)
    return dirs


def _find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in `directory` (raw preferred over .gz), or None unless all four are there."""
    found = {}
    for stem in IDX_STEMS:
        candidates = [path for path in (directory / stem, directory / f"{stem}.gz") if path.is_file()]
        if not candidates:
            return None
        found[stem] = candidates[0]
    return found


def _torchvision_download(opts: Files, class_name: str) -> None:
    """Fetch a torchvision dataset into data.root; network failures become one-line DataNotFoundErrors."""
    if opts.root is None:
        raise ConfigError(f"{opts.name}: data.download=true needs data.root; set it to a writable directory")
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, class_name)(opts.root, train=False, download=True)
    except (RuntimeError, OSError) as exc:
        reason = one_line(exc)
        raise DataNotFoundError(
            f"{opts.name}: download into {opts.root} failed ({reason}); check the network or copy files there"
        ) from exc


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataNotFoundError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}; "
            "replace the file with an intact copy"
        )
    if labels.dtype != np.uint8 or labels.shape != (len(images),) or labels.max(initial=0) > 9:
        raise DataNotFoundError(
            f"{labels_path}: expected {len(images)} uint8 labels in 0..9 to match {images_path.name}, "
            f"got {labels.dtype} {labels.shape}; replace the file with an intact copy"
        )
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)


def _load_idx_set(opts: Files, folder: str) -> Splits:
    """MNIST-style sets from IDX files; downloads with torchvision only if asked and nothing is found."""
    dirs = _idx_dirs(opts, folder)
    files = next((found for found in map(_find_idx_files, dirs) if found is not None), None)
    if files is None and opts.download:
        _torchvision_download(opts, folder)
        files = _find_idx_files(Path(opts.root) / folder / "raw")
    if files is None:
        where = ", ".join(map(str, dirs)) if dirs else "nowhere (data.root is not set)"
        debian = "install Debian's dataset-fashion-mnist, " if opts.name == "fashion_mnist" else ""
        raise DataNotFoundError(
            f"{opts.name}: IDX files (train/t10k-*-ubyte[.gz]) not found in {where}; "
            f"{debian}put the files in data.root, or set data.download=true"
        )
    found_in = files[IDX_STEMS[0]].parent
    if opts.root is not None and found_in == DEBIAN_FASHION_MNIST:
        # The record names this directory (data_source); say so now too, since data.root was not used.
        log.warning(
            "%s: no IDX files in data.root=%s; using Debian's copy, %s", opts.name, opts.root, found_in
        )
    x_train, y_train = _read_idx_pair(files[IDX_STEMS[0]], files[IDX_STEMS[1]])
    x_test, y_test = _read_idx_pair(files[IDX_STEMS[2]], files[IDX_STEMS[3]])
    return Splits((x_train, y_train), (x_test, y_test), num_classes=10, source=str(found_in))


def mnist(root: str | None = None, download: bool = False) -> Splits:
    """MNIST from IDX files in root (or root/mnist, root/MNIST/raw); torchvision downloads them if asked."""
    return _load_idx_set(Files.of("mnist", root, download), "MNIST")


def fashion_mnist(root: str | None = None, download: bool = False) -> Splits:
    """Fashion-MNIST from IDX files in root (or its sub-folders), else Debian's dataset-fashion-mnist."""
    return _load_idx_set(Files.of("fashion_mnist", root, download), "FashionMNIST")


def cifar10(root: str | None = None, download: bool = False) -> Splits:
    """CIFAR-10 via torchvision (pickles in root/cifar-10-batches-py); HWC uint8 becomes CHW in [0, 1]."""
    opts = Files.of("cifar10", root, download)
    fetch = "check the network" if opts.download else "set data.download=true to fetch it (170 MB)"
    how = f"{fetch}, or extract cifar-10-python.tar.gz into data.root"
    if opts.root is None:
        raise DataNotFoundError(f"cifar10: data.root is not set; set data.root to a directory and {how}")
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(opts.root, train=True, download=opts.download)
        test = CIFAR10(opts.root, train=False, download=False)
    except (RuntimeError, OSError) as exc:
        reason = one_line(exc)
        message = f"cifar10: no intact cifar-10-batches-py in {opts.root} ({reason}); {how}"
        raise DataNotFoundError(message) from exc

    def to_arrays(split) -> tuple[np.ndarray, np.ndarray]:
        pixels = split.data.transpose(0, 3, 1, 2).astype(np.float32, order="C") / 255.0
        return pixels, np.asarray(split.targets, dtype=np.int64)

    source = str(Path(opts.root) / CIFAR10.base_folder)
    return Splits(to_arrays(train), to_arrays(test), num_classes=10, source=source)
