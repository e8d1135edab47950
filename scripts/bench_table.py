"""What the benchmark scripts write: their rows as one CSV, under a comment line saying how they were made."""

from __future__ import annotations

import csv
from pathlib import Path


def write_rows(path: Path, rows: list[dict], comment: str) -> None:
    """`rows` (dicts with the same keys) to `path` as CSV, after a `# comment` line; says where it wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(f"# {comment}\n")
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
