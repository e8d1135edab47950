#!/usr/bin/env bash
# The scaling study of issue 9: width × data sweeps, collected, fitted, documented under results/study/.
#
#   scripts/study.sh DATASET DEVICE [RUNS_DIR] [OVERRIDES...]
#       re-run one study end to end: train (resuming whatever RUNS_DIR already holds), collect, fit, and
#       write results/study/DATASET-DEVICE/ (runs table, learning curves, fits, plots, report, README).
#       DATASET: fashion_mnist | mnist1d; DEVICE: gpu (the full presets) | cpu (the reduced *_cpu ones);
#       RUNS_DIR defaults to results/runs/study/DATASET-DEVICE; OVERRIDES go to `harness train`.
#   scripts/study.sh gpu [OUT_DIR] [OVERRIDES...]
#       on a GPU machine: both full studies, one after the other (never two jobs on the GPU at once, so no
#       energy is shared), within STUDY_BUDGET_S seconds (default 540) from the start; packs each study's
#       runs into OUT_DIR/DATASET-gpu.tar.gz beside study.log and machine.json. OUT_DIR defaults to $OUT.
#   scripts/study.sh finish PACK_DIR
#       turn what `gpu` packed into results/study/DATASET-gpu/ for every DATASET-gpu.tar.gz in PACK_DIR.
#   scripts/study.sh architectures [RUNS_DIR] [OVERRIDES...]
#       MNIST-1D's other published architectures (logistic regression, GRU) at 3 learning rates on a CPU
#       (+sweep=mnist1d_architectures_cpu), chosen on validation beside the published accuracies:
#       results/study/mnist1d-cpu-architectures/ (RUNS_DIR defaults to results/runs/study/mnist1d-architectures).
#
# Environment:
#   HARNESS_DATA_ROOT  where the Fashion-MNIST IDX files are, if not in data/ or in Debian's
#                      /usr/share/datasets/fashion-mnist (`gpu` defaults it to data/fashion_mnist and
#                      unpacks .gz files once)
#   STUDY_DEST         where the shipped studies go (default results/study)
#   STUDY_COMMIT       the commit the runs were made from, where the machine has no git checkout
#   STUDY_BUDGET_S     `gpu`: seconds for both studies, packing included (default 540)
#   STUDY_FASHION_S    `gpu`: the most of it that Fashion-MNIST may take (default 300)
#   STUDY_DATASETS     `gpu`: which studies, space-separated (default: fashion_mnist mnist1d)
#   STUDY_FIT_ARGS     extra `harness fit` overrides, space-separated (e.g. contended=keep for a smoke run)
#   PYTHON             the interpreter that has harness (default python3)
#   STUDY_ALLOW_BUSY   1: train even when other processes keep a core busy (refused by default: the runs'
#                      times would measure that work too; their records then say contended)
#   STUDY_PREVIOUS     an earlier study folder whose fits the README sets beside the new ones (default
#                      DEST/DATASET-DEVICE-untuned, when it exists)
#
# A study whose runs sweep trainer.optimizer.lr is fitted tuned (`harness fit tune=[trainer.optimizer.lr]`:
# per configuration the run with the lowest validation error stands for it) into fit/, and once more with
# the compute of the whole search (tune_compute=sum) into fit_search/, and its runs at one fixed rate
# (STUDY_FIXED_LR, default 0.05: the untuned studies' rate) untuned into fit_fixed_lr/: the same grid without
# tuning.
set -euo pipefail

DATASETS=(fashion_mnist mnist1d)
read -r -a GPU_DATASETS <<<"${STUDY_DATASETS:-${DATASETS[*]}}"  # `gpu`: which studies, in this order
INVOCATION="scripts/study.sh $*"  # as typed, for the README (with the data root when one was given)
[[ -n ${HARNESS_DATA_ROOT:-} ]] && INVOCATION="HARNESS_DATA_ROOT=$HARNESS_DATA_ROOT $INVOCATION"
TRAIN_COMMANDS=()  # DATASET=the harness train command it ran, for machine.json and the README
X_COLUMNS="[network_operations,hardware_burden,energy_total_j]"
DEST_ROOT=${STUDY_DEST:-results/study}

usage() {
    sed -n '3,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
}

