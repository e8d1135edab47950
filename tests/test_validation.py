"""The validation split (data.val_fraction, or a loader's own `val`): held out of the training pool before
subsampling, class-balanced, the same for every run, never overlapping train or test; evaluated beside the
test set into records and curves."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from harness.data import Dataset, StreamedDataset, load_dataset
from harness.errors import ConfigError
from harness.settings import DataSettings
from harness.train import run

# A user's loader whose inputs carry each sample's identity (x[..., 0] = its id), so splits can be compared
# exactly; ids 0..399 are the training split, 1000.. the test split, 2000.. a val split when asked for.
USER_DATA = textwrap.dedent(
    """
    import torch


    def _split(ids, classes):
        x = torch.zeros(len(ids), 3)
        x[:, 0] = ids.float()
        return x, ids % classes


    def tagged(n: int = 400, classes: int = 5, own_val: bool = False):
        test = _split(1000 + torch.arange(100), classes)
        splits = {"train": _split(torch.arange(n), classes), "test": test}
        if own_val:
            splits["val"] = _split(2000 + torch.arange(50), classes)
        return splits


    class Tagged(torch.utils.data.Dataset):
        def __init__(self, ids, classes):
            self.x, self.y = _split(ids, classes)

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.x[i], int(self.y[i])


    def streamed(n: int = 400, classes: int = 5):
        return {"train": Tagged(torch.arange(n), classes), "test": Tagged(1000 + torch.arange(100), classes)}
    """
)


@pytest.fixture
def user_data(tmp_path, monkeypatch):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "taggeddata.py").write_text(USER_DATA)
    monkeypatch.syspath_prepend(str(folder))
    return "taggeddata"


def _load(**node):
    return load_dataset(DataSettings.from_config({"name": None, "normalize": False, **node}))


def _ids(x: torch.Tensor) -> set[int]:
    return set(x[:, 0].round().long().tolist())


@pytest.mark.parametrize("fraction", [1.0, 0.25])
def test_val_is_held_out_before_subsampling_and_never_overlaps(user_data, fraction):
    data = _load(_target_=f"{user_data}.tagged", val_fraction=0.2, fraction=fraction, subsample_seed=3)
    assert isinstance(data, Dataset) and data.n_val == 80 and data.n_train_full == 320
    val, train, test = _ids(data.x_val), _ids(data.x_train), _ids(data.x_test)
    assert not val & train and not val & test and not train & test
    assert len(train) == round(fraction * 320)
    assert np.bincount(data.y_val.numpy()).tolist() == [16] * 5, "class-balanced"
    # Fixed by val_seed, not by the run's seed or training-set size: every run validates on the same samples.
    other = _load(_target_=f"{user_data}.tagged", val_fraction=0.2, fraction=0.5, subsample_seed=9)
    assert _ids(other.x_val) == val
    assert _ids(_load(_target_=f"{user_data}.tagged", val_fraction=0.2, val_seed=1).x_val) != val


def test_a_streamed_dataset_is_split_the_same_way(user_data):
    data = _load(_target_=f"{user_data}.streamed", val_fraction=0.2, fraction=0.5)
    assert isinstance(data, StreamedDataset) and data.val is not None
    val, train = set(data.val.indices.tolist()), set(data.train.indices.tolist())
    assert len(val) == 80 and len(train) == 160 and not val & train and data.n_train_full == 320
    resident = _load(_target_=f"{user_data}.tagged", val_fraction=0.2)
    assert _ids(resident.x_val) == val, "the same samples held out, however the data is held"


def test_a_loaders_own_val_split_is_used_and_not_doubled(user_data):
    data = _load(_target_=f"{user_data}.tagged", own_val=True)
    assert data.n_val == 50 and min(_ids(data.x_val)) == 2000 and data.n_train_full == 400
    with pytest.raises(ConfigError, match="returns its own val split and data.val_fraction=0.1") as info:
        _load(_target_=f"{user_data}.tagged", own_val=True, val_fraction=0.1)
    assert "set data.val_fraction=0" in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [(1.0, "data.val_fraction must be in [0, 1), got 1.0"), (0.999, "leaves 0 to train on")],
)
def test_bad_val_fraction_is_one_line(user_data, value, message):
    with pytest.raises(ConfigError) as info:
        _load(_target_=f"{user_data}.tagged", val_fraction=value)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_builtin_data_is_validated_beside_the_test_set(compose_train, tmp_path):
    record = run(compose_train("trainer.epochs=2", "data.val_fraction=0.2"), tmp_path)
    assert record.n_val == round(0.2 * (record.n_val + record.n_train_full)) and record.seeds["val_seed"] == 0
    assert 0 <= record.val_error < 0.5 and record.val_loss > 0 and record.test_error is not None
    header, *rows = (tmp_path / "curve.csv").read_text().splitlines()
    assert header.endswith("lr,val_loss,val_error") and len(rows) == 2
    plain = run(compose_train("trainer.epochs=1"), tmp_path / "none")
    assert plain.n_val == 0 and plain.val_error is None


def test_a_streamed_dataset_is_validated_beside_the_test_set(compose_train, user_data, tmp_path):
    overrides = (
        "data=custom",
        f"data._target_={user_data}.streamed",
        "data.val_fraction=0.25",
        "trainer.epochs=1",
    )
    record = run(compose_train(*overrides, "model.width=8"), tmp_path)
    assert record.status == "completed" and record.n_val == 100 and record.n_train == 300
    assert record.val_error is not None and record.val_loss is not None and record.chance_error is None
