"""Resume index: which result-relevant configs already have a completed run under a results directory.

A run's `config_hash` digests its resolved config minus the keys that do not change its result (output
paths, resume/fail-fast switches). Completing a run drops a marker `<results_dir>/.index/<hash>.json`
(atomic write, one file per hash: concurrent jobs never share a file), so a re-launched sweep finds finished
work in O(1) per job instead of re-reading every record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.results.schema import RunRecord
from harness.results.store import RECORD_NAME, atomic_write_text, find_records, read_record

INDEX_DIR = ".index"
NOT_RESULT_RELEVANT = ("paths", "resume", "fail_fast")


def config_hash(config: dict[str, Any]) -> str:
    relevant = {k: v for k, v in config.items() if k not in NOT_RESULT_RELEVANT}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def mark_completed(results_dir: Path, record: RunRecord, run_dir: Path) -> None:
    """Point the record's hash at its run directory (stored relative, so a moved tree still resolves)."""
    results_dir = Path(results_dir).resolve()
    run_dir = Path(run_dir).resolve()
    where = str(run_dir.relative_to(results_dir)) if results_dir in run_dir.parents else str(run_dir)
    marker = {"run_id": record.run_id, "run_dir": where}
    atomic_write_text(results_dir / INDEX_DIR / f"{record.config_hash}.json", json.dumps(marker) + "\n")


def find_completed(results_dir: Path, digest: str) -> Path | None:
    """The run directory of a completed run with this hash, if its record is still there and agrees."""
    results_dir = Path(results_dir)
    marker = results_dir / INDEX_DIR / f"{digest}.json"
    try:
        run_dir = results_dir / json.loads(marker.read_text())["run_dir"]
        record = read_record(run_dir / RECORD_NAME)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.status == "completed" and record.config_hash == digest:
        return run_dir
    return None


def rebuild_index(results_dir: Path) -> int:
    """Mark every completed record under `results_dir` (for trees copied without their index)."""
    marked = 0
    for path in find_records(results_dir):
        try:
            record = read_record(path)
        except (OSError, ValueError, TypeError):
            continue
        if record.status == "completed" and record.config_hash:
            mark_completed(results_dir, record, path.parent)
            marked += 1
    return marked
