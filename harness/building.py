"""Turning a `model` config node into a module: a registered architecture or any importable nn.Module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness.errors import ConfigError, HarnessError, one_line
from harness.models import available_models, build_model
from harness.plugins import accepts, checked_arguments, resolve
from harness.settings import label_of, plain

# What the harness hands a model's constructor when it has parameters of these names (and nothing else).
PROVIDED = ("input_shape", "num_classes")


def model_label(cfg_model: Mapping[str, Any] | None, qualified: bool = False) -> str:
    """The model's name in records, run directories and fits: model.name, else the target's last component;
    `qualified`: the whole target path instead (harness measure's report of an arbitrary module)."""
    cfg_model = cfg_model or {}
    target, name = cfg_model.get("_target_"), cfg_model.get("name")
    if qualified and target and not name:
        return str(target)
    return label_of(name, target)


def build_model_from_config(
    cfg_model: Mapping[str, Any] | None, input_shape: tuple[int, ...], num_classes: int
) -> torch.nn.Module:
    """`model._target_` (any importable class or factory, its arguments beside it) wins over `model.name`
    (a registered model).

    Registered models get the per-sample `input_shape` and `num_classes`; a `_target_` gets them only for
    constructor parameters of those names. Construction errors become one-line ConfigErrors naming the model.
    """
    kwargs = dict(plain(cfg_model) or {})  # a DictConfig (harness measure) or the settings' plain mapping
    target = kwargs.pop("_target_", None)
    name = kwargs.pop("name", None)
    if target:
        return _build_target(target, kwargs, tuple(input_shape), num_classes)
    if name is None:
        raise ConfigError(
            f"no model chosen; pass model=<{'|'.join(available_models())}> or "
            "model=custom model._target_=pkg.module.Class"
        )
    try:
        return build_model(name, tuple(input_shape), num_classes, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model={name}: {exc}") from None


def _build_target(
    target: str, kwargs: dict[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> torch.nn.Module:
    """A user's class or factory, called with its own arguments plus what it asks for of PROVIDED."""
    label = f"model._target_={target}"
    build = resolve(target, "model")
    # Only where the constructor names the parameter: the harness passes it, so a value here would be a
    # second one. A **kwargs factory (torchvision's resnet18) takes it from the config, as given.
    given = [key for key in PROVIDED if key in kwargs and accepts(build, key)]
    if given:
        raise ConfigError(
            f"{label}: {', '.join(given)} come from the data; remove model.{given[0]} (the harness passes it "
            "to a constructor with a parameter of that name)"
        )
    arguments = checked_arguments(build, kwargs, label, provided=PROVIDED)
    shapes = {"input_shape": input_shape, "num_classes": num_classes}
    arguments.update({key: value for key, value in shapes.items() if accepts(build, key)})
    try:
        module = build(**arguments)
    except HarnessError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{label} could not be built ({type(exc).__name__}: {one_line(exc, from_end=True)}); check its "
            "arguments (+model.<name>=<value>)"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(
            f"{label} returned {type(module).__name__}, not a torch.nn.Module; give a class or a factory "
            "that builds an nn.Module"
        )
    return module
