"""What a sweep needs beyond one run: per-job device and state, progress across its jobs, and the
end-of-sweep table of what every run cost."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.results.collect import collect
from harness.results.store import find_records, read_record
from harness.results.summary import RESUMED_DIR, SUMMARY_NAME, publish_summary

log = logging.getLogger(__name__)


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


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper makes of this sweep (its own expansion of the same overrides), or
    None when another sweeper runs it or the overrides cannot be expanded here."""
    sweeper = str(config.hydra.sweeper.get("_target_"))
    if not sweeper.endswith("BasicSweeper"):
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = config.hydra.sweeper.get("params")
        # The sweeper's params node is a mapping (key -> sweep string).
        params = (
            {} if params is None else cast("dict[str, Any]", OmegaConf.to_container(params, resolve=False))
        )
        arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except Exception:  # a glob or another plugin's syntax: progress then counts without a total
        return None


class SweepProgress:
    """Counts the jobs of a sweep from what they leave in its directory (a record, or a resume note), so it
    sees the basic launcher's jobs and joblib's workers alike; logs a line whenever the count changes, and
    every `heartbeat_s` meanwhile, with done/total, failed, resumed and an ETA (elapsed / trained × left)."""

    def __init__(self, sweep_dir: Path, total: int | None, *, poll_s: float = 1.0, heartbeat_s: float = 30.0):
        self.sweep_dir, self.total = Path(sweep_dir), total
        self.poll_s, self.heartbeat_s = poll_s, heartbeat_s
        self.started = time.monotonic()
        self._statuses: dict[Path, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def counts(self) -> dict[str, int]:
        """done (jobs with a record or a resume note), failed (failed or interrupted), resumed."""
        jobs: dict[Path, str] = {}
        for path in find_records(self.sweep_dir) if self.sweep_dir.is_dir() else ():
            job = self.sweep_dir / path.relative_to(self.sweep_dir).parts[0]
            status = self._statuses.get(path)
            if status is None:
                try:
                    status = self._statuses[path] = read_record(path).status
                except (OSError, ValueError, TypeError):
                    continue  # not a finished record yet
            if jobs.get(job) not in ("failed", "interrupted"):  # an ensemble job fails if any member does
                jobs[job] = status
        resumed = len(list((self.sweep_dir / RESUMED_DIR).glob("*.json")))
        failed = sum(status in ("failed", "interrupted") for status in jobs.values())
        return {"done": len(jobs) + resumed, "failed": failed, "resumed": resumed}

    def line(self, counts: dict[str, int]) -> str:
        done, total = counts["done"], self.total
        elapsed = time.monotonic() - self.started
        text = f"sweep: {done}/{total if total is not None else '?'} jobs done"
        text += f", {counts['failed']} failed, {counts['resumed']} resumed (skipped)"
        text += f", {_duration(elapsed)} elapsed"
        trained = done - counts["resumed"]
        if total is not None and trained > 0 and done < total:
            text += f", ETA {_duration(elapsed / trained * (total - done))}"
        return text

    @property
    def watching(self) -> bool:
        """Whether a thread watches the sweep directory (started by `start`)."""
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        last, last_line = None, time.monotonic()
        while not self._stop.wait(self.poll_s):
            counts = self.counts()
            if counts != last or time.monotonic() - last_line >= self.heartbeat_s:
                log.info(self.line(counts))
                last, last_line = counts, time.monotonic()


def _trains_in_this_process(config: DictConfig) -> bool:
    """Whether the sweep's launcher runs its jobs in the launching process (Hydra's basic launcher)."""
    return str(config.hydra.launcher.get("_target_")).endswith("BasicLauncher")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class CollectOnSweepEnd(Callback):
    """Hydra callback: progress across the sweep's jobs while it runs; at its end, runs.parquet/runs.csv and
    summary.md in the sweep directory, the summary table printed, and the command failed when a job failed
    or was interrupted. (Launcher-side hooks only: with joblib the job hooks run in the workers.)"""

    def __init__(self) -> None:
        self.progress: SweepProgress | None = None

    def __getstate__(self) -> dict[str, Any]:
        # joblib pickles the launcher's callbacks into its workers: a worker's copy watches nothing.
        return {**self.__dict__, "progress": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.progress = SweepProgress(Path(config.hydra.sweep.dir), planned_jobs(config))
        # The basic launcher trains in this very process: no watching thread beside the measured runs, a
        # line after each job instead. Other launchers train elsewhere; here a thread watches the records.
        if not _trains_in_this_process(config):
            self.progress.start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        # Called where the job ran: in this process for the basic launcher (the only case with no thread).
        if self.progress is not None and not self.progress.watching:
            log.info(self.progress.line(self.progress.counts()))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.progress is not None and self.progress.watching:  # else the last job's end said it
            self.progress.stop()
            log.info(self.progress.line(self.progress.counts()))
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        frame, parquet, _ = collect(sweep_dir)
        frame = publish_summary(sweep_dir, frame, sweep_dir)
        if frame.empty:
            log.info("sweep finished: no runs in %s", sweep_dir)
            return
        log.info("sweep table: %s (and .csv); summary: %s", parquet, sweep_dir / SUMMARY_NAME)
        bad = frame[frame["status"].isin(["failed", "interrupted"])]
        if len(bad):
            log.error("%d of %d runs failed or were interrupted; see their run.json", len(bad), len(frame))
            raise SystemExit(1)
