"""One training loop: :func:`fit` = :func:`train_one_epoch` + :func:`evaluate`, with a run folder.

A run folder holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON
line per epoch: epoch, top-1, many/medium/few, every loss term, α, lr, seconds),
``checkpoint.pt`` (everything needed to resume, written atomically each epoch),
``best.pt`` (the best model so far) and, at the end, ``summary.json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from . import mixing
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .config import Config
from .data import LongTailData, prepare_data
from .data.streams import eval_batches, make_train_stream
from .errors import GLMCError
from .losses import alpha_schedule
from .methods import METHOD_SPECS, StepContext, build_method_model, method_extras, step_loss
from .metrics import summarize

__all__ = ["resolve_device", "lr_at", "TrainState", "build_state", "train_one_epoch", "evaluate", "fit",
           "NonFiniteLoss", "Callback"]

Callback = Callable[[str, dict], None]  # callback(event, payload); events: "step", "epoch_end", "end"


class NonFiniteLoss(GLMCError):
    """The loss became NaN or infinite."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if available, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise GLMCError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GLMCError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return dev


def lr_at(epoch: int, cfg: Config) -> float:
    """Learning rate of (0-based) ``epoch``: linear warm-up, then cosine annealing to 0 over the epochs.

    Without warm-up this equals ``CosineAnnealingLR(T_max=epochs)`` stepped once per epoch,
    as in the authors' CIFAR code.
    """
    w = cfg.warmup_epochs
    if epoch < w:
        return cfg.lr * (epoch + 1) / w
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - w) / (cfg.epochs - w)))


@dataclass
class TrainState:
    """Everything a run carries between epochs (and into its checkpoint)."""

    cfg: Config
    data: LongTailData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    stream: Iterable
    data_gen: torch.Generator
    aug_gen: torch.Generator
    np_rng: np.random.Generator
    class_weights: torch.Tensor
    run_dir: Path | None = None
    epoch: int = 0  # completed epochs
    history: list[dict] = field(default_factory=list)
    best: dict | None = None

    def checkpoint_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "epoch": self.epoch, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "classes": list(self.data.classes),
            "class_counts": [int(c) for c in self.data.counts], "history": self.history, "best": self.best,
            "rng": {"data": self.data_gen.get_state(), "aug": self.aug_gen.get_state(),
                    "numpy": json.dumps(self.np_rng.bit_generator.state), "torch": torch.get_rng_state()},
        }

    def load_checkpoint_dict(self, ck: dict, path: str = "checkpoint") -> None:
        check_compatible(ck, self.cfg.model, self.data.num_classes, self.cfg.dataset, path)
        if [int(c) for c in ck.get("class_counts", [])] != [int(c) for c in self.data.counts]:
            raise GLMCError(f"{path} was trained on other class counts than this data set's long-tailed subset")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.epoch, self.history, self.best = int(ck["epoch"]), list(ck["history"]), ck.get("best")
        rng = ck["rng"]
        self.data_gen.set_state(rng["data"])
        self.aug_gen.set_state(rng["aug"])
        self.np_rng.bit_generator.state = json.loads(rng["numpy"])
        torch.set_rng_state(rng["torch"])


