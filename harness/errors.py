"""Errors a user can fix: the CLI prints their message on one line and exits non-zero."""

import errno
import sys
from typing import NoReturn


def exit_with_error(message: str) -> NoReturn:
    """The one-line end of a command refused for bad input: `error: <message>` on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def one_line(exc: BaseException, *, keep: int = 1, from_end: bool = False) -> str:
    """An exception's message fit for a one-line error: its first (or, `from_end`, last) `keep` non-empty
    lines joined by '; ', or the exception's type name when it has no message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return "; ".join(lines[-keep:] if from_end else lines[:keep])


def disk_full(exc: OSError) -> bool:
    """The write failed for want of space: the disk is full, or the user's quota is spent."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class HarnessError(Exception):
    """Base class for problems with the user's input; the message names the problem and the fix."""


class ConfigError(HarnessError):
    """A configuration value is invalid (unknown name, out-of-range number, impossible device...)."""


class DataNotFoundError(HarnessError):
    """A dataset's files are missing; the message says where we looked and how to get them."""
