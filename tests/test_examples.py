"""examples/ as a user runs it (README, "Your model, your data"): the folder copied outside the repository, on
PYTHONPATH, and the commands the README spells: measure the model, train it on a built-in dataset, on one's
own data as tensors and as a map-style Dataset, a sweep of a constructor argument × data.n_train, a fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.results import load

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = ("+debug=default", "trainer.epochs=1")  # CPU, no codecarbon: a functional check, not a measurement


@pytest.fixture
def user(tmp_path, monkeypatch):
    """The examples folder copied to the user's own place, importable as PYTHONPATH makes it."""
    folder = tmp_path / "myproject"
    shutil.copytree(EXAMPLES, folder)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder


def _record(proc) -> dict:
    """The record a single run wrote (its path is the last thing the run logs)."""
    path = (proc.stdout + proc.stderr).strip().rsplit("record ", 1)[1].split()[0]
    return json.loads(Path(path).read_text())


def test_measure_and_train_a_model_of_ones_own_on_a_built_in_dataset(user, harness_cli):
    proc = harness_cli("measure", "model=custom", "model._target_=mynet.MyNet", "latency.enabled=false")
    assert proc.returncode == 0, proc.stderr
    # By hand, one 8x8 sample: stem conv 1->16 3x3 (16·9·64 = 9,216 MACs) and two 16->16 3x3 convs
    # (16·16·9·64 = 147,456 each): 304,128; batch norm in eval 2·16·64 = 4,096; head 16x10 = 160.
    assert "convolution 304.128 k, norm 4.096 k, matmul 160" in proc.stdout
    assert "(308.384 kMAC) for batch 1" in proc.stdout and "unsupported ops: none" in proc.stdout
    proc = harness_cli("train", "model=custom", "model._target_=mynet.MyNet", "+model.hidden=8", *QUICK)
    assert proc.returncode == 0, proc.stderr
    record = _record(proc)
    assert record["model"] == "MyNet" and record["data"] == "digits" and record["status"] == "completed"
    assert record["config"]["model"] == {"_target_": "mynet.MyNet", "name": "MyNet", "hidden": 8}
    assert "_MyNet_digits" in str(next((user.parent / "results" / "runs").rglob("run.json")))


@pytest.mark.parametrize(("data", "kind"), [("shapes", "tensors"), ("shapes_lazy", "map-style Dataset")])
def test_train_on_ones_own_data_from_ones_own_config_dir(user, harness_cli, data, kind):
    args = ("--config-dir", str(user / "conf"), "model=mynet", f"data={data}", "data.n_train=200")
    proc = harness_cli("train", *args, *QUICK)
    assert proc.returncode == 0, proc.stderr
    record = _record(proc)
    assert record["model"] == "mynet" and record["data"] == data and record["num_classes"] == 4
    assert record["n_train"] == 200 and record["n_train_full"] == 1200 and record["n_test"] == 400
    assert record["input_shape"] == [1, 8, 8] and record["flops_forward"] > 0
    assert ("map-style Dataset" in record["data_source"]) == (kind == "map-style Dataset")


def test_a_sweep_of_a_constructor_argument_and_n_train_then_a_fit(user, harness_cli, tmp_path):
    proc = harness_cli(
        "train", "-m", "--config-dir", str(user / "conf"), "model=mynet", "data=shapes",
        "model.hidden=4,8", "data.n_train=100,200", *QUICK,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = load(tmp_path / "results" / "runs")
    assert sorted(zip(runs["config.model.hidden"], runs["n_train"], strict=True)) == [
        (4, 100), (4, 200), (8, 100), (8, 200)
    ]  # fmt: skip
    assert runs["config_hash"].nunique() == 4 and set(runs["model"]) == {"mynet"}
    proc = harness_cli(
        "fit",
        f"results={tmp_path / 'results' / 'runs'}",
        "filter.data=shapes",
        "out=fits",
        "parametric.enabled=false",
    )
    assert proc.returncode == 0, proc.stderr
    assert "shapes" in proc.stdout and (tmp_path / "fits" / "fits.csv").exists()
    fits = (tmp_path / "fits" / "fits.csv").read_text()
    assert ",4," in fits  # four configurations (hidden × n_train), not two: the widths are not averaged away
