"""The scaling study's sweep presets: the grids the issue asks for, the epochs rules their comments state."""

import math
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

SWEEPS = Path(__file__).resolve().parents[1] / "conf" / "sweep"
# preset -> (runs, epochs as a function of the data fraction), as each preset's comment states the rule
PRESETS = {
    "study_fashion": (150, lambda f: 16 / f**0.25),
    "study_fashion_cpu": (192, lambda f: 8 / f**0.25),
    "study_mnist1d": (120, lambda f: 64 / math.sqrt(f)),
    "study_mnist1d_cpu": (192, lambda f: 64 / math.sqrt(f)),
}


def _params(name: str) -> dict[str, list]:
    params = yaml.safe_load((SWEEPS / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
    parser = OverridesParser.create()
    overrides = {key: parser.parse_override(f"{key}={value}") for key, value in params.items()}
    return {
        key: list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        for key, o in overrides.items()
    }


@pytest.mark.parametrize("name", PRESETS)
def test_grid_and_epochs_rule(name):
    runs, rule = PRESETS[name]
    params = _params(name)
    assert math.prod(len(values) for values in params.values()) == runs
    if name.endswith("_cpu"):  # tuned (issue 29): 3 learning rates
        assert params["seed"] == [0, 1] and len(params["trainer.optimizer.lr"]) == 3
    else:
        assert params["seed"] == [0, 1, 2]
    assert params["model"] == ["cnn", "mlp"] and len(params["model.width"]) >= 4
    assert len(params["scale"]) >= 4
    for pair in params["scale"]:
        assert pair["epochs"] == pytest.approx(rule(pair["fraction"]), rel=0.005)


@pytest.mark.parametrize(
    ("name", "data", "device"),
    [
        ("study_fashion", "fashion_mnist", "cuda"),
        ("study_fashion_cpu", "fashion_mnist", "cpu"),
        ("study_mnist1d", "mnist1d", "cuda"),
        ("study_mnist1d_cpu", "mnist1d", "cpu"),
    ],
)
def test_preset_composes_with_fraction_and_epochs_tied(compose_train, name, data, device):
    assert yaml.safe_load((SWEEPS / f"{name}.yaml").read_text())["trainer"]["device"] == device
    cfg = compose_train(f"+sweep={name}", "scale={fraction:0.25,epochs:3}")
    assert cfg.data.name == data and cfg.data.fraction == 0.25 and cfg.trainer.epochs == 3
