"""The table that answers "what did this sweep cost?": every run (those that resume skipped included, marked),
the config keys that vary across them, then test error, FLOPs, network operations, hardware burden, energy
and time."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.labels import short_label
from harness.results.store import RECORD_NAME, atomic_write_text, load

RESUMED_DIR = ".resumed"  # <sweep dir>/.resumed/<job num>.json: a job skipped by resume, and its record
CLAIMED_DIR = ".claimed"  # <sweep dir>/.claimed/<job num>.json: a job skipped as another launcher's
SUMMARY_NAME = "summary.md"
MAX_PRINTED = 1000  # runs up to which the summary is printed as well as written
# What every run cost, after the keys the sweep varies: the figures this tool exists for.
COST_COLUMNS = (
    "test_error",
    "flops_forward",
    "network_operations",
    "hardware_burden",
    "energy_total_j",
    "energy_method",
    "train_time_s",
)
# Config keys that vary without being part of the question (where runs were written, how they were run).
NOT_SWEPT = (
    "config.paths.",
    "config.resume",
    "config.fail_fast",
    "config.data.root",
    "config.trainer.device",
)


def note_resumed(sweep_dir: Path, job_num: int, run_dir: Path) -> None:
    """A job skipped by resume leaves no record in the sweep: note where its completed run is, so that the
    sweep's progress counts it and its table lists it (one file per job: workers never share a file)."""
    marker = {"job": int(job_num), "run_dir": str(Path(run_dir).resolve())}
    atomic_write_text(Path(sweep_dir) / RESUMED_DIR / f"{int(job_num)}.json", json.dumps(marker) + "\n")


def note_claimed(sweep_dir: Path, job_num: int, holder: str) -> None:
    """A job skipped because another live launcher trains its configuration: noted, so that the sweep counts
    it as accounted for (not as a job that left nothing)."""
    marker = {"job": int(job_num), "holder": holder}
    atomic_write_text(Path(sweep_dir) / CLAIMED_DIR / f"{int(job_num)}.json", json.dumps(marker) + "\n")


def noted_jobs(sweep_dir: Path, folder: str) -> set[int]:
    """The job numbers noted in `<sweep_dir>/<folder>` (RESUMED_DIR or CLAIMED_DIR)."""
    return {int(p.stem) for p in (Path(sweep_dir) / folder).glob("*.json") if p.stem.isdigit()}


