"""Count one architecture of every timm model family against timm's published GMACs: results/measure/timm.csv.

    python scripts/measure_timm.py [OUT_CSV] [--models a,b] [--reference CSV]

The families are timm's model modules (resnet, vision_transformer, efficientnet, ...); from each, the
cheapest model in timm's published inference benchmark (`--reference`, default
../shared/reference/timm/benchmark-infer-amp-nchw-pt291-cu128-4090.csv) that is not a `test_*` model.
Each is built untrained, counted strictly by harness (`harness.compute.zoo.count_timm`) and by fvcore with
its default handles (what timm's benchmark publishes), at batch 1 and the published `infer_img_size`.
A model that cannot be counted gets a row with its error, and the exit status is 1. The CSV is written
once, atomically, at the end; a line per model goes to stderr as it is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from harness.compute.zoo import count_timm, timm_families
from harness.errors import one_line
from harness.results.store import atomic_write_text

REFERENCE = (
    Path(__file__).resolve().parents[2]
    / "shared/reference/timm/benchmark-infer-amp-nchw-pt291-cu128-4090.csv"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/measure/timm.csv")
    parser.add_argument("--models", help="comma-separated names (default: one per family)")
    parser.add_argument("--reference", default=str(REFERENCE))
    args = parser.parse_args(argv)
    import timm

    published = pd.read_csv(args.reference)
    # A model may be published at several sizes: --models takes its first row (timm's default size first).
    gmacs = {(row.model, int(row.infer_img_size)): float(row.infer_gmacs) for row in published.itertuples()}
    first_size = published.drop_duplicates("model").set_index("model")["infer_img_size"]
    names = (
        [(name, int(first_size[name])) for name in args.models.split(",")]
        if args.models
        else timm_families(published)
    )
    torch.set_num_threads(1)
    rows, failed = [], 0
    for i, (name, size) in enumerate(names, start=1):
        try:
            row = count_timm(name, size, gmacs[name, size])
            row["error"] = ""
        except Exception as exc:  # noqa: BLE001 - every model gets a row; the error is its content
            row, failed = {"model": name, "image_size": size, "error": one_line(exc)}, failed + 1
        rows.append(row)
        shown = f"ratio {row['ratio']:.4f} {row['reason']}" if not row["error"] else row["error"]
        print(f"[{i}/{len(names)}] {name}: {shown}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).convert_dtypes()
    atomic_write_text(Path(args.out), table.to_csv(index=False, float_format="%.6g"))
    print(
        f"{len(names) - failed}/{len(names)} counted; timm {timm.__version__}, torch {torch.__version__}; "
        f"wrote {args.out}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
