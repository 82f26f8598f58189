"""Seconds per epoch of the reference path and the fast path, in one process, on one device.

    python benchmarks/bench_speed.py --data-root ../shared/data/cifar10-jpeg.zip

trains CIFAR-10-LT IF100 with the wide ResNet-32 and the paper's recipe for a few epochs,
first with the reference path (eager PyTorch, a DataLoader with PIL transforms, like the
authors' code), then with the fast path (device-resident data, the whole step captured in a
CUDA graph), and prints seconds per epoch (training, and with evaluation), their ratio,
training images per second and peak GPU memory. The numbers go, with the device's name, to
``benchmarks/results/speed-<device>-<time>.json``.

Both paths train the same model with the same recipe and seed, but the fast path draws its
random numbers in another order, so their accuracies after a few epochs are close, not equal.
On a machine without a GPU, try ``--epochs 1 --model resnet8 --subset 100`` (the fast step then
runs eagerly: a functional check, not a speed measurement).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from glmc_core import get_preset
from glmc_core.data import prepare_data
from glmc_core.errors import GLMCError
from glmc_core.train import fit, resolve_device

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"speedup": 6.0, "seconds_200_epochs": 240.0}  # on one H100 / H200 (issue 3)
FAST_PATHS = ("fast", "fast-fused")  # fast-fused: both mixtures in one forward pass (cfg.fuse_views)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar10-lt-if100")
    p.add_argument("--data-root", help="CIFAR-10 folder or .zip (default: $GLMC_DATA_ROOT or ./data)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per path (the first includes warm-up/capture)")
    p.add_argument("--schedule-epochs", type=int, default=200,
                   help="length of the lr / α schedules the epochs are taken from (the recipe's 200)")
    p.add_argument("--model", help="encoder (default: the preset's, resnet32-wide)")
    p.add_argument("--subset", type=int, metavar="N_MAX",
                   help="tiny run: N_MAX images in the largest class (imbalance factor at most N_MAX), "
                        "20 test images per class")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the reference path")
    p.add_argument("--paths", default="reference,fast",
                   help="which paths to time, comma-separated: reference, fast, fast-fused (the fast path with "
                        "both mixtures in one forward pass, fuse_views)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    return p.parse_args(argv)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def time_path(path: str, cfg, data, device: torch.device, workers: int, epochs: int) -> dict:
    """The first ``epochs`` epochs of ``cfg``'s schedule with one path; seconds from the run's own history."""
    seen = {"epochs": 0}

    def count_epochs(line: str) -> None:  # fit logs one "epoch ..." line per epoch; no callbacks,
        seen["epochs"] += line.startswith("epoch ")  # which would make the fast path sync every few steps

    common = dict(data=data, save=False, log=count_epochs, stop=lambda: seen["epochs"] >= epochs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    if path == "reference":
        state = fit(cfg.replace(fast=False, num_workers=workers), loader="dataloader", fast=False, **common)
    else:
        state = fit(cfg.replace(fuse_views=path == "fast-fused"), loader="tensor", fast=True, **common)
    wall = time.perf_counter() - t0
    hist = state.history
    steady = hist[1:] or hist  # the first epoch pays for warm-up, cuDNN autotuning and graph capture
    train_s = sum(r["train_seconds"] for r in steady) / len(steady)
    epoch_s = sum(r["seconds"] for r in steady) / len(steady)
    return {
        "path": path, "fast_step": bool(state.fast), "epochs": len(hist), "wall_seconds": wall,
        "first_epoch_seconds": hist[0]["seconds"], "train_seconds_per_epoch": train_s, "seconds_per_epoch": epoch_s,
        "images_per_second": len(data.train) / train_s,
        "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None,
        "top1_last": hist[-1]["top1"], "loss_last": hist[-1]["total"],
    }


def report(results: dict[str, dict], meta: dict) -> str:
    lines = [f"device: {meta['device']}   data: {meta['train_images']} training images, "
             f"model {meta['model']}, batch {meta['batch_size']}, {meta['epochs']} epochs per path",
             f"{'path':<11} {'s/epoch train':>14} {'s/epoch +eval':>14} {'images/s':>10} {'peak GiB':>9} {'top-1':>7}"]
    for name, r in results.items():
        mem = "n/a" if r["peak_gpu_memory_gib"] is None else f"{r['peak_gpu_memory_gib']:.2f}"
        lines.append(f"{name:<11} {r['train_seconds_per_epoch']:>14.3f} {r['seconds_per_epoch']:>14.3f} "
                     f"{r['images_per_second']:>10.0f} {mem:>9} {r['top1_last']:>7.2f}")
    for name, ratio in meta.get("ratios", {}).items():
        lines.append(f"{name} path is {ratio['train']:.2f}x faster per training epoch than the reference, "
                     f"{ratio['with_eval']:.2f}x with evaluation (target on one H100/H200: "
                     f">= {TARGETS['speedup']:.0f}x)")
    for name in FAST_PATHS:
        if name in results:
            est = results[name]["seconds_per_epoch"] * meta["schedule_epochs"]
            lines.append(f"{name}: {meta['schedule_epochs']} epochs with evaluation would take about {est / 60:.1f} "
                         f"min on this device (target on one H100/H200: <= {TARGETS['seconds_200_epochs'] / 60:.0f} "
                         f"min)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or set(paths) - {"reference", *FAST_PATHS}:
        raise GLMCError(f"--paths takes a comma-separated list of: reference, {', '.join(FAST_PATHS)}")
    overrides = dict(data_root=args.data_root, model=args.model, device=args.device, seed=args.seed,
                     epochs=args.schedule_epochs, progress=False)
    if args.subset:
        overrides.update(n_max=args.subset, test_per_class=20)
    cfg = get_preset(args.preset, **overrides)
    if args.subset and cfg.imbalance_factor > args.subset:  # keep at least one image in the smallest class
        cfg = cfg.replace(imbalance_factor=float(args.subset))
    device = resolve_device(cfg.device)
    data = prepare_data(cfg, progress=False)
    results = {path: time_path(path, cfg, data, device, args.workers, args.epochs) for path in paths}
    meta = {"device": device_name(device), "torch": torch.__version__, "preset": args.preset, "model": cfg.model,
            "batch_size": cfg.batch_size, "train_images": len(data.train), "epochs": args.epochs,
            "schedule_epochs": args.schedule_epochs, "subset": args.subset, "workers": args.workers,
            "date": datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv)}
    if "reference" in results:
        ref = results["reference"]
        meta["ratios"] = {name: {"train": ref["train_seconds_per_epoch"] / results[name]["train_seconds_per_epoch"],
                                 "with_eval": ref["seconds_per_epoch"] / results[name]["seconds_per_epoch"]}
                          for name in FAST_PATHS if name in results}
        if "fast" in meta["ratios"]:
            meta["ratio"] = meta["ratios"]["fast"]
    print(report(results, meta))
    out = write_result(args.out, "speed", meta["device"], {"meta": meta, "results": results})
    print(f"results: {out}")
    return 0


def write_result(folder: Path, prefix: str, device: str, payload: dict) -> Path:
    """``payload`` as ``<prefix>-<device>-<date>.json`` in ``folder``; returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device.split(" (")[0]).strip("-").lower()
    out = folder / f"{prefix}-{slug}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GLMCError as exc:
        print(f"bench_speed: error: {exc}", file=sys.stderr)
        sys.exit(2)
