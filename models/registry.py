"""The one model registry: architectures register by name; build_model makes one for a data shape."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

# Filled by @register when models/__init__.py imports the architecture modules; nothing else writes it.
_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make the model buildable as `build_model(name, ...)` (and `model=name` in configs)."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(
                f"model name '{name}' is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})"
            )
        _REGISTRY[name] = cls
        return cls

    return add


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """An untrained `name` model for per-sample `input_shape` (no batch dim) and `num_classes` outputs.

    `kwargs` are the model's own options: `width` and `depth` for every model, plus its specific ones.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(available_models())}")
    return _REGISTRY[name](tuple(input_shape), num_classes, **kwargs)


def require_positive_int(key: str, value: object, example: int) -> int:
    """Config values arrive from the command line, so reject 0, negatives, floats and bools with a fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{key} must be a positive integer, got {value!r}; set e.g. {key}={example}")
    return value


def check_common(input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
    """The checks every model shares: the two scale knobs, the class count and a sane per-sample shape."""
    require_positive_int("model.width", width, 64)
    require_positive_int("model.depth", depth, 2)
    require_positive_int("num_classes", num_classes, 10)
    if not input_shape or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in input_shape):
        raise ValueError(
            f"input_shape must be positive sizes per sample without the batch dim, e.g. (1, 28, 28); "
            f"got {tuple(input_shape)}"
        )
