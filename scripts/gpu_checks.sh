#!/usr/bin/env bash
# The checks and figures that only a CUDA GPU gives, in one script, each step writing its log and CSV into
# OUT_DIR and the next step starting whether or not it passed (exit status 1 when any step failed):
#   tests      pytest -m gpu: the energy cross-check (NVML window vs an independent counter delta and
#              codecarbon), graph and ensemble modes (capture, equality with eager), CUDA runs
#              -> gpu_tests.log, gpu_tests.csv (test, outcome, seconds)
#   step_rate  scripts/bench_step_rate.py: trainer modes beside hand-written eager and CUDA-graph loops
#              -> step_rate.csv, step_rate.log
#   overhead   scripts/bench_overhead.py: what the energy meter costs in training throughput (goal >= 0.99)
#              on Fashion-MNIST, OVERHEAD_PAIRS rounds of off/full -> overhead.csv, overhead.log
#   study      the Fashion-MNIST scaling study (+sweep=study_fashion: CNN and MLP, 5 widths x 5 data
#              fractions) with its 3 seeds trained together (trainer.mode=ensemble, ensemble_size=3), in
#              STUDY_S seconds (scripts/study.sh gpu; runs cut at the limit are kept)
#              -> study/fashion_mnist-gpu.tar.gz, study/machine.json, study.log; back on any machine,
#                 `scripts/study.sh finish OUT_DIR/study` collects, fits and writes results/study/fashion_mnist-gpu/
#                 (CPU work: no device time spent on it)
#   track      scripts/bench_track.py (the harness.track overhead), when that script exists -> track.csv, .log
#
#   scripts/gpu_checks.sh OUT_DIR                     # every step, in the order above
#   scripts/gpu_checks.sh OUT_DIR step_rate overhead  # some of them (still in the order above)
#   scripts/gpu_checks.sh --dry-run OUT_DIR           # on the CPU: every step's command, CPU-sized (CI runs it)
#
# Each step runs under its own time limit (seconds; TESTS_S=150 STEP_RATE_S=120 OVERHEAD_S=90 STUDY_S=480
# TRACK_S=60 by default), so that one slow step cannot starve the rest. Where one command may run at most 10
# minutes, run `tests step_rate overhead track` (7 minutes at most) in one and `study` in the next.
# The dry run runs the very same argument lists, with what makes them CPU-sized added at the end (pytest
# --collect-only; --smoke and --device cpu; a few steps of a small subset; the study's overrides through
# `scripts/study.sh DATASET cpu`), so a renamed option, setting or signature fails on the CPU first.
#
# On a GPU machine without network: carry the wheels and the data with the checkout. Here, once:
#   ../shared/tools/offline-wheels.sh pytest iniconfig pluggy   # what the GPU image lacks, as wheels in .whl/
#   apt-get install dataset-fashion-mnist                       # Debian's IDX files, if not installed yet
#   mkdir -p data/fashion_mnist && cp /usr/share/datasets/fashion-mnist/*-ubyte* data/fashion_mnist/
# then run with .whl and data/fashion_mnist carried (both git-ignored), e.g. as one command:
#   python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site:$PWD && python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . &&
#   HARNESS_DATA_ROOT=data/fashion_mnist scripts/gpu_checks.sh "$OUT"
# Fashion-MNIST is looked for in $HARNESS_DATA_ROOT (default data/), its fashion_mnist/ and FashionMNIST/raw/,
# and Debian's /usr/share/datasets/fashion-mnist/. Set PYTHON to choose the interpreter (default python3).
set -uo pipefail

ALL_STEPS=(tests step_rate overhead study track)
usage="usage: scripts/gpu_checks.sh [--dry-run] OUT_DIR [${ALL_STEPS[*]} ...]"
dry=0
if [ "${1:-}" = --dry-run ]; then
    dry=1
    shift
fi
out=${1:?$usage}
shift
asked=("$@")
for step in "${asked[@]}"; do
    case " ${ALL_STEPS[*]} " in
        *" $step "*) ;;
        *) echo "gpu_checks.sh: unknown step '$step'; choose from ${ALL_STEPS[*]}" >&2; exit 2 ;;
    esac