def build_state(cfg: Config, data: LongTailData | None = None, loader: str = "auto") -> TrainState:
    """Data, model, optimiser and generators for ``cfg``, seeded."""
    cfg.validate()
    device = resolve_device(cfg.device)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    data = data if data is not None else prepare_data(cfg, progress=cfg.progress)
    torch.manual_seed(cfg.seed)
    model = build_method_model(cfg, data.num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr_at(0, cfg), momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    data_gen = torch.Generator().manual_seed(cfg.seed + 1)
    aug_gen = torch.Generator(device=device if device.type in ("cuda", "cpu") else "cpu").manual_seed(cfg.seed + 2)
    np_rng = np.random.default_rng(cfg.seed + 3)
    stream = make_train_stream(data, cfg, device, data_gen, aug_gen, loader)
    weights = mixing.class_weights(data.counts, cfg.label_k).to(device)
    return TrainState(cfg, data, model, optimizer, device, stream, data_gen, aug_gen, np_rng, weights)


def _emit(callbacks: Iterable[Callback], event: str, payload: dict) -> None:
    for cb in callbacks:
        cb(event, payload)


def train_one_epoch(state: TrainState, callbacks: Iterable[Callback] = (), stop: Callable[[], bool] | None = None,
                    step_every: int = 10) -> dict | None:
    """Train ``state.model`` for one epoch; returns the epoch's mean loss terms (None if stopped)."""
    cfg, epoch, model = state.cfg, state.epoch, state.model
    spec = METHOD_SPECS[cfg.method]
    alpha = alpha_schedule(epoch, cfg.epochs, cfg.alpha_schedule, cfg.alpha_constant) if spec.cumulative else 1.0
    lr = lr_at(epoch, cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    model.train()
    sums: dict[str, torch.Tensor] = {}
    lam_sum, steps = 0.0, 0
    cpu = state.device.type == "cpu"
    extras = method_extras(cfg, state.data.counts, epoch, state.device)  # CB / DRW weights, LDAM margins
    bar = state.stream
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(state.stream, total=len(state.stream), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    for batch in bar:
        if stop is not None and stop():
            return None
        b, _, h, w = batch["x_u1"].shape
        lam = mixing.sample_lambda(state.np_rng, cfg.beta, cfg.authors_beta)
        box = mixing.sample_box(state.np_rng, h, w, lam)
        partner = torch.from_numpy(state.np_rng.permutation(b)).to(state.device) if cfg.method in (
            "mixup", "cutmix") else None
        ctx = StepContext(lam, box, alpha, cfg.gamma, state.class_weights, state.data.num_classes, cfg.cutmix_label,
                          cfg.loss_reduction, partner, **extras)
        loss, terms = step_loss(cfg.method, model, batch, ctx)
        if cpu and not bool(torch.isfinite(loss)):
            raise NonFiniteLoss(f"the loss became {float(loss)} at epoch {epoch + 1}, step {steps + 1}; "
                                f"the run stopped and its last good checkpoint is kept (try a lower --lr)")
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        for k, v in terms.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        lam_sum += lam
        steps += 1
        if callbacks and steps % step_every == 0:
            _emit(callbacks, "step", {"epoch": epoch + 1, "step": steps, "steps": len(state.stream),
                                      **{k: float(v) for k, v in terms.items()}})
    means = {k: float(v) / max(steps, 1) for k, v in sums.items()}
    if not all(math.isfinite(v) for v in means.values()):
        raise NonFiniteLoss(f"the loss became NaN or infinite during epoch {epoch + 1}; the run stopped and its "
                            f"last good checkpoint is kept (try a lower --lr)")
    return {**means, "alpha": alpha, "lr": lr, "lambda_mean": lam_sum / max(steps, 1)}


@torch.no_grad()
def predict(model, split, cfg: Config, data: LongTailData, device, features: bool = False):
    """Targets, predictions (and optionally penultimate features) of ``model`` on ``split``."""
    model.eval()
    ys, ps, fs = [], [], []
    for x, y in eval_batches(split, cfg, device, data.mean, data.std):
        if features:
            r = model.encoder(x)
            head = model.fc_cb if model.inference_head == "fc_cb" else model.fc
            logits = head(r)
            fs.append(r.float().cpu())
        else:
            logits = model.predict(x)
        ys.append(y.cpu())
        ps.append(logits.argmax(1).cpu())
    t, p = torch.cat(ys).numpy(), torch.cat(ps).numpy()
    return (t, p, torch.cat(fs).numpy()) if features else (t, p)


def evaluate(model, split, cfg: Config, data: LongTailData, device) -> dict:
    """Top-1, many/medium/few and per-class accuracy (percent) on ``split``, through the inference head."""
    t, p = predict(model, split, cfg, data, device)
    return summarize(t, p, data.num_classes, data.groups)


def _new_run_dir(cfg: Config) -> Path:
    name = cfg.run_name or f"{cfg.preset or cfg.dataset}-{cfg.method}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(cfg.out) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise GLMCError(f"run folder {run_dir} already exists; continue it with --resume {run_dir} "
                        f"or choose another --run-name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fit(cfg: Config | None = None, *, data: LongTailData | None = None, resume: str | os.PathLike | None = None,
        callbacks: Iterable[Callback] = (), stop: Callable[[], bool] | None = None, save: bool = True,
        device: str | None = None, loader: str = "auto", log: Callable[[str], None] | None = None) -> TrainState:
    """Train (or resume) a run; returns the final :class:`TrainState`.

    Args:
        cfg: the run's configuration (ignored when resuming: the run's own config is used).
        data: an already prepared data set (else built from ``cfg``).
        resume: a run folder (or its ``checkpoint.pt``) to continue from its last checkpoint.
        callbacks: ``cb(event, payload)`` for live plots: ``"step"``, ``"epoch_end"``, ``"end"``.
        stop: polled between steps; returning True ends the run after the last full epoch.
        save: write the run folder (config, metrics, checkpoints).
        device: override the device (e.g. resume a GPU run on the CPU).
        loader: ``"auto"``, ``"tensor"`` or ``"dataloader"`` (the reference path).
        log: where one-line progress messages go (default: stderr).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    callbacks = list(callbacks)
    ck = None
    if resume is not None:
        ck = load_checkpoint(resume)
        cfg = Config.from_dict(ck["config"])
        run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    elif cfg is None:
        raise GLMCError("fit needs a config or a run folder to resume")
    if device is not None:
        cfg = cfg.replace(device=device)
    state = build_state(cfg, data, loader)
    if ck is not None:
        state.load_checkpoint_dict(ck, str(resume))
        state.run_dir = run_dir
        log(f"resuming {run_dir} after epoch {state.epoch} of {cfg.epochs}")
    elif save:
        state.run_dir = _new_run_dir(cfg)
        _write_text_atomic(state.run_dir / "config.json", cfg.to_json() + "\n")
    if save and state.run_dir is not None:  # metrics.jsonl always mirrors the checkpoint's history
        _write_text_atomic(state.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in state.history))
    select = "val_top1" if state.data.val is not None else "top1"
    while state.epoch < cfg.epochs:
        t0 = time.perf_counter()
        terms = train_one_epoch(state, callbacks, stop)
        if terms is None:
            log(f"stopped during epoch {state.epoch + 1}; the last checkpoint holds epoch {state.epoch}")
            break
        t1 = time.perf_counter()
        record = {"epoch": state.epoch + 1, **evaluate(state.model, state.data.test, cfg, state.data, state.device)}
        if state.data.val is not None:
            v = evaluate(state.model, state.data.val, cfg, state.data, state.device)
            record.update({f"val_{k}": v[k] for k in ("top1", "many", "medium", "few")})
        record.update(terms)
        record.update({"train_seconds": t1 - t0, "seconds": time.perf_counter() - t0})
        state.epoch += 1
        state.history.append(record)
        improved = state.best is None or record[select] > state.best[select]
        if improved:
            state.best = {k: record[k] for k in ("epoch", "top1", "many", "medium", "few", select)}
        if save:
            if improved:
                save_checkpoint({"config": cfg.to_dict(), "epoch": state.epoch, "model": state.model.state_dict(),
                                 "classes": list(state.data.classes),
                                 "class_counts": [int(c) for c in state.data.counts], "best": state.best},
                                state.run_dir / "best.pt")
            save_checkpoint(state.checkpoint_dict(), state.run_dir / "checkpoint.pt")
            with open(state.run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
        log(_epoch_line(record, cfg.epochs))
        _emit(callbacks, "epoch_end", record)
    if state.history and state.epoch >= cfg.epochs:
        summary = {"final": {k: state.history[-1][k] for k in ("epoch", "top1", "many", "medium", "few")},
                   "best": state.best, "selected_by": select, "epochs": cfg.epochs,
                   "train_seconds": sum(r["train_seconds"] for r in state.history),
                   "seconds": sum(r["seconds"] for r in state.history)}
        if save:
            _write_text_atomic(state.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        _emit(callbacks, "end", summary)
    return state


def _fmt(v) -> str:
    return "  n/a" if v is None else f"{v:5.1f}"


def _epoch_line(r: dict, epochs: int) -> str:
    return (f"epoch {r['epoch']:>3}/{epochs}  top1 {r['top1']:5.2f}  many {_fmt(r['many'])}  "
            f"medium {_fmt(r['medium'])}  few {_fmt(r['few'])}  loss {r['total']:.3f}  "
            f"alpha {r['alpha']:.2f}  {r['seconds']:.1f}s")
