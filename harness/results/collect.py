"""Sweep tables: every run under a directory in one Parquet (and CSV) file, and learning curves."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from harness.results.store import CURVE_NAME, atomic_path, find_records, load, read_record

TABLE_NAME = "runs"
ROWS_PER_BATCH = 10_000  # rows made Arrow and written at a time


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet wants one type per column: object columns that mix types (a config key that is a number in
    one run and a string in another) are written as strings, nulls kept."""
    mixed = []
    for column in [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c])]:
        values = frame[column]
        if values.isna().all():  # no value at all (a field no run filled): nothing to look at, row by row
            continue
        kinds = {type(v) for v in values if v is not None and v == v}
        if len(kinds) > 1:
            mixed.append(column)
    if not mixed:
        return frame  # nothing to change: no copy
    columns = {c: frame[c].map(lambda v: None if v is None or v != v else str(v)) for c in mixed}
    return frame.assign(**columns)


def collect(
    directory: str | Path, out: str | Path | None = None
) -> tuple[pd.DataFrame, Path | None, Path | None]:
    """Write `<out>/runs.parquet` and `<out>/runs.csv` (out defaults to `directory`), one row per run_id.

    A run found twice (copied trees) is kept once, the last record by path order. Both files are
    written atomically, so a reader never sees half a table, and concurrent collectors cannot interleave.
    Without any run nothing is written (an empty table would read as a sweep that ran nothing): the paths
    are then None.
    """
    directory = Path(directory)
    out = Path(out) if out is not None else directory
    frame = load(directory)
    if frame.empty:
        return frame, None, None
    # Checked first (by Arrow's or the category's codes, no Python string per row): dropping copies
    # 100,000 rows even when none go.
    if frame["run_id"].nunique() < frame["run_id"].count():
        frame = frame.drop_duplicates("run_id", keep="last").reset_index(drop=True)
    parquet, csv = out / f"{TABLE_NAME}.parquet", out / f"{TABLE_NAME}.csv"
    with atomic_path(parquet) as parquet_tmp, atomic_path(csv) as csv_tmp:
        _write_tables(_parquet_safe(frame), parquet_tmp, csv_tmp)
    return frame, parquet, csv


def _write_tables(frame: pd.DataFrame, parquet: Path, csv: Path) -> None:
    """Both tables, a batch of rows at a time: each batch is made Arrow once for both files, and the Arrow
    copy of 100,000 runs never sits beside the frame."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)  # from every row: one type per column
    with (
        pq.ParquetWriter(parquet, schema) as parquet_writer,
        pa_csv.CSVWriter(csv, _csv_safe(schema.empty_table()).schema) as csv_writer,
    ):
        for start in range(0, len(frame), ROWS_PER_BATCH):
            rows = frame.iloc[start : start + ROWS_PER_BATCH]
            batch = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
            parquet_writer.write_table(batch)
            csv_writer.write_table(_csv_safe(batch))


def _csv_safe(table: pa.Table) -> pa.Table:
    """The table as CSV can hold it, written by Arrow's C++ writer (pandas' is about 5x slower: 7 s at
    100,000 runs): lists (input_shape) written as Python writes them, as pandas would; true/false as Arrow
    writes them, which pandas reads back as booleans."""
    for index, field in enumerate(table.schema):
        if (
            pa.types.is_list(field.type)
            or pa.types.is_large_list(field.type)
            or pa.types.is_struct(field.type)
        ):
            text = [None if v is None else str(v) for v in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(text, pa.large_string()))
    return table


def load_curves(path: str | Path) -> pd.DataFrame:
    """Learning curves of every run under `path`, long format: run_id, model, data, model_width, seed,
    n_train, then the curve.csv columns (step, epoch, samples_seen, train_loss, test_error, ...)."""
    frames = []
    for record_path in find_records(Path(path)):
        curve = record_path.parent / CURVE_NAME
        if not curve.exists():
            continue
        try:
            record = read_record(record_path)
            rows = pd.read_csv(curve)
        except (OSError, ValueError, TypeError) as exc:
            warnings.warn(f"skipping unreadable run {record_path.parent}: {exc}", stacklevel=2)
            continue
        for key in ("n_train", "seed", "model_width", "data", "model", "run_id"):
            rows.insert(0, key, getattr(record, key))
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
