"""Resume index: which result-relevant configs already have a completed run under a results directory.

A run's `config_hash` digests its resolved config minus the keys that do not change its result (output
paths, resume/fail-fast switches). The records are the truth; the index is a cache of them. Completing a
run drops a marker `<results_dir>/.index/<hash>.json` (atomic write, one file per hash: concurrent jobs never
share a file). A marker is trusted only once its record agrees.

A configuration without a marker (every new job) is decided without reading the tree: the index is
*reconciled* with the records (through the catalog, harness.results.catalog, which opens only records it did
not hold), which writes every completed job into 256 small shards `.index/jobs/<first 2 hash chars>.json`
and stamps `.index/reconciled`. While the stamp is there, a lookup reads the job's marker or its one shard
and checks the record named: O(1) in files read, whatever the size of the tree. What can put a completed
record where neither points: a job killed between its record and its marker, a tree copied in, an index
deleted. Reconciliation catches all three and runs when the stamp is missing (a deleted index, a tree copied
without its hidden folders), when what the index says disagrees with a record, at every sweep's start
(harness.sweep) and with `harness collect --reindex`. Jobs on other nodes write their markers before they
release their claims, so a running sweep sees them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.results.catalog import catalog_frame, iter_rows
from harness.results.schema import RunRecord
from harness.results.store import RECORD_NAME, atomic_write_text, read_record

INDEX_DIR = ".index"
RECONCILED = "reconciled"  # the stamp: the index agrees with every record as of its time
SHARDS_DIR = "jobs"  # .index/jobs/<2 hash characters>.json: hash -> run dir of every job found completed

log = logging.getLogger(__name__)
# Where outputs go, how a launch behaves, how many CPU threads do the work, and the user's own labels
# (`+tags.<name>=<value>`): none changes what is trained.
NOT_RESULT_RELEVANT = (
    "paths",
    "resume",
    "fail_fast",
    "claim_wait",
    "claim_stale_s",
    "trainer.cpu_threads",
    "tags",
)


def config_hash(config: dict[str, Any]) -> str:
    relevant = _without(config, NOT_RESULT_RELEVANT)
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _without(config: dict[str, Any], dotted_keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `config` without the (dotted) keys, copying only the nodes on their paths."""
    config = dict(config)
    for key in dotted_keys:
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            child = node.get(name)
            if not isinstance(child, dict):
                break
            node[name] = node = dict(child)
        else:
            node.pop(leaf, None)
    return config


def mark_completed(results_dir: Path, record: RunRecord, run_dir: Path) -> None:
    """Point the record's hash at its run directory (stored relative, so a moved tree still resolves)."""
    _write_marker(Path(results_dir), str(record.config_hash), record.run_id, Path(run_dir))


def _write_marker(results_dir: Path, digest: str, run_id: str, run_dir: Path) -> None:
    results_dir = results_dir.resolve()
    run_dir = run_dir.resolve()
    where = str(run_dir.relative_to(results_dir)) if results_dir in run_dir.parents else str(run_dir)
    marker = {"run_id": run_id, "run_dir": where}
    path = _marker(results_dir, digest)
    atomic_write_text(path, json.dumps(marker) + "\n")


