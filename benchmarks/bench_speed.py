"""Seconds per epoch of the reference path and the fast path, in one process, on one device.

    python benchmarks/bench_speed.py --data-root ../shared/data/cifar10-jpeg.zip

trains CIFAR-10-LT IF100 with the wide ResNet-32 and the paper's recipe for a few epochs,
first with the reference path (eager PyTorch, a DataLoader with PIL transforms, like the
authors' code), then with the fast path (device-resident data, the whole step captured in a
CUDA graph), and prints ms per step, seconds per epoch (training, and with evaluation), their ratio,
training images per second and peak GPU memory. ``--paths`` adds the fast path's variants (``VARIANTS``:
fused views, grouped batch norm, captured evaluation, torch.compile inside the capture). Each result says
whether its CUDA-graph capture held: a fast path that fell back to the eager step is never reported as the
captured one. The numbers go, with the device's name and torch version, to
``benchmarks/results/speed-<device>-<time>.json``, rewritten after every path.

Both paths train the same model with the same recipe and seed, but the fast path draws its
random numbers in another order, so their accuracies after a few epochs are close, not equal.
On a machine without a GPU, try ``--epochs 1 --model resnet8 --subset 100`` (the fast step then
runs eagerly: a functional check, not a speed measurement).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import time
from datetime import datetime
from pathlib import Path

# Run as a plain script (python benchmarks/bench_speed.py) the repository root is not on sys.path, and on a
# machine where glmc is not installed (the GPU machine) glmc_core would not import: put this checkout first.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.data import prepare_data  # noqa: E402
from glmc_core.errors import GLMCError  # noqa: E402
from glmc_core.train import fit, resolve_device  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"speedup": 6.0, "seconds_200_epochs": 240.0}  # on one H100 / H200 (issue 3)
# The fast path's variants: Config switches on top of the fast path (glmc_core/config.py, "fast path switches";
# benchmarks/README.md says what each is expected to gain). Each is timed like the others, in the same process.
VARIANTS: dict[str, dict] = {
    "fast": {},
    "fast-fused": {"fuse_views": True},  # both mixtures in one forward pass
    "fast-fused-grouped": {"fuse_views": True, "view_norm": "grouped"},  # + one batch-norm pass for both
    "fast-fused-evalgraph": {"fuse_views": True, "eval_graph": True, "eval_batch": 2500},  # + evaluation captured
    "fast-fused-compiled": {"fuse_views": True, "compile_step": True},  # + torch.compile inside the capture
    "fast-all": {"fuse_views": True, "view_norm": "grouped", "eval_graph": True, "eval_batch": 2500,
                 "compile_step": True},
}
FAST_PATHS = tuple(VARIANTS)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar10-lt-if100")
    p.add_argument("--data-root", help="CIFAR-10 folder or .zip (default: $GLMC_DATA_ROOT or ./data)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per path (the first includes warm-up/capture)")
    p.add_argument("--reference-epochs", type=int, help="epochs of the reference path (default: --epochs)")
    p.add_argument("--schedule-epochs", type=int, default=200,
                   help="length of the lr / α schedules the epochs are taken from (the recipe's 200)")
    p.add_argument("--model", help="encoder (default: the preset's, resnet32-wide)")
    p.add_argument("--subset", type=int, metavar="N_MAX",
                   help="tiny run: N_MAX images in the largest class (imbalance factor at most N_MAX), "
                        "20 test images per class")
    p.add_argument("--n-max", type=int, metavar="N",
                   help="images in the largest class of the long-tailed subset (the preset's n_max; unset: the "
                        "smallest full class); a zip of the subset alone needs it (5000: benchmarks/device_data.py)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the reference path")
    p.add_argument("--paths", default="reference,fast",
                   help="which paths to time, comma-separated, in this order: reference, "
                        + ", ".join(f"{k} ({', '.join(f'{a}={b}' for a, b in v.items()) or 'the defaults'})"
                                    for k, v in VARIANTS.items()))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    return p.parse_args(argv)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def variant_flags(path: str) -> list[str]:
    """The ``glmc train`` flags of a fast variant (``--set key=value`` each)."""
    return [f"--set {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in VARIANTS[path].items()]


def time_path(path: str, cfg, data, device: torch.device, workers: int, epochs: int) -> dict:
    """The first ``epochs`` epochs of ``cfg``'s schedule with one path; seconds from the run's own history."""
    seen = {"epochs": 0}

    def count_epochs(line: str) -> None:  # fit logs one "epoch ..." line per epoch; no callbacks,
        seen["epochs"] += line.startswith("epoch ")  # which would make the fast path sync every few steps
        if not line.startswith("epoch "):
            print(f"  [{path}] {line}", flush=True)  # the path's own notes (e.g. a failed capture) stay visible

    common = dict(data=data, save=False, log=count_epochs, stop=lambda: seen["epochs"] >= epochs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    if path == "reference":
        state = fit(cfg.replace(fast=False, num_workers=workers), loader="dataloader", fast=False, **common)
    else:
        state = fit(cfg.replace(**VARIANTS[path]), loader="tensor", fast=True, **common)
    wall = time.perf_counter() - t0
    hist = state.history
    steady = hist[1:] or hist  # the first epoch pays for warm-up, cuDNN autotuning and graph capture
    train_s = sum(r["train_seconds"] for r in steady) / len(steady)
    epoch_s = sum(r["seconds"] for r in steady) / len(steady)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    status = state.fast.capture_status() if state.fast else {"capture_requested": False, "capture_held": False}
    if not state.fast:
        how = "reference step (eager)"
    elif status["capture_held"]:
        how = "fast step, captured in CUDA graphs"
    elif status["capture_requested"]:
        how = f"fast step, EAGER after a failed capture ({status['capture_error']})"
    else:
        how = "fast step, eager (no capture on this device)"
    last = hist[-1]
    return {
        "path": path, "overrides": VARIANTS.get(path, {}), "fast_step": bool(state.fast), "step": how, **status,
        "epochs": len(hist), "wall_seconds": wall, "steps_per_epoch": steps,
        "first_epoch_seconds": hist[0]["seconds"], "train_seconds_per_epoch": train_s, "seconds_per_epoch": epoch_s,
        "ms_per_step": 1000.0 * train_s / steps, "eval_seconds_per_epoch": epoch_s - train_s,
        "images_per_second": len(data.train) / train_s,
        "estimated_seconds_200_epochs": hist[0]["seconds"] + 199 * epoch_s,
        "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None,
        "top1_last": last["top1"], "many_last": last["many"], "medium_last": last["medium"], "few_last": last["few"],
        "loss_last": last["total"],
    }


def report(results: dict[str, dict], meta: dict) -> str:
    lines = [f"device: {meta['device']}   torch {meta['torch']}   data: {meta['train_images']} training images, "
             f"model {meta['model']}, batch {meta['batch_size']}, {meta['epochs']} epochs per path",
             f"{'path':<21} {'ms/step':>8} {'s/epoch train':>14} {'s/epoch +eval':>14} {'images/s':>9} "
             f"{'peak GiB':>9} {'top-1':>6}  step"]
    for name, r in results.items():
        mem = "n/a" if r["peak_gpu_memory_gib"] is None else f"{r['peak_gpu_memory_gib']:.2f}"
        lines.append(f"{name:<21} {r['ms_per_step']:>8.2f} {r['train_seconds_per_epoch']:>14.3f} "
                     f"{r['seconds_per_epoch']:>14.3f} {r['images_per_second']:>9.0f} {mem:>9} {r['top1_last']:>6.2f}  "
                     f"{r['step']}")
    for name, ratio in meta.get("ratios", {}).items():
        held = "" if ratio["capture_held"] else "  [NOT the captured fast path: capture did not hold]"
        lines.append(f"{name}: {ratio['train']:.2f}x the reference per training epoch, {ratio['with_eval']:.2f}x "
                     f"with evaluation (target on one H100/H200: >= {TARGETS['speedup']:.0f}x){held}")
    for name in FAST_PATHS:
        if name in results:
            est = results[name]["estimated_seconds_200_epochs"]
            lines.append(f"{name}: {meta['schedule_epochs']} epochs with evaluation would take about {est / 60:.1f} "
                         f"min on this device (target on one H100/H200: <= {TARGETS['seconds_200_epochs'] / 60:.0f} "
                         f"min)")
    if meta.get("fastest"):
        lines.append(f"fastest fast variant: {meta['fastest']} ({' '.join(meta['fastest_flags']) or 'defaults'})")
    return "\n".join(lines)


def summarize_runs(results: dict[str, dict], meta: dict) -> None:
    """Ratios against the reference, and the fastest variant (captured ones first) for the long runs."""
    if "reference" in results:
        ref = results["reference"]
        meta["ratios"] = {name: {"train": ref["train_seconds_per_epoch"] / r["train_seconds_per_epoch"],
                                 "with_eval": ref["seconds_per_epoch"] / r["seconds_per_epoch"],
                                 "capture_held": r["capture_held"]}
                          for name, r in results.items() if name != "reference"}
        if "fast" in meta["ratios"]:
            meta["ratio"] = meta["ratios"]["fast"]
    fast = [r for name, r in results.items() if name != "reference"]
    if fast:  # by the estimated 200-epoch time: a compile's minute counts against its faster epochs
        best = min(fast, key=lambda r: (not r["capture_held"], r["estimated_seconds_200_epochs"]))
        meta["fastest"], meta["fastest_flags"] = best["path"], variant_flags(best["path"])
        meta["fastest_capture_held"] = best["capture_held"]


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or set(paths) - {"reference", *FAST_PATHS}:
        raise GLMCError(f"--paths takes a comma-separated list of: reference, {', '.join(FAST_PATHS)}")
    overrides = dict(data_root=args.data_root, model=args.model, device=args.device, seed=args.seed,
                     epochs=args.schedule_epochs, progress=False)
    if args.n_max:
        overrides["n_max"] = args.n_max
    if args.subset:
        overrides.update(n_max=args.subset, test_per_class=20)
    cfg = get_preset(args.preset, **overrides)
    if args.subset and cfg.imbalance_factor > args.subset:  # keep at least one image in the smallest class
        cfg = cfg.replace(imbalance_factor=float(args.subset))
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    data = prepare_data(cfg, progress=False)
    meta = {"device": device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "preset": args.preset, "model": cfg.model, "batch_size": cfg.batch_size, "train_images": len(data.train),
            "test_images": len(data.test), "train_counts": [int(c) for c in data.counts],
            "data_seconds": time.perf_counter() - t0, "epochs": args.epochs,
            "reference_epochs": args.reference_epochs or args.epochs, "schedule_epochs": args.schedule_epochs,
            "subset": args.subset, "workers": args.workers, "paths": paths, "complete": False,
            "date": datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            "glmc_core": str(Path(sys.modules["glmc_core"].__file__).resolve().parent)}
    results: dict[str, dict] = {}
    out = result_path(args.out, "speed", meta["device"])
    status = 0
    try:
        for path in paths:  # the file is rewritten after every path: a run cut short keeps what it measured
            epochs = meta["reference_epochs"] if path == "reference" else args.epochs
            results[path] = time_path(path, cfg, data, device, args.workers, epochs)
            summarize_runs(results, meta)
            write_json(out, {"meta": meta, "results": results})
        meta["complete"] = True
    except KeyboardInterrupt:  # a time limit's SIGINT: keep the paths already measured
        meta["interrupted_during"] = paths[len(results)]
        print(f"bench_speed: interrupted during {meta['interrupted_during']}; keeping {len(results)} path(s)",
              file=sys.stderr)
        status = 130
    write_json(out, {"meta": meta, "results": results})
    print(report(results, meta))
    print(f"results: {out}")
    return status


def result_path(folder: Path, prefix: str, device: str) -> Path:
    """``<folder>/<prefix>-<device>-<date>.json`` (the folder is made)."""
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device.split(" (")[0]).strip("-").lower()
    return folder / f"{prefix}-{slug}-{datetime.now():%Y%m%d-%H%M%S}.json"


def write_json(path: Path, payload: dict) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


def write_result(folder: Path, prefix: str, device: str, payload: dict) -> Path:
    """``payload`` as ``<prefix>-<device>-<date>.json`` in ``folder``; returns the path."""
    return write_json(result_path(folder, prefix, device), payload)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GLMCError as exc:
        print(f"bench_speed: error: {exc}", file=sys.stderr)
        sys.exit(2)
