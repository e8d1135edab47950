"""Turning the trainer's device and precision settings into torch objects, with errors a user can act on."""

from __future__ import annotations

import platform
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from harness.errors import ConfigError
from harness.settings import PRECISIONS

# trainer.precision's names (harness.settings) to the dtypes they train in, in the same order.
DTYPES = dict(zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16), strict=True))


def resolve_device(name: str) -> torch.device:
    """auto → cuda when available, else cpu; an explicit cuda without CUDA is an error, not a fallback."""
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"trainer.device={name} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.device={name} but CUDA is not available here; use trainer.device=cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"trainer.device={name} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type != "cpu":
        raise ConfigError(f"trainer.device={name} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name not in PRECISIONS:
        raise ConfigError(f"trainer.precision={name} is unknown; use one of {', '.join(PRECISIONS)}")
    dtype = DTYPES[name]
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"trainer.precision=bf16 but {device_name(device)} lacks bf16; use fp16 or fp32")
    return dtype


def autocast(device: torch.device, dtype: torch.dtype, cache: bool = True) -> AbstractContextManager:
    """Mixed precision for bf16/fp16; fp32 runs without autocast. `cache=False` turns off autocast's
    weight-cast cache (it must be off while a CUDA graph is captured)."""
    if dtype is torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def device_name(device: torch.device) -> str:
    """The GPU's model name, or the CPU's model name for a cpu device."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model_name()


def cpu_model_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"
