"""Errors a user can fix: the CLI prints their message on one line and exits non-zero."""


class HarnessError(Exception):
    """Base class for problems with the user's input; the message names the problem and the fix."""


class ConfigError(HarnessError):
    """A configuration value is invalid (unknown name, out-of-range number, impossible device...)."""


class DataNotFoundError(HarnessError):
    """A dataset's files are missing; the message says where we looked and how to get them."""
