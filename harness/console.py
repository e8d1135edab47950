"""Where rich tables go: the terminal's width on a terminal, and wide enough elsewhere that no row wraps."""

from __future__ import annotations

import sys

# Off a terminal rich assumes 80 columns and wraps every wider row; a pipe, a file or a log has no width.
PIPE_WIDTH = 1000


def table_console(**kwargs):
    """A rich Console for tables: the terminal's width on one; PIPE_WIDTH when stdout is not a terminal."""
    from rich.console import Console

    return Console(**kwargs) if sys.stdout.isatty() else Console(width=PIPE_WIDTH, **kwargs)
