"""Signals that stop a command at any moment: what they do and the exit code they leave.

Ctrl-C (SIGINT), `kill` and `scancel` (SIGTERM), a closed terminal (SIGHUP) and SLURM's time-limit warning
(SIGUSR1, `sbatch --signal=USR1@N`) all become a KeyboardInterrupt in the main thread: during training the
loop records the run as interrupted; before it, the command writes nothing. Either way it prints one line and
exits 128 + the signal's number, never a traceback and never killed by the signal itself. Light on purpose
(no torch): the console script installs it before anything else.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# SIGINT raises KeyboardInterrupt by itself; these would otherwise end the process without a record.
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)


@dataclass
class Interruption:
    """The signal that interrupted a run (SIGINT until another is caught); the exit code says which."""

    signum: int = signal.SIGINT

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def interrupt_on_signals() -> Iterator[Interruption]:
    """INTERRUPT_SIGNALS behave like Ctrl-C inside the block; yields the Interruption that says which came.
    Outside the main thread (a launcher's worker) signals cannot be handled, and nothing changes."""
    caught = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame):
        caught.signum = signum
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handler) for signum in INTERRUPT_SIGNALS}
    try:
        yield caught
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
