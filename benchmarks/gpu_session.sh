#!/usr/bin/env bash
# The GPU measurements of issue 3, prepared as two commands for a session that is lent one GPU
# (this workplace lends 15 minutes of device time per session, start-up included).
#
#   On the development machine, once:
#     benchmarks/gpu_session.sh prepare      # copies the CIFAR-10 zip into device_data/ (git-ignored, 60 MiB)
#   On the GPU machine, through the device tool, with carry ["device_data"]:
#     call 1, about 4 min:  bash benchmarks/gpu_session.sh check
#         environment, the capture tests, bench_speed (reference, fast, fast-fused; 3 epochs each)
#         and the 30-epoch reproduction (our defaults, then --authors-quirks)
#     call 2, about 5 min:  bash benchmarks/gpu_session.sh full [extra glmc train flags]
#         the 200-epoch reproduction; pass e.g. "--set fuse_views=true" if call 1 found fast-fused faster
#   Each call leaves its log and a tarball of the results in $OUT (the device tool brings $OUT back);
#   unpack it into the checkout (tar xzf .../results-check.tgz -C benchmarks/results) and commit the results.
#
# Without $OUT (e.g. on a GPU workstation) everything stays in benchmarks/results/.
# GLMC_SMOKE=1 runs the same steps at toy size (ResNet-8, 1 epoch, 60 images in the head class) to check
# the script itself on a CPU; its results go to a temporary folder (they measure nothing of the recipe).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DATA="${GLMC_CIFAR10:-device_data/cifar10-jpeg.zip}"
OUT_DIR="${OUT:-}"
export PYTHONUNBUFFERED=1 PYTHON="$PY" GLMC_CIFAR10="$DATA" GLMC_CIFAR10_ZIP="$DATA"
if [ "${GLMC_SMOKE:-0}" = 1 ]; then
  SMOKE_DIR=$(mktemp -d)
  export GLMC_RESULTS="${GLMC_RESULTS:-$SMOKE_DIR/results}" GLMC_RUNS="${GLMC_RUNS:-$SMOKE_DIR/runs}"
  BENCH_ARGS=(--epochs 1 --model resnet8 --subset 60 --workers 0)
  TOY="--model resnet8 --imbalance-factor 10 --set n_max=60"
  SHORT=1 LONG=1
else
  BENCH_ARGS=(--epochs 3)
  TOY=""
  SHORT=30 LONG=200
fi
RESULTS="${GLMC_RESULTS:-benchmarks/results}"
mkdir -p "$RESULTS"

prepare() {
  local src="${1:-../shared/data/cifar10-jpeg.zip}"
  [ -f "$src" ] || { echo "gpu_session: no CIFAR-10 zip at $src" >&2; exit 2; }
  mkdir -p device_data
  cp "$src" device_data/cifar10-jpeg.zip
  local tree_kib data_kib
  tree_kib=$( (git ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null || echo "0 total") | tail -1 | cut -f1)
  data_kib=$(du -sk device_data | cut -f1)
  echo "device_data/: $((data_kib / 1024)) MiB; the rest of the working tree: $((tree_kib)) KiB" \
       "(the device tool carries at most 64 MiB in all)"
  [ $((tree_kib + data_kib)) -lt $((64 * 1024)) ] || { echo "gpu_session: too much to carry" >&2; exit 2; }
}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log the exit status, go on either way
  local name="$1" limit="$2"
  shift 2
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  local start=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start))s"
}

environment() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  "$PY" - <<'EOF'
import platform, torch, torchvision
print(f"python {platform.python_version()}  torch {torch.__version__}  torchvision {torchvision.__version__}  "
      f"cuda {torch.version.cuda}  cudnn {torch.backends.cudnn.version()}")
print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")
EOF
  ls -l "$DATA" || echo "gpu_session: the data set is missing: carry device_data/ (run 'prepare' first)"
}

pack() {  # the results (logs, JSON, metrics; never data or checkpoints) into $OUT
  [ -n "$OUT_DIR" ] || return 0
  tar czf "$OUT_DIR/results-$1.tgz" -C "$RESULTS" .
  echo "packed: results-$1.tgz ($(du -h "$OUT_DIR/results-$1.tgz" | cut -f1))"
}

check() {
  environment
  step "capture tests" 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_fast.py tests/test_models.py \
       -k "captured or capturable or per_view or fast_step_equals"
  step "speed benchmark" 300 "$PY" benchmarks/bench_speed.py --data-root "$DATA" "${BENCH_ARGS[@]}" \
       --paths reference,fast,fast-fused --out "$RESULTS"
  GLMC_ARGS="$TOY" step "$SHORT epochs, our defaults" 200 benchmarks/reproduce.sh "$SHORT"
  GLMC_ARGS="$TOY --authors-quirks" step "$SHORT epochs, --authors-quirks" 200 benchmarks/reproduce.sh "$SHORT"
  pack check
}

full() {
  environment
  GLMC_ARGS="$TOY $*" step "$LONG epochs ${*:-(our defaults)}" 540 benchmarks/reproduce.sh "$LONG"
  pack full
}

mode="${1:-}"
shift || true
case "$mode" in
  prepare) prepare "$@" ;;
  check) check 2>&1 | tee ${OUT_DIR:+"$OUT_DIR/check.log"} ;;
  full) full "$@" 2>&1 | tee ${OUT_DIR:+"$OUT_DIR/full.log"} ;;
  *) echo "usage: $0 prepare [ZIP] | check | full [glmc train flags]" >&2; exit 2 ;;
esac
