"""The search for a quick CPU recipe on real CIFAR-10-LT where GLMC beats cross-entropy.

    python benchmarks/quick_recipe_search.py --data-root ../shared/data/cifar10-jpeg.zip \
        --recipes r500-e40,r1000-e30 --seeds 0,1,2

For each recipe (a smaller long-tailed subset with the imbalance factor kept at 100, a small
model, an epoch count, a learning rate, k) it trains GLMC and CE with the same settings and
seed, and records the final top-1 and many / medium / few accuracy on a balanced test subset
(``test_per_class`` images per class) and the wall-clock seconds. The groups are the same
3 / 4 / 3 split by class size for every subset: many above 0.3·n_max images, few below
0.04·n_max (for the whole CIFAR-10-LT, n_max = 5000: 1500 and 200, as in the reference runs).
Every run made is written, none is dropped: ``benchmarks/results/quick-recipe-search-<time>.json``
and a Markdown table beside it. A recipe passes when, over every seed, GLMC's mean few-shot
accuracy is above CE's and its mean top-1 is not below CE's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.data import prepare_data  # noqa: E402
from glmc_core.train import fit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# name: config overrides of the cifar10-lt-if100 preset (the paper's recipe otherwise)
RECIPES: dict[str, dict] = {
    "r500-e40": dict(model="resnet8", n_max=500, epochs=40),
    "r1000-e30": dict(model="resnet8", n_max=1000, epochs=30),
    "r1000-e30-lr05": dict(model="resnet8", n_max=1000, epochs=30, lr=0.05),
    "r2000-s16-e30-lr05": dict(model="resnet8", n_max=2000, epochs=30, lr=0.05, image_size=16),
    "r500-e60-lr05": dict(model="resnet8", n_max=500, epochs=60, lr=0.05),
    "r1000-e40-lr05": dict(model="resnet8", n_max=1000, epochs=40, lr=0.05),
    # k = 1.0 (the paper's value for CIFAR-10-LT IF10 and ImageNet-LT): every class's total label
    # weight equal, instead of the tail counting 2.5x the head at k = 1.2
    "r1000-e30-k1": dict(model="resnet8", n_max=1000, epochs=30, label_k=1.0),
    "r1000-e30-k1-lr05": dict(model="resnet8", n_max=1000, epochs=30, lr=0.05, label_k=1.0),
    "r500-e40-k1": dict(model="resnet8", n_max=500, epochs=40, label_k=1.0),
    "r2000-s16-e30-k1-lr05": dict(model="resnet8", n_max=2000, epochs=30, lr=0.05, image_size=16, label_k=1.0),
}

# settings that cross-entropy ignores: recipes differing only in these share one CE run per seed
GLMC_ONLY = ("label_k", "resample_q", "gamma", "beta")


def recipe_config(name: str, method: str, seed: int, data_root: str | None, test_per_class: int, out: str,
                  epochs: int | None = None):
    over = dict(RECIPES[name], **({"epochs": epochs} if epochs else {}))
    n_max = over["n_max"]
    return get_preset("cifar10-lt-if100", data_root=data_root, method=method, seed=seed, device="cpu",
                      progress=False, test_per_class=test_per_class, out=out, run_name=f"{name}-{method}-{seed}",
                      many_threshold=int(0.3 * n_max), few_threshold=int(0.04 * n_max), **over)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get("GLMC_DATA_ROOT"))
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="glmc,ce")
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs (a smoke test)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--summarize", nargs="+", type=Path, metavar="JSON",
                   help="train nothing: merge these result files into one table over seeds (printed, and written "
                        "beside the first file as quick-recipe-search-summary.md)")
    args = p.parse_args(argv)
    if args.summarize:
        text = summary_markdown(args.summarize)
        (args.summarize[0].parent / "quick-recipe-search-summary.md").write_text(text + "\n")
        print(text)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    path = args.out / f"quick-recipe-search-{stamp}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"what": "quick CPU recipe search on real CIFAR-10-LT IF100 (GLMC vs CE, final epoch)",
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "test_per_class": args.test_per_class,
              "command": "python benchmarks/quick_recipe_search.py " + " ".join(sys.argv[1:]),
              "recipes": {k: RECIPES[k] for k in args.recipes.split(",")}, "epochs_override": args.epochs, "runs": []}
    done: dict[tuple, dict] = {}  # (method, recipe without GLMC-only settings, seed) -> row
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes.split(","):
            data = None
            for seed in [int(s) for s in args.seeds.split(",")]:
                for method in args.methods.split(","):
                    key = (method, tuple(sorted((k, v) for k, v in RECIPES[name].items()
                                                if method == "glmc" or k not in GLMC_ONLY)), seed)
                    if key in done:  # the same CE run under another recipe name: recorded, not re-trained
                        row = dict(done[key], recipe=name, same_run_as=done[key]["recipe"])
                        record["runs"].append(row)
                        print(json.dumps(row), flush=True)
                        continue
                    cfg = recipe_config(name, method, seed, args.data_root, args.test_per_class, tmp, args.epochs)
                    data = data or prepare_data(cfg, progress=False)
                    t0 = time.perf_counter()
                    state = fit(cfg, data=data, save=False, log=lambda *_: None)
                    secs = time.perf_counter() - t0
                    last = state.history[-1]
                    row = {"recipe": name, "method": method, "seed": seed, "seconds": round(secs, 1),
                           **{k: last[k] for k in ("top1", "many", "medium", "few")}}
                    done[key] = row
                    record["runs"].append(row)
                    print(json.dumps(row), flush=True)
                    path.write_text(json.dumps(record, indent=2) + "\n")  # after every run: nothing is lost
    record["summary"] = summarize(record["runs"])
    path.write_text(json.dumps(record, indent=2) + "\n")
    path.with_suffix(".md").write_text(to_markdown(record) + "\n")
    print(to_markdown(record))
    print(f"wrote {path}")
    return 0


def summarize(runs: list[dict]) -> dict:
    out = {}
    for name in dict.fromkeys(r["recipe"] for r in runs):
        mean = {}
        for method in ("glmc", "ce"):
            rows = [r for r in runs if r["recipe"] == name and r["method"] == method]
            if rows:
                mean[method] = {k: sum(r[k] for r in rows) / len(rows) for k in ("top1", "few", "seconds")}
                mean[method]["seeds"] = len(rows)
        if "glmc" in mean and "ce" in mean:
            glmc, ce = mean["glmc"], mean["ce"]
            mean["passes"] = bool(glmc["few"] > ce["few"] and glmc["top1"] >= ce["top1"])
        out[name] = mean
    return out


def summary_markdown(paths: list[Path]) -> str:
    """Every run of the given result files, then each recipe's mean over its seeds and whether it passes."""
    runs, sources = [], []
    for path in paths:
        record = json.loads(Path(path).read_text())
        runs += record["runs"]
        sources.append(f"`{Path(path).name}` ({record['machine']}, {record['threads']} thread(s): {record['command']})")
    summary = summarize(runs)
    lines = ["Runs from: " + "; ".join(sources), "", to_markdown({"runs": runs}), "",
             "| recipe | seeds | GLMC top-1 | CE top-1 | GLMC few | CE few | GLMC s | CE s | passes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in summary.items():
        if "glmc" in m and "ce" in m:
            g, c = m["glmc"], m["ce"]
            lines.append(f"| {name} | {g['seeds']} | {g['top1']:.1f} | {c['top1']:.1f} | {g['few']:.1f} "
                         f"| {c['few']:.1f} | {g['seconds']:.0f} | {c['seconds']:.0f} "
                         f"| {'yes' if m['passes'] else 'no'} |")
    return "\n".join(lines)


def to_markdown(record: dict) -> str:
    lines = ["| recipe | method | seed | top-1 | many | medium | few | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in record["runs"]:
        same = f" (same run as {r['same_run_as']})" if r.get("same_run_as") else ""
        lines.append(f"| {r['recipe']} | {r['method']}{same} | {r['seed']} | {r['top1']:.1f} | {r['many']:.1f} | "
                     f"{r['medium']:.1f} | {r['few']:.1f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