die() {
    echo "study.sh: $*" >&2
    exit 2
}

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python
command -v "$PY" >/dev/null 2>&1 || die "no python3 on PATH; set PYTHON to the interpreter that has harness"
if command -v harness >/dev/null 2>&1; then
    HARNESS=(harness)
else
    HARNESS=("$PY" -m harness.cli)  # from the repository root, without an installed console script
fi

preset() {  # DATASET DEVICE -> the sweep preset's name
    local base
    case $1 in
        fashion_mnist) base=study_fashion ;;
        mnist1d) base=study_mnist1d ;;
        *) die "unknown dataset '$1'; choose one of: ${DATASETS[*]}" ;;
    esac
    case $2 in
        gpu) echo "$base" ;;
        cpu) echo "${base}_cpu" ;;
        *) die "unknown device '$2'; choose gpu (full study) or cpu (reduced study)" ;;
    esac
}

commit() {
    if [[ -n ${STUDY_COMMIT:-} ]]; then
        echo "$STUDY_COMMIT"
    else
        git rev-parse HEAD 2>/dev/null || echo unknown
    fi
}

require_quiet_machine() {  # timing runs beside other work would publish that work's cost as theirs
    [[ ${STUDY_ALLOW_BUSY:-0} == 1 ]] && return 0
    local busy
    busy=$("$PY" -c "from harness.training.threads import busy_now; print(f'{busy_now(1.0):.1f}')") ||
        die "could not read the machine's load with $PY"
    if awk -v busy="$busy" 'BEGIN { exit !(busy >= 0.5) }'; then
        die "other processes keep $busy cores busy: the runs' times would measure that work too; wait until the machine is quiet or set STUDY_ALLOW_BUSY=1"
    fi
}

train() {  # DATASET DEVICE RUNS_DIR SECONDS(0: no limit) [OVERRIDES...] -> 0 done, 1 some runs failed, 124 out of time
    local dataset=$1 device=$2 runs=$3 seconds=$4
    shift 4
    require_quiet_machine
    local sweep
    sweep=$(preset "$dataset" "$device")
    local command=("${HARNESS[@]}" train -m "+sweep=$sweep" "paths.results_dir=$runs" "$@")
    echo "study.sh: ${command[*]}" >&2
    TRAIN_COMMANDS+=("--train-command" "$dataset=harness train -m +sweep=$sweep paths.results_dir=RUNS_DIR $*")
    local status=0
    if ((seconds > 0)); then
        # SIGTERM stops the run in progress with an `interrupted` record; the runs before it are kept.
        timeout --signal=TERM --kill-after=20 "$seconds" "${command[@]}" || status=$?
    else
        "${command[@]}" || status=$?
    fi
    case $status in
        0) ;;
        124 | 130 | 137 | 143)
            if ((seconds > 0)); then
                echo "study.sh: $dataset stopped at its time limit (${seconds} s); the runs so far are kept" >&2
            else
                echo "study.sh: $dataset was interrupted; the runs so far are kept (re-run to resume)" >&2
            fi
            status=124
            ;;
        1) echo "study.sh: some $dataset runs failed; see their run.json (the table counts them)" >&2 ;;
        *) die "harness train exited with status $status for $dataset" ;;
    esac
    return "$status"
}

