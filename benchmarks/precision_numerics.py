"""bf16 against fp32 on whole runs: final accuracy over several seeds, the same preset, the same machine.

A precision is a numerical change, not a change of method: what matters is whether the accuracies it
reaches lie within the spread that seeds give anyway. This trains ``--preset`` (default the
``cifar10-lt-quick`` preset on real CIFAR-10-LT, GLMC) once per seed in each precision and writes the
final top-1 and many/medium/few side by side, with each precision's mean and standard deviation, to
``benchmarks/results/precision-numerics-<preset>-<date>.json`` and ``.md``.

    python benchmarks/precision_numerics.py --data-root ../shared/data/cifar10-jpeg.zip      # seeds 0 1 2
    python benchmarks/precision_numerics.py --preset digits-lt --seeds 0 1 --epochs 3       # a smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.metrics import format_number  # noqa: E402
from glmc_core.precision import native_bf16  # noqa: E402
from glmc_core.train import fit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("top1", "many", "medium", "few")


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar10-lt-quick")
    p.add_argument("--data-root")
    p.add_argument("--method", default="glmc")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        for precision in ("bf16", "fp32"):
            cfg = get_preset(args.preset, seed=seed, method=args.method, precision=precision, device="cpu",
                             progress=False, data_root=args.data_root,
                             **({"epochs": args.epochs} if args.epochs else {}))
            t0 = time.perf_counter()
            state = fit(cfg, save=False, log=lambda m: None)
            last = state.history[-1]
            rows.append({"seed": seed, "precision": precision, **{k: last[k] for k in KEYS},
                         "train_seconds": sum(r["train_seconds"] for r in state.history),
                         "seconds": time.perf_counter() - t0})
            print(f"seed {seed}  {precision}  " + "  ".join(f"{k} {format_number(last[k], '.2f')}" for k in KEYS)
                  + f"  {rows[-1]['seconds']:.0f} s", flush=True)
    summary = {}
    for precision in ("bf16", "fp32"):
        mine = [r for r in rows if r["precision"] == precision]
        summary[precision] = {k: _stats([r[k] for r in mine if r[k] is not None]) for k in KEYS}
        summary[precision]["train_seconds"] = _stats([r["train_seconds"] for r in mine])
    lines = [f"# bf16 against fp32: `{args.preset}`, {args.method}, seeds {' '.join(map(str, args.seeds))}", "",
             f"CPU, {args.threads} thread(s) per run, native bf16: {native_bf16('cpu')}, torch {torch.__version__}. "
             f"Final epoch, test set, %. Command: `python benchmarks/precision_numerics.py "
             f"{' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             "| precision | seed | top-1 | many | medium | few | training s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['seed']} | " + " | ".join(format_number(r[k], ".2f") for k in KEYS)
                     + f" | {r['train_seconds']:.0f} |")
    for precision, s in summary.items():
        lines.append(f"| **{precision}** | mean (sd) | " + " | ".join(f"{s[k][0]:.2f} ({s[k][1]:.2f})" for k in KEYS)
                     + f" | {s['train_seconds'][0]:.0f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"precision-numerics-{args.preset}-{datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".json").write_text(json.dumps({"preset": args.preset, "method": args.method, "rows": rows,
                                                     "summary": summary, "native_bf16": native_bf16("cpu"),
                                                     "threads": args.threads, "torch": torch.__version__},
                                                    indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-2:]))
    print(f"wrote {stem}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
