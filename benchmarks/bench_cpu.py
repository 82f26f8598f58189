"""CPU training speed: our GLMC step against a plain fp32 eager loop, side by side in one process.

    python benchmarks/bench_cpu.py --data-root ../shared/data/cifar10-jpeg.zip            # resnet8,20,32 × 1,2 threads
    python benchmarks/bench_cpu.py --models resnet32 --threads 1 --variants --compile      # + what each option gives

For each model and thread count it times, with the same batch size (64), heads and loss terms:

* **ours**: :func:`glmc_core.train.train_one_epoch` as a run trains (``precision="auto"``: bf16 autocast
  with channels_last where the CPU computes bf16 natively, else fp32), stopped after a few steps: index
  gathers from the uint8 training set, batch crop/flip, both mixtures, the four targets, both forward
  passes of 64 images, the GLMC loss, backward, SGD;
* **plain fp32**: the loop a reader writes by hand: two ready-made float batches of 64 through the same
  model in fp32 eager mode, the same two soft cross-entropies per mixture and the stop-gradient cosine,
  backward, SGD. No data pipeline, no mixing: only the network's work.

The two alternate in rounds (ours for a few steps, then the plain loop, again and again) and each
reports the median over rounds, so a change of load during the run touches both alike. The ratio
(images per second, ours over plain fp32) is the figure of merit: above 1, our whole step beats the
network alone in fp32. ``--variants`` adds the plain loop in each precision and layout (fp32
channels_last, bf16, bf16 channels_last, and fp32 with oneDNN's implicit bf16 convolutions) to show
where the gain comes from; ``--compile`` adds ``torch.compile`` of the model in the run's precision,
with its compile time. Evaluation of the test set is timed in fp32 and in the run's precision.
Results go to ``benchmarks/results/cpu-speed-<time>.json``. Measure on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
from glmc_core.precision import autocast, native_bf16, resolve_precision  # noqa: E402
from glmc_core.train import build_state, predict, train_one_epoch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("fp32-cl", "bf16", "bf16-cl", "fp32-onednn-bf16")  # plain-loop variants beside plain fp32


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar10-lt-if100")
    p.add_argument("--data-root", help="CIFAR-10 folder or .zip (default: $GLMC_DATA_ROOT or ./data)")
    p.add_argument("--models", default="resnet8,resnet20,resnet32")
    p.add_argument("--method", default="glmc")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per loop (median reported)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per round")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"), help="ours: the run's precision")
    p.add_argument("--variants", action="store_true", help="also time the plain loop in " + ", ".join(VARIANTS))
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the model (plain loop)")
    p.add_argument("--no-eval", action="store_true", help="skip timing the evaluation")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


class Ours:
    """``train_one_epoch`` of a real run state, ``steps`` steps at a time."""

    def __init__(self, cfg, data, compiled: bool = False):
        self.state = build_state(cfg, data)
        self.state.fast = None  # the CPU's step (the fast runner is for GPUs)
        if compiled:  # what fit does with --set compile_step=true
            self.state.compiled = torch.compile(self.state.model)
        self.precision = self.state.cfg.precision

    def run(self, steps: int) -> float:
        calls = {"n": 0, "t0": 0.0}

        def stop() -> bool:  # polled before every step: the clock starts at the first
            calls["n"] += 1
            if calls["n"] == 1:
                calls["t0"] = time.perf_counter()
            return calls["n"] > steps

        train_one_epoch(self.state, stop=stop)
        return (time.perf_counter() - calls["t0"]) / steps


class Plain:
    """The hand-written loop: two float batches of 64 through the model, the GLMC loss terms, SGD."""

    def __init__(self, cfg, num_classes: int, variant: str = "fp32", compiled: bool = False):
        torch.manual_seed(0)
        self.precision = "bf16" if variant.startswith("bf16") else "fp32"
        self.cl = variant.endswith("-cl")
        self.onednn_bf16 = variant == "fp32-onednn-bf16"
        self.model = build_method_model(cfg, num_classes)
        fmt = torch.channels_last if self.cl else torch.contiguous_format
        self.model.to(memory_format=fmt)
        self.net = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        b, s = cfg.batch_size, cfg.image_size
        self.x_g = torch.randn(b, 3, s, s).contiguous(memory_format=fmt)
        self.x_l = torch.randn(b, 3, s, s).contiguous(memory_format=fmt)
        self.p = F.softmax(torch.randn(b, num_classes), 1)
        self.model.train()

    def step(self) -> None:
        with autocast(self.precision, "cpu"):
            out_g, out_l = self.net(self.x_g), self.net(self.x_l)
        p, loss = self.p, 0.0
        for o in (out_g, out_l):
            loss = loss + 0.5 * (-(p * F.log_softmax(o["logits"].float(), 1)).sum(1).mean())
            loss = loss + 0.5 * (-(p * F.log_softmax(o["logits_cb"].float(), 1)).sum(1).mean())
        loss = loss - F.cosine_similarity(out_g["u"].float(), out_l["h"].detach().float()).mean()
        loss = loss - F.cosine_similarity(out_l["u"].float(), out_g["h"].detach().float()).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def run(self, steps: int) -> float:
        old = torch.backends.mkldnn.conv.fp32_precision
        if self.onednn_bf16:  # fp32 tensors, oneDNN free to compute the convolutions in bf16
            torch.backends.mkldnn.conv.fp32_precision = "bf16"
        try:
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step()
            return (time.perf_counter() - t0) / steps
        finally:
            torch.backends.mkldnn.conv.fp32_precision = old


def alternate(loops: dict, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per step of each loop, timed in alternating rounds after one warm-up round each."""
    for loop in loops.values():
        loop.run(2)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            times[name].append(loop.run(steps))
    return {name: statistics.median(t) for name, t in times.items()}


