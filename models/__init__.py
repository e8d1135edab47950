"""Architectures only: they never know they are measured. Importing registers every model."""

from harness.models import cnn, gru, linear, mlp, ntk, resnet, transformer  # noqa: F401  (registration)
from harness.models.registry import available_models, build_model, register

__all__ = ["available_models", "build_model", "register"]
