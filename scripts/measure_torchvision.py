"""Count every torchvision classification model and write the zoo table.

    python scripts/measure_torchvision.py [OUT_CSV] [--models resnet50,vit_b_16]

Each model is counted untrained at its own evaluation crop, batch 1, under default (strict) settings
(`harness.compute.zoo.count_torchvision`), then run once more, plainly, for the forward-pass time beside
the counting time. A model that cannot be counted gets a row with its error, and the exit status is 1.
The CSV (default results/measure/torchvision.csv) is written once, atomically, at the end; a line per
model goes to stderr as it is done. On 2 CPU cores the 80 models take tens of minutes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from harness.compute.zoo import count_torchvision, torchvision_classifiers
from harness.errors import one_line
from harness.results.store import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/measure/torchvision.csv")
    parser.add_argument("--models", help="comma-separated names (default: every classifier)")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else torchvision_classifiers()
    rows, failed = [], 0
    for i, name in enumerate(names, start=1):
        try:
            row = count_torchvision(name, forward=True)
            row["error"] = ""
        except Exception as exc:  # noqa: BLE001 - every model gets a row; the error is its content
            row, failed = {"model": name, "error": one_line(exc)}, failed + 1
        rows.append(row)
        shown = (
            f"ratio {row['ratio']:.4f}, count {row['count_s']:.1f} s" if not row["error"] else row["error"]
        )
        print(f"[{i}/{len(names)}] {name}: {shown}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).convert_dtypes()  # whole MAC counts stay integers beside a failed row
    atomic_write_text(Path(args.out), table.to_csv(index=False, float_format="%.7g"))
    print(f"{len(names) - failed}/{len(names)} counted; torch {torch.__version__}; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