def time_eval(cfg, data, precision: str) -> float:
    model = build_method_model(cfg, data.num_classes)
    if precision == "bf16":
        model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    with torch.inference_mode():
        predict(model, data.test, cfg.replace(precision=precision), data, torch.device("cpu"))
    return time.perf_counter() - t0


def bench_model(model: str, args, data, threads: list[int]) -> dict:
    cfg = get_preset(args.preset, data_root=args.data_root, model=model, method=args.method,
                     batch_size=args.batch_size, device="cpu", progress=False, precision=args.precision)
    steps_per_epoch = -(-len(data.train) // cfg.batch_size)
    images = 2 * cfg.batch_size  # two mixed batches of 64 per step, in both loops
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        loops = {"ours": Ours(cfg, data), "plain_fp32": Plain(cfg, data.num_classes)}
        if args.variants:
            loops.update({f"plain_{v}": Plain(cfg, data.num_classes, v) for v in VARIANTS})
        compile_s = row_compile_ours = None
        if args.compile:
            run_prec = loops["ours"].precision
            variant = "bf16-cl" if run_prec == "bf16" else "fp32"
            c = Plain(cfg, data.num_classes, variant, compiled=True)
            t0 = time.perf_counter()
            c.run(1)  # the first call compiles (forward and backward)
            compile_s = time.perf_counter() - t0
            loops[f"plain_{variant}_compiled"] = c
            loops["ours_compiled"] = oc = Ours(cfg, data, compiled=True)
            t0 = time.perf_counter()
            oc.run(1)
            row_compile_ours = time.perf_counter() - t0
            if f"plain_{variant}" not in loops and variant != "fp32":
                loops[f"plain_{variant}"] = Plain(cfg, data.num_classes, variant)
        sec = alternate(loops, args.rounds, args.steps)
        row = {"model": model, "threads": n, "ours_precision": loops["ours"].precision,
               "s_per_step": sec, "images_per_s": {k: images / v for k, v in sec.items()},
               "ratio_ours_over_plain_fp32": sec["plain_fp32"] / sec["ours"],
               "ours_epoch_train_s": sec["ours"] * steps_per_epoch}
        if compile_s is not None:
            row["compile_s"] = compile_s
            row["ours_compiled_first_step_s"] = row_compile_ours
            row["ratio_ours_compiled_over_plain_fp32"] = sec["plain_fp32"] / sec["ours_compiled"]
        rows.append(row)
        shown = "  ".join(f"{k} {v * 1e3:.0f}" for k, v in sec.items())
        print(f"{model} threads {n}: ms/step {shown}; ours/plain fp32 {row['ratio_ours_over_plain_fp32']:.2f}x "
              f"(images/s); ours one epoch ≈ {row['ours_epoch_train_s']:.0f} s"
              + (f"; compile {compile_s:.0f} s" if compile_s is not None else ""), flush=True)
    return {"rows": rows, "cfg": cfg}


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    models = args.models.split(",")
    base = get_preset(args.preset, data_root=args.data_root, model=models[0], device="cpu", progress=False)
    data = prepare_data(base, progress=False)
    rows, evaluation = [], []
    for model in models:
        out = bench_model(model, args, data, threads)
        rows += out["rows"]
        if not args.no_eval:
            torch.set_num_threads(threads[0])
            cfg = out["cfg"]
            run_prec = resolve_precision(args.precision, "cpu")
            ev = {"model": model, "threads": threads[0], "test_images": len(data.test),
                  "fp32_s": time_eval(cfg, data, "fp32"), f"{run_prec}_s": time_eval(cfg, data, run_prec)}
            evaluation.append(ev)
            print(f"{model} evaluation of {len(data.test)} test images, {threads[0]} thread(s): "
                  + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in ev.items() if k.endswith("_s")), flush=True)
    result = {"what": "CPU training step: ours (train_one_epoch in the run's precision) vs a plain fp32 eager loop "
                      "with the same two forward/backward passes of 64 images, model, heads and loss terms; "
                      "median of alternating rounds",
              "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "native_bf16": native_bf16("cpu"),
              "torch": torch.__version__, "preset": args.preset, "method": args.method, "batch_size": args.batch_size,
              "train_images": len(data.train), "rounds": args.rounds, "steps_per_round": args.steps,
              "rows": rows, "evaluation": evaluation,
              "command": "python benchmarks/bench_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu-speed-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def _cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())
