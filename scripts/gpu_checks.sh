#!/usr/bin/env bash
# The checks that only a CUDA GPU can run, in one place, each writing its log (and CSV) into OUT_DIR:
#   tests      pytest -m gpu: the energy cross-check (NVML window vs an independent counter delta and
#              codecarbon), graph and ensemble modes (capture, equality with eager, fallbacks), CUDA runs
#   step_rate  scripts/bench_step_rate.py: trainer modes beside hand-written eager and CUDA-graph loops
#   overhead   scripts/bench_overhead.py: what the energy meter costs in training throughput (>= 0.99)
#   track      scripts/bench_track.py: a plain loop with and without harness.track (>= 0.98)
#
#   scripts/gpu_checks.sh OUT_DIR                     # all four (not yet timed on a GPU)
#   scripts/gpu_checks.sh OUT_DIR tests step_rate     # some of them
#
# The overhead check trains on Fashion-MNIST: its IDX files are looked for in $FASHION_MNIST_ROOT when set,
# else where data=fashion_mnist looks by default (data/, Debian's /usr/share/datasets/fashion-mnist/). Every step runs even when an earlier one fails; the exit status is 1
# when any failed. Set PYTHON to choose the interpreter (default python3).
set -uo pipefail

usage="usage: scripts/gpu_checks.sh OUT_DIR [tests|step_rate|overhead|track ...]"
out=${1:?$usage}
shift
steps=("$@")
if [ ${#steps[@]} -eq 0 ]; then steps=(tests step_rate overhead track); fi
py=${PYTHON:-python3}
fashion_root=()
if [ -n "${FASHION_MNIST_ROOT:-}" ]; then fashion_root=("data.root=$FASHION_MNIST_ROOT"); fi

for step in "${steps[@]}"; do
    case $step in
        tests | step_rate | overhead | track) ;;
        *) echo "gpu_checks.sh: unknown step '$step'; choose from tests, step_rate, overhead, track" >&2; exit 2 ;;
    esac
done
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_checks.sh: no CUDA device is visible to $py; run this on a GPU machine" >&2
    exit 2
fi
mkdir -p "$out"

failed=0
for step in "${steps[@]}"; do
    echo "== $step" >&2
    case $step in
        tests)
            "$py" -m pytest -m gpu -q -rs tests 2>&1 | tee "$out/gpu_tests.log" ;;
        step_rate)
            "$py" scripts/bench_step_rate.py --out "$out/step_rate.csv" 2>&1 | tee "$out/step_rate.log" ;;
        overhead)
            "$py" scripts/bench_overhead.py --pairs 3 --conditions off,windows,sampler,full \
                trainer.device=cuda data=fashion_mnist "${fashion_root[@]}" trainer.epochs=20 \
                2>&1 | tee "$out/overhead.log" ;;
        track)
            "$py" scripts/bench_track.py --device cuda --width 1024 --steps 20000 --rounds 5 \
                --conditions plain,track,bare --out "$out/track.csv" 2>&1 | tee "$out/track.log" ;;
    esac
    status=$?
    if [ $status -ne 0 ]; then
        echo "gpu_checks.sh: $step failed (exit $status)" >&2
        failed=1
    fi
done
exit $failed
