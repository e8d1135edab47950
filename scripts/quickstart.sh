#!/usr/bin/env bash
# The quick start, end to end on the CPU, offline: 12 small runs on the bundled digits, collected into
# one table, then the mean test error per model and width. Extra arguments go to `harness train`.
set -euo pipefail
results=${RESULTS_DIR:-results/runs}
harness train -m +sweep=quickstart paths.results_dir="$results" "$@"
harness collect "$results"
python - "$results" <<'PY'
import sys
from harness.results import load

runs = load(sys.argv[1])
print(runs.groupby(["model", "model_width", "n_train"]).test_error.mean().unstack().round(4))
PY
