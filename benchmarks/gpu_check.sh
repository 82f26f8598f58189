#!/usr/bin/env bash
# The GPU measurements of issues 3 and 15 as ONE call for a session that is lent one GPU for 15 minutes.
#
#   Here, once (the development machine):   bash benchmarks/gpu_check.sh prepare [ZIP]
#       builds device_data/cifar10-lt-if100-jpeg.zip (git-ignored) from the whole CIFAR-10 zip: only what the check
#       reads, the CIFAR-10-LT IF100 training subset and the test set (benchmarks/device_data.py, about 19 MiB),
#       and checks that the working tree and it stay under the 64 MiB the device tool carries (with 8 to spare).
#       Every step reads it with n_max=5000: in a zip of the subset alone, n_max unset would mean its smallest class.
#   On the GPU machine, through the device tool, carry ["device_data"], timeout_s 600:
#       bash benchmarks/gpu_check.sh
#
# It runs from the checkout with the machine's own python3 (glmc need not be installed: PYTHONPATH is the
# checkout, and the log shows where glmc_core was imported from), in at most $GLMC_BUDGET (570) seconds in
# all; every step's time limit shrinks to what is left, and after EVERY step the log, a status file and a
# tarball of all results so far are written to $OUT (what the device tool brings back), so a run that is cut
# short still returns everything done until then. The steps:
#   env  versions, the GPU, where glmc_core comes from
#   a    the GPU capture test (pytest -k gpu_captured; without pytest: benchmarks/capture_check.py instead)
#   b    bench_speed: reference, fast and the fast variants (fused views, grouped batch norm, captured
#        evaluation, torch.compile inside the capture), same process, a few epochs each
#   c    30 epochs of CIFAR-10-LT IF100 with the fastest variant whose capture held (target >= 74 % top-1)
#   q    the same with --authors-quirks, when there is time for it without crowding out d
#   d    200 epochs with sparse checkpoints (target >= 87.75 %, <= 4 min), unless capture failed or it cannot
#        finish in the time left (then the log names the command that runs it alone); keeps the metrics,
#        the summary and the test set's logits and features (test-outputs-e200.npz), not the checkpoint, and
#        lays the run out as a shipped reference run (reference_runs/<preset>-<model>-200ep-gpu/glmc/ in the
#        tarball: config, metrics, summary, test_outputs.npz, and glmc.log; copy it into reference_runs/)
# Each step writes a JSON with the device, torch version, path, whether capture held, ms per step, seconds
# per epoch, ratio, peak memory, top-1 and many/medium/few.
#
# Environment: GLMC_STEPS (default "a b c q d": which steps), GLMC_FLAGS (flags for c/q/d instead of the
# fastest variant of b, e.g. "--set fuse_views=true"), GLMC_BUDGET, GLMC_CIFAR10 (the zip), PYTHON.
# Without $OUT (a GPU workstation) the results stay in benchmarks/results/gpu-check-<date>/.
# GLMC_SMOKE=1 runs every step at toy size (ResNet-8, about 100 images, 2-3 epochs) to check the script on a
# CPU; a test does, with a Python that does not have glmc installed. Its numbers measure nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="${PYTHON:-python3}"
DATA="${GLMC_CIFAR10:-device_data/cifar10-lt-if100-jpeg.zip}"
N_MAX=5000  # benchmarks/device_data.py's N_MAX: the subset zip is read with it (the whole zip gives the same data)

prepare() {
  local src="${1:-../shared/data/cifar10-jpeg.zip}"
  [ -f "$src" ] || { echo "gpu_check: no CIFAR-10 zip at $src" >&2; exit 2; }
  git check-ignore -q device_data/cifar10-lt-if100-jpeg.zip || { echo "gpu_check: device_data/ is not git-ignored" >&2; exit 2; }
  "$PY" benchmarks/device_data.py prepare "$src" || { echo "gpu_check: device_data/ is not ready" >&2; exit 2; }
  echo "ready: run 'bash benchmarks/gpu_check.sh' on the GPU machine with carry [\"device_data\"]"
}

if [ "${1:-}" = prepare ]; then
  shift
  prepare "$@"
  exit $?
