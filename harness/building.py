"""Turning a `model` config node into a module: a registered architecture or any importable nn.Module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from harness.errors import ConfigError, one_line
from harness.models import available_models, build_model
from harness.settings import plain


def model_label(cfg_model: Mapping[str, Any]) -> str:
    return cfg_model.get("_target_") or cfg_model.get("name") or "?"


def build_model_from_config(
    cfg_model: Mapping[str, Any] | None, input_shape: tuple[int, ...], num_classes: int
) -> torch.nn.Module:
    """`model._target_` (any importable class or factory, kwargs beside it) wins over `model.name`.

    Registered models get the per-sample `input_shape` and `num_classes`; a `_target_` model gets only
    its own kwargs. Construction errors become one-line ConfigErrors naming the model.
    """
    kwargs = dict(plain(cfg_model) or {})  # a DictConfig (harness measure) or the settings' plain mapping
    target = kwargs.pop("_target_", None)
    name = kwargs.pop("name", None)
    if target:
        try:
            module = instantiate({"_target_": target, **kwargs})
        except InstantiationException as exc:
            reason = one_line(exc, from_end=True)  # Hydra puts the underlying cause last
            raise ConfigError(
                f"model._target_={target} could not be built ({reason}); give an importable nn.Module class "
                "or factory, and its arguments as +model.<name>=<value>"
            ) from None
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(
                f"model._target_={target} returned {type(module).__name__}, not a torch.nn.Module"
            )
        return module
    if name is None:
        raise ConfigError(
            f"no model chosen; pass model=<{'|'.join(available_models())}> or model._target_=pkg.module.Class"
        )
    try:
        return build_model(name, tuple(input_shape), num_classes, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model={name}: {exc}") from None
