"""harness.data: offline sets (digits, mnist1d), IDX files, subsampling rules and config errors."""

from __future__ import annotations

import gzip
import math
import random
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from harness.data import Dataset, load_dataset
from harness.data.idx import parse_idx, read_idx
from harness.data.sources import IDX_STEMS, sklearn_digits
from harness.data.subsample import stratified_order, stratified_subset
from harness.errors import ConfigError, DataNotFoundError
from harness.settings import DataSettings, plain

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def load(node):
    """The dataset a `data` group (a mapping or a DictConfig) describes; a built-in named without its
    `_target_` gets its loader from harness.data.sources, as conf/data/<name>.yaml names it."""
    values = dict(plain(node))
    values.setdefault("_target_", f"harness.data.sources.{values.get('name')}")
    return load_dataset(DataSettings.from_config(values))


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def _assert_one_line(error: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(error.value)


# --- digits --------------------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_standardization():
    data = load({"name": "digits"})
    assert isinstance(data, Dataset)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_test.dtype == torch.float32 and data.y_test.dtype == torch.int64
    assert data.x_train.shape == (data.n_train, 1, 8, 8)
    assert data.n_train == data.n_train_full == 1797 - 359  # test_fraction 0.2 of 1797, rounded
    assert len(data.y_test) == 359
    assert set(data.y_train.tolist()) == set(data.y_test.tolist()) == set(range(10))
    assert abs(data.x_train.mean().item()) < 1e-4 and abs(data.x_train.std(correction=0).item() - 1) < 1e-4
    assert data.source == "sklearn.load_digits"


def test_digits_are_read_exactly_as_sklearn_loads_them():
    from sklearn.datasets import load_digits

    images, labels = sklearn_digits()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(labels, bunch.target)


def test_digits_without_normalize_is_scaled_to_unit_interval():
    data = load({"name": "digits", "normalize": False})
    assert data.x_train.min().item() == 0.0 and data.x_train.max().item() == 1.0


def test_test_split_does_not_depend_on_subsample_seed():
    a = load({"name": "digits", "fraction": 0.5, "subsample_seed": 0})
    b = load({"name": "digits", "fraction": 0.5, "subsample_seed": 7})
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, b.x_train)  # only the training subsample moves with the seed


def test_fraction_size_balance_and_reproducibility():
    full = load({"name": "digits"})
    data = load({"name": "digits", "fraction": 0.1, "subsample_seed": 3})
    assert data.n_train == round(0.1 * full.n_train_full) and data.n_train_full == full.n_train_full
    counts = torch.bincount(data.y_train, minlength=10)
    shares = data.n_train * torch.bincount(full.y_train, minlength=10) / full.n_train
    assert torch.all(counts <= torch.ceil(shares)) and torch.all(counts >= torch.floor(shares) - 1)
    again = load({"name": "digits", "fraction": 0.1, "subsample_seed": 3})
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_train, again.y_train)


def test_subsample_ignores_global_rng_state():
    torch.manual_seed(1)
    np.random.seed(1)
    a = load({"name": "digits", "fraction": 0.2})
    torch.manual_seed(2)
    np.random.seed(2)
    b = load({"name": "digits", "fraction": 0.2})
    assert torch.equal(a.x_train, b.x_train)


def test_smaller_fraction_is_nested_in_larger_and_shares_preprocessing():
    sizes = [load({"name": "digits", "fraction": f, "subsample_seed": 5}) for f in (0.05, 0.3, 1.0)]
    small, medium, full = (_rows(d.x_train) for d in sizes)
    # Standardization uses full-set statistics, so the same sample has identical values at every size.
    assert small <= medium <= full
    assert torch.equal(sizes[0].x_test, sizes[2].x_test)


def test_n_train_overrides_fraction_and_is_balanced():
    data = load({"name": "digits", "n_train": 50, "fraction": 0.9})
    assert data.n_train == 50
    assert torch.bincount(data.y_train, minlength=10).tolist() == [5] * 10


