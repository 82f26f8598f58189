"""CPU training speed: our reference step against a minimal hand-written PyTorch loop.

    python benchmarks/bench_cpu.py --data-root ../shared/data/cifar10-jpeg.zip --model resnet8

In one process, with the same model, batch size and thread count, it times

* **ours**: :func:`glmc_core.train.train_one_epoch` (the CPU reference step: index gathers
  from the uint8 training set, batch crop/flip, both mixtures, the four targets, the GLMC
  loss, backward, SGD), stopped after ``--steps`` steps;
* **minimal**: a loop a reader would write by hand: two ready-made normalised float batches
  through the same model, the same heads and loss terms (two soft cross-entropies per view and
  the stop-gradient cosine), backward, SGD. No data pipeline, no mixing.

and, for evaluation, the inference pass over the test set. The ratio ours / minimal is the
overhead of our pipeline; variants (``--channels-last``, ``--threads``) show what PyTorch's
CPU options change. Results go to ``benchmarks/results/cpu-speed-<time>.json``.
Measure on an idle machine: anything else running beside it changes the numbers several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from glmc_core import get_preset  # noqa: E402
from glmc_core.data import prepare_data  # noqa: E402
from glmc_core.methods import build_method_model  # noqa: E402
from glmc_core.train import build_state, predict, train_one_epoch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar10-lt-if100")
    p.add_argument("--data-root", help="CIFAR-10 folder or .zip (default: $GLMC_DATA_ROOT or ./data)")
    p.add_argument("--model", default="resnet8")
    p.add_argument("--method", default="glmc")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed training steps per variant (after 3 warm-up)")
    p.add_argument("--threads", default="2", help="comma-separated torch thread counts to try")
    p.add_argument("--channels-last", action="store_true", help="also time both loops in channels_last")
    p.add_argument("--n-max", type=int, default=None, help="largest class of the subset (default: the preset's)")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def time_ours(cfg, data, steps: int, channels_last: bool) -> float:
    """Seconds per step of train_one_epoch (warm-up steps excluded)."""
    state = build_state(cfg, data)
    state.fast = None  # the CPU reference step
    if channels_last:
        state.model.to(memory_format=torch.channels_last)
    calls = {"n": 0, "t0": None}

    def stop() -> bool:  # called before every step
        calls["n"] += 1
        if calls["n"] == 4:
            calls["t0"] = time.perf_counter()
        return calls["n"] > steps + 3

    train_one_epoch(state, stop=stop)
    return (time.perf_counter() - calls["t0"]) / steps


def time_minimal(cfg, num_classes: int, steps: int, channels_last: bool) -> float:
    """Seconds per step of a hand-written loop with the same forward/backward work."""
    torch.manual_seed(0)
    model = build_method_model(cfg, num_classes)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    b = cfg.batch_size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x_g = torch.randn(b, 3, cfg.image_size, cfg.image_size).contiguous(memory_format=fmt)
    x_l = torch.randn(b, 3, cfg.image_size, cfg.image_size).contiguous(memory_format=fmt)
    p = F.softmax(torch.randn(b, num_classes), 1)
    model.train()
    t0 = None
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        out_g, out_l = model(x_g), model(x_l)
        loss = 0.0
        for o in (out_g, out_l):
            loss = loss + 0.5 * (-(p * F.log_softmax(o["logits"], 1)).sum(1).mean())
            loss = loss + 0.5 * (-(p * F.log_softmax(o["logits_cb"], 1)).sum(1).mean())
        loss = loss - F.cosine_similarity(out_g["u"], out_l["h"].detach()).mean()
        loss = loss - F.cosine_similarity(out_l["u"], out_g["h"].detach()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def time_eval(cfg, data, inference: bool) -> float:
    model = build_method_model(cfg, data.num_classes)
    t0 = time.perf_counter()
    if inference:
        with torch.inference_mode():
            predict(model, data.test, cfg, data, torch.device("cpu"))
    else:
        predict(model, data.test, cfg, data, torch.device("cpu"))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = get_preset(args.preset, data_root=args.data_root, model=args.model, method=args.method,
                     batch_size=args.batch_size, device="cpu", progress=False, n_max=args.n_max)
    data = prepare_data(cfg, progress=False)
    steps_per_epoch = -(-len(data.train) // cfg.batch_size)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for cl in ([False, True] if args.channels_last else [False]):
            ours = time_ours(cfg, data, args.steps, cl)
            minimal = time_minimal(cfg, data.num_classes, args.steps, cl)
            row = {"threads": threads, "channels_last": cl, "ours_s_per_step": ours, "minimal_s_per_step": minimal,
                   "ratio_ours_over_minimal": ours / minimal,
                   "ours_train_images_per_s": 2 * cfg.batch_size / ours,  # two mixed views per step
                   "minimal_train_images_per_s": 2 * cfg.batch_size / minimal,
                   "ours_epoch_train_s": ours * steps_per_epoch}
            rows.append(row)
            print(f"threads {threads} channels_last {cl}: ours {ours * 1e3:.1f} ms/step, minimal "
                  f"{minimal * 1e3:.1f} ms/step, ratio {ours / minimal:.2f}; one epoch of {steps_per_epoch} steps "
                  f"≈ {ours * steps_per_epoch:.0f} s", flush=True)
    torch.set_num_threads(int(args.threads.split(",")[0]))
    ev = {"no_grad_s": time_eval(cfg, data, False), "inference_mode_s": time_eval(cfg, data, True),
          "test_images": len(data.test)}
    print(f"evaluation of {len(data.test)} test images: no_grad {ev['no_grad_s']:.1f} s, "
          f"inference_mode {ev['inference_mode_s']:.1f} s")
    result = {"what": "CPU training step: ours (train_one_epoch, reference step) vs a minimal hand-written loop",
              "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "preset": args.preset, "model": args.model, "method": args.method,
              "batch_size": cfg.batch_size, "train_images": len(data.train), "steps_timed": args.steps,
              "rows": rows, "evaluation": ev, "command": "python benchmarks/bench_cpu.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu-speed-{args.model}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
