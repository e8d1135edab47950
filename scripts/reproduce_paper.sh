#!/usr/bin/env bash
# Reproduce the paper's analysis (Thompson et al., The Computational Limits of Deep Learning) from the reference
# data shipped in harness/scaling/reference/ (the authors' six benchmark tables, GPL-3.0, see SOURCE.md there):
# every regression with 95% CIs, k = 1/|slope|, extrapolation, out-of-sample check, plots and report, then
# the headline table: each benchmark's log-log slope and k on network operations and on hardware burden.
#
#   scripts/reproduce_paper.sh [OUT_DIR] [HARNESS FIT OVERRIDES...]     (OUT_DIR defaults to fits/paper)
#   e.g. scripts/reproduce_paper.sh fits/paper overwrite=true plots=[png]
set -euo pipefail

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python
if command -v harness >/dev/null 2>&1; then
    HARNESS=(harness)
else
    HARNESS=("$PY" -m harness.cli)
fi

out=fits/paper
if (($# > 0)) && [[ $1 != *=* ]]; then
    out=$1
    shift
fi
mkdir -p "$(dirname "$out")"
"${HARNESS[@]}" fit reference=all "out=$out" "$@" >"$out.log"  # its own one-line error on bad input
"$PY" - "$out/fits.csv" <<'PY'
import sys

import pandas as pd

from harness.report.formatting import interval

fits = pd.read_csv(sys.argv[1])
headline = fits[(fits["spec"] == "poly") & fits["k"].notna()]
rows = [
    {
        "benchmark": r.benchmark,
        "y": r.y,
        "x": r.x,
        "N": r.n,
        "R²": f"{r.r2:.2f}",
        "slope [95% CI]": interval(r.slope, r.slope_ci_low, r.slope_ci_high),
        "k [95% CI]": interval(r.k, r.k_ci_low, r.k_ci_high),
    }
    for r in headline.itertuples()
]
print("The paper's polynomial form, y ~ log10(compute): compute grows like error^-k, k = 1/|slope| (theory: k >= 4)")
print(pd.DataFrame(rows).to_string(index=False))
PY
echo "full report: $out/report.md (tables: $out/fits.csv, $out/extrapolation.csv; printed summary: $out.log)"
