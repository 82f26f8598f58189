#!/usr/bin/env bash
# The CPU reference runs that the notebooks show (reference_runs/README.md): real CIFAR-10-LT IF100
# (the whole long-tailed training set, the whole balanced test set), ResNet-8, the paper's recipe
# otherwise, 60 epochs, seed 0, groups split 3 / 4 / 3 by class size (many > 1500, few < 200 images).
# Two lanes run side by side, one thread each (on 2 cores this trains more images per second than
# one run on two threads: benchmarks/bench_cpu.py):
#   lane 1: glmc, glmc-k1 (label k = 1.0), glmc-no-cumulative, glmc-linear (α linear), glmc-k1-lr05, glmc-lr05,
#           glmc-no-cumulative-lr05
#   lane 2: ce, cumulative-only, glmc-cosine (α cosine), ce-lr05, cumulative-only-k1-lr05
# The *-lr05 runs depart from the paper's recipe on purpose: lr 0.05 instead of 0.01, the setting
# that benchmarks/quick_recipe_search.py found on a subset (there with k = 1.0); glmc-lr05 keeps k = 1.2.
# glmc-no-cumulative-lr05 and cumulative-only-k1-lr05 are the ablation of glmc-k1-lr05 (each half alone, same settings).
# GLMC_REF_RUNS="glmc-k1 cumulative-only" runs only the runs named, one after the other, in one
# lane (so that the other core can do something else).
# Started again, it resumes every unfinished run from its checkpoint and skips finished ones, so a
# run can be spread over several work sessions. Never start it twice at the same time.
# GLMC_REF_MODEL=resnet20 trains the same runs with another model, into
# reference_runs/cifar10-lt-if100-resnet20 (the notebooks read the resnet8 set; 06 section 8 the resnet20 one).
#
# GLMC_REF_SET=paper200: the paper's CIFAR-10-LT IF100 recipe trained to its end, on the standard resnet32
# (16/32/64, 0.46 M: the width of the paper's CE row) for 200 epochs, into
# reference_runs/cifar10-lt-if100-resnet32-200ep: lane 1 glmc then glmc-no-cumulative, lane 2 ce then
# cumulative-only (the ablation pair is queued behind the main pair). Every run is in the CPU's fast
# precision (precision=auto: bf16 with channels_last where the CPU has native bf16; config.json records it).
#
#   bash benchmarks/reference_runs.sh [DATA_ROOT]     (default ../shared/data/cifar10-jpeg.zip)
set -u
cd "$(dirname "$0")/.."
ROOT=${1:-${GLMC_DATA_ROOT:-../shared/data/cifar10-jpeg.zip}}
MODEL=${GLMC_REF_MODEL:-resnet8}
OUT=reference_runs/cifar10-lt-if100-$MODEL
EPOCHS=${GLMC_REF_EPOCHS:-60}
if [ "${GLMC_REF_SET:-}" = paper200 ]; then
    MODEL=resnet32 EPOCHS=200 OUT=reference_runs/cifar10-lt-if100-resnet32-200ep
elif [ -n "${GLMC_REF_SET:-}" ]; then
    echo "unknown GLMC_REF_SET '$GLMC_REF_SET' (known: paper200)"; exit 2
fi
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

one() {  # one run: resume it if it was started, skip it if it finished
    local name=$1 method=$2; shift 2
    local dir="$OUT/$name"
    if [ -f "$dir/summary.json" ]; then echo "$name: finished"; return 0; fi
    if [ -f "$dir/checkpoint.pt" ]; then
        python3 -m glmc_core train --resume "$dir" --data-root "$ROOT" --device cpu --no-progress
    else
        rm -rf "$dir"
        python3 -m glmc_core train --preset cifar10-lt-if100 --data-root "$ROOT" --device cpu --no-progress \
            --model "$MODEL" --method "$method" --epochs "$EPOCHS" --seed 0 --out "$OUT" --run-name "$name" \
            --set many_threshold=1500 --set few_threshold=200 "$@"
    fi
    # a finished run keeps its final weights only (reference_runs/README.md, "What a run keeps"), and gets its
    # test-set outputs (test_outputs.npz) at once, so that the notebooks can show it without the data
    local rc=$?
    if [ "$rc" -eq 0 ] && [ -f "$dir/summary.json" ]; then
        python3 benchmarks/slim_reference_runs.py "$dir" && python3 -c \
            "import sys; from glmc_core.notebook.setup import write_reference_outputs as w; w(sys.argv[1], sets=(sys.argv[2],))" \
            "$ROOT" "$(basename "$OUT")"
        rc=$?
    fi
    return "$rc"
}

lane() {  # runs given as NAME:METHOD[:KEY=VALUE...], one after the other
    for spec in "$@"; do
        IFS=: read -r -a parts <<<"$spec"
        local name=${parts[0]} method=${parts[1]} sets=()
        for kv in "${parts[@]:2}"; do sets+=(--set "$kv"); done
        one "$name" "$method" "${sets[@]}" >>"$OUT/$name.log" 2>&1 \
            || { echo "$name failed: see $OUT/$name.log"; return 1; }
    done
}

LANE1="glmc:glmc glmc-k1:glmc:label_k=1.0 glmc-no-cumulative:glmc-no-cumulative glmc-linear:glmc:alpha_schedule=linear glmc-k1-lr05:glmc:label_k=1.0:lr=0.05 glmc-lr05:glmc:lr=0.05 glmc-no-cumulative-lr05:glmc-no-cumulative:label_k=1.0:lr=0.05"
LANE2="ce:ce cumulative-only:cumulative-only glmc-cosine:glmc:alpha_schedule=cosine ce-lr05:ce:lr=0.05 cumulative-only-k1-lr05:cumulative-only:label_k=1.0:lr=0.05"
if [ "${GLMC_REF_SET:-}" = paper200 ]; then
    LANE1="glmc:glmc glmc-no-cumulative:glmc-no-cumulative"
    LANE2="ce:ce cumulative-only:cumulative-only"
fi
if [ -n "${GLMC_REF_RUNS:-}" ]; then
    picked=()
    for want in $GLMC_REF_RUNS; do
        found=
        for spec in $LANE1 $LANE2; do [ "${spec%%:*}" = "$want" ] && { picked+=("$spec"); found=1; }; done
        [ -n "$found" ] || { echo "unknown run '$want' (known: $(for s in $LANE1 $LANE2; do printf '%s ' "${s%%:*}"; done))"; exit 2; }
    done
    lane "${picked[@]}"
    exit $?
fi
lane $LANE1 &
lane $LANE2 &
wait
