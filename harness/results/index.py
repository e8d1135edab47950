"""Resume index: which result-relevant configs already have a completed run under a results directory.

A run's `config_hash` digests its resolved config minus the keys that do not change its result (output
paths, resume/fail-fast switches). The records are the truth; the index is a cache of them. Completing a
run drops a marker `<results_dir>/.index/<hash>.json` (atomic write, one file per hash: concurrent jobs never
share a file), so a re-launched sweep finds finished work in O(1) per job. A marker is trusted only once its
record agrees; a hash without a marker is looked up in the records themselves (a job killed between its
record and its marker, or a tree copied without its hidden `.index`, still counts as done) and the marker is
written then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.results.schema import RunRecord
from harness.results.store import RECORD_NAME, atomic_write_text, find_records, read_record

INDEX_DIR = ".index"
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
    results_dir = Path(results_dir).resolve()
    run_dir = Path(run_dir).resolve()
    where = str(run_dir.relative_to(results_dir)) if results_dir in run_dir.parents else str(run_dir)
    marker = {"run_id": record.run_id, "run_dir": where}
    atomic_write_text(results_dir / INDEX_DIR / f"{record.config_hash}.json", json.dumps(marker) + "\n")


def find_completed(results_dir: Path, digest: str) -> Path | None:
    """The run directory of a completed run with this hash: from its marker if the record there agrees, else
    from the records under `results_dir` (and then the marker is written, so the next lookup is O(1))."""
    results_dir = Path(results_dir)
    marker = results_dir / INDEX_DIR / f"{digest}.json"
    try:
        run_dir = results_dir / json.loads(marker.read_text())["run_dir"]
        record = read_record(run_dir / RECORD_NAME)
        if record.status == "completed" and record.config_hash == digest:
            return run_dir
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for record, run_dir in completed_runs(results_dir, digest):
        mark_completed(results_dir, record, run_dir)
        return run_dir
    return None


def completed_runs(results_dir: Path, digest: str | None = None) -> Iterator[tuple[RunRecord, Path]]:
    """(record, run directory) of every completed job under `results_dir` (with hash `digest`, if given).

    An ensemble job is complete only when all its members' records are; it is yielded once, as its first
    member (the record and directory `mark_completed` points at)."""
    for path in find_records(results_dir):
        if digest is not None and digest not in path.read_text(encoding="utf-8", errors="replace"):
            continue  # most records are other configurations: skip them without parsing
        record = _readable(path)
        if record is None or record.status != "completed" or not record.config_hash:
            continue
        if digest is not None and record.config_hash != digest:
            continue
        members = record.ensemble_size or 1
        if members > 1 and (record.ensemble_index != 0 or not _all_members_completed(path, record)):
            continue
        yield record, path.parent


def _all_members_completed(path: Path, first: RunRecord) -> bool:
    """Whether every member of `first`'s ensemble job (its sibling seed_* directories) completed."""
    siblings = (_readable(p) for p in path.parent.parent.glob(f"*/{RECORD_NAME}"))
    done = {
        r.ensemble_index
        for r in siblings
        if r is not None and r.status == "completed" and r.config_hash == first.config_hash
    }
    return done >= set(range(first.ensemble_size))


def _readable(path: Path) -> RunRecord | None:
    try:
        return read_record(path)
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # a corrupt or foreign file is not a completed run


def rebuild_index(results_dir: Path) -> int:
    """Mark every completed job under `results_dir`; returns how many (`harness collect --reindex`)."""
    marked = 0
    for record, run_dir in completed_runs(results_dir):
        mark_completed(results_dir, record, run_dir)
        marked += 1
    return marked
