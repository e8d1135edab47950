"""What a sweep needs beyond one run: per-job device and state, progress across its jobs, and the
end-of-sweep table of what every run cost."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.errors import disk_full
from harness.results.collect import collect
from harness.results.index import reconcile
from harness.results.provenance import GIT_STATE_ENV, pinned_git_state
from harness.results.store import find_records, load, read_record
from harness.results.summary import (
    CLAIMED_DIR,
    RESUMED_DIR,
    SUMMARY_NAME,
    noted_jobs,
    publish_summary,
)

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
    if not sweeper.endswith(("BasicSweeper", "HarnessSweeper")):  # the harness sweeper makes the same jobs
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
        # Absolute: a job's directory (hydra.runtime.output_dir, absolute) is placed by its path under it.
        self.sweep_dir, self.total = Path(os.path.abspath(sweep_dir)), total
        self.poll_s, self.heartbeat_s = poll_s, heartbeat_s
        self.started = time.monotonic()
        self._statuses: dict[Path, str] = {}
        self._jobs: dict[Path, str] = {}  # job directory -> its status (failed if any member's record is)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def counts(self) -> dict[str, int]:
        """done (jobs with a record, or a note that resume skipped them or another launcher held them),
        failed (failed or interrupted), resumed: from every record in the sweep directory."""
        self._jobs = {}
        self._read(find_records(self.sweep_dir) if self.sweep_dir.is_dir() else ())
        return self._tally()

    def counts_after(self, run_dir: Path) -> dict[str, int]:
        """`counts()` once one more job has ended in `run_dir`, reading only that job's records: the line
        the basic launcher logs after each job, which a walk of the whole sweep directory would make grow
        with the sweep (about 70 ms a job at 1,000 jobs)."""
        run_dir = Path(os.path.abspath(run_dir))
        self._read(find_records(run_dir) if run_dir.is_dir() else ())
        return self._tally()

    def _read(self, records: Iterable[Path]) -> None:
        for path in records:
            try:
                job = self.sweep_dir / path.relative_to(self.sweep_dir).parts[0]
            except ValueError:  # a job directory outside the sweep directory (hydra.sweep.subdir absolute)
                continue
            status = self._statuses.get(path)
            if status is None:
                try:
                    status = self._statuses[path] = read_record(path).status
                except (OSError, ValueError, TypeError):
                    continue  # not a finished record yet, or not a record
            # An ensemble job fails if any member does.
            if self._jobs.get(job) not in ("failed", "interrupted"):
                self._jobs[job] = status

    def _tally(self) -> dict[str, int]:
        resumed = len(noted_jobs(self.sweep_dir, RESUMED_DIR))
        claimed = len(noted_jobs(self.sweep_dir, CLAIMED_DIR))
        failed = sum(status in ("failed", "interrupted") for status in self._jobs.values())
        return {"done": len(self._jobs) + resumed + claimed, "failed": failed, "resumed": resumed}

    def line(self, counts: dict[str, int]) -> str:
        done, total = counts["done"], self.total
        elapsed = time.monotonic() - self.started
        text = f"sweep: {done}/{total if total is not None else '?'} jobs done"
        if counts.get("no_record"):
            text += (
                f", {counts['failed'] + counts['no_record']} failed ({counts['no_record']} without a record)"
            )
        else:
            text += f", {counts['failed']} failed"
        text += f", {counts['resumed']} resumed (skipped)"
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


def job_number(sweep_dir: Path, run_dir: str | Path) -> int | None:
    """The sweep job a run directory belongs to (its first folder below the sweep, `<num>_<model>_<data>`)."""
    try:
        head = Path(run_dir).resolve().relative_to(Path(sweep_dir).resolve()).parts[0]
    except (ValueError, IndexError):
        return None
    number = head.split("_", 1)[0]
    return int(number) if number.isdigit() else None


def job_label(sweep_dir: Path, number: int) -> str:
    """`job N (its overrides)`, from the .hydra/overrides.yaml Hydra wrote in the job's directory."""
    for folder in sorted(Path(sweep_dir).glob(f"{number}_*")) + [Path(sweep_dir) / str(number)]:
        overrides = folder / ".hydra" / "overrides.yaml"
        if overrides.is_file():
            try:
                values = OmegaConf.to_container(OmegaConf.load(overrides))
            except Exception:  # a damaged file: the number alone still names the job
                break
            if isinstance(values, list) and values:
                return f"job {number} ({' '.join(str(v) for v in values)})"
    return f"job {number}"


def jobs_without_record(sweep_dir: Path, frame: pd.DataFrame, total: int | None) -> list[int]:
    """Jobs of the sweep that left neither a record nor a note (resumed, claimed elsewhere): killed or
    crashed where nothing could be written. Counted over the planned jobs, or, without a total, over the
    job directories Hydra made."""
    sweep_dir = Path(sweep_dir)
    if total is not None:
        planned = set(range(total))
    else:
        planned = {
            n for n in (job_number(sweep_dir, p) for p in sweep_dir.iterdir() if p.is_dir()) if n is not None
        }
    recorded = {job_number(sweep_dir, d) for d in frame["run_dir"]} if "run_dir" in frame.columns else set()
    noted = noted_jobs(sweep_dir, RESUMED_DIR) | noted_jobs(sweep_dir, CLAIMED_DIR)
    return sorted(planned - recorded - noted)


