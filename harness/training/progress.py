"""How a run reports progress: a live rich bar on a terminal, plain log lines everywhere else."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the loop's row type; importing it here would pull torch into the CLI's start-up
    from harness.training.spec import CurveRow

log = logging.getLogger("harness.train")


class Progress(Protocol):
    """What the training loop tells its observer: the planned steps, each check, each evaluation."""

    def start(self, total_steps: int) -> None: ...
    def advance(self, steps: int, train_loss: float) -> None: ...
    def evaluated(self, row: CurveRow) -> None: ...
    def close(self) -> None: ...


class LogProgress:
    """One log line per evaluation, at `level` (sweeps log them at DEBUG to keep one line per job)."""

    def __init__(self, level: int = logging.INFO):
        self.level = level

    def start(self, total_steps: int) -> None:
        self.total = total_steps

    def advance(self, steps: int, train_loss: float) -> None:
        pass

    def evaluated(self, row: CurveRow) -> None:
        log.log(
            self.level,
            "step %d/%d  epoch %.2f  train loss %.4f  test error %.4f  (%.1f s training)",
            row.step,
            self.total,
            row.epoch,
            row.train_loss,
            row.test_error,
            row.train_time_s,
        )

    def close(self) -> None:
        pass


class RichProgress(LogProgress):
    """A bar with steps, loss, test error and ETA; used only when stdout is a terminal."""

    def start(self, total_steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        super().start(total_steps)
        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.task = self.bar.add_task("train", total=total_steps, status="")
        self.test_error = float("nan")
        self.bar.start()

    def advance(self, steps: int, train_loss: float) -> None:
        status = f"loss {train_loss:.4f}  test error {self.test_error:.4f}"
        self.bar.update(self.task, completed=steps, status=status)

    def evaluated(self, row: CurveRow) -> None:
        self.test_error = row.test_error

    def close(self) -> None:
        self.bar.stop()


def progress_for(interactive_run: bool) -> LogProgress:
    """A live bar for a single run on a terminal; log lines otherwise (DEBUG inside sweeps)."""
    if interactive_run and sys.stdout.isatty():
        return RichProgress()
    return LogProgress(logging.INFO if interactive_run else logging.DEBUG)
