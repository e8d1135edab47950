#!/usr/bin/env bash
# The theory experiment end to end (issue 7): the sweep, the collected table, one `harness fit` per arm for
# the data exponent (x=n_train) and the compute exponent (x=network_operations), and the figure.
#   scripts/theory.sh [OUT] [extra overrides for the sweep...]     OUT defaults to results/theory
# Runs go to $RUNS (default results/runs/theory, not committed); OUT gets runs.parquet/runs.csv, fits/,
# exponents.csv and theory.png/.svg. THEORY_MODELS (space-separated) fits only those arms (default: all four).
set -euo pipefail
OUT=${1:-results/theory}
shift || true
RUNS=${RUNS:-results/runs/theory}
mkdir -p "$OUT"

start=$(date +%s)
harness train -m +sweep=theory paths.results_dir="$RUNS" "$@"
echo "sweep wall time: $(( $(date +%s) - start )) s"

harness collect "$RUNS" --out "$OUT"
for model in ${THEORY_MODELS:-linear_expert linear_flexible linear_lasso mlp_ntk}; do
    for x in n_train network_operations; do
        # One arm per fit: harness fit pools every model of a dataset, and each arm has its own exponent.
        harness fit results="$OUT/runs.csv" x="$x" filter.model="$model" specs=[poly] \
            parametric.enabled=false plots=[] out="$OUT/fits/${x}_${model}" overwrite=true > /dev/null
    done
done
python -m harness.report.theory "$OUT"
