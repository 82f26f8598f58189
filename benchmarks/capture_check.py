"""Does the fast step's CUDA-graph capture hold here, and does the replay train like the eager step?

    python benchmarks/capture_check.py [--out FOLDER]

The check of ``tests/test_fast.py::test_gpu_captured_step_matches_the_eager_fast_step`` for a machine without
pytest (benchmarks/gpu_check.sh step a): the tiny digits preset, two runners on the same seed, one replaying
CUDA graphs and one eager (fp32, same draws), two epochs with different learning rates and α (a value frozen
into the graph would show), plain and with fused views. Writes ``capture-check-<device>-<date>.json``; exit
status 1 if capture failed or the two disagree. Without a CUDA GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_speed import RESULTS, device_name, result_path, write_json  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.fast import TERMS, FastRunner  # noqa: E402
from glmc_core.train import build_state  # noqa: E402


def check(fuse: bool) -> dict:
    cfg = get_preset("digits-lt", epochs=3, batch_size=16, n_max=24, test_per_class=5, progress=False, device="cuda",
                     fuse_views=fuse)
    states = [build_state(cfg) for _ in range(2)]
    runners = [FastRunner(states[0], capture=True, bf16=False, channels_last=False),
               FastRunner(states[1], capture=False, bf16=False, channels_last=False)]
    worst = 0.0
    for alpha, lr in ((1.0, 0.05), (0.6, 0.02)):
        outs = [r.run_epoch(s, alpha=alpha, lr=lr) for r, s in zip(runners, states, strict=True)]
        for k in TERMS:
            worst = max(worst, abs(outs[0][k] - outs[1][k]) / max(abs(outs[1][k]), 1e-3))
    weights = max(float((a.float() - b.float()).abs().max()) for a, b in zip(
        states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True))
    status = runners[0].capture_status()
    ok = status["capture_held"] and worst < 1e-3 and weights < 1e-3
    return {"fuse_views": fuse, "ok": bool(ok), "loss_rel_diff": worst, "weights_max_abs_diff": weights, **status}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    result = {"device": device_name(dev), "torch": torch.__version__, "checks": []}
    if dev.type != "cuda":
        result["note"] = "no CUDA device: capture not checked"
    else:
        for fuse in (False, True):
            try:
                result["checks"].append(check(fuse))
            except Exception as exc:  # noqa: BLE001 - the report is the point
                result["checks"].append({"fuse_views": fuse, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    result["ok"] = all(c["ok"] for c in result["checks"])
    out = write_json(result_path(args.out, "capture-check", result["device"]), result)
    for c in result["checks"]:
        print(f"capture check (fuse_views={c['fuse_views']}): {'ok' if c['ok'] else 'FAILED'} {c}")
    print(result.get("note", ""), f"results: {out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
