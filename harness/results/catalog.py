"""The catalog: every record under a results directory as table rows, kept current by reading new records.

The records (one `run.json` per run, written atomically where the run ran) stay the truth; the catalog is a
cache of them in `<dir>/.catalog/`, rebuilt from them whenever it is missing, damaged or stale. It is a set of
Parquet *parts*: each part holds the flattened rows of some records plus, per row, the record's path (relative
to `<dir>`), its size and mtime. Bringing it up to date:

1. list the record files under `<dir>` and stat them (names and stat only, no file is opened; hidden folders
   such as `.hydra`, `.index`, `.claims` and `.catalog` itself are not entered);
2. read the key columns of the parts: a record whose path, size and mtime the catalog holds is current;
3. read, check (harness.results.validate) and flatten only the others, and write their rows as one new part
   (written under a temporary name and renamed: a part appears whole or not at all);
4. when records were rewritten or removed, or parts pile up, write one part with every current row and
   delete the parts it replaces.

Why Parquet parts and not SQLite or one file appended to: several processes, on several nodes of a shared
filesystem, finish runs and read the catalog at once. Each writer only ever creates a new file under a unique
name and renames it into place, and only deletes the parts it has itself read and replaced: there is no lock
and no file two writers change. On NFS this relies on rename being atomic on the server (it is) and on
nothing else: SQLite's locking is unreliable on NFS (its documentation says so) and an append from two nodes
can interleave. What NFS's attribute cache can do is make a reader list the folder a few seconds late: it
then misses a part just written elsewhere, reads those records itself and writes them again; rows are
de-duplicated by record path (the newest mtime wins), so a race costs work, never correctness. A record
whose content has the wrong types is named in a warning, kept out of the table, and remembered in the
catalog as bad (so it is named again without being re-read until it changes). A catalog that cannot be
written (a read-only tree, a full disk) is built in memory for this call only.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.results.store import RECORD_NAME, atomic_path
from harness.results.validate import type_problem

CATALOG_DIR = ".catalog"
PART_GLOB = "part-*.parquet"
# Bookkeeping columns of every catalog row (the record's path relative to the catalogued folder, its size
# and mtime, and why it is not a record when it is not). Their names cannot clash with a record's field.
PATH, SIZE, MTIME, BAD = "_record", "_size", "_mtime_ns", "_bad"
KEYS = (PATH, SIZE, MTIME, BAD)
# Parquet metadata key listing the columns whose values are stored as JSON text (those mixing types).
JSON_COLUMNS = b"harness.json_columns"
# More parts than this are merged into one at the next update: each part costs a file open on every read.
MAX_PARTS = 16
# A part that vanished while read (another process merged it away) makes the reader list the parts again.
READ_ATTEMPTS = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stat:
    size: int
    mtime_ns: int


def scan(root: Path) -> dict[str, Stat]:
    """Every record file under `root` (relative path -> size and mtime), in sorted order, without opening any.

    A folder that vanishes meanwhile (another launcher removing a skipped job's directory) is passed over."""
    found: dict[str, Stat] = {}

    def walk(folder: str, prefix: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .hydra, .index, .claims, .catalog, .resumed, temporary files: never records
            if entry.name == RECORD_NAME:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                found[prefix + entry.name] = Stat(st.st_size, st.st_mtime_ns)
            elif entry.is_dir(follow_symlinks=False):
                walk(entry.path, f"{prefix}{entry.name}/")

    walk(str(root), "")
    return dict(sorted(found.items()))


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One table row: scalar fields as they are, nested ones (config, versions, seeds) as dotted columns
    (empty mappings leave no column), as pandas.json_normalize does, at a fraction of its cost."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            row.update(flatten(value, f"{prefix}{key}."))
        else:
            row[f"{prefix}{key}"] = value
    return row


def record_row(root: Path, relative: str, stat: Stat) -> dict[str, Any] | None:
    """The catalog row of one record file: its flattened fields, or only why it is not a record (`_bad`);
    None when the file vanished meanwhile."""
    keys = {PATH: relative, SIZE: stat.size, MTIME: stat.mtime_ns}
    try:
        data = json.loads((root / relative).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # truncated, not JSON, unreadable
        return {**keys, BAD: f"{type(exc).__name__}: {exc}"}
    problem = type_problem(data)
    if problem is not None:
        return {**keys, BAD: problem}
    return {**flatten(data), **keys, BAD: None}


class Catalog:
    """The catalog of the records under `root` (see the module): `frame()` brings it up to date and returns
    its rows, reading only the records it did not hold."""

    def __init__(self, root: Path, *, persist: bool = True):
        self.root = Path(root)
        self.folder = self.root / CATALOG_DIR
        self.persist = persist  # False: never write (a tree this user may only read)
        self.read_records = 0  # how many record files the last update opened (the bench reports it)

    def frame(self, columns: Iterable[str] | None = None, *, warn: bool = True) -> pd.DataFrame:
        """One row per valid record (the record's fields plus `run_dir`); bad records are named in a warning
        (with `warn`) and left out. `columns`: only these (fewer columns read, less memory)."""
        wanted = None if columns is None else list(dict.fromkeys(columns))
        rows = self.update(wanted)
        bad = rows[rows[BAD].notna()] if BAD in rows.columns else rows.iloc[0:0]
        if warn:
            for relative, problem in zip(bad[PATH], bad[BAD], strict=True):
                warnings.warn(
                    f"skipping unreadable run record {self.root / relative}: {problem}", stacklevel=3
                )
        if len(bad):
            rows = rows.loc[rows[BAD].isna()]
        run_dirs = [os.path.join(str(self.root), os.path.dirname(p)).rstrip("/") for p in rows[PATH]]
        # In place from here: a copy of 100,000 rows × 180 columns is over 100 MB.
        for key in KEYS:
            if key in rows.columns:
                del rows[key]
        for missing in [c for c in wanted or () if c not in rows.columns and c != "run_dir"]:
            rows[missing] = np.nan
        rows["run_dir"] = run_dirs
        rows.index = pd.RangeIndex(len(rows))
        return (
            rows
            if wanted is None
            else cast(pd.DataFrame, rows[[*(c for c in wanted if c != "run_dir"), "run_dir"]])
        )

    def update(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Bring the catalog up to date; its current rows (bad ones included, bookkeeping columns kept)."""
        on_disk = scan(self.root)
        for _ in range(READ_ATTEMPTS):
            try:
                parts = sorted(self.folder.glob(PART_GLOB))
                held = self._read(parts, columns)
                break
            except FileNotFoundError:
                continue  # another process merged parts away between our listing and our read
        else:
            parts, held = [], _empty()
        same = [
            on_disk.get(p) == Stat(s, m) for p, s, m in zip(held[PATH], held[SIZE], held[MTIME], strict=True)
        ]
        current = held if all(same) else cast(pd.DataFrame, held.loc[np.array(same, dtype=bool)])
        known = set(current[PATH])
        new = [r for r in (record_row(self.root, p, s) for p, s in on_disk.items() if p not in known) if r]
        self.read_records = len(new)
        fresh = _frame(new)
        stale = len(held) - len(current)
        if new and self.persist:
            self._write(fresh)
        if (stale or len(parts) >= MAX_PARTS) and self.persist and columns is None:
            self._merge(parts, pd.concat([current, fresh], ignore_index=True), stale)
        if fresh.empty:
            return current
        if columns is not None:  # the part just written holds every column; the caller asked for these
            fresh = cast(pd.DataFrame, fresh[[c for c in fresh.columns if c in {*columns, *KEYS}]])
        # Copied once: rows of differing columns concatenate into one block per column, which later inserts
        # (a run_dir, a resumed flag) would warn about and pay for.
        return pd.concat([current, fresh], ignore_index=True).copy()

    def _read(self, parts: list[Path], columns: list[str] | None) -> pd.DataFrame:
        frames = [_read_part(part, columns) for part in parts]
        if not frames:
            return _empty()
        if len(frames) == 1:
            return frames[0]
        rows = pd.concat(frames, ignore_index=True).copy()  # copied: one block per dtype, not per column
        if rows[PATH].duplicated().any():  # two writers catalogued the same record
            rows = rows.sort_values(MTIME, kind="stable").drop_duplicates(PATH, keep="last")
        return rows

    def _write(self, rows: pd.DataFrame) -> Path | None:
        name = f"part-{time.time_ns():020d}-{secrets.token_hex(4)}.parquet"
        try:
            with atomic_path(self.folder / name) as tmp:
                _write_part(rows, tmp)
        except OSError as exc:  # read-only tree, full disk: the catalog is a cache, this call goes on
            log.debug("catalog of %s not written (%s); built in memory", self.root, exc)
            self.persist = False
            return None
        return self.folder / name

    def _merge(self, parts: list[Path], rows: pd.DataFrame, stale: int) -> None:
        """Replace `parts` (and the part just written) by one holding `rows`; parts other processes wrote
        meanwhile are left alone."""
        written_now = set(self.folder.glob(PART_GLOB)) - set(parts)
        merged = self._write(rows)
        if merged is None:
            return
        for part in [*parts, *(p for p in written_now if p != merged and _is_subset(p, rows))]:
            part.unlink(missing_ok=True)
        log.debug("catalog of %s: %d parts merged, %d stale rows dropped", self.root, len(parts), stale)


def _is_subset(part: Path, rows: pd.DataFrame) -> bool:
    """Whether every record in `part` is among `rows` at the same mtime (so deleting it loses nothing)."""
    try:
        theirs = pq.read_table(part, columns=[PATH, MTIME]).to_pandas()
    except (OSError, pa.ArrowException):
        return False
    have = set(zip(rows[PATH], rows[MTIME], strict=False))
    return all(key in have for key in zip(theirs[PATH], theirs[MTIME], strict=False))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({PATH: pd.Series(dtype=object), SIZE: [], MTIME: [], BAD: pd.Series(dtype=object)})


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return _empty()
    frame = pd.DataFrame(rows)
    return frame.astype({SIZE: "int64", MTIME: "int64"})


def _write_part(rows: pd.DataFrame, path: Path) -> None:
    """Write `rows` as Parquet; a column Arrow cannot type (values of mixed types, as a config key that is a
    number in one run and text in another) is stored as JSON text and decoded when read."""
    arrays, names, as_json = [], [], []
    for name in rows.columns:
        values = rows[name]
        try:
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            array = pa.array(
                [None if _missing(v) else json.dumps(v, default=str) for v in values], pa.string()
            )
            as_json.append(name)
        arrays.append(array)
        names.append(str(name))
    table = pa.Table.from_arrays(arrays, names=names)
    table = table.replace_schema_metadata({JSON_COLUMNS: json.dumps(as_json).encode()})
    pq.write_table(table, path, compression="zstd")


def _read_part(path: Path, columns: list[str] | None) -> pd.DataFrame:
    schema = pq.read_schema(path)
    if columns is not None:
        columns = [c for c in dict.fromkeys([*columns, *KEYS]) if c in schema.names]
    table = pq.read_table(path, columns=columns)
    as_json = json.loads((schema.metadata or {}).get(JSON_COLUMNS, b"[]"))
    # Lists (input_shape) come back as Python lists, as a record holds them, not as numpy arrays.
    lists = {
        name: table.column(name).to_pylist()
        for name, kind in zip(table.column_names, table.schema.types, strict=True)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind)
    }
    frame = table.to_pandas()
    for name, values in lists.items():
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    for name in as_json:
        if name in frame.columns:
            frame[name] = frame[name].map(lambda v: v if v is None else json.loads(v))
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def catalog_frame(root: Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """`Catalog(root).frame(columns)`, persisted where `root` is writable (see the module)."""
    return Catalog(root, persist=os.access(root, os.W_OK)).frame(columns, warn=True)


def iter_rows(frame: pd.DataFrame, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """The `columns` of `frame` row by row, None for a missing value (NaN included)."""
    for values in zip(
        *(frame[c] if c in frame.columns else [None] * len(frame) for c in columns), strict=True
    ):
        yield tuple(None if _missing(v) else v for v in values)
