"""Architectures only: they never know they are measured. Importing registers every model."""

from models import cnn, linear, mlp, ntk, resnet, transformer  # noqa: F401  (registration)
from models.registry import available_models, build_model, register

__all__ = ["available_models", "build_model", "register"]
