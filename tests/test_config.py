"""Every config group option composes, instantiates, and exposes the keys scripts rely on."""

from importlib.resources import files

import pytest
import torch
from hydra.utils import instantiate

from harness.building import build_model_from_config
from harness.data import Dataset, load_dataset
from harness.errors import DataNotFoundError
from harness.settings import DataSettings


def _options(group: str) -> list[str]:
    return sorted(
        p.name[:-5] for p in files("harness.conf").joinpath(group).iterdir() if p.name.endswith(".yaml")
    )


def test_documented_keys_exist(compose_train):
    cfg = compose_train()
    for key in (
        "seed",
        "model.width",
        "model.depth",
        "data.fraction",
        "data._target_",
        "trainer.epochs",
        "trainer.batch_size",
        "trainer.device",
        "trainer.precision",
        "paths.results_dir",
    ):
        node, *rest = key.split(".")
        value = cfg[node]
        for part in rest:
            assert part in value, key
            value = value[part]


def test_groups_have_the_expected_options():
    assert _options("model") == [
        "cnn",
        "custom",
        "gru",
        "linear_expert",
        "linear_flexible",
        "linear_lasso",
        "mlp",
        "mlp_ntk",
        "resnet",
        "transformer",
    ]
    assert _options("data") == [
        "cifar10",
        "custom",
        "digits",
        "fashion_mnist",
        "mnist",
        "mnist1d",
        "sparse_regression",
    ]
    assert _options("trainer") == ["default", "ensemble", "lasso", "least_squares", "recurrent"]
    assert _options("measure") == ["default"]


@pytest.mark.parametrize("model", ["cnn", "mlp", "resnet", "transformer"])
def test_every_model_option_builds_for_digits(compose_train, model):
    cfg = compose_train(f"model={model}")
    data = load_dataset(DataSettings.from_config(cfg.data))
    assert isinstance(data, Dataset)  # digits: in memory, not streamed
    net = build_model_from_config(cfg.model, data.input_shape, data.num_classes)
    assert net(data.x_test[:2]).shape == (2, data.num_classes)


@pytest.mark.parametrize("option", ["digits", "mnist1d", "fashion_mnist", "mnist", "cifar10"])
def test_every_data_option_composes_and_loads_or_says_where_to_get_it(compose_train, option, tmp_path):
    on_disk = option in ("fashion_mnist", "mnist", "cifar10")  # only these read files from data.root
    cfg = compose_train(f"data={option}", *([f"data.root={tmp_path}"] if on_disk else []))
    assert cfg.data.name == option
    try:
        data = load_dataset(DataSettings.from_config(cfg.data))
    except DataNotFoundError as exc:
        assert option in ("fashion_mnist", "mnist", "cifar10")
        assert str(tmp_path) in str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(data, Dataset)  # the shipped options load into memory
        assert data.n_train > 0 and len(data.x_train) == data.n_train


def test_optimizer_instantiates_as_a_partial(compose_train):
    cfg = compose_train(
        "trainer.optimizer._target_=torch.optim.AdamW",
        "~trainer.optimizer.momentum",
        "~trainer.optimizer.nesterov",
    )
    optimizer = instantiate(cfg.trainer.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, torch.optim.AdamW)


def test_results_dir_steers_hydra_output(compose_train, tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="harness.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.results_dir={tmp_path}"], return_hydra_config=True)
    assert cfg.hydra.run.dir.startswith(str(tmp_path))
    assert cfg.hydra.sweep.dir.startswith(str(tmp_path))
    GlobalHydra.instance().clear()