finish() {  # DATASET DEVICE RUNS_DIR [MACHINE_JSON]
    local dataset=$1 device=$2 runs=$3 machine=${4:-}
    local dest="$DEST_ROOT/$dataset-$device"
    [[ -d $runs ]] || die "no runs at $runs; train first"
    mkdir -p "$dest"
    local table_args=(--runs "$runs" --dest "$dest" --dataset "$dataset" --device "$device"
        --preset "$(preset "$dataset" "$device")" --commit "$(commit)")
    if [[ -n $machine ]]; then
        [[ $machine -ef $dest/machine.json ]] || cp "$machine" "$dest/machine.json"
        table_args+=(--machine "$dest/machine.json")
    fi
    "$PY" -m harness.report.study tables "${table_args[@]}"
    local extra_fit=()
    read -r -a extra_fit <<<"${STUDY_FIT_ARGS:-}"
    local tune
    tune=$("$PY" -c "import sys, pandas as pd; t = pd.read_parquet(sys.argv[1]); c = 'config.trainer.optimizer.lr'
print('tune=[trainer.optimizer.lr]' if c in t and t[c].nunique() > 1 else '')" "$dest/runs.parquet")
    local fit=("${HARNESS[@]}" fit "results=$dest" "x=$X_COLUMNS" frontier=both
        "out=$dest/fit" overwrite=true ${tune:+"$tune"} "${extra_fit[@]}")
    echo "study.sh: ${fit[*]}" >&2
    "${fit[@]}" >"$dest/fit.txt"
    if [[ -n $tune ]]; then
        local search=("${fit[@]/#out=*/out=$dest/fit_search}" tune_compute=sum)
        echo "study.sh: ${search[*]}" >&2
        "${search[@]}" >"$dest/fit_search.txt"
        # The same grid untuned: only the runs at the untuned studies' fixed rate, fitted as those were.
        local fixed_lr=${STUDY_FIXED_LR:-0.05} scratch
        scratch=$(mktemp -d "${TMPDIR:-/tmp}/study-fixed.XXXXXX")
        "$PY" -c "import sys, pandas as pd; t = pd.read_parquet(sys.argv[1])
t[t['config.trainer.optimizer.lr'] == float(sys.argv[3])].to_parquet(sys.argv[2])" \
            "$dest/runs.parquet" "$scratch/runs.parquet" "$fixed_lr"
        local fixed=("${HARNESS[@]}" fit "results=$scratch/runs.parquet" "x=$X_COLUMNS" frontier=both
            "out=$dest/fit_fixed_lr" overwrite=true parametric.enabled=false plots=[] "${extra_fit[@]}")
        echo "study.sh: ${fixed[*]} (the runs at trainer.optimizer.lr=$fixed_lr)" >&2
        "${fixed[@]}" >"$dest/fit_fixed_lr.txt"
        rm -rf "$scratch"
    fi
    local previous=${STUDY_PREVIOUS:-$DEST_ROOT/$dataset-$device-untuned}
    [[ -d $previous ]] && table_args+=(--previous "$previous")
    "$PY" -m harness.report.study readme "${table_args[@]}" --fit-command "${fit[*]}"
    echo "study.sh: wrote $dest (README.md, runs.parquet, runs.csv, curves.csv, fit/)" >&2
}

one_study() {  # DATASET DEVICE [RUNS_DIR] [OVERRIDES...]
    local dataset=$1 device=$2
    shift 2
    preset "$dataset" "$device" >/dev/null
    local runs="results/runs/study/$dataset-$device"
    if (($# > 0)) && [[ $1 != *=* ]]; then
        runs=$1
        shift
    fi
    local start=$SECONDS status=0 started
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    train "$dataset" "$device" "$runs" 0 "$@" || status=$?
    mkdir -p "$DEST_ROOT/$dataset-$device"
    machine_json "$DEST_ROOT/$dataset-$device/machine.json" "$started" \
        --wall "$dataset=$((SECONDS - start))" --status "$dataset=$status" "${TRAIN_COMMANDS[@]}"
    finish "$dataset" "$device" "$runs" "$DEST_ROOT/$dataset-$device/machine.json"
    return "$status"
}

machine_json() {  # OUT_FILE START_ISO WALL_S_BY_DATASET...
    "$PY" -m harness.report.study machine --out "$1" --started "$2" --commit "$(commit)" \
        --invocation "$INVOCATION" "${@:3}"
}

gpu_studies() {  # [OUT_DIR] [OVERRIDES...]
    local out=${OUT:-}
    if (($# > 0)) && [[ $1 != *=* ]]; then
        out=$1
        shift
    fi
    [[ -n $out ]] || die "gpu needs an output directory: scripts/study.sh gpu OUT_DIR (or set OUT)"
    mkdir -p "$out"
    exec > >(tee -a "$out/study.log") 2>&1  # everything below is also logged beside the packed runs
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
        die "gpu: no CUDA device visible to $PY; run the reduced studies with: scripts/study.sh DATASET cpu"
    local budget=${STUDY_BUDGET_S:-540} fashion_share=${STUDY_FASHION_S:-300}
    local started runs_root
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    runs_root=$(mktemp -d "${TMPDIR:-/tmp}/study-runs.XXXXXX")
    local idx=${HARNESS_DATA_ROOT:-data/fashion_mnist} file
    if compgen -G "$idx/*-ubyte.gz" >/dev/null; then
        # Every run reads the set anew: unpack the IDX files once, saving ~0.2 s of gunzip per run.
        mkdir -p "$runs_root/fashion_mnist-idx"
        for file in "$idx"/*-ubyte.gz; do
            gunzip -c "$file" >"$runs_root/fashion_mnist-idx/$(basename "$file" .gz)"
        done
        export HARNESS_DATA_ROOT="$runs_root/fashion_mnist-idx"
    elif [[ -d $idx ]]; then
        export HARNESS_DATA_ROOT="$idx"
    fi
    local walls=() dataset limit start status left
    for dataset in "${GPU_DATASETS[@]}"; do
        preset "$dataset" gpu >/dev/null
        left=$((budget - SECONDS - 15))  # 15 s kept for collecting and packing
        limit=$left
        [[ $dataset == fashion_mnist ]] && ((fashion_share < left)) && limit=$fashion_share
        start=$SECONDS
        status=0
        if ((limit > 20)); then
            train "$dataset" gpu "$runs_root/$dataset-gpu" "$limit" "$@" || status=$?
        else
            echo "study.sh: no time left for $dataset" >&2
            continue
        fi
        walls+=("--wall" "$dataset=$((SECONDS - start))" "--status" "$dataset=$status")
        "${HARNESS[@]}" collect "$runs_root/$dataset-gpu" >&2 || true
        tar -czf "$out/$dataset-gpu.tar.gz" -C "$runs_root/$dataset-gpu" .
    done
    machine_json "$out/machine.json" "$started" "${walls[@]}" "${TRAIN_COMMANDS[@]}"
    echo "study.sh: packed into $out: $(cd "$out" && ls | tr '\n' ' ')" >&2
}

finish_packed() {  # PACK_DIR
    local pack=$1 found=0 tarball dataset scratch
    [[ -d $pack ]] || die "finish: $pack is not a directory; pass the folder holding DATASET-gpu.tar.gz"
    for tarball in "$pack"/*-gpu.tar.gz; do
        [[ -e $tarball ]] || continue
        dataset=$(basename "$tarball" -gpu.tar.gz)
        preset "$dataset" gpu >/dev/null
        scratch=$(mktemp -d "${TMPDIR:-/tmp}/study-finish.XXXXXX")
        tar -xzf "$tarball" -C "$scratch"
        finish "$dataset" gpu "$scratch" "$pack/machine.json"
        found=1
    done
    ((found)) || die "finish: no DATASET-gpu.tar.gz in $pack"
}

architectures() {  # [RUNS_DIR] [OVERRIDES...]
    local runs=results/runs/study/mnist1d-architectures
    if (($# > 0)) && [[ $1 != *=* ]]; then
        runs=$1
        shift
    fi
    require_quiet_machine
    local command=("${HARNESS[@]}" train -m +sweep=mnist1d_architectures_cpu "paths.results_dir=$runs" "$@")
    echo "study.sh: ${command[*]}" >&2
    "${command[@]}" || echo "study.sh: some runs failed; see their run.json (the table counts them)" >&2
    "$PY" -m harness.report.study architectures --runs "$runs" --dest "$DEST_ROOT/mnist1d-cpu-architectures" \
        --dataset mnist1d --command "scripts/study.sh architectures" \
        --command "harness train -m +sweep=mnist1d_architectures_cpu paths.results_dir=RUNS_DIR $*"
    echo "study.sh: wrote $DEST_ROOT/mnist1d-cpu-architectures" >&2
}

(($# > 0)) || die "no command given; see scripts/study.sh --help (DATASET DEVICE, gpu or finish)"
case $1 in
    -h | --help) usage; exit 0 ;;
    gpu) shift; gpu_studies "$@" ;;
    finish)
        (($# == 2)) || die "usage: scripts/study.sh finish PACK_DIR"
        finish_packed "$2"
        ;;
    architectures) shift; architectures "$@" ;;
    fashion_mnist | mnist1d)
        (($# >= 2)) || die "usage: scripts/study.sh $1 cpu|gpu [RUNS_DIR] [OVERRIDES...]"
        one_study "$@"
        ;;
    *) die "unknown command '$1'; use DATASET DEVICE, gpu or finish (scripts/study.sh --help)" ;;
esac