def _marked(results_dir: Path, digest: str) -> Path | None:
    """The run directory the marker of `digest` points at, when its record there is a completed run of it."""
    try:
        where = json.loads(_marker(results_dir, digest).read_text())["run_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _agrees(results_dir, digest, where)


def _agrees(results_dir: Path, digest: str, where: Any) -> Path | None:
    """results_dir / where, when the record there is a completed run of `digest`."""
    try:
        run_dir = results_dir / str(where)
        record = read_record(run_dir / RECORD_NAME)
    except (OSError, ValueError, TypeError):
        return None
    return run_dir if record.status == "completed" and record.config_hash == digest else None


def _marker(results_dir: Path, digest: str) -> Path:
    """The marker file of one completed configuration."""
    return results_dir / INDEX_DIR / f"{digest}.json"


def _shard(results_dir: Path, digest: str) -> Path:
    return results_dir / INDEX_DIR / SHARDS_DIR / f"{digest[:2]}.json"


def _in_shard(results_dir: Path, digest: str) -> str | None:
    """Where the last reconciliation found `digest` completed (None: it did not)."""
    try:
        entry = json.loads(_shard(results_dir, digest).read_text()).get(digest)
    except (OSError, ValueError, AttributeError):
        return None
    return None if entry is None else str(entry)


def find_completed(results_dir: Path, digest: str) -> Path | None:
    """The run directory of a completed run with this hash, or None. Without reading the tree while the
    index is reconciled (see the module): the job's own marker, else its entry in one shard of the
    reconciled index (1/256 of it), checked against its record. Reconciled first when the index is not,
    or when what it says disagrees with the record."""
    results_dir = Path(results_dir)
    found = _marked(results_dir, digest)
    if found is not None:
        return found
    marker = _marker(results_dir, digest)
    if (results_dir / INDEX_DIR / RECONCILED).exists():
        where = _in_shard(results_dir, digest)
        if where is None and not marker.exists():
            return None  # reconciled, no marker, not in its shard: a configuration never completed here
        found = None if where is None else _agrees(results_dir, digest, where)
        if found is not None:
            return found
    marker.unlink(missing_ok=True)  # its record is gone or disagrees: reconciling finds any other
    reconcile(results_dir)
    where = _in_shard(results_dir, digest)
    return None if where is None else _agrees(results_dir, digest, where)


# Columns of the catalog a lookup needs.
_LOOKUP_COLUMNS = ["run_id", "status", "config_hash", "ensemble_size", "ensemble_index"]


def completed_jobs(results_dir: Path) -> tuple[dict[str, tuple[str, Path]], int]:
    """hash -> (run_id, run directory) of every completed job under `results_dir`, from its catalog.

    An ensemble job is complete only when every member's record (sibling seed_* directories) is; it is
    named by its first member (the record and directory `mark_completed` points at). Records with bad
    types are named in warnings by the catalog and count as nothing. Also returns how many records there
    are."""
    rows = catalog_frame(Path(results_dir), _LOOKUP_COLUMNS)
    done: dict[str, tuple[str, Path]] = {}
    members: dict[tuple[str, str], set[int]] = {}
    firsts: dict[tuple[str, str], tuple[str, Path, int]] = {}
    for run_id, status, digest, size, index, run_dir in iter_rows(rows, [*_LOOKUP_COLUMNS, "run_dir"]):
        if status != "completed" or not digest:
            continue
        size = int(size or 1)
        if size == 1:
            done.setdefault(digest, (run_id, Path(run_dir)))
            continue
        job = (digest, str(Path(run_dir).parent))
        members.setdefault(job, set()).add(int(index if index is not None else -1))
        if index == 0:
            firsts[job] = (run_id, Path(run_dir), size)
    for job, (run_id, run_dir, size) in firsts.items():
        if members[job] >= set(range(size)):
            done.setdefault(job[0], (run_id, run_dir))
    return done, len(rows)


def reconcile(results_dir: Path) -> int:
    """Bring the index up to date with the records: every completed job in the shards, then the stamp that
    lets lookups trust a configuration's absence. Returns how many jobs are complete."""
    results_dir = Path(results_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done, records = completed_jobs(results_dir)
    for warning in caught:
        log.warning("resume: %s", warning.message)
    # The completed jobs as 256 shards by the hash's first two characters, each a small JSON object: one
    # lookup reads one of them. Written whole (no per-job file: 100,000 files would take minutes), and
    # without fsync: a cache, rebuilt from the records when damaged.
    shards: dict[str, dict[str, str]] = {}
    for digest, (_, run_dir) in done.items():
        shards.setdefault(digest[:2], {})[digest] = os.path.relpath(run_dir, results_dir)
    folder = results_dir / INDEX_DIR / SHARDS_DIR
    for old in folder.glob("*.json") if folder.is_dir() else ():
        if old.stem not in shards:
            old.unlink(missing_ok=True)
    for prefix, entries in shards.items():
        atomic_write_text(folder / f"{prefix}.json", json.dumps(entries) + "\n", durable=False)
    if records:  # a tree without records is reconciled at no cost: nothing is written into it
        stamp = f"{datetime.now(timezone.utc).isoformat()}\n"
        atomic_write_text(results_dir / INDEX_DIR / RECONCILED, stamp)
    return len(done)


def rebuild_index(results_dir: Path) -> int:
    """Mark every completed job under `results_dir`; returns how many (`harness collect --reindex`)."""
    return reconcile(results_dir)
