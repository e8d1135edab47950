"""harness.settings: one typed object per config group, its defaults the YAML's, read and checked once."""

from __future__ import annotations

import dataclasses
from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from harness.errors import ConfigError
from harness.settings import (
    TRAINER_MODES,
    DataSettings,
    EnergySettings,
    FitSettings,
    HardwareSettings,
    MeasureSettings,
    ModelMeasureSettings,
    RunSettings,
    TrainerSettings,
    field_type,
    kind,
)
from harness.training.modes import MODES

GROUPS = {
    "trainer": TrainerSettings,
    "data": DataSettings,
    "measure": MeasureSettings,
    "hardware": HardwareSettings,
    "energy": EnergySettings,
}


def _compose(config_name: str, *overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="harness.conf", version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def _options(group: str) -> list[str]:
    folder = files("harness.conf").joinpath(group)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def test_the_composed_defaults_are_the_classes_defaults():
    """One source for every default: what `harness train` composes is what `TrainerSettings()` etc. hold,
    group by group and key by key (the default dataset is digits)."""
    settings = RunSettings.from_config(_compose("train"))
    defaults = RunSettings()
    for item in dataclasses.fields(RunSettings):
        if item.name != "model":  # the model group is the architecture's arguments, not a settings class
            assert getattr(settings, item.name) == getattr(defaults, item.name), item.name
    assert FitSettings.from_config(_compose("fit")) == FitSettings()
    measure, measure_defaults = ModelMeasureSettings.from_config(_compose("measure")), ModelMeasureSettings()
    for item in dataclasses.fields(ModelMeasureSettings):
        if item.name != "model":
            assert getattr(measure, item.name) == getattr(measure_defaults, item.name), item.name


def test_keys_only_a_preset_sets_default_as_that_preset_says():
    """The closed-form keys live in trainer/lasso.yaml, not in trainer/default.yaml: the class's defaults
    for the lasso's knobs are that file's."""
    lasso = TrainerSettings.from_config(_compose("train", "trainer=lasso", "data=sparse_regression").trainer)
    defaults = TrainerSettings()
    for key in ("alpha_rule", "max_iter", "tol"):
        assert getattr(lasso, key) == getattr(defaults, key), key


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_option_of_every_group_reads_into_its_class(group):
    """No YAML key without a field (a strict class refuses unknown keys), no value of the wrong type."""
    for option in _options(group):
        overrides = [f"{group}={option}"]
        if group == "trainer" and option in ("lasso", "least_squares"):
            overrides.append("data=sparse_regression")
        settings = RunSettings.from_config(_compose("train", *overrides))
        assert isinstance(getattr(settings, group), GROUPS[group])


def test_every_trainer_mode_has_a_trainer():
    assert tuple(MODES) == TRAINER_MODES


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"epochs": "abc"}, "trainer.epochs must be a number, got 'abc'"),
        ({"batch_size": 2.5}, "trainer.batch_size must be an integer, got 2.5"),
        ({"batch_size": True}, "trainer.batch_size must be an integer, got True"),
        ({"compile": 1}, "trainer.compile must be true or false, got 1"),
        ({"max_steps": "ten"}, "trainer.max_steps must be an integer or null"),
        ({"schedule": {"name": "step"}}, "trainer.schedule.name must be one of constant, cosine, linear"),
        ({"learning_rate": 0.1}, "unknown trainer setting(s): learning_rate"),
        ({"mode": "graph", "compile": True}, "trainer.compile=true works with trainer.mode=eager only"),
        ({"ensemble_size": 3}, "trainer.ensemble_size=3 needs trainer.mode=ensemble"),
        ({"mode": "closed_form"}, "trainer.solver must be one of least_squares, lasso"),
        ({"cpu_threads": 0}, "trainer.cpu_threads=0 is not a thread count"),
    ],
)
def test_bad_trainer_settings_are_one_line_errors(node, message):
    with pytest.raises(ConfigError) as caught:
        TrainerSettings.from_config(node)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_values_are_typed_once_lists_become_tuples_and_ints_floats():
    settings = FitSettings.from_config(
        {"x": ["network_operations", "hardware_burden"], "parametric": {"huber_delta": 1}}
    )
    assert settings.x == ("network_operations", "hardware_burden") and settings.huber_delta == 1.0
    assert isinstance(settings.huber_delta, float)
    assert FitSettings.from_config({"frontier": "both"}).point_sets == ("all", "frontier")
    with pytest.raises(ConfigError, match="frontier must be true or false or both, got 1"):
        FitSettings.from_config({"frontier": 1})  # 1 == True in Python, but not a choice here


def test_fit_reads_its_nested_keys_into_flat_fields():
    cfg = _compose(
        "fit", "parametric.bootstrap=50", "filter.model=[mlp,cnn]", "extrapolation.flop_per_usd=1e17"
    )
    settings = FitSettings.from_config(cfg)
    assert settings.bootstrap == 50 and settings.models == ("mlp", "cnn") and settings.flop_per_usd == 1e17


def test_energy_defaults_price_the_run_like_the_cli():
    """EnergySettings() once had no electricity price while the CLI had 0.146 USD/kWh."""
    assert EnergySettings().electricity_price_usd_per_kwh == 0.146
    assert EnergySettings().electricity_price_source


@pytest.mark.parametrize(
    ("root", "key", "expected"),
    [
        (RunSettings, "trainer.max_steps", "number"),
        (RunSettings, "trainer.target_error", "number"),
        (RunSettings, "trainer.compile", "boolean"),
        (RunSettings, "trainer.schedule.warmup_fraction", "number"),
        (RunSettings, "energy.pue", "number"),
        (RunSettings, "claim_stale_s", "number"),
        (RunSettings, "paths.results_dir", None),
        (RunSettings, "trainer.mode", None),
        (RunSettings, "trainer.cpu_threads", None),  # auto or a number: its check is the class's
        (FitSettings, "frontier", None),  # false, true or both
        (FitSettings, "parametric.bootstrap", "number"),
    ],
)
def test_preflight_kinds_come_from_the_types(root, key, expected):
    hint = field_type(root, key)
    assert hint is not None
    assert kind(hint) == expected


def test_open_mappings_and_unknown_keys_have_no_type():
    assert field_type(RunSettings, "trainer.optimizer.lr") is None, "an optimizer's arguments are its own"
    assert field_type(RunSettings, "model.width") is None
    assert field_type(RunSettings, "trainer.no_such_key") is None
