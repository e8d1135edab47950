"""One `harness train` job between its launcher and its training: the claim, the resume lookup, what a
failure leaves, and the exit code.

`run_job` is the whole path, driven by plain arguments (no Hydra): train.py's `hydra_main` only says where
the job is (`JobPlace`) and how to read its settings and train. The rules:

- with `resume=true` a job claims its configuration (harness.results.claims), then looks it up under the
  claim (harness.results.index): a configuration completed anywhere under the results directory is skipped,
  one a live launcher holds is skipped (or waited for, `claim_wait=true`);
- taking over the claim of a job that was killed, it clears what that job left: its run directory when it
  holds no record, temporary files, and an ensemble whose members' records were only partly written;
- bad input (a HarnessError) in a sweep is a `failed` record and the sweep goes on (unless fail_fast); alone,
  one line and exit 2. A crash in a sweep leaves a `failed` record too (before training no record existed:
  one is written); an interrupt exits 128 + the signal and keeps every member's record consistent.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, disk_full
from harness.interrupts import Interruption, interrupt_on_signals
from harness.results.claims import Claim, Holder, acquire
from harness.results.index import find_completed, mark_completed
from harness.results.schema import RunRecord
from harness.results.store import atomic_write_text, find_records, write_record
from harness.results.summary import note_claimed, note_resumed
from harness.results.validate import checked_record
from harness.settings import RunSettings
from harness.sweep import release_job_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlace:
    """Where a job runs and writes, as its launcher placed it."""

    output_dir: Path  # the job's run directory
    results_dir: Path  # paths.results_dir: where claims, the index and every record live
    digest: str  # the job's config_hash
    sweep: tuple[Path, int] | None = None  # (sweep directory, job number) in a multirun; None alone
    launcher_files: frozenset[str] = (
        frozenset()
    )  # what the launcher writes in output_dir (Hydra's .hydra, log)

    @property
    def sweeping(self) -> bool:
        return self.sweep is not None

    def name(self) -> str:
        return f"job {self.sweep[1]}" if self.sweep is not None else "the run"


@dataclass(frozen=True)
class JobSteps:
    """What the job does, given by its caller: read its settings (checked), train (and report what it
    trained), and describe a job that failed before training (a record for the sweep's table)."""

    read_settings: Callable[[], RunSettings]
    train: Callable[[RunSettings], list[RunRecord]]
    failed_record: Callable[[str], RunRecord]


def run_job(place: JobPlace, steps: JobSteps, *, fail_fast: bool) -> int:
    """Run one job as the module says; returns its exit code (0 also for a sweep job whose failure is
    recorded and lets the sweep go on)."""
    records: list[RunRecord] = []
    interruption = Interruption()  # replaced by the one the block yields
    try:
        with interrupt_on_signals() as interruption, ExitStack() as held:
            settings = steps.read_settings()  # checked before a claim or a lookup uses them
            if settings.resume and _nothing_to_train(place, settings, held):
                return 0
            records = steps.train(settings)
    except HarnessError as exc:
        if place.sweeping and not fail_fast:
            write_record(place.output_dir, steps.failed_record(str(exc)))
            log.error("%s failed: %s", place.name(), exc)
            return 0
        discard_unused_run_dir(place)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # before training started (the loop records one during training)
        settle_records(place.output_dir, place.results_dir)
        discard_unused_run_dir(place)
        print(f"error: {interrupted_before_training(exc, place.output_dir)}", file=sys.stderr)
        return interruption.exit_code
    except Exception as exc:
        if isinstance(exc, OSError) and disk_full(exc):
            return _out_of_space(place, exc, fail_fast)
        if not place.sweeping:
            raise  # alone: the traceback is the report (run_all recorded a crash during training)
        if not _records_in(place.output_dir):  # a crash before training: no record yet, so write one
            try:
                write_record(place.output_dir, steps.failed_record(f"{type(exc).__name__}: {exc}"))
            except OSError as unwritable:
                return _out_of_space(place, unwritable, fail_fast)
        log.exception("%s crashed; its record is in %s", place.name(), place.output_dir)
        if fail_fast:
            raise
        return 0
    finally:
        release_job_state()
    if any(record.status == "interrupted" for record in records):
        return interruption.exit_code
    if any(record.status != "completed" for record in records) and (not place.sweeping or fail_fast):
        return 1
    return 0


def _out_of_space(place: JobPlace, exc: OSError, fail_fast: bool) -> int:
    """A record that cannot be written: one line (the sweep's end names the job among those without a
    record, with the table of what completed). Exit 1 alone or with fail_fast; 0 lets a sweep go on."""
    where = exc.filename or place.output_dir
    message = (
        f"{place.name()} could not write its record in {where} ({exc.strerror or exc}); "
        "free space and relaunch: completed runs are kept and skipped"
    )
    if place.sweeping and not fail_fast:
        log.error(message)
        return 0
    print(f"error: {message}", file=sys.stderr)
    return 1


def _nothing_to_train(place: JobPlace, settings: RunSettings, held: ExitStack) -> bool:
    """Claim the job's configuration and look it up: True when it is another launcher's or already done (the
    job then leaves nothing but a note in its sweep); False with the claim held until the job ends."""
    claim = acquire(
        place.results_dir,
        place.digest,
        stale_s=settings.claim_stale_s,
        wait=settings.claim_wait,
        run_dir=place.output_dir,
    )
    if isinstance(claim, Holder):
        log.info("skipped: claimed by %s (resume=true; claim_wait=true waits)", claim)
        discard_unused_run_dir(place)
        if place.sweep is not None:
            note_claimed(*place.sweep, str(claim))
        return True
    held.enter_context(claim)  # released when the job ends, after its record and marker
    clear_left_behind(claim, place)
    # Looked up under the claim, once: a check before it could be outdated by another launcher finishing
    # the config meanwhile. O(1) while the index is reconciled (harness.results.index).
    done = find_completed(place.results_dir, place.digest)
    if done is None:
        return False
    log.info("skipped: this config already completed in %s (resume=true)", done)
    discard_unused_run_dir(place)
    if place.sweep is not None:
        note_resumed(*place.sweep, done)
    return True


def clear_left_behind(claim: Claim, place: JobPlace) -> None:
    """After taking over a killed job's claim: its run directory goes when it holds no record; its records
    are settled (a complete job gets its marker, a partly written ensemble is marked interrupted)."""
    gone = claim.taken_over
    if gone is None or gone.run_dir is None:
        return
    run_dir = Path(gone.run_dir)
    if not run_dir.is_dir() or run_dir.resolve() == place.output_dir.resolve():
        return
    for leftover in run_dir.rglob(".*.tmp"):
        leftover.unlink(missing_ok=True)
        log.warning("removed %s, a temporary file of a killed job", leftover)
    if not _records_in(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        log.warning("removed %s: the run directory of a killed job (%s), without a record", run_dir, gone)
        return
    settle_records(run_dir, place.results_dir)


def settle_records(run_dir: Path, results_dir: Path) -> None:
    """Make a job's records, written up to an interruption, say one consistent thing: all members
    completed (then the job is marked done, so resume finds it at once), or none counted as completed
    (members written are set `interrupted`: a relaunch re-trains them, each member one completed record)."""
    paths = _records_in(run_dir)
    records, contents = [], []
    for path in paths:
        try:
            contents.append(json.loads(path.read_text(encoding="utf-8")))
            records.append(checked_record(contents[-1]))
        except (OSError, ValueError, TypeError):
            return  # not ours to rewrite
    completed = [r for r in records if r.status == "completed"]
    if not completed:
        return
    size = completed[0].ensemble_size or 1
    indices = {r.ensemble_index or 0 for r in completed}
    if len(completed) == len(records) and indices >= set(range(size)):
        first = min(zip(records, paths, strict=True), key=lambda pair: pair[0].ensemble_index or 0)
        mark_completed(results_dir, first[0], first[1].parent)
        return
    for record, path, data in zip(records, paths, contents, strict=True):
        if record.status == "completed":
            data["status"] = "interrupted"
            data["error"] = (
                f"the job stopped before all {size} ensemble members' records were written; "
                "the relaunch trains every member again"
            )
            atomic_write_text(path, json.dumps(data, indent=2) + "\n")
            log.warning("%s: set interrupted (its ensemble's records were only partly written)", path)


def _records_in(run_dir: Path) -> list[Path]:
    # find_records walks with os.walk: another launcher may remove a run directory under it (rglob raised).
    return list(find_records(run_dir))


def discard_unused_run_dir(place: JobPlace) -> None:
    """Remove a run directory that holds only the launcher's own files, and the empty folders the launcher
    made above it inside the results directory: bad input leaves no half-written output."""
    output_dir, results_dir = place.output_dir, place.results_dir.resolve()
    if not output_dir.is_dir() or not {p.name for p in output_dir.iterdir()} <= place.launcher_files:
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    for parent in output_dir.resolve().parents:
        if parent == results_dir or results_dir not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()


def interrupted_before_training(exc: KeyboardInterrupt, output_dir: Path) -> str:
    """What an interrupt outside the training loop left behind, in one line."""
    written = _records_in(output_dir)
    # After training, between its records and its index marker: the records stand (resume reads them).
    outcome = f"its records are kept ({written[0]})" if written else "nothing was recorded"
    when = "while writing its results" if written else "before training started"
    return f"interrupted ({exc or 'SIGINT'}) {when}; {outcome}"
