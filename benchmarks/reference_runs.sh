#!/usr/bin/env bash
# The CPU reference runs that the notebooks show (reference_runs/README.md): real CIFAR-10-LT IF100
# (the whole long-tailed training set, the whole balanced test set), ResNet-8, the paper's recipe
# otherwise, 60 epochs, one seed. Two chains run side by side, one thread each (on 2 cores this
# trains more images per second than one run on two threads: benchmarks/bench_cpu.py):
#   chain 1: glmc, then glmc-no-cumulative     chain 2: ce, then cumulative-only
# Started again, it resumes every unfinished run from its checkpoint and skips finished ones.
#
#   bash benchmarks/reference_runs.sh [DATA_ROOT]     (default ../shared/data/cifar10-jpeg.zip)
set -u
cd "$(dirname "$0")/.."
ROOT=${1:-${GLMC_DATA_ROOT:-../shared/data/cifar10-jpeg.zip}}
OUT=reference_runs/cifar10-lt-if100-resnet8
EPOCHS=${GLMC_REF_EPOCHS:-60}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

one() {  # one run: resume it if it was started, skip it if it finished
    local method=$1 dir="$OUT/$1"
    if [ -f "$dir/summary.json" ]; then echo "$method: finished"; return 0; fi
    if [ -f "$dir/checkpoint.pt" ]; then
        python3 -m glmc_core train --resume "$dir" --data-root "$ROOT" --device cpu --no-progress
    else
        rm -rf "$dir"
        python3 -m glmc_core train --preset cifar10-lt-if100 --data-root "$ROOT" --device cpu --no-progress \
            --model resnet8 --method "$method" --epochs "$EPOCHS" --seed 0 --out "$OUT" --run-name "$method" \
            --set many_threshold=1500 --set few_threshold=200
    fi
}

chain() { for m in "$@"; do one "$m" >>"$OUT/$m.log" 2>&1 || { echo "$m failed: see $OUT/$m.log"; return 1; }; done; }

chain glmc glmc-no-cumulative &
chain ce cumulative-only &
wait