done
steps=()
for step in "${ALL_STEPS[@]}"; do  # the order above, whatever order they were asked in
    if [ ${#asked[@]} -eq 0 ] || [[ " ${asked[*]} " == *" $step "* ]]; then steps+=("$step"); fi
done
py=${PYTHON:-python3}
command -v "$py" >/dev/null 2>&1 || { echo "gpu_checks.sh: no $py on PATH; set PYTHON" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
tests=$(dirname "$here")/tests

if ((dry)); then
    device=cpu
elif ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_checks.sh: no CUDA device is visible to $py; run this on a GPU machine (or --dry-run here)" >&2
    exit 2
else
    device=cuda
fi

fashion_found() {  # the IDX files where data=fashion_mnist looks (harness/data/sources.py)
    local root=${HARNESS_DATA_ROOT:-data} dir
    for dir in "$root" "$root/fashion_mnist" "$root/FashionMNIST/raw" /usr/share/datasets/fashion-mnist; do
        compgen -G "$dir/train-images-idx3-ubyte*" >/dev/null && return 0
    done
    return 1
}
fashion=(data=fashion_mnist)
if ((dry)) && ! fashion_found; then
    echo "gpu_checks.sh: dry run: no Fashion-MNIST files here; data=digits stands in for data=fashion_mnist" >&2
    fashion=(data=digits)
fi

# The steps' arguments: the same on the GPU and in the dry run, which appends its CPU-sized part (dry_*).
pairs=${OVERHEAD_PAIRS:-3}
step_rate_args=(--out "$out/step_rate.csv")
overhead_args=(--pairs "$pairs" --conditions off,full --out "$out/overhead.csv"
    "trainer.device=$device" "${fashion[@]}" trainer.epochs=10)
study_overrides=(seed=0 trainer.mode=ensemble trainer.ensemble_size=3)  # the preset's seeds 0,1,2 in one job
dry_step_rate=(--device cpu --cases mlp128 --smoke)
dry_overhead=(--pairs 1 --min-ratio 0 trainer.max_steps=3 trainer.eval_every_steps=3 data.n_train=256
    measure.flops=false "paths.results_dir=$out/overhead_runs")
dry_study=(model=mlp model.width=4,8 "scale={fraction:0.05,epochs:1},{fraction:0.1,epochs:1}")

mkdir -p "$out"
failed=()
run_step() {  # NAME LIMIT_S COMMAND... : the command under its time limit, logged to OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name$( ((dry)) && echo ' (dry run)'): $*" >&2
    local start=$SECONDS
    timeout --signal=TERM --kill-after=20 "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "== $name: exit $status after $((SECONDS - start)) s" >&2
    if [ $status -ne 0 ]; then
        [ $status -eq 124 ] && echo "gpu_checks.sh: $name stopped at its time limit (${limit} s)" >&2
        echo "gpu_checks.sh: $name failed (exit $status); see $out/$name.log" >&2
        failed+=("$name")
    fi
    return 0
}

junit_to_csv() {  # pytest's JUnit XML -> OUT/gpu_tests.csv (test, outcome, seconds)
    "$py" - "$out/gpu_tests.xml" "$out/gpu_tests.csv" <<'PY'
import csv, sys, xml.etree.ElementTree as ET
rows = []
for case in ET.parse(sys.argv[1]).iter("testcase"):
    outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
    rows.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                 "seconds": case.get("time")})
with open(sys.argv[2], "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=["test", "outcome", "seconds"])
    writer.writeheader()
    writer.writerows(rows)
PY
}

for step in "${steps[@]}"; do
    case $step in
        tests)
            if ((dry)); then
                run_step gpu_tests "${TESTS_S:-150}" "$py" -m pytest -m gpu -q -p no:cacheprovider --collect-only "$tests"
            else
                run_step gpu_tests "${TESTS_S:-150}" "$py" -m pytest -m gpu -q -rs -p no:cacheprovider \
                    --junitxml "$out/gpu_tests.xml" "$tests"
                [ -f "$out/gpu_tests.xml" ] && junit_to_csv
            fi
            ;;
        step_rate)
            extra=()
            ((dry)) && extra=("${dry_step_rate[@]}")
            run_step step_rate "${STEP_RATE_S:-120}" "$py" "$here/bench_step_rate.py" "${step_rate_args[@]}" \
                "${extra[@]}"
            ;;
        overhead)
            extra=()
            ((dry)) && extra=("${dry_overhead[@]}")
            run_step overhead "${OVERHEAD_S:-90}" "$py" "$here/bench_overhead.py" "${overhead_args[@]}" \
                "${extra[@]}"
            ;;
        study)
            limit=${STUDY_S:-480}
            if ((dry)); then
                dataset=mnist1d
                [ "${fashion[0]}" = data=fashion_mnist ] && dataset=fashion_mnist
                run_step study "$limit" env STUDY_DEST="$out/study/results" STUDY_ALLOW_BUSY=1 \
                    STUDY_FIT_ARGS=contended=keep \
                    "$here/study.sh" "$dataset" cpu "$out/study/runs" "${study_overrides[@]}" "${dry_study[@]}"
            else
                # study.sh keeps 15 s of its budget for packing; SIGTERM stops a run with a record.
                run_step study "$((limit + 30))" env STUDY_DATASETS=fashion_mnist STUDY_BUDGET_S="$limit" \
                    STUDY_FASHION_S="$((limit - 15))" "$here/study.sh" gpu "$out/study" "${study_overrides[@]}"
            fi
            ;;
        track)
            if [ ! -f "$here/bench_track.py" ]; then
                echo "== track: scripts/bench_track.py does not exist here; skipped" >&2
                continue
            fi
            track_args=(--device cuda --width 1024 --steps 20000 --rounds 5 --conditions plain,track,bare
                --out "$out/track.csv")
            # Dry: the same arguments, then a CPU-sized run that never fails on its ratio (argparse: last wins).
            ((dry)) && track_args+=(--device cpu --width 32 --steps 40 --warmup 5 --rounds 1 --min-ratio 0)
            run_step track "${TRACK_S:-60}" "$py" "$here/bench_track.py" "${track_args[@]}"
            ;;
    esac
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu_checks.sh: failed: ${failed[*]} (logs in $out)" >&2
    exit 1
fi
echo "gpu_checks.sh: every step passed (${steps[*]}); logs and CSVs in $out" >&2
