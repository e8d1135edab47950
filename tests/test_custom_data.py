"""A user's own dataset (`data=custom data._target_=...`): tensors, arrays or a map-style Dataset, the
harness's subsetting and standardization applied to it, and one-line errors for what a loader gets wrong."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from harness.data import Dataset, StreamedDataset, load_dataset
from harness.errors import ConfigError
from harness.settings import DataSettings
from harness.train import run_all

# A user's data module, written to a folder outside the package and put on sys.path as PYTHONPATH would.
USER_DATA = textwrap.dedent(
    '''
    import numpy as np
    import torch


    def blobs(n: int = 240, classes: int = 4, seed: int = 0, as_numpy: bool = False, regression=False):
        """Gaussian blobs in 2x4x4 inputs; class c is shifted by c."""
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % classes
        x = torch.randn(n, 2, 4, 4, generator=g) + y.float()[:, None, None, None]
        if regression:
            y = x.mean(dim=(1, 2, 3))
        split = int(0.75 * n)
        train, test = (x[:split], y[:split]), (x[split:], y[split:])
        if as_numpy:
            train, test = tuple(t.numpy() for t in train), tuple(t.numpy() for t in test)
        return {"train": train, "test": test, "source": f"blobs(n={n}, seed={seed})"}


    class Lazy(torch.utils.data.Dataset):
        """Makes each sample when asked (nothing held); counts the reads."""

        def __init__(self, n, offset, classes):
            self.n, self.offset, self.classes, self.reads = n, offset, classes, 0

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            self.reads += 1
            g = torch.Generator().manual_seed(self.offset + int(i))
            label = int(i) % self.classes
            return torch.randn(2, 4, 4, generator=g) + label, label


    def lazy(n: int = 240, classes: int = 4):
        return {"train": Lazy(n, 0, classes), "test": Lazy(n // 4, 10**6, classes), "num_classes": classes}


    class LazyTargets(Lazy):
        """The same samples with a float target (their mean): a regression set."""

        def __getitem__(self, i):
            x, _ = super().__getitem__(i)
            return x, x.mean()


    def lazy_regression(n: int = 240):
        return {"train": LazyTargets(n, 0, 4), "test": LazyTargets(n // 4, 10**6, 4)}


    def with_val():
        return {**blobs(), "val": blobs(n=40)["test"]}


    def no_test():
        return {"train": (np.zeros((4, 2)), np.zeros(4, dtype=np.int64))}


    def mismatched():
        train = (np.zeros((4, 2)), np.zeros(3, dtype=np.int64))
        return {"train": train, "test": (np.zeros((2, 2)), np.zeros(2))}
    '''
)


@pytest.fixture
def user_data(tmp_path, monkeypatch):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "blobdata.py").write_text(USER_DATA)
    monkeypatch.syspath_prepend(str(folder))
    yield "blobdata"


def _load(**node):
    return load_dataset(DataSettings.from_config({"name": None, **node}))


def test_tensors_and_arrays_load_with_balanced_nested_subsets_and_standardization(user_data):
    full = _load(_target_="blobdata.blobs")
    assert isinstance(full, Dataset) and full.name == "blobs" and full.source == "blobs(n=240, seed=0)"
    assert full.input_shape == (2, 4, 4) and full.num_classes == 4 and full.task == "classification"
    assert full.n_train == full.n_train_full == 180 and full.n_test == 60
    assert abs(full.x_train.mean().item()) < 1e-5  # standardized with the training pool's statistics
    small, larger = (_load(_target_="blobdata.blobs", n_train=n, subsample_seed=1) for n in (20, 60))
    assert torch.bincount(small.y_train).tolist() == [5, 5, 5, 5]
    rows = {row.numpy().tobytes() for row in larger.x_train}
    assert all(row.numpy().tobytes() in rows for row in small.x_train)  # nested
    arrays = _load(_target_="blobdata.blobs", as_numpy=True)
    assert torch.equal(arrays.x_train, full.x_train) and arrays.y_train.dtype == torch.int64


def test_a_val_split_is_read_as_the_validation_split(user_data):
    data = _load(_target_="blobdata.with_val")
    assert data.n_val == 10 and data.n_train_full == 180, "blobs(n=40)'s test part, beside the training pool"


def test_float_targets_are_regression(user_data):
    data = _load(_target_="blobdata.blobs", regression=True, n_train=50, name="blob_means")
    assert data.task == "regression" and data.num_classes == 1 and data.y_train.dtype == torch.float32
    assert data.n_train == 50 and data.name == "blob_means"


def test_a_map_style_dataset_is_streamed_not_loaded(user_data):
    data = _load(_target_="blobdata.lazy", n_train=40, normalize=False)
    assert isinstance(data, StreamedDataset)
    assert (
        data.n_train == 40 and data.n_test == 60 and data.num_classes == 4 and data.input_shape == (2, 4, 4)
    )
    labels = np.asarray([data.train.dataset[int(i)][1] for i in data.train.indices])
    assert np.bincount(labels).tolist() == [10, 10, 10, 10]  # class-balanced, through its labels
    x, y = data.head(8)
    assert x.shape == (8, 2, 4, 4) and y.tolist() == [int(i) % 4 for i in data.train.indices[:8]]
    untouched = _load(_target_="blobdata.lazy", normalize=False)  # num_classes given, no subset: no pass
    assert untouched.train.dataset.reads == 1  # only the first item, for its shape


def test_a_dataset_with_float_targets_is_streamed_regression_with_a_plain_nested_subset(user_data):
    small, large = (_load(_target_="blobdata.lazy_regression", n_train=n, normalize=False) for n in (30, 90))
    assert small.task == "regression" and small.num_classes == 1 and small.n_train == 30
    assert set(small.train.indices) <= set(large.train.indices)  # nested, without reading any labels
    assert small.train.dataset.reads == 1  # only the first item, for its shape and kind of target


def test_a_streamed_dataset_is_standardized_per_batch(user_data):
    data = _load(_target_="blobdata.lazy")
    assert data.train.mean is not None and data.train.mean.shape == (1, 2, 1, 1)
    x, _ = data.head(240)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std(correction=0).item() - 1) < 0.05


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"_target_": "nowhere.make"}, "cannot import nowhere"),
        ({"_target_": "blobdata.nothing"}, "blobdata has no callable 'nothing'"),
        ({"_target_": "blobdata.blobs", "size": 3}, "takes no argument size (it takes: n, classes, seed"),
        ({"_target_": "blobdata.blobs", "n": "many"}, "data.n must be an integer, got 'many'"),
        ({"_target_": "blobdata.no_test"}, "without train and test splits"),
        ({"_target_": "blobdata.mismatched"}, "x has 4 samples but y has 3"),
        ({"_target_": "blobdata.blobs", "n_train": 2}, "data.n_train must be in [4, 180] for blobs, got 2"),
    ],
)
def test_loader_mistakes_are_one_line_errors(user_data, node, message):
    with pytest.raises(ConfigError) as caught:
        _load(**node)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_train_on_tensors_and_on_a_dataset_records_the_users_data(user_data, compose_train, tmp_path):
    for target, extra in (("blobdata.blobs", []), ("blobdata.lazy", ["data.n_train=40"])):
        cfg = compose_train("data=custom", f"data._target_={target}", "trainer.epochs=1", *extra)
        (record,) = run_all(cfg, tmp_path / target)
        assert record.status == "completed", record.error
        assert (
            record.data == target.split(".")[1] and record.num_classes == 4 and record.test_error is not None
        )
        assert record.flops_forward and record.n_test == 60


@pytest.mark.parametrize("mode", ["graph", "ensemble"])
def test_device_resident_modes_refuse_a_streamed_dataset_in_one_line(
    user_data, compose_train, tmp_path, mode
):
    extra = ["trainer.ensemble_size=2"] if mode == "ensemble" else []
    cfg = compose_train("data=custom", "data._target_=blobdata.lazy", f"trainer.mode={mode}", *extra)
    with pytest.raises(ConfigError, match=f"trainer.mode={mode} keeps the whole training set on the device"):
        run_all(cfg, tmp_path / mode)
