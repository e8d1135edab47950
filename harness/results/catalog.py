"""The catalog: every record under a results directory as table rows, kept current by reading new records.

The records (one `run.json` per run, written atomically where the run ran) stay the truth; the catalog is a
cache of them in `<dir>/.catalog/`, rebuilt from them whenever it is missing, damaged or stale. It is a set of
Parquet *parts*: each part holds the flattened rows of some records plus, per row, the record's path (relative
to `<dir>`), its size and mtime. Bringing it up to date:

1. list the record files under `<dir>` and stat them (names and stat only, no file is opened; hidden folders
   such as `.hydra`, `.index`, `.claims` and `.catalog` itself are not entered);
2. read the key columns of the parts: a record whose path, size and mtime the catalog holds is current;
3. read, check (harness.results.validate) and flatten only the others (2,000 at a time by Arrow's JSON
   reader, record by record where one needs it: `read_records`), and write their rows as one new part
   (written under a temporary name and renamed: a part appears whole or not at all);
4. when records were rewritten or removed, or parts pile up, write one part with every current row and
   delete the parts it replaces.

The rows come back as pandas in about 2 KB a record (`_to_pandas`): repeated text as `category`, read from
Parquet as dictionaries, a group of columns at a time.

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

import io
import json
import logging
import os
import secrets
import time
import warnings
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from harness.results.store import RECORD_NAME, atomic_path
from harness.results.validate import allows, text_fields, type_problem

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
# Columns read and handed to pandas at a time: the Arrow copy of a whole part never sits beside the frame.
COLUMN_GROUP = 8
MAX_GROUPS = 20  # ... and at most this many groups (each adds a block per numpy dtype to the frame)
# Records parsed together by Arrow's JSON reader (a few MB of text).
JSON_BATCH = 2000

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stat:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class OnDisk:
    """The record files under a folder: relative paths (sorted) and, at the same positions, sizes and mtimes
    (arrays: 100,000 records cost a few MB, not one object per number)."""

    paths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray

    def stat(self, position: int) -> Stat:
        return Stat(int(self.sizes[position]), int(self.mtimes[position]))


def scan(root: Path) -> OnDisk:
    """Every record file under `root`, in sorted order, without opening any.

    A folder that vanishes meanwhile (another launcher removing a skipped job's directory) is passed over."""
    paths: list[str] = []
    sizes, mtimes = array("q"), array("q")

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
                paths.append(prefix + entry.name)
                sizes.append(st.st_size)
                mtimes.append(st.st_mtime_ns)
            elif entry.is_dir(follow_symlinks=False):
                walk(entry.path, f"{prefix}{entry.name}/")

    walk(str(root), "")
    order = np.argsort(np.array(paths, dtype=object), kind="stable")
    return OnDisk(
        [paths[i] for i in order],
        np.frombuffer(sizes, dtype=np.int64)[order],
        np.frombuffer(mtimes, dtype=np.int64)[order],
    )


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


def read_records(root: Path, on_disk: OnDisk, positions: np.ndarray) -> list[pa.Table]:
    """The catalog rows of the records at `positions` in `on_disk`, a table per batch. A batch is parsed by
    Arrow's JSON reader (C++: 3-4x faster than json.loads, the type check and flatten row by row) when all
    of it can be (see `_parse_together`); otherwise record by record (`record_row`), which names each bad
    record."""
    tables = []
    for start in range(0, len(positions), JSON_BATCH):
        batch = positions[start : start + JSON_BATCH]
        table = _parse_together(root, on_disk, batch)
        if table is None:
            rows = [r for r in (record_row(root, on_disk.paths[i], on_disk.stat(i)) for i in batch) if r]
            table = _to_arrow(_frame(rows)) if rows else None
        if table is not None:
            tables.append(table)
    return tables


def _parse_together(root: Path, on_disk: OnDisk, batch: np.ndarray) -> pa.Table | None:
    """The rows of the records at `batch`, parsed as one text by Arrow and flattened as `flatten` does
    (nested fields as dotted columns), in the order of the first record's fields; None when any record needs
    reading by itself: unreadable, not one JSON object, a field of the wrong type (Arrow types each column
    from every record, so the columns' types tell), a key whose type differs between records, or text Arrow
    would read as a time (the record's own text fields are declared text)."""
    texts, found = [], []
    for i in batch:
        try:
            with open(os.path.join(root, on_disk.paths[i]), "rb") as file:
                text = file.read()
        except FileNotFoundError:
            continue  # removed meanwhile: not a record any more
        except OSError:
            return None
        texts.append(text.replace(b"\n", b" "))  # one line each: JSON holds no raw newline within a value
        found.append(int(i))
    if not found:
        return None
    declared = pa.schema([pa.field(name, pa.string()) for name in text_fields()])
    try:
        table = pa_json.read_json(
            io.BytesIO(b"\n".join(texts)),
            read_options=pa_json.ReadOptions(block_size=max(1 << 20, 2 * max(map(len, texts)))),
            parse_options=pa_json.ParseOptions(explicit_schema=declared, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != len(found):
        return None
    if not all(allows(f.name, _python_type(f.type)) for f in table.schema):
        return None
    while any(pa.types.is_struct(kind) for kind in table.schema.types):
        table = table.flatten()
    if any(pa.types.is_temporal(kind) for kind in table.schema.types):
        return None
    first = list(flatten(json.loads(texts[0])))
    have = set(table.column_names)
    table = table.select(
        [*(n for n in first if n in have), *(n for n in table.column_names if n not in first)]
    )
    table = table.drop_columns(
        [n for n in table.column_names if pa.types.is_null(table.schema.field(n).type) and n not in first]
    )
    table = table.append_column(PATH, pa.array([on_disk.paths[i] for i in found], pa.large_string()))
    table = table.append_column(SIZE, pa.array(on_disk.sizes[found]))
    table = table.append_column(MTIME, pa.array(on_disk.mtimes[found]))
    return table.append_column(BAD, pa.nulls(len(found)))


def _python_type(kind: pa.DataType) -> type:
    """The Python type of the values of an Arrow column, as json.loads would give them."""
    checks: list[tuple[Any, type]] = [
        (pa.types.is_null, type(None)),
        (pa.types.is_boolean, bool),
        (pa.types.is_integer, int),
        (pa.types.is_floating, float),
        (pa.types.is_string, str),
        (pa.types.is_large_string, str),
        (pa.types.is_list, list),
        (pa.types.is_large_list, list),
        (pa.types.is_struct, dict),
    ]
    return next((python for check, python in checks if check(kind)), object)


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
        (with `warn`) and left out. `columns`: only these (fewer columns read, less memory). Text columns
        but PER_RUN_TEXT are pandas `category` (see `_to_pandas`)."""
        wanted = None if columns is None else list(dict.fromkeys(columns))
        with _system_allocator():
            return self._frame(wanted, warn=warn)

    def _frame(self, wanted: list[str] | None, *, warn: bool) -> pd.DataFrame:
        rows = self.update(wanted)
        bad = rows[rows[BAD].notna()] if BAD in rows.columns else rows.iloc[0:0]
        if warn:
            for relative, problem in zip(bad[PATH], bad[BAD], strict=True):
                warnings.warn(
                    f"skipping unreadable run record {self.root / relative}: {problem}", stacklevel=3
                )
        if len(bad):
            rows = rows.loc[rows[BAD].isna()]
        # Arrow's string kernels, not one os.path call per row: <root>/<the record's folder>.
        folders = pd.Series(rows[PATH], dtype="str").str.removesuffix(RECORD_NAME).str.rstrip("/")
        run_dirs = (str(self.root).rstrip("/") + "/" + folders).str.rstrip("/")
        # Selected, not deleted: pandas splits every block a deleted column's neighbours are in (a copy of
        # 100,000 rows × 180 columns would be over 100 MB; a selection of whole blocks copies nothing).
        rows = cast(pd.DataFrame, rows[[c for c in rows.columns if c not in KEYS]])
        added = {missing: np.nan for missing in wanted or () if missing not in rows.columns}
        added["run_dir"] = run_dirs.array
        # Joined, not inserted one by one: the frame holds a block per text column, and pandas warns on
        # every insert into a frame of over 100 blocks.
        rows = pd.concat(
            [rows.reset_index(drop=True), pd.DataFrame(added, index=pd.RangeIndex(len(rows)))], axis=1
        )
        return (
            rows
            if wanted is None
            else cast(pd.DataFrame, rows[[*(c for c in wanted if c != "run_dir"), "run_dir"]])
        )

    def update(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Bring the catalog up to date; its current rows (bad ones included, bookkeeping columns kept)."""
        for _ in range(READ_ATTEMPTS):
            try:
                return self._update(columns)
            except FileNotFoundError:
                continue  # another process merged parts away between our listing and our read
        return self._update(columns, with_parts=False)

    def _update(self, columns: list[str] | None, *, with_parts: bool = True) -> pd.DataFrame:
        on_disk = scan(self.root)
        parts = sorted(self.folder.glob(PART_GLOB)) if with_parts else []
        files = [_open_part(part) for part in parts]
        keys = [f.read([PATH, SIZE, MTIME]) for f in files]
        held = pa.concat_tables(keys) if keys else None
        keep, new = _current(held, on_disk)
        batches = read_records(self.root, on_disk, new)
        del on_disk, held, keys  # 100,000 paths: freed before the frame is built, not held beside it
        self.read_records = sum(batch.num_rows for batch in batches)
        pieces: list[pa.Table | _Part] = [*files]  # parts are read a group of columns at a time
        if batches:
            fresh = batches[0]
            if len(batches) > 1:
                names = list(dict.fromkeys(n for batch in batches for n in batch.column_names))
                fresh = _combine(list(batches), names, pa.array(np.ones(self.read_records, dtype=bool)))
            if self.persist:
                self._write(fresh)
            pieces.append(fresh)
            keep = np.concatenate([keep, np.ones(fresh.num_rows, dtype=bool)])
        stale = int((~keep).sum())
        names = list(dict.fromkeys(n for piece in pieces for n in _names(piece)))
        if columns is not None:
            names = [n for n in names if n in {*columns, *KEYS}]
        if not pieces:
            return _empty()
        mask = pa.array(keep)
        if (stale or len(parts) >= MAX_PARTS) and self.persist and columns is None:
            merged = _combine(pieces, names, mask)
            self._merge(parts, merged, stale)
            return _to_pandas(merged)
        # A group of columns at a time, in order: pandas holds each group's columns of one dtype in one
        # block, and never more groups than MAX_GROUPS, so a frame of many columns stays under the 100
        # numpy blocks past which pandas warns on every insert (and slows down).
        size = max(COLUMN_GROUP, -(-len(names) // MAX_GROUPS))
        groups = [names[i : i + size] for i in range(0, len(names), size)]
        frames = [_to_pandas(_combine(pieces, group, mask)) for group in groups]
        return cast(pd.DataFrame, pd.concat(frames, axis=1)) if len(frames) > 1 else frames[0]

    def _write(self, rows: pa.Table) -> Path | None:
        name = f"part-{time.time_ns():020d}-{secrets.token_hex(4)}.parquet"
        try:
            with atomic_path(self.folder / name) as tmp:
                _write_part(rows, tmp)
        except OSError as exc:  # read-only tree, full disk: the catalog is a cache, this call goes on
            log.debug("catalog of %s not written (%s); built in memory", self.root, exc)
            self.persist = False
            return None
        return self.folder / name

    def _merge(self, parts: list[Path], rows: pa.Table, stale: int) -> None:
        """Replace `parts` (and the part just written) by one holding `rows`; parts other processes wrote
        meanwhile are left alone."""
        written_now = set(self.folder.glob(PART_GLOB)) - set(parts)
        merged = self._write(rows)
        if merged is None:
            return
        have = set(zip(rows.column(PATH).to_pylist(), rows.column(MTIME).to_pylist(), strict=True))
        for part in [*parts, *(p for p in written_now if p != merged and _is_subset(p, have))]:
            part.unlink(missing_ok=True)
        log.debug("catalog of %s: %d parts merged, %d stale rows dropped", self.root, len(parts), stale)


@contextmanager
def _system_allocator() -> Iterator[None]:
    """Arrow allocates from the C library's allocator meanwhile, not from its own pool (mimalloc): the pool
    keeps the memory of each group of columns freed after pandas took it over, which pandas' own arrays
    (the C library's) cannot reuse; at 100,000 records that was a third of the peak. Buffers remember their
    pool, so what was allocated before or after is freed where it came from."""
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def _current(held: pa.Table | None, on_disk: OnDisk) -> tuple[np.ndarray, np.ndarray]:
    """Which held rows are current (their record on disk has the size and mtime they were read at; one row
    per record, the first where two writers catalogued the same one) and the positions in `on_disk` of the
    records no current row holds, compared as arrays (Arrow's hash join), not row by row."""
    if held is None or not held.num_rows:
        return np.zeros(0, dtype=bool), np.arange(len(on_disk.paths))
    where = pc.index_in(held.column(PATH), value_set=pa.array(on_disk.paths, pa.large_string()))
    position = pc.fill_null(where, -1).to_numpy().astype(np.int64)
    found = position >= 0
    at = np.where(found, position, 0)
    same_stat = (held.column(SIZE).to_numpy() == on_disk.sizes[at]) & (
        held.column(MTIME).to_numpy() == on_disk.mtimes[at]
    )
    keep = found & same_stat
    kept = np.flatnonzero(keep)
    keep[kept[pd.Index(position[kept]).duplicated()]] = False
    known = np.zeros(len(on_disk.paths), dtype=bool)
    known[position[keep]] = True
    return keep, np.flatnonzero(~known)


@dataclass(frozen=True)
class _Part:
    """A part on disk, opened, with its schema read once (pyarrow rebuilds `schema_arrow` on every access)."""

    file: pq.ParquetFile
    schema: pa.Schema

    def read(self, names: list[str]) -> pa.Table:
        present = set(self.schema.names)
        table = self.file.read(columns=[n for n in names if n in present], use_threads=False)
        return table.replace_schema_metadata(self.schema.metadata)


def _open_part(path: Path) -> _Part:
    """A part, its text columns (not the JSON ones) read as dictionaries: each distinct text decoded once."""
    schema = pq.read_schema(path)
    text = [
        f.name
        for f in schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and f.name not in _json_columns(schema)
    ]
    return _Part(pq.ParquetFile(path, read_dictionary=text), schema)


def _names(piece: pa.Table | _Part) -> list[str]:
    return list(piece.schema.names)


def _field(piece: pa.Table | _Part, name: str) -> pa.Field:
    return piece.schema.field(name)


def _json_columns(schema: pa.Schema) -> set[str]:
    return set(json.loads((schema.metadata or {}).get(JSON_COLUMNS, b"[]")))


def _combine(pieces: list[pa.Table | _Part], names: list[str], keep: pa.Array) -> pa.Table:
    """The `names` columns of every piece (a part on disk or rows in memory), one table of the rows `keep`
    marks. A column whose types differ between pieces (a config key that is a number in one part and text
    in another) is made JSON text in all of them, as `_to_arrow` stores a column that mixes types."""
    tables = []
    for piece in pieces:
        if isinstance(piece, _Part):
            tables.append(piece.read(names))
        else:
            have = set(piece.column_names)
            tables.append(piece.select([n for n in names if n in have]))
    as_json = set().union(*(_json_columns(t.schema) for t in tables))
    kinds_of = [{field.name: _kind(field.type) for field in table.schema} for table in tables]
    for name in names:
        kinds = {kinds[name] for kinds in kinds_of if name in kinds} - {"null"}
        if len(kinds) > 1:
            as_json.add(name)
    for i, table in enumerate(tables):
        for name in as_json - _json_columns(table.schema):
            if name in table.column_names and not pa.types.is_null(table.schema.field(name).type):
                values = [None if v is None else json.dumps(v, default=str) for v in table[name].to_pylist()]
                index = table.column_names.index(name)
                table = table.set_column(index, name, pa.array(values, pa.large_string()))
        for index, field in enumerate(table.schema):
            if field.name not in as_json and _kind(field.type) == "text":
                table = table.set_column(index, field.name, _as_dictionary(table.column(index)))
        tables[i] = table.replace_schema_metadata(None)
    combined = pa.concat_tables(tables, promote_options="permissive")
    combined = combined.filter(keep) if not pc.all(keep).as_py() else combined
    meta = {JSON_COLUMNS: json.dumps(sorted(as_json & set(combined.column_names))).encode()}
    return combined.replace_schema_metadata(meta)


TEXT = pa.dictionary(pa.int32(), pa.large_string())


def _as_dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column as dictionary codes (each distinct text once), one type for every part."""
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    return column.cast(TEXT)


def _kind(kind: pa.DataType) -> str:
    """What a column's type is for telling whether two parts agree (int and float are both numbers)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_null(kind):
        return "null"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):  # the item's name differs by writer
        return f"list of {_kind(kind.value_type)}"
    return str(kind)


def _is_subset(part: Path, have: set[tuple[str, int]]) -> bool:
    """Whether every record in `part` is among `have` (path, mtime) (so deleting it loses nothing)."""
    try:
        theirs = pq.read_table(part, columns=[PATH, MTIME])
    except (OSError, pa.ArrowException):
        return False
    return all(key in have for key in zip(theirs[PATH].to_pylist(), theirs[MTIME].to_pylist(), strict=True))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({PATH: pd.Series(dtype=object), SIZE: [], MTIME: [], BAD: pd.Series(dtype=object)})


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.astype({SIZE: "int64", MTIME: "int64"})


def _to_arrow(rows: pd.DataFrame) -> pa.Table:
    """`rows` as an Arrow table of plain types; a column Arrow cannot type (values of mixed types, as a
    config key that is a number in one run and text in another) is stored as JSON text, listed in the
    table's metadata, and decoded when read."""
    arrays, names, as_json = [], [], []
    for name in rows.columns:
        values = rows[name]
        try:
            array = pa.array(values, from_pandas=True)
            if pa.types.is_dictionary(array.type):  # a category column: parts hold plain text
                array = array.dictionary_decode()
        except (pa.ArrowException, TypeError, ValueError):
            array = pa.array(
                [None if _missing(v) else json.dumps(v, default=str) for v in values], pa.large_string()
            )
            as_json.append(name)
        arrays.append(array)
        names.append(str(name))
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({JSON_COLUMNS: json.dumps(as_json).encode()})


def _write_part(rows: pa.Table, path: Path) -> None:
    pq.write_table(rows, path, compression="zstd")


# Text columns that differ from run to run, loaded as text (the catalog's own record path among them); every
# other text column is a `category`, whatever the rows hold, so that a frame's dtypes do not change from one
# results folder to the next.
PER_RUN_TEXT = frozenset({"run_id", "run_dir", "started_at", "config_hash", "error", "slurm_job_id", PATH})


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Catalog rows as pandas, in little memory and few blocks: a text column other than PER_RUN_TEXT
    (model, status, a config key's value, a version) becomes a `category` (one small code per cell, each text
    stored once; its categories sorted, so sorting and grouping order rows as text would) instead of one
    string per cell; text no row holds, None; lists (input_shape) come back as Python lists, as a record
    holds them; JSON text as the values it holds. Arrow's buffers are released column by column as pandas
    takes them over, into one block per dtype (pandas warns on, and slows, every insert into a frame of over
    100 numpy blocks): the columns keep their order, so nothing splits the blocks again."""
    rows = table.num_rows
    as_json = _json_columns(table.schema)
    by_hand: dict[str, Any] = {}
    for index, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        kind = column.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            by_hand[name] = column.to_pylist()
        elif name in as_json:
            by_hand[name] = [v if v is None else json.loads(v) for v in column.to_pylist()]
        elif pa.types.is_dictionary(kind) and column.null_count == rows:  # text no record holds
            table = table.set_column(index, name, pa.nulls(rows))
        elif pa.types.is_dictionary(kind) and column.num_chunks:
            # Text distinct per run is plainer as text (its dictionaries not unified first); the rest,
            # categories of one dictionary across the parts.
            per_run = name in PER_RUN_TEXT
            column = column.cast(pa.large_string()) if per_run else column.unify_dictionaries()
            table = table.set_column(index, name, column)
        if name in by_hand:
            table = table.set_column(index, name, pa.nulls(rows))  # a placeholder, filled in below
    frame = table.to_pandas(self_destruct=True)
    del table
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.reorder_categories(sorted(frame[name].cat.categories))
    for name, values in by_hand.items():
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
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