@pytest.mark.parametrize("n_train", [5, 2000])
def test_n_train_out_of_range(n_train):
    with pytest.raises(ConfigError, match=r"data\.n_train must be in \[10, 1438\]") as error:
        load({"name": "digits", "n_train": n_train})
    _assert_one_line(error)


@pytest.mark.parametrize("fraction", [0, 1.5, -1])
def test_bad_fraction(fraction):
    with pytest.raises(ConfigError, match=r"data\.fraction must be in \(0, 1\]") as error:
        load({"name": "digits", "fraction": fraction})
    assert f"got {float(fraction)}" in str(error.value)
    _assert_one_line(error)


def test_an_unknown_loader_is_a_one_line_error_naming_it():
    with pytest.raises(ConfigError, match="harness.data.sources has no callable 'imagenet'") as error:
        load({"name": "imagenet"})
    _assert_one_line(error)


def test_dictconfig_in_struct_mode_uses_defaults_for_missing_keys():
    cfg = OmegaConf.create({"_target_": "harness.data.sources.digits", "name": "digits", "fraction": 0.5})
    OmegaConf.set_struct(cfg, True)
    data = load(cfg)
    assert data.n_train == round(0.5 * data.n_train_full)


# --- subsampling rule ----------------------------------------------------------------------------------


def test_stratified_subset_is_exact_nested_and_covers_every_class():
    labels = np.repeat(np.arange(5), [100, 50, 20, 5, 1])  # strongly imbalanced
    previous: set[int] = set()
    for n in range(5, len(labels) + 1, 7):
        subset = stratified_subset(labels, n, seed=11)
        assert len(subset) == n and len(set(subset.tolist())) == n
        assert previous <= set(subset.tolist())
        assert set(labels[subset].tolist()) == set(range(5))  # at least one per class once n >= classes
        counts = np.bincount(labels[subset], minlength=5)
        assert np.all(counts <= np.ceil(n * np.bincount(labels) / len(labels)))  # never above its share
        previous = set(subset.tolist())
    assert np.array_equal(stratified_order(labels, 11), stratified_order(labels, 11))
    assert not np.array_equal(stratified_order(labels, 11), stratified_order(labels, 12))


# --- mnist1d -------------------------------------------------------------------------------------------


def test_mnist1d_is_generated_offline_without_files_or_rng_side_effects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d loading must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)

    data = load({"name": "mnist1d", "num_samples": 500, "generator_seed": 3})

    assert (np.random.random(), random.random()) == (expected_np, expected_py)
    assert list(tmp_path.iterdir()) == []
    assert data.input_shape == (1, 40) and data.num_classes == 10
    assert data.n_train_full + len(data.y_test) == 500 and data.n_train_full == 400
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert "num_samples=500" in data.source and "seed=3" in data.source
    again = load({"name": "mnist1d", "num_samples": 500, "generator_seed": 3})
    assert torch.equal(data.x_train, again.x_train)


# --- IDX files -----------------------------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    """Encode uint8 data as IDX, independently of the reader under test."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_fake_idx(directory: Path, compress: bool, n_train: int = 30, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        if compress:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(_idx(array)))
        else:
            (directory / stem).write_bytes(_idx(array))
    return arrays