def _resumed_dirs(sweep_dir: Path) -> list[Path]:
    dirs = []
    for marker in sorted((Path(sweep_dir) / RESUMED_DIR).glob("*.json")):
        try:
            dirs.append(Path(json.loads(marker.read_text())["run_dir"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a marker being written or damaged: the record it names is not ours to guess
    return dirs


def sweep_frame(directory: Path, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every run of a sweep: the records under `directory` (`frame`, when already loaded) and the
    completed runs that resume skipped (from their notes), the latter with `resumed` true."""
    frame = load(directory) if frame is None else frame
    resumed = [d for d in _resumed_dirs(directory) if (d / RECORD_NAME).is_file()]
    if not resumed:
        return frame  # as loaded: no `resumed` column to add (adding one copies 100,000 rows)
    frame = frame.assign(resumed=False)
    earlier = pd.concat([load(d) for d in resumed], ignore_index=True).assign(resumed=True)
    frame = pd.concat([frame, earlier], ignore_index=True).drop_duplicates("run_id", keep="first")
    return frame.reset_index(drop=True)


def publish_summary(directory: Path, frame: pd.DataFrame, where: Path) -> pd.DataFrame:
    """The end of a sweep and of `harness collect`: every run under `directory` (`frame`, plus the runs
    resume skipped), its summary printed and written as `where`/summary.md; returns that frame (empty:
    nothing printed or written)."""
    everything = sweep_frame(directory, frame)
    if not everything.empty:
        if len(everything) <= MAX_PRINTED:
            print(summary_table(everything))
        else:  # a results tree of thousands of runs: a table no one reads on a terminal, seconds to format
            print(f"{_title(everything)}: the summary is in {Path(where) / SUMMARY_NAME}")
        atomic_write_text(Path(where) / SUMMARY_NAME, summary_markdown(everything))
    return everything


def swept_keys(frame: pd.DataFrame) -> list[str]:
    """The config keys that vary across the runs (what the sweep asks about), in config order."""
    keys = []
    for column in frame.columns:
        if not column.startswith("config.") or column.startswith(NOT_SWEPT):
            continue
        values = frame[column]
        try:
            distinct = values.nunique(dropna=False)
        except TypeError:  # lists and mappings are not hashable: compare their JSON
            distinct = values.map(
                lambda v: json.dumps(v, default=str) if isinstance(v, list | dict) else v
            ).nunique(dropna=False)
        if distinct > 1:
            keys.append(column)
    return keys


def _energy_method(row: dict[str, Any]) -> str | None:
    """The methods behind a run's energy, without their details ("estimate", "nvml_counter+rapl")."""
    methods = []
    for part in ("gpu", "cpu", "ram"):
        method = row.get(f"energy_method_{part}")
        if isinstance(method, str) and method and method != "not_used":
            head = method.split(":")[0]
            if head not in methods:
                methods.append(head)
    return "+".join(methods) or None


def summary_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The table a sweep ends with: one row per run, the swept keys, then what it cost; sorted by them."""
    keys = swept_keys(frame)
    if "seed" in frame.columns and "config.seed" not in keys and frame["seed"].nunique() > 1:
        keys.append("seed")  # ensemble members differ by seed only
    if "n_train" in frame.columns and frame["n_train"].nunique() > 1:
        keys.append("n_train")  # what data.fraction means, in samples
    columns = {}  # built whole, then framed once: the records' frame is wide, inserting into it is slow
    if frame.get("resumed", pd.Series(False, index=frame.index)).any():
        columns["run"] = frame["resumed"].map({True: "resumed", False: "new"})
    columns.update({short_label(key): frame[key] for key in keys})
    status = frame["status"].astype("str")  # text, not the loaded frame's category: a suffix may be added
    if "collapsed" in frame.columns:  # completed, but no better than chance: say so where it is read
        status = status.where(frame["collapsed"].ne(True), status + " (collapsed)")
    columns["status"] = status
    for column in COST_COLUMNS:
        columns[short_label(column)] = frame[column] if column in frame.columns else None
        if column == "test_error" and "val_error" in frame.columns and frame["val_error"].notna().any():
            columns[short_label("val_error")] = frame["val_error"]
    if len(frame):
        methods = [f"energy_method_{part}" for part in ("gpu", "cpu", "ram")]
        present = [frame[c] if c in frame.columns else [None] * len(frame) for c in methods]
        rows = list(zip(*present, strict=True))
        # Named once per distinct combination: a sweep's runs share a few.
        labels = {row: _energy_method(dict(zip(methods, row, strict=True))) for row in set(rows)}
        columns[short_label("energy_method")] = [labels[row] for row in rows]
    table = pd.DataFrame(columns, index=frame.index)
    order = [short_label(key) for key in keys]
    return table.sort_values(order, kind="stable").reset_index(drop=True) if order else table


def summary_table(frame: pd.DataFrame, *, terminal: bool | None = None) -> str:
    """The sweep's summary as a text table: rich box-drawing on a terminal (its width), plain aligned
    columns of the full width otherwise, so a pipe or a log never wraps a row."""
    table = summary_frame(frame)
    title = _title(frame)
    terminal = sys.stdout.isatty() if terminal is None else terminal
    if not terminal:
        cells = table.apply(lambda column: column.map(_cell))
        return f"{title}\n{cells.to_string(index=False)}"
    from rich.console import Console
    from rich.table import Table

    rich_table = Table(title=title)
    for column in table.columns:
        numeric = pd.api.types.is_numeric_dtype(table[column])
        rich_table.add_column(column, justify="right" if numeric else "left")
    for row in table.itertuples(index=False):
        rich_table.add_row(*(_cell(value) for value in row))
    console = Console(record=True)
    with console.capture() as capture:
        console.print(rich_table)
    return capture.get()


def summary_markdown(frame: pd.DataFrame) -> str:
    table = summary_frame(frame)
    cells = [_cells(table[c]) for c in table.columns]
    head = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join(
        "---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns
    )
    rows = ["| " + " | ".join(row) + " |" for row in zip(*cells, strict=True)]
    return "\n".join([f"# {_title(frame)}", "", head, rule + " |", *rows]) + "\n"


def _title(frame: pd.DataFrame) -> str:
    resumed = int(frame["resumed"].sum()) if "resumed" in frame.columns else 0
    text = f"{len(frame)} runs"
    return text + f" ({resumed} completed earlier, skipped by resume)" if resumed else text


def _cells(values: pd.Series) -> list[str]:
    """`_cell` of every value, each distinct value formatted once (100,000 runs share most of theirs)."""
    try:
        codes, uniques = pd.factorize(values)
    except TypeError:  # unhashable values (lists): one by one
        return [_cell(v) for v in values.tolist()]
    labels = np.array([*(_cell(v) for v in uniques.tolist()), _cell(None)], dtype=object)
    return labels[codes].tolist()  # a missing value's code is -1: the last label


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
