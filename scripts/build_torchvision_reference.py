"""Build the torchvision reference table from the installed torchvision's weights metadata.

    python scripts/build_torchvision_reference.py [OUT_CSV] [--counted results/measure/torchvision.csv]
                                                  [--recount] [--models resnet50,vit_b_16]

One row per trained weights of every torchvision classifier (`harness.compute.zoo.reference_row`): its
ImageNet-1K top-1/top-5 error, parameters, evaluation crop, our forward MACs and FLOPs at that crop,
torchvision's `_ops`, the year of the architecture's paper (reference/torchvision_papers.csv) and whether
the weights saw extra data (SWAG). MACs of an (architecture, crop) pair already in the zoo table
(`--counted`) are reused, since counting is deterministic; the others are counted here (the SWAG weights
at 384 and 512: minutes each on 2 CPU cores). `--recount` counts every pair afresh. The table
(default harness/scaling/reference/torchvision.csv) is written once, atomically, at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness.compute.zoo import REFERENCE_COLUMNS, reference_row, torchvision_weights
from harness.results.store import atomic_write_text
from harness.scaling.reference import torchvision_papers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="harness/scaling/reference/torchvision.csv")
    parser.add_argument("--counted", default="results/measure/torchvision.csv")
    parser.add_argument("--recount", action="store_true", help="count every pair, reuse nothing")
    parser.add_argument("--models", help="comma-separated architectures (default: every classifier)")
    args = parser.parse_args(argv)
    counted = None if args.recount else pd.read_csv(args.counted)
    chosen = set(args.models.split(",")) if args.models else None
    pairs = [(m, w) for m, w in torchvision_weights() if chosen is None or m in chosen]
    papers = torchvision_papers()
    rows = []
    for i, (model, weights) in enumerate(pairs, start=1):
        rows.append(reference_row(model, weights, papers, counted))
        print(f"[{i}/{len(pairs)}] {model} {weights}: {rows[-1]['macs_forward']} MACs", file=sys.stderr)
    table = pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))
    atomic_write_text(Path(args.out), table.to_csv(index=False, float_format="%.7g"))
    print(f"{len(rows)} weights of {table['model'].nunique()} architectures; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
