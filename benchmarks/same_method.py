"""The fast step and the reference step reach the same accuracy: whole runs, several seeds, one device.

The step-level tests (tests/test_fast.py) show that both paths compute the same losses and gradients
from the same draws. The paths draw their randomness differently, though (the fast path makes a
whole epoch's draws at once), so whole runs differ the way two seeds do. This script trains a
preset with each path for several seeds and writes the final accuracies side by side to
``benchmarks/results/same-method-<preset>-<device>-<date>.json``. Without a GPU the fast step runs
eagerly (``fast=True``), which is what it compares there.

    python benchmarks/same_method.py                      # digits-lt, seeds 0 1 2, about 2.5 min on 2 CPU cores
    python benchmarks/same_method.py --preset cifar10-lt-if100 --data-root ZIP --seeds 3407   # a GPU job
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_speed beside this file, however it is loaded
from bench_speed import RESULTS, device_name, write_result  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.errors import GLMCError  # noqa: E402
from glmc_core.train import fit, resolve_device  # noqa: E402

KEYS = ("top1", "many", "medium", "few")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="digits-lt")
    p.add_argument("--data-root")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    overrides = {"data_root": args.data_root, "epochs": args.epochs, "device": args.device, "progress": False}
    device = resolve_device(args.device)
    rows = []
    for seed in args.seeds:
        for path, fast in (("reference", False), ("fast", True)):
            cfg = get_preset(args.preset, seed=seed, **overrides)
            t0 = time.perf_counter()
            state = fit(cfg, save=False, fast=fast, log=lambda m: None)
            last = state.history[-1]
            rows.append({"seed": seed, "path": path, "fast_step": bool(state.fast),
                         **{k: last[k] for k in KEYS}, "seconds": time.perf_counter() - t0})
            print(f"seed {seed:>5}  {path:<9}  " + "  ".join(f"{k} {_f(last[k])}" for k in KEYS), flush=True)
    summary = {}
    for path in ("reference", "fast"):
        top1 = [r["top1"] for r in rows if r["path"] == path]
        summary[path] = {"top1_mean": statistics.fmean(top1), "top1_min": min(top1), "top1_max": max(top1)}
        print(f"{path:<9}  top-1 mean {summary[path]['top1_mean']:.2f}  (min {min(top1):.2f}, max {max(top1):.2f}, "
              f"{len(top1)} seeds)")
    meta = {"preset": args.preset, "device": device_name(device), "epochs": cfg.epochs, "seeds": args.seeds,
            "date": datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv)}
    out = write_result(args.out, f"same-method-{args.preset}", meta["device"],
                       {"meta": meta, "summary": summary, "runs": rows})
    print(f"results: {out}")
    return 0


def _f(v) -> str:
    return "  n/a" if v is None else f"{v:5.2f}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GLMCError as exc:
        print(f"same_method: error: {exc}", file=sys.stderr)
        sys.exit(2)