fi
[ $# -eq 0 ] || { echo "usage: $0 [prepare [ZIP]]" >&2; exit 2; }

START=$SECONDS
BUDGET="${GLMC_BUDGET:-570}"
STEPS=" ${GLMC_STEPS:-a b c q d} "
OUT_DIR="${OUT:-}"
WORK="${GLMC_WORK:-$(mktemp -d)}"  # run folders (checkpoints) and the decoded-image cache: never packed
if [ -n "$OUT_DIR" ]; then RESULTS="$WORK/results"; else RESULTS="benchmarks/results/gpu-check-$(date +%Y%m%d-%H%M%S)"; fi
mkdir -p "$RESULTS" "$WORK/runs"
LOG="$RESULTS/gpu_check.log"
STATUS="$RESULTS/status.tsv"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GLMC_CACHE_DIR="${GLMC_CACHE_DIR:-$WORK/cache}"
if [ "${GLMC_SMOKE:-0}" = 1 ]; then
  BENCH=(--model resnet8 --subset 30 --epochs 2 --reference-epochs 2 --workers 0
         --paths reference,fast,fast-fused-evalgraph)
  DATA_SETS=(--set model=resnet8 --set n_max=30 --set imbalance_factor=10 --set test_per_class=10)
  SHORT=2 LONG=3
else
  BENCH=(--epochs 3 --reference-epochs 2 --workers 4
         --paths reference,fast,fast-fused,fast-fused-grouped,fast-fused-evalgraph,fast-fused-compiled)
  BENCH+=(--n-max "$N_MAX")
  DATA_SETS=(--set "n_max=$N_MAX")  # the recipe's own data: the whole CIFAR-10-LT IF100 subset
  SHORT=30 LONG=200
fi
printf 'step\texit\tseconds\tlimit\tnote\n' > "$STATUS"

log() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - (SECONDS - START))); }
pack() {  # everything so far into $OUT: the log, the status and one tarball (JSON, logs, metrics, test outputs)
  local run  # every run folder's config, metrics and summary, even of a run that was killed (never checkpoints)
  for run in "$WORK"/runs/*/; do
    [ -d "$run" ] || continue
    mkdir -p "$RESULTS/runs/$(basename "$run")"
    cp "$run"/config.json "$run"/metrics.jsonl "$run"/summary.json "$RESULTS/runs/$(basename "$run")/" 2>/dev/null
  done
  [ -n "$OUT_DIR" ] || return 0
  cp "$LOG" "$OUT_DIR/gpu_check.log" 2>/dev/null
  cp "$STATUS" "$OUT_DIR/status.tsv" 2>/dev/null
  tar czf "$OUT_DIR/results.tgz.tmp" -C "$RESULTS" . && mv "$OUT_DIR/results.tgz.tmp" "$OUT_DIR/results.tgz"
}
skip() {  # skip NAME WHY
  log "=== $1: skipped: $2"
  printf '%s\t-\t0\t-\t%s\n' "$1" "skipped: $2" >> "$STATUS"
  pack
}
step() {  # step NAME WANT COMMAND...: at most WANT seconds and never past the budget; logged, packed
  local name="$1" want="$2"
  shift 2
  local limit
  limit=$(( $(left) - 25 ))  # room for the SIGINT grace (15 s, then a kill) and the packing
  [ "$limit" -gt "$want" ] && limit="$want"
  if [ "$limit" -lt 15 ]; then skip "$name" "only $(left)s of the budget left"; return 99; fi
  log "=== $name (limit ${limit}s, $(left)s of the budget left) $(date -u +%H:%M:%S)"
  local t0=$SECONDS rc
  timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  log "=== $name: exit $rc after $((SECONDS - t0))s"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" "" >> "$STATUS"
  pack
  return "$rc"
}
json() {  # json FILE EXPRESSION: a value from a result JSON (d = the parsed file), empty if missing
  [ -n "$1" ] && [ -f "$1" ] || return 0
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); v=($2); print('' if v is None else v)" "$1" 2>/dev/null
}
latest() { ls -t "$RESULTS"/$1 2>/dev/null | head -1; }

# --- env -----------------------------------------------------------------------------------------------
{
  echo "gpu_check: $(date -u +%FT%TZ), budget ${BUDGET}s, steps:${STEPS}, smoke ${GLMC_SMOKE:-0}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3 || true
  "$PY" - <<'EOF'
import json, os, platform, sys
import torch, torchvision
import glmc_core
info = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
        "torchvision": torchvision.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device",
        "glmc_core": os.path.dirname(os.path.abspath(glmc_core.__file__))}
try:
    import pytest  # noqa: F401
    info["pytest"] = pytest.__version__
except ImportError:
    info["pytest"] = None
print("environment:", json.dumps(info))
EOF
  ls -l "$DATA" 2>&1 || echo "gpu_check: the data set is missing: carry device_data/ (run 'prepare' first)"
} 2>&1 | tee -a "$LOG"
HAS_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
pack

# --- a: capture --------------------------------------------------------------------------------------------
if [[ "$STEPS" == *" a "* ]]; then
  if [ "${GLMC_CAPTURE_CHECK:-pytest}" = pytest ] && "$PY" -c "import pytest" 2>/dev/null; then
    step "a: GPU capture test" 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_fast.py -k gpu_captured
  else
    log "a: pytest is not installed here (or GLMC_CAPTURE_CHECK=python); benchmarks/capture_check.py instead"
    step "a: capture check" 90 "$PY" benchmarks/capture_check.py --out "$RESULTS"
  fi
fi

# --- b: speed ------------------------------------------------------------------------------------------------
SPEED=""
if [[ "$STEPS" == *" b "* ]]; then
  reserve=0  # keep enough for c and d (estimates from REFERENCE.md §5 and the targets)
  [[ "$STEPS" == *" c "* ]] && reserve=$((reserve + 70))
  [[ "$STEPS" == *" d "* ]] && reserve=$((reserve + 300))
  [ "${GLMC_SMOKE:-0}" = 1 ] && reserve=0
  want=$(( $(left) - 25 - reserve )); [ "$want" -lt 60 ] && want=60
  [ "$want" -gt 240 ] && [ "${GLMC_SMOKE:-0}" != 1 ] && want=240
  step "b: speed benchmark" "$want" "$PY" benchmarks/bench_speed.py --data-root "$DATA" "${BENCH[@]}" --out "$RESULTS"
  SPEED=$(latest 'speed-*.json')
fi
FLAGS="${GLMC_FLAGS:-}"
[ -n "$FLAGS" ] || FLAGS=$(json "$SPEED" "' '.join(d['meta'].get('fastest_flags', []))")
HELD=$(json "$SPEED" "int(bool(d['meta'].get('fastest_capture_held')))")
log "flags for the training runs: ${FLAGS:-(the defaults)}; capture held in b: ${HELD:-not measured}"
# shellcheck disable=SC2206  # FLAGS holds several words
FLAG_ARGS=($FLAGS)
RUN=("$PY" benchmarks/gpu_run.py --data-root "$DATA" --runs "$WORK/runs" --out "$RESULTS" "${DATA_SETS[@]}" "${FLAG_ARGS[@]}")
[ -n "$SPEED" ] && RUN+=(--speed-json "$SPEED")

# --- c: 30 epochs, q: the same with --authors-quirks, d: 200 epochs --------------------------------------------
SPE="" FIXED=""  # seconds per epoch, and a run's fixed cost (start-up, data, capture, compile), measured by c
if [[ "$STEPS" == *" c "* ]]; then
  step "c: $SHORT epochs, our defaults" 150 "${RUN[@]}" --epochs "$SHORT" --tag "e$SHORT"
  C_JSON=$(latest "run-e$SHORT-*.json")
  SPE=$(json "$C_JSON" "d.get('seconds_per_epoch') if d.get('status') == 'finished' else None")
  [ -n "$SPE" ] && FIXED=$(json "$C_JSON" "max(0, int(d['wall_seconds'] - d['seconds_in_epochs'] + d['first_epoch_seconds']))")
fi
[ -n "$SPE" ] || SPE=$(json "$SPEED" "d['results'][d['meta']['fastest']]['seconds_per_epoch']")
[ -n "$SPE" ] || SPE=1.5  # the prototype's pace (REFERENCE.md §5) when nothing was measured
[ -n "$FIXED" ] || FIXED=40
need() { awk -v s="$SPE" -v e="$1" -v f="$FIXED" 'BEGIN { printf "%d", s * e + f + 15 }'; }
NEED_D=$(need "$LONG")
NEED_Q=$(need "$SHORT")
log "estimates: ${SPE}s per epoch, ${FIXED}s per run besides: d needs ${NEED_D}s, q ${NEED_Q}s"
quirks() {  # quirks MAX: only when the whole run fits (a cut 30-epoch run spends GPU time for no top-1);
  # its limit is up to twice the estimate, at most MAX (what d must keep)
  local max="$1" limit=$((2 * NEED_Q))
  [ "$limit" -gt "$max" ] && limit="$max"
  if [ "$limit" -lt "$NEED_Q" ]; then
    skip "q: $SHORT epochs, --authors-quirks" "it needs about ${NEED_Q}s, $(left)s are left; run it alone: \
GLMC_STEPS=q GLMC_FLAGS='$FLAGS' bash benchmarks/gpu_check.sh"
    return 0
  fi
  step "q: $SHORT epochs, --authors-quirks" "$limit" "${RUN[@]}" --epochs "$SHORT" --tag "e$SHORT-quirks" \
       --authors-quirks
}
QDONE=0
if [[ "$STEPS" == *" q "* ]] && { [[ "$STEPS" != *" d "* ]] || [ $(( $(left) - 25 - NEED_D )) -ge "$NEED_Q" ]; }; then
  if [[ "$STEPS" == *" d "* ]]; then quirks $(( $(left) - 25 - NEED_D )); else quirks $(( $(left) - 25 )); fi
  QDONE=1
fi
if [[ "$STEPS" == *" d "* ]]; then
  if [ "$HAS_CUDA" = 1 ] && [ "${HELD:-1}" = 0 ]; then
    skip "d: $LONG epochs" "capture did not hold in b (see its JSON): a $LONG-epoch eager run measures nothing we need"
  elif [ $(( $(left) - 25 )) -lt "$NEED_D" ]; then
    skip "d: $LONG epochs" "it needs about ${NEED_D}s (${SPE}s per epoch), $(left)s are left; run it alone: \
GLMC_STEPS=d GLMC_FLAGS='$FLAGS' bash benchmarks/gpu_check.sh"
  else
    step "d: $LONG epochs" "$(( $(left) - 25 ))" "${RUN[@]}" --epochs "$LONG" --tag "e$LONG" \
         --outputs "$RESULTS/test-outputs-e$LONG.npz" --ship "$RESULTS/reference_runs"
  fi
fi
if [[ "$STEPS" == *" q "* ]] && [ "$QDONE" = 0 ]; then
  quirks $(( $(left) - 25 ))
fi
log "gpu_check: done after $((SECONDS - START))s of ${BUDGET}s; results in ${OUT_DIR:-$RESULTS}"
pack
exit 0