def failure_report(sweep_dir: Path, frame: pd.DataFrame, missing: list[int]) -> str | None:
    """The sweep's last line when a job failed: each failed job named with its overrides and error."""
    failed = frame["status"].isin(["failed", "interrupted"]) if "status" in frame.columns else False
    if "resumed" in frame.columns:
        failed = failed & ~frame["resumed"].astype(bool)
    bad = frame.loc[pd.Series(failed, index=frame.index, dtype=bool)]
    named = []
    for run_dir, status, error in zip(
        bad["run_dir"],
        bad["status"],
        bad["error"] if "error" in bad.columns else [None] * len(bad),
        strict=True,
    ):
        number = job_number(sweep_dir, run_dir)
        who = job_label(sweep_dir, number) if number is not None else str(run_dir)
        named.append(f"{who} {status}: {error or 'see its run.json'} [{Path(run_dir) / 'run.json'}]")
    named += [
        f"{job_label(sweep_dir, n)} left no record (killed or crashed before writing it)" for n in missing
    ]
    if not named:
        return None
    return f"{len(named)} job(s) of the sweep failed: " + "; ".join(named)


class CollectOnSweepEnd(Callback):
    """Hydra callback: at the sweep's start, the resume index reconciled once (so every job's lookup is
    O(1)) and git read once for every job's provenance; progress across the sweep's jobs while it runs; at
    its end, runs.parquet/runs.csv and summary.md in the sweep directory, the summary table printed, and the
    command failed, naming each failed job, when a job failed, was interrupted or left no record. (Launcher-
    side hooks only: with joblib the job hooks run in the workers.)"""

    def __init__(self) -> None:
        self.progress: SweepProgress | None = None
        self._git_env: str | None = None
        self._heap_frozen = False

    def __getstate__(self) -> dict[str, Any]:
        # joblib pickles the launcher's callbacks into its workers: a worker's copy watches nothing.
        return {**self.__dict__, "progress": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.progress = SweepProgress(Path(config.hydra.sweep.dir), planned_jobs(config))
        self._git_env = os.environ.get(GIT_STATE_ENV)
        os.environ[GIT_STATE_ENV] = pinned_git_state()  # inherited by the jobs, their workers and tasks
        results_dir = Path(str(config.paths.results_dir))
        if config.get("resume", True) and results_dir.is_dir():
            # Records copied in, or written by jobs killed before their marker: found once here, by
            # reading only the records the catalog does not hold, not once per job.
            reconcile(results_dir)
        # The basic launcher trains in this very process: no watching thread beside the measured runs, a
        # line after each job instead. Other launchers train elsewhere; here a thread watches the records.
        if not _trains_in_this_process(config):
            self.progress.start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        # Called where the job ran: in this process for the basic launcher (the only case with no thread).
        if self.progress is not None and not self.progress.watching:
            log.info(self.progress.line(self.progress.counts_after(Path(config.hydra.runtime.output_dir))))
            if not self._heap_frozen:
                # After its first job, this process has imported what jobs use (counting, data, models).
                # Frozen, it is no longer walked by the garbage collector's full passes, which then see
                # only what later jobs leave (about a thousand objects each) instead of some 140,000 (tens
                # of milliseconds, one every few jobs). harness.cli unfreezes at the command's end.
                gc.collect()
                gc.freeze()
                self._heap_frozen = True

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._git_env is None:
            os.environ.pop(GIT_STATE_ENV, None)
        else:
            os.environ[GIT_STATE_ENV] = self._git_env
        if self.progress is not None and self.progress.watching:
            self.progress.stop()
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        problem = None
        try:
            frame, parquet, _ = collect(sweep_dir)
        except OSError as exc:  # a full disk: what completed is still read and shown, nothing half-written
            frame, parquet, problem = load(sweep_dir), None, exc
        missing = jobs_without_record(sweep_dir, frame, self.progress.total if self.progress else None)
        if self.progress is not None:
            log.info(self.progress.line({**self.progress.counts(), "no_record": len(missing)}))
        try:
            frame = publish_summary(sweep_dir, frame, sweep_dir)
        except OSError as exc:
            problem = problem or exc
        if frame.empty and not missing:
            log.info("sweep finished: no runs in %s", sweep_dir)
        elif parquet is not None:
            log.info("sweep table: %s (and .csv); summary: %s", parquet, sweep_dir / SUMMARY_NAME)
        report = failure_report(sweep_dir, frame, missing)
        if problem is not None:
            log.error(_write_problem(problem, sweep_dir) + (f"; {report}" if report else ""))
            raise SystemExit(1)
        if report is not None:
            log.error(report)
            raise SystemExit(1)


def _write_problem(exc: OSError, sweep_dir: Path) -> str:
    why = "the disk is full" if disk_full(exc) else (exc.strerror or str(exc))
    return (
        f"could not write the sweep's tables in {sweep_dir} ({why}); the table above lists what completed: "
        "free space and run `harness collect` on it"
    )
