"""One training run of the recipe with a JSON result that says how it ran (for benchmarks/gpu_check.sh).

    python benchmarks/gpu_run.py --data-root device_data/cifar10-jpeg.zip --epochs 30 --tag e30
    python benchmarks/gpu_run.py ... --epochs 200 --outputs test-outputs.npz --set fuse_views=true

trains ``--preset`` (CIFAR-10-LT IF100, wide ResNet-32, the paper's recipe) through :func:`glmc_core.train.fit`
exactly as ``glmc train`` does (run folder with config, metrics.jsonl, sparse checkpoints, summary), and writes
``run-<tag>-<device>-<date>.json`` with the device, torch version, which step trained (and whether its CUDA-graph
capture held), ms per step, seconds per epoch, the speed ratio against a ``bench_speed`` result's reference
path, peak GPU memory, and top-1 with many/medium/few (final and best). ``--outputs`` also saves the test set's
labels, logits of both heads and penultimate features (float16) as a small ``.npz`` for the notebooks; never
the checkpoint. An interrupt (a time limit's SIGINT) still writes the result from the epochs done.

``--ship PARENT`` also lays a finished run out as a shipped reference run (reference_runs/README.md), ready to be
copied into ``reference_runs/``: ``PARENT/<preset>-<model>-<epochs>ep-<gpu|cpu>/<method>/`` with ``config.json``,
``metrics.jsonl``, ``summary.json`` and ``test_outputs.npz`` (the notebooks' test outputs, written by
``glmc_core.analysis.write_test_outputs``), and the training log beside it as ``<method>.log``; never the
checkpoint (the wide ResNet-32's weights alone are 30 MB: too large to ship).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runs from the checkout where glmc is not installed (the GPU machine)
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_speed import RESULTS, device_name, result_path, write_json  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.cli import _kv, _table  # noqa: E402
from glmc_core.data.streams import eval_batches  # noqa: E402
from glmc_core.errors import GLMCError  # noqa: E402
from glmc_core.train import checkpoint_interval, fit, resolve_device  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar10-lt-if100")
    p.add_argument("--data-root")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--tag", default="run", help="name part of the result file and run folder")
    p.add_argument("--authors-quirks", action="store_true", help="train as the authors' code (see glmc train)")
    p.add_argument("--set", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--speed-json", type=Path, help="a bench_speed result: the ratio against its reference path")
    p.add_argument("--outputs", type=Path, help="save the test set's logits and features here (.npz)")
    p.add_argument("--ship", type=Path, metavar="PARENT",
                   help="lay a finished run out as a shipped reference run under PARENT (no checkpoint)")
    p.add_argument("--ship-features", action="store_true",
                   help="with --ship: the test features too (float16; 256 per image with the wide ResNet-32: ~4 MB)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="parent folder of the run folder")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    return p.parse_args(argv)


@torch.no_grad()
def test_outputs(state) -> dict[str, np.ndarray]:
    """Labels, logits of both heads and features of the test set (the final model, evaluation mode)."""
    model, cfg, data = state.model, state.cfg, state.data
    model.eval()
    ys, fs, lf, lcb = [], [], [], []
    for x, y in eval_batches(data.test, cfg, state.device, data.mean, data.std):
        r = model.encoder(x.float())
        ys.append(y.cpu())
        fs.append(r.float().cpu())
        lf.append(model.fc(r).float().cpu())
        lcb.append(model.fc_cb(r).float().cpu())
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    return {"labels": cat(ys).astype(np.int64), "features": cat(fs).astype(np.float16), "logits_fc": cat(lf),
            "logits_fc_cb": cat(lcb), "class_counts": np.asarray(data.counts, dtype=np.int64),
            "inference_head": np.asarray(model.inference_head)}


def ship_run(state, parent: Path, lines: list[str], authors_quirks: bool = False,
             features: bool = False) -> Path:
    """A finished run laid out as a shipped reference run (no checkpoint); returns its folder."""
    from glmc_core import analysis

    cfg, run_dir = state.cfg, Path(state.run_dir)
    where = "gpu" if state.device.type == "cuda" else state.device.type
    name = cfg.method + ("-quirks" if authors_quirks else "")
    dest = parent / f"{cfg.preset or cfg.dataset}-{cfg.model}-{cfg.epochs}ep-{where}" / name
    dest.mkdir(parents=True, exist_ok=True)
    for file in ("config.json", "metrics.jsonl", "summary.json"):
        shutil.copy2(run_dir / file, dest / file)
    last, best = state.history[-1], state.best
    table = _table({"final (epoch %d)" % last["epoch"]: last, "best (epoch %d)" % best["epoch"]: best})
    (dest.parent / f"{name}.log").write_text("".join(m + "\n" for m in lines) + table + "\n")  # as glmc train's
    writer = getattr(analysis, "write_test_outputs", None)
    if writer is not None:  # the final checkpoint's test outputs in the notebooks' format (test_outputs.npz)
        shutil.copy2(writer(run_dir, data=state.data, features=features, device=state.device), dest)
    else:  # a checkout from before that format: this script's own file, under another name
        np.savez_compressed(dest / "test-outputs-gpu_run.npz", **test_outputs(state))
    return dest


def _history(run_dir) -> list[dict]:
    path = Path(run_dir or "") / "metrics.jsonl"
    if not run_dir or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = dict(args.set)
    cfg = get_preset(args.preset, data_root=args.data_root, epochs=args.epochs, seed=args.seed, progress=False,
                     out=str(args.runs), run_name=f"{args.tag}-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.authors_quirks:
        cfg = cfg.authors_quirks()
    cfg = cfg.replace(**overrides)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    meta = {"tag": args.tag, "device": device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "preset": args.preset, "epochs": args.epochs, "seed": args.seed, "authors_quirks": args.authors_quirks,
            "overrides": overrides, "command": " ".join(sys.argv),
            "glmc_core": str(Path(sys.modules["glmc_core"].__file__).resolve().parent)}
    out = result_path(args.out, f"run-{args.tag}", meta["device"])
    t0 = time.perf_counter()
    state, status, run_dir = None, "finished", None
    lines: list[str] = []

    def log(msg: str) -> None:
        lines.append(msg)
        print(msg, flush=True)

    try:
        state = fit(cfg, log=log)
        history, run_dir = state.history, state.run_dir
    except KeyboardInterrupt as exc:
        status, run_dir = "interrupted", getattr(exc, "run_dir", None)
        history = _history(run_dir)
        print(f"gpu_run: interrupted after {len(history)} epoch(s); writing what was done", file=sys.stderr)
    wall = time.perf_counter() - t0
    result = {"meta": meta, "status": status, "wall_seconds": wall, "epochs_done": len(history),
              "run_dir": str(run_dir) if run_dir else None}
    if state is not None:
        fast = state.fast
        result.update(fast.capture_status() if fast else {"capture_requested": False, "capture_held": False})
        result["step"] = fast.describe() if fast else "the reference step"
        result["checkpoint_every"] = checkpoint_interval(state.cfg, bool(fast))
        result["train_images"] = len(state.data.train)
        result["train_counts"] = [int(c) for c in state.data.counts]
    else:  # interrupted: fit's log says how it trained (its first line) and whether a capture failed (a note)
        path_line = next((m for m in lines if m.startswith("training on ")), "")
        requested = "CUDA graph" in path_line
        result.update({"step": path_line, "capture_requested": requested, "capture_from": "the log",
                       "capture_held": requested and not any("capture failed" in m for m in lines)})
    if history:
        steady = history[1:] or history
        train_s = sum(r["train_seconds"] for r in steady) / len(steady)
        epoch_s = sum(r["seconds"] for r in steady) / len(steady)
        steps = math.ceil(result.get("train_images", 0) / cfg.batch_size) or None
        last = history[-1]
        best = max(history, key=lambda r: r["top1"])
        result.update({
            "first_epoch_seconds": history[0]["seconds"], "train_seconds_per_epoch": train_s,
            "seconds_per_epoch": epoch_s, "ms_per_step": 1000.0 * train_s / steps if steps else None,
            "seconds_in_epochs": sum(r["seconds"] for r in history),
            "final": {k: last[k] for k in ("epoch", "top1", "many", "medium", "few")},
            "best": {k: best[k] for k in ("epoch", "top1", "many", "medium", "few")},
            "top1": last["top1"], "many": last["many"], "medium": last["medium"], "few": last["few"]})
        if args.speed_json and args.speed_json.is_file():
            ref = json.loads(args.speed_json.read_text()).get("results", {}).get("reference")
            if ref:
                result["ratio"] = {"train": ref["train_seconds_per_epoch"] / train_s,
                                   "with_eval": ref["seconds_per_epoch"] / epoch_s,
                                   "reference_from": str(args.speed_json.name)}
    result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    if args.outputs and state is not None and status == "finished":
        args.outputs.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.outputs, **test_outputs(state))
        result["outputs"] = str(args.outputs.name)
    if args.ship and state is not None and status == "finished":
        shipped = ship_run(state, args.ship, lines, args.authors_quirks, args.ship_features)
        result["shipped"] = str(shipped.relative_to(args.ship))
        print(f"shipped as a reference run: {shipped}")
    if run_dir:  # the run's config, metrics and summary beside the result (never the checkpoints)
        keep = args.out / Path(run_dir).name
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "metrics.jsonl", "summary.json"):
            if (Path(run_dir) / name).is_file():
                shutil.copy2(Path(run_dir) / name, keep / name)
        result["run_files"] = keep.name
    write_json(out, result)
    print(json.dumps({k: result.get(k) for k in ("status", "capture_held", "ms_per_step", "seconds_per_epoch",
                                                 "wall_seconds", "top1", "many", "medium", "few")}))
    print(f"results: {out}")
    return 0 if status == "finished" else 130


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GLMCError as exc:
        print(f"gpu_run: error: {exc}", file=sys.stderr)
        sys.exit(2)
