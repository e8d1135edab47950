"""Writing and reading run records: atomic files, and a flat pandas view of every run under a path."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results.schema import RunRecord
from harness.results.validate import checked_record

RECORD_NAME = "run.json"
CURVE_NAME = "curve.csv"


@contextmanager
def atomic_path(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the caller has written it, fsync it and rename it over
    `path`. Readers see the old file or the whole new one, never a part (rename is atomic on one
    filesystem); on any error the temporary file is removed and `path` is untouched. `durable=False`
    skips the fsync, for caches rebuilt from the records (a power loss may leave such a file empty, and
    its readers treat that as missing): an fsync costs milliseconds, and an index rebuilt for 100,000
    records would pay it 100,000 times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file 0600; a record or table is for whoever may read the user's other files.
        os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """This process's umask, read without changing it (Linux's /proc); elsewhere set and put back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_safe(value: Any) -> Any:
    """NaN and ±inf (a diverged loss) become null: JSON has no such numbers, and null means 'no value'."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_record(run_dir: Path, record: RunRecord) -> Path:
    path = Path(run_dir) / RECORD_NAME
    text = json.dumps(_json_safe(record.to_dict()), indent=2, allow_nan=False, default=str)
    atomic_write_text(path, text + "\n")
    return path


def write_curve(run_dir: Path, rows: list[dict[str, Any]]) -> Path | None:
    """The learning curve as CSV, one row per evaluation; nothing is written for an empty curve."""
    if not rows:
        return None
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path = Path(run_dir) / CURVE_NAME
    atomic_write_text(path, buf.getvalue())
    return path


def read_record(path: Path) -> RunRecord:
    """Read one run.json (or the run.json inside a run directory). A file that is not JSON raises
    ValueError; one whose fields have the wrong types raises BadRecord (a TypeError) naming the field."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    return checked_record(json.loads(path.read_text(encoding="utf-8")))


def find_records(path: Path) -> Iterator[Path]:
    """Every run.json at or below `path`, in a stable order.

    Walked with os.walk, which passes over a directory that vanishes under it: another launcher sharing the
    results directory removes the run directory of a job it skipped at any moment, and pathlib's rglob
    raised FileNotFoundError when that happened mid-walk (a skipped job's look-up then crashed)."""
    path = Path(path)
    if path.is_file():
        yield path
        return
    yield from sorted(Path(root) / RECORD_NAME for root, _, names in os.walk(path) if RECORD_NAME in names)


# Tables of runs (written by `harness collect`) that load() reads as they are.
TABLE_SUFFIXES = (".parquet", ".csv")


def load(path: str | os.PathLike, *, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per run found at or below `path` (a run dir, a run.json, a sweep dir or a whole tree), or
    the rows of a table of runs that `harness collect` wrote (runs.parquet or runs.csv, or a folder that
    holds one of them and no run records, such as a committed study).

    Columns are the record's fields (see results/README.md) plus `config.*`, `versions.*`, `seeds.*`
    and `run_dir`. A record that cannot be parsed, or whose fields have the wrong types, is skipped with a
    warning naming the file. A folder of records is read through its catalog (harness.results.catalog):
    only records it does not yet hold are opened.

    Text columns are pandas `category` (one small code per row), except those that differ per run
    (`run_id`, `run_dir`, `started_at`, `config_hash`, `error`): they compare (`==`, `isin`, `.str`), group
    and sort as text; to write new text into one (`+ "_x"`, `fillna("none")`, setting a cell),
    `.astype(str)` it first.
    """
    from harness.results.catalog import Catalog, catalog_frame  # catalog imports this module

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no results at {path}; run `harness train` first or pass the results directory"
        )
    if path.is_file() and path.suffix in TABLE_SUFFIXES:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return (frame if columns is None else frame[list(columns)]).reset_index(drop=True)
    if path.is_file() or (path / RECORD_NAME).is_file():
        # One run: read directly, no catalog beside a single record.
        run_dir = path.parent if path.is_file() else path
        frame = Catalog(run_dir, persist=False).frame(columns, warn=True)
        frame = frame[frame["run_dir"] == str(run_dir)].reset_index(drop=True)
    else:
        frame = catalog_frame(path, columns)
        if frame.empty and not any(True for _ in find_records(path)):
            # A folder that ships only its table (results/study/...): the Parquet one, else the CSV one.
            for shipped in (path / f"runs{suffix}" for suffix in TABLE_SUFFIXES):
                if shipped.is_file():
                    return load(shipped, columns=columns)
    if frame.empty:
        base = [
            f.name
            for f in RunRecord.__dataclass_fields__.values()
            if f.name not in ("config", "versions", "seeds")
        ]
        frame = pd.DataFrame(columns=[*base, "run_dir"] if columns is None else list(columns))
    return frame
