"""The example inputs a model is counted and timed on: one float tensor of `input_shape`, or named inputs.

Named inputs (`harness measure +inputs.NAME='{shape:[..],dtype:..,low:..,high:..}'`) are passed to the
model's forward as keyword arguments, in the order given: token ids for a language model, an attention
mask, an encoder-decoder's decoder ids. Integer (and bool) inputs are drawn uniformly from [low, high)
(`high` is required: one past the largest id, the vocabulary size for token ids); float inputs from a
standard normal, or uniformly from [low, high) when both are given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from harness.errors import ConfigError

_SPEC_KEYS = ("shape", "dtype", "low", "high")
_EXAMPLE = "+inputs.input_ids='{shape:[1,128],dtype:int64,high:30522}'"


@dataclass(frozen=True)
class InputSpec:
    """One input: its shape (batch included), dtype, and the range its values are drawn from."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: float | None = None
    high: float | None = None

    @property
    def integral(self) -> bool:
        return not (self.dtype.is_floating_point or self.dtype.is_complex)

    def with_batch(self, batch_dim: int, batch_size: int) -> InputSpec:
        shape = (*self.shape[:batch_dim], batch_size, *self.shape[batch_dim + 1 :])
        return InputSpec(shape, self.dtype, self.low, self.high)

    def make(self, device: torch.device) -> torch.Tensor:
        if self.integral:
            low = int(self.low or 0)
            values = torch.randint(low, int(self.high), self.shape, device=device)
            return values.to(self.dtype)
        if self.low is not None and self.high is not None:
            return torch.empty(self.shape, dtype=self.dtype, device=device).uniform_(self.low, self.high)
        return torch.randn(self.shape, dtype=self.dtype, device=device)


def _dtype(name: Any, where: str) -> torch.dtype:
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"{where}.dtype={name} is not a torch dtype; e.g. dtype:int64 or dtype:float32")
    return dtype


def _shape(value: Any, where: str) -> tuple[int, ...]:
    shape = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(shape) < 1 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ConfigError(
            f"{where}.shape={value} is not a shape of positive ints, batch first; e.g. shape:[1,128]"
        )
    return shape


def parse_inputs(inputs: Mapping[str, Any]) -> dict[str, InputSpec]:
    """The named inputs of the config, checked: each a mapping of shape (required), dtype, low, high."""
    specs = {}
    for name, raw in inputs.items():
        where = f"inputs.{name}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}={raw} is not a mapping of shape, dtype, low, high; e.g. {_EXAMPLE}")
        unknown = sorted(set(raw) - set(_SPEC_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; an input takes {', '.join(_SPEC_KEYS)}"
            )
        if "shape" not in raw:
            raise ConfigError(f"{where} has no shape; e.g. {_EXAMPLE}")
        spec = InputSpec(
            _shape(raw["shape"], where),
            _dtype(raw.get("dtype", "float32"), where),
            raw.get("low"),
            raw.get("high"),
        )
        for bound in ("low", "high"):
            value = getattr(spec, bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{where}.{bound}={value} is not a number")
        if spec.integral and spec.high is None:
            raise ConfigError(
                f"{where} is {str(spec.dtype).removeprefix('torch.')}: give high, one past the largest value "
                f"(for token ids the vocabulary size); e.g. {_EXAMPLE}"
            )
        if spec.high is not None and spec.high <= (spec.low or 0):
            raise ConfigError(f"{where}: high={spec.high} must exceed low={spec.low or 0}")
        specs[name] = spec
    return specs


def make_inputs(specs: Mapping[str, InputSpec] | InputSpec, device: torch.device) -> Any:
    """A tensor for one positional input, or a {name: tensor} mapping for named ones: count_flops takes
    both."""
    if isinstance(specs, InputSpec):
        return specs.make(device)
    return {name: spec.make(device) for name, spec in specs.items()}


def call(model: torch.nn.Module, inputs: Any) -> Any:
    """model(inputs), or model(**inputs) for named inputs."""
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
