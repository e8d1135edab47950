"""What a sweep needs beyond one run: per-job device and state, and the end-of-sweep table."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.results.collect import collect

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "model",
    "model_width",
    "model_depth",
    "data",
    "n_train",
    "seed",
    "status",
    "test_error",
    "train_time_s",
)


def assign_device(requested: str, job_num: int) -> str:
    """Hydra does not hand out GPUs: with several visible, job k of a sweep trains on GPU k mod n.

    Parallel workers (joblib) thus spread over the GPUs; an explicit cuda:N or cpu is left alone.
    """
    count = torch.cuda.device_count()
    if str(requested) in ("auto", "cuda") and count > 1:
        return f"cuda:{job_num % count}"
    return requested


def release_job_state() -> None:
    """Launchers reuse worker processes: free what one job cached so the next starts clean.

    (Seeds are set afresh by every run; the compile cache and CUDA allocator are process-wide.)
    """
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # Only a job that compiled imported torch._dynamo; touching it otherwise would import it (about a second).
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()


def summary_table(frame: pd.DataFrame) -> str:
    """The sweep's runs as a fixed-width text table (rich), sorted by the scale knobs."""
    from rich.console import Console
    from rich.table import Table

    columns = [c for c in SUMMARY_COLUMNS if c in frame.columns]
    table = Table(title=f"{len(frame)} runs")
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(column, justify="right" if numeric else "left")
    ordered = frame.sort_values(
        [c for c in ("model", "data", "model_width", "n_train", "seed") if c in columns]
    )
    for _, row in ordered.iterrows():
        table.add_row(*(_cell(row[c]) for c in columns))
    console = Console(width=120, record=True)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class CollectOnSweepEnd(Callback):
    """Hydra callback: at the end of a sweep, write runs.parquet/runs.csv into the sweep directory, print
    the summary table, and fail the command when a job failed or was interrupted."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        frame, parquet, _ = collect(sweep_dir)
        if frame.empty:
            log.info("sweep finished: no new runs in %s (all skipped by resume?)", sweep_dir)
            return
        print(summary_table(frame))
        log.info("sweep table: %s (and .csv)", parquet)
        bad = frame[frame["status"].isin(["failed", "interrupted"])]
        if len(bad):
            log.error("%d of %d runs failed or were interrupted; see their run.json", len(bad), len(frame))
            raise SystemExit(1)