@pytest.mark.parametrize(
    ("name", "subdir", "compress"),
    [
        ("mnist", "", False),
        ("mnist", "MNIST/raw", True),
        ("fashion_mnist", "fashion_mnist", True),
        ("fashion_mnist", "FashionMNIST/raw", False),
    ],
)
def test_idx_sets_load_from_root(tmp_path, name, subdir, compress):
    arrays = _write_fake_idx(tmp_path / subdir, compress)
    data = load({"name": name, "root": str(tmp_path), "normalize": False})
    assert Path(data.source) == tmp_path / subdir
    assert data.input_shape == (1, 28, 28) and data.n_train_full == 30 and len(data.y_test) == 10
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().unsqueeze(1) / 255
    assert torch.equal(data.x_train, expected)
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_a_fallback_to_debians_copy_is_announced_and_recorded(tmp_path, monkeypatch, caplog):
    import harness.data.sources

    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    _write_fake_idx(debian, compress=True)
    monkeypatch.setattr(harness.data.sources, "DEBIAN_FASHION_MNIST", debian)
    data = load({"name": "fashion_mnist", "root": str(tmp_path / "nonexistent")})
    assert Path(data.source) == debian, "the record's data_source names the directory actually read"
    (message,) = [r.getMessage() for r in caplog.records if r.name == "harness.data.sources"]
    root = tmp_path / "nonexistent"
    assert message == f"fashion_mnist: no IDX files in data.root={root}; using Debian's copy, {debian}"


def test_idx_normalization_uses_training_statistics(tmp_path):
    _write_fake_idx(tmp_path, compress=False)
    data = load({"name": "mnist", "root": str(tmp_path)})
    assert abs(data.x_train.mean().item()) < 1e-5 and abs(data.x_train.std(correction=0).item() - 1) < 1e-4
    assert abs(data.x_test.mean().item()) > 1e-6  # test set reuses train statistics, so it is not exactly 0


@pytest.mark.parametrize(
    "corruption",
    [
        lambda raw: b"\x08\x03" + raw[2:],  # bad magic
        lambda raw: raw[:-5],  # truncated data
        lambda raw: raw[:2] + b"\x42" + raw[3:],  # unknown type code
    ],
)
def test_corrupt_idx_names_the_file(tmp_path, corruption):
    _write_fake_idx(tmp_path, compress=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(corruption(bad.read_bytes()))
    with pytest.raises(DataNotFoundError, match="not a valid IDX file") as error:
        load({"name": "mnist", "root": str(tmp_path)})
    assert str(bad) in str(error.value)
    _assert_one_line(error)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(np.zeros(4, np.uint8)))[:-6])
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte.gz") as error:
        read_idx(path)
    _assert_one_line(error)


def test_idx_images_of_wrong_size_are_rejected(tmp_path):
    _write_fake_idx(tmp_path, compress=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((10, 8, 8), np.uint8)))
    with pytest.raises(DataNotFoundError, match=r"t10k-images-idx3-ubyte: expected uint8 images"):
        load({"name": "mnist", "root": str(tmp_path)})


def test_parse_idx_decodes_big_endian_values():
    raw = bytes([0, 0, 0x0B, 2]) + struct.pack(">2I", 2, 2) + struct.pack(">4h", 1, -2, 300, 4)
    values = parse_idx(raw, Path("x"))
    assert values.shape == (2, 2) and values.tolist() == [[1, -2], [300, 4]]


def test_missing_root_names_the_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError, match="IDX files") as error:
        load({"name": "mnist", "root": str(missing)})
    assert str(missing) in str(error.value) and "data.download=true" in str(error.value)
    _assert_one_line(error)


def test_mnist_without_root_says_root_is_unset():
    with pytest.raises(DataNotFoundError, match="data.root is not set"):
        load({"name": "mnist", "root": None})


def test_cifar10_without_root_explains_how_to_get_it():
    with pytest.raises(DataNotFoundError, match="data.download=true"):
        load({"name": "cifar10"})


@pytest.mark.skipif(
    not all((DEBIAN_FASHION / f"{stem}.gz").is_file() for stem in IDX_STEMS),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian_package():
    data = load({"name": "fashion_mnist", "root": None, "fraction": 0.01})
    assert data.source == str(DEBIAN_FASHION)
    assert data.n_train_full == 60000 and len(data.y_test) == 10000
    assert data.n_train == 600 and torch.bincount(data.y_train).tolist() == [60] * 10
    assert data.x_test.shape == (10000, 1, 28, 28) and torch.bincount(data.y_test).tolist() == [1000] * 10
    assert math.isfinite(data.x_test.sum().item())
