"""A user's own model (`model=custom model._target_=...`), optimizer swaps and a config directory of one's
own: what the constructor is handed, how runs are named, and each mistake as one line before anything runs."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from harness.building import build_model_from_config, model_label
from harness.errors import ConfigError
from harness.settings import TrainerSettings
from harness.training.loop import optimizer_factory

USER_MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Asks(nn.Module):
        def __init__(self, input_shape, num_classes, hidden: int = 8):
            super().__init__()
            self.seen = (tuple(input_shape), num_classes, hidden)
            features = int(torch.tensor(input_shape).prod())
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))

        def forward(self, x):
            return self.net(x)


    class Fixed(nn.Module):
        '''Asks for neither input_shape nor num_classes: gets only its own arguments.'''

        def __init__(self, features: int = 64, outputs: int = 10):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, outputs))

        def forward(self, x):
            return self.net(x)


    class NeedsDepth(nn.Module):
        def __init__(self, depth: int):
            super().__init__()


    def not_a_module(**kwargs):
        return "a string"
    """
)


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "mymodels.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))


def test_input_shape_and_num_classes_only_for_a_constructor_that_asks(user_models):
    asks = build_model_from_config({"_target_": "mymodels.Asks", "hidden": 4}, (1, 8, 8), 10)
    assert asks.seen == ((1, 8, 8), 10, 4)
    fixed = build_model_from_config({"_target_": "mymodels.Fixed", "name": None}, (1, 8, 8), 10)
    assert fixed(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert model_label({"_target_": "mymodels.Fixed", "name": None}) == "Fixed"
    assert model_label({"_target_": "mymodels.Fixed", "name": "mine"}) == "mine"
    assert model_label({"_target_": "mymodels.Fixed"}, qualified=True) == "mymodels.Fixed"


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"_target_": "mymodels.NeedsDepth"}, "needs argument(s) depth; add +model.depth=<value>"),
        ({"_target_": "mymodels.not_a_module"}, "returned str, not a torch.nn.Module"),
        ({"_target_": "mymodels.Asks", "width": 3}, "takes no argument width (it takes: hidden)"),
        ({"_target_": "mymodels.Asks", "num_classes": 3}, "num_classes come from the data"),
        ({"_target_": "mymodels.Asks", "hidden": "wide"}, "model.hidden must be an integer, got 'wide'"),
        ({"_target_": "nomodule.Net"}, "cannot import nomodule"),
    ],
)
def test_model_mistakes_are_one_line_errors(user_models, node, message):
    with pytest.raises(ConfigError) as caught:
        build_model_from_config(node, (1, 8, 8), 10)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=null"], "model=null leaves the run without a model; choose one"),
        (["data=null"], "data=null leaves the run without a dataset"),
        (["model=custom"], "model=custom needs model._target_=pkg.module.Class"),
        (["model._target_=mymodels.Asks"], "write model=custom model._target_=pkg.module.Class"),
        (["+model._target_=mymodels.Asks"], "model._target_ on model=mlp would hand your nn.Module"),
        (["data._target_=mymodels.Asks"], "data._target_ on data=digits would hand your loader"),
        (["data=custom"], "data=custom needs data._target_=pkg.module.make_data"),
        (["model=custom", "model._target_=mymodels.not_a_module"], "returned str, not a torch.nn.Module"),
        (["model=custom", "model._target_=mymodels.Asks", "+model.width=3"], "takes no argument width"),
        (
            ["trainer.optimizer._target_=torch.optim.Adam", "trainer.optimizer.momentum=0.5"],
            "trainer.optimizer._target_=torch.optim.Adam takes no argument momentum",
        ),
        (["--config-dir", "nowhere", "model=mine"], "--config-dir nowhere: no such directory"),
    ],
)
def test_cli_mistakes_are_one_line_errors_and_write_nothing(
    user_models, harness_cli, tmp_path, args, message
):
    proc = harness_cli("train", *args, "+debug=default")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert message in line
    assert not list((tmp_path / "results").rglob("run.json"))


def test_a_swapped_optimizer_runs_with_its_own_defaults(harness_cli, tmp_path):
    proc = harness_cli(
        "train", "trainer.optimizer._target_=torch.optim.RMSprop", "trainer.optimizer.lr=0.01",
        "trainer.max_steps=2", "+debug=default",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "results" / "runs").rglob("run.json")
    optimizer = json.loads(path.read_text())["config"]["trainer"]["optimizer"]
    assert optimizer == {"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.01}  # no momentum


@pytest.mark.parametrize(("option", "cls"), [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW")])
def test_optimizer_options_build_their_class(compose_train, option, cls):
    cfg = compose_train(f"trainer/optimizer={option}")
    optimizer = optimizer_factory(TrainerSettings.from_config(cfg.trainer))(
        [torch.nn.Parameter(torch.zeros(2))]
    )
    assert type(optimizer).__name__ == cls


def test_an_optimizer_argument_it_does_not_take_is_one_line_naming_both():
    settings = TrainerSettings.from_config({"optimizer": {"_target_": "torch.optim.Adam", "nesterov": True}})
    with pytest.raises(
        ConfigError, match="trainer.optimizer._target_=torch.optim.Adam takes no argument nesterov"
    ):
        optimizer_factory(settings)


def test_a_config_dir_of_ones_own_is_checked_like_ours(user_models, harness_cli, tmp_path):
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "asks.yaml").write_text("_target_: mymodels.Asks\nname: asks\nhidden: 4\n")
    proc = harness_cli("train", "--config-dir", str(conf), "model=askz", "+debug=default")
    assert proc.returncode == 2 and "unknown model 'askz'" in proc.stderr and "asks" in proc.stderr
    proc = harness_cli(
        "train", f"hydra.searchpath=[file://{conf}]", "model=asks", "trainer.max_steps=2", "+debug=default"
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "results" / "runs").rglob("run.json")
    assert json.loads(path.read_text())["model"] == "asks" and "_asks_digits" in str(path)
