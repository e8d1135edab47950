"""`harness collect DIR`: one table (runs.parquet + runs.csv) of every run under DIR, and its summary (what
each run cost, printed and as summary.md)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from harness.errors import exit_with_error
from harness.results.collect import collect
from harness.results.index import rebuild_index
from harness.results.summary import SUMMARY_NAME, publish_summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="harness collect",
        description="Write runs.parquet and runs.csv (one row per run_id) for every run.json under DIR.",
    )
    parser.add_argument("directory", type=Path, help="a results tree, a sweep directory or one run directory")
    parser.add_argument("--out", type=Path, default=None, help="where the tables go (default: DIRECTORY)")
    parser.add_argument(
        "--reindex", action="store_true", help="also rebuild DIRECTORY's resume index from its completed runs"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.directory.is_dir():
        exit_with_error(f"{args.directory} is not a directory; pass a results or sweep directory")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame, parquet, csv = collect(args.directory, args.out)
        except OSError as exc:  # a read-only or full disk: the tables are not written, nothing half-written
            where = exc.filename or args.out or args.directory
            exit_with_error(
                f"could not write the tables in {where} ({exc.strerror or exc}); pass --out <writable dir>"
            )
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if parquet is None:
        exit_with_error(f"no run records (run.json) under {args.directory}; nothing to collect")
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    tables = str(csv)
    if len(frame):
        publish_summary(args.directory, frame, parquet.parent)  # with the runs a resumed sweep skipped
        tables = f"{csv}, {parquet.parent / SUMMARY_NAME}"
    print(f"{len(frame)} runs {counts} -> {parquet} and {tables}")
    if args.reindex:
        print(f"resume index: {rebuild_index(args.directory)} completed jobs marked")


if __name__ == "__main__":
    main()
