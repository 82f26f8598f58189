"""One training loop: :func:`fit` = :func:`train_one_epoch` + :func:`evaluate`, with a run folder.

:func:`fit` reads like torchvision's ``main``: set up (config, state, folder, runner), then for each
epoch train, evaluate, record, log. An epoch's step is the fast path's captured one
(:class:`~glmc_core.fast.FastRunner`) or the reference step (:class:`ReferenceStep`), chosen once;
both have ``run_epoch`` and ``evaluate``. The run folder (``config.json``, ``metrics.jsonl`` with one
JSON line per epoch: epoch, top-1, many/medium/few, every loss term, α, lr, seconds; ``checkpoint.pt``,
``best.pt``, ``summary.json``) is written by its one owner, :class:`~glmc_core.runs.RunFolder`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from . import distributed, mixing
from .checkpoint import check_compatible, load_weights, require_training_state, saved_data_hint
from .config import Config
from .console import default_log, epoch_line, silent
from .data import LongTailData, prepare_data
from .data.streams import TensorStream, make_train_stream
from .errors import DataNotFound, GLMCError
from .fast import FastRunner, _compile, fast_path_reason, maybe_fast_runner
from .losses import alpha_schedule
from .methods import METHOD_SPECS, StepContext, build_method_model, method_extras, step_loss
from .metrics import evaluate, predict
from .precision import describe_precision, precision_forward, resolve_precision
from .runs import FAST_CHECKPOINT_EVERY, RESUME_OVERRIDES, RunFolder, checkpoint_interval, open_run

__all__ = ["resolve_device", "lr_at", "TrainState", "build_state", "train_one_epoch", "evaluate", "predict", "fit",
           "NonFiniteLoss", "Callback", "set_deterministic", "RESUME_OVERRIDES", "train_or_reuse",
           "FAST_CHECKPOINT_EVERY", "checkpoint_interval", "ReferenceStep"]

Callback = Callable[[str, dict], None]  # callback(event, payload); events: "step", "epoch_end", "stopped", "end"


class NonFiniteLoss(GLMCError):
    """The loss became NaN or infinite."""



def set_deterministic(flag: bool) -> None:
    """Make torch pick deterministic kernels (or stop insisting on them), process-wide.

    On the CPU runs are then bit-for-bit repeatable on the same machine, torch version and
    thread count. On a GPU this also fixes cuBLAS's workspace and cuDNN's algorithm choice
    (no autotuning), which costs speed; see docs/robustness.md.
    """
    if flag:
        # cuBLAS reads this when it creates its first handle; set before any CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(flag)
    torch.backends.cudnn.deterministic = flag


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
    except (RuntimeError, TypeError, ValueError):
        raise GLMCError(f"unknown device {str(name)[:40]!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GLMCError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise GLMCError(f"--device {name} was asked for but this machine has {torch.cuda.device_count()} CUDA "
                            f"GPU(s), numbered from 0")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise GLMCError("--device mps was asked for but Apple's MPS is not available here; use --device cpu "
                            "or auto")
    elif dev.type == "xpu":
        xpu = getattr(torch, "xpu", None)
        if xpu is None or not xpu.is_available():
            raise GLMCError("--device xpu was asked for but no Intel GPU is available; use --device cpu or auto")
    elif dev.type != "cpu":  # meta, hpu, ipu, xla, ...: not a place glmc can train or evaluate
        raise GLMCError(f"--device {str(name)[:40]} is not a device glmc can train or evaluate on; use auto, cpu, "
                        f"cuda, cuda:N or mps")
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
    loader: str = "tensor"  # the stream kind actually used ("tensor" or "dataloader"); kept for resuming
    folder: RunFolder | None = None  # the run folder's owner (None: a run that saves nothing and resumed none)
    epoch: int = 0  # completed epochs (train_one_epoch advances it)
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    fast: FastRunner | None = None  # the fast path's runner (chosen once, by fit); None: the reference step
    compiled: torch.nn.Module | None = None  # torch.compile(model) for the reference step (cfg.compile_step)
    dist: distributed.DistEnv = field(default_factory=distributed.DistEnv)  # this process's place in a torchrun job
    ddp: torch.nn.Module | None = None  # the DistributedDataParallel wrapper of ``model`` (several processes)

    @property
    def run_dir(self) -> Path | None:
        return self.folder.path if self.folder is not None else None

    @property
    def saved_epoch(self) -> int:
        """The epoch ``checkpoint.pt`` holds (behind :attr:`epoch` between sparse checkpoints)."""
        return self.folder.saved_epoch if self.folder is not None else 0

    @property
    def select(self) -> str:
        """The metric that picks the best epoch: validation top-1 when there is a validation split."""
        return "val_top1" if self.data.val is not None else "top1"

    def keep_best(self, record: dict) -> bool:
        """Take ``record`` as the best epoch if it is better than the best so far; True if it is."""
        if self.best is not None and not record[self.select] > self.best[self.select]:
            return False
        self.best = {k: record[k] for k in ("epoch", "top1", "many", "medium", "few", self.select)}
        return True

    def evaluate(self, split) -> dict:
        """The runner's evaluation of ``split``; the fast runner may decline (None): then the reference one's."""
        served = self.fast.evaluate(split, self) if self.fast is not None else None
        return served if served is not None else ReferenceStep().evaluate(split, self)

    def best_dict(self, copy: bool) -> dict:
        """``best.pt``'s contents now; ``copy``: the weights cloned, to be written at the next checkpoint."""
        weights = self.model.state_dict()
        if copy:
            weights = {k: v.detach().clone() for k, v in weights.items()}
        return {"config": self.cfg.to_dict(), "epoch": self.epoch, "model": weights,
                "classes": list(self.data.classes), "class_counts": [int(c) for c in self.data.counts],
                "best": dict(self.best)}

    def checkpoint_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "epoch": self.epoch, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "classes": list(self.data.classes),
            "class_counts": [int(c) for c in self.data.counts], "history": self.history, "best": self.best,
            "rng": {"data": self.data_gen.get_state(), "aug": self.aug_gen.get_state(),
                    "numpy": json.dumps(self.np_rng.bit_generator.state), "torch": torch.get_rng_state()},
            "loader": self.loader,
        }

    def load_checkpoint_dict(self, ck: dict, path: str = "checkpoint") -> bool:
        """Restore everything from ``ck``; False if the augmentation generator could not be (another device)."""
        check_compatible(ck, self.cfg.model, self.data.num_classes, self.cfg.dataset, path, list(self.data.classes))
        try:
            saved_counts = [int(c) for c in ck.get("class_counts", [])]
        except (TypeError, ValueError):
            saved_counts = None
        if saved_counts != [int(c) for c in self.data.counts]:
            raise GLMCError(f"{path} was trained on other class counts than this data set's long-tailed subset")
        require_training_state(ck, path)
        load_weights(self.model, ck, path)
        try:
            self.optimizer.load_state_dict(ck["optimizer"])
            self.epoch, self.history, self.best = int(ck["epoch"]), list(ck["history"]), ck.get("best")
            if not 0 <= self.epoch <= self.cfg.epochs or not all(isinstance(r, dict) for r in self.history):
                raise ValueError("epoch or history out of range")
            rng = ck["rng"]
            self.data_gen.set_state(rng["data"])
            self.np_rng.bit_generator.state = json.loads(rng["numpy"])
            torch.set_rng_state(rng["torch"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            detail = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
            raise GLMCError(f"{path} is missing parts of its training state or they are damaged ({detail}); "
                            f"resume from an earlier copy or start a new run") from None
        try:
            self.aug_gen.set_state(rng["aug"])
        except (RuntimeError, TypeError, KeyError):  # saved on another device type: CUDA and CPU states differ
            return False
        return True


def build_state(cfg: Config, data: LongTailData | None = None, loader: str = "auto") -> TrainState:
    """Data, model, optimiser and generators for ``cfg``, seeded."""
    cfg.validate()
    device = resolve_device(cfg.device)
    if cfg.precision == "auto":  # resolved once and recorded in the run's config: a resumed run keeps it
        cfg = cfg.replace(precision=resolve_precision(cfg.precision, device))
    set_deterministic(cfg.deterministic)  # also switches it off again for a later run in the same notebook
    data = data if data is not None else prepare_data(cfg, progress=cfg.progress)
    torch.manual_seed(cfg.seed)
    model = build_method_model(cfg, data.num_classes).to(device)
    if cfg.precision == "bf16":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr_at(0, cfg), momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    data_gen = torch.Generator().manual_seed(cfg.seed + 1)
    aug_gen = torch.Generator(device=device if device.type in ("cuda", "cpu") else "cpu").manual_seed(cfg.seed + 2)
    np_rng = np.random.default_rng(cfg.seed + 3)
    stream = make_train_stream(data, cfg, device, data_gen, aug_gen, loader)
    weights = mixing.class_weights(data.counts, cfg.label_k).to(device)
    kind = "tensor" if isinstance(stream, TensorStream) else "dataloader"
    return TrainState(cfg, data, model, optimizer, device, stream, data_gen, aug_gen, np_rng, weights, kind)


def _emit(callbacks: Iterable[Callback], event: str, payload: dict) -> None:
    for cb in callbacks:
        cb(event, payload)


def train_one_epoch(state: TrainState, callbacks: Iterable[Callback] = (), stop: Callable[[], bool] | None = None,
                    step_every: int = 10, check_every_step: bool | None = None) -> dict | None:
    """Train ``state.model`` for one epoch and advance ``state.epoch``; returns the epoch's mean loss terms,
    α, lr and mean λ (None if ``stop`` ended it: the epoch is not counted).

    The step is ``state.fast``'s captured one when :func:`fit` chose the fast path, else the
    :class:`ReferenceStep`. A NaN or infinite loss raises :class:`NonFiniteLoss` naming the epoch
    and step. With ``check_every_step`` (default: on the CPU only) it is caught at once; otherwise
    the first bad step is recorded on the device and reported at the epoch's end, with no host
    sync per step.
    """
    cfg, epoch = state.cfg, state.epoch
    alpha = alpha_schedule(epoch, cfg.epochs, cfg.alpha_schedule, cfg.alpha_constant) \
        if METHOD_SPECS[cfg.method].cumulative else 1.0
    lr = lr_at(epoch, cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    state.model.train()
    runner = state.fast if state.fast is not None else ReferenceStep(check_every_step)
    out = runner.run_epoch(state, alpha, lr, callbacks, stop, step_every)
    if out is None:
        return None
    steps, lam_sum, first_bad = out.pop("steps"), out.pop("lambda_sum"), out.pop("first_bad", None)
    means = _epoch_means(state, out, steps, lam_sum, alpha, lr, first_bad)
    state.epoch += 1
    return means


class ReferenceStep:
    """The reference step, the method's definition: eager (or ``torch.compile``d) ``step_loss`` per batch, SGD.

    Same interface as :class:`~glmc_core.fast.FastRunner`: ``run_epoch`` gives the epoch's summed loss terms
    with ``"steps"`` and ``"lambda_sum"``; ``evaluate`` the metrics of a split (sharded over processes under
    torchrun). ``check_every_step``: test each loss at once (default on the CPU, where it is free).
    """

    def __init__(self, check_every_step: bool | None = None):
        self.check_every_step = check_every_step

    def run_epoch(self, state: TrainState, alpha: float, lr: float, callbacks: Iterable[Callback] = (),
                  stop: Callable[[], bool] | None = None, step_every: int = 10) -> dict | None:
        cfg, epoch = state.cfg, state.epoch
        net = state.ddp if state.ddp is not None else (state.model if state.compiled is None else state.compiled)
        sums: dict[str, torch.Tensor] = {}
        lam_sum, steps = 0.0, 0
        eager = state.device.type == "cpu" if self.check_every_step is None else self.check_every_step
        first_bad = torch.zeros((), dtype=torch.long, device=state.device)  # 1-based step of the first bad loss
        extras = method_extras(cfg, state.data.counts, epoch, state.device)  # CB / DRW weights, LDAM margins
        for batch in _progress(state):
            if stop is not None and stop():
                return None
            ctx = _step_context(state, batch, alpha, extras)
            try:
                loss, terms = step_loss(cfg.method, net, batch, ctx)
            except Exception as exc:  # noqa: BLE001 - a compile that cannot run shows at its first call: drop it
                if net is not state.compiled:
                    raise
                net, state.compiled = state.model, None
                default_log(f"note: torch.compile of the model failed ({type(exc).__name__}); the step runs "
                             f"without it (same maths)")
                loss, terms = step_loss(cfg.method, net, batch, ctx)
            if eager:  # reading a CPU scalar is free: stop at once
                if not bool(torch.isfinite(loss)):
                    raise NonFiniteLoss(_nonfinite_message(f"the loss became {float(loss.detach())}", state,
                                                           steps + 1))
            else:  # on a device, remember the first bad step there; no host sync per step
                first_bad = torch.where(~torch.isfinite(loss.detach()) & (first_bad == 0), steps + 1, first_bad)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            lam_sum += ctx.lam
            steps += 1
            if callbacks and steps % step_every == 0:
                _emit(callbacks, "step", {"epoch": epoch + 1, "step": steps, "steps": len(state.stream),
                                          **{k: float(v) for k, v in terms.items()}})
        return {**sums, "steps": steps, "lambda_sum": lam_sum, "first_bad": first_bad}

    def evaluate(self, split, state: TrainState) -> dict:
        """:func:`evaluate` on this process, or sharded over the processes of a torchrun job."""
        if state.dist.active:
            return state.dist.evaluate(state.model, split, state.cfg, state.data, state.device)
        return evaluate(state.model, split, state.cfg, state.data, state.device)


def _progress(state: TrainState) -> Iterable[dict]:
    """The epoch's batches, behind a progress bar when ``cfg.progress``."""
    if not state.cfg.progress:
        return state.stream
    from tqdm.auto import tqdm

    return tqdm(state.stream, total=len(state.stream), desc=f"epoch {state.epoch + 1}/{state.cfg.epochs}",
                leave=False)


def _step_context(state: TrainState, batch: dict, alpha: float, extras: dict) -> StepContext:
    """This step's λ, box (and partner permutation) from the run's numpy generator, in a fixed order."""
    cfg = state.cfg
    b, _, h, w = batch["x_u1"].shape
    lam = mixing.sample_lambda(state.np_rng, cfg.beta, cfg.authors_beta)
    box = mixing.sample_box(state.np_rng, h, w, lam)
    partner = torch.from_numpy(state.np_rng.permutation(b)).to(state.device) \
        if METHOD_SPECS[cfg.method].partner else None
    forward = precision_forward(cfg.precision, state.device.type)
    return StepContext(lam, box, alpha, cfg.gamma, state.class_weights, state.data.num_classes, cfg.cutmix_label,
                       cfg.loss_reduction, partner, cfg.stop_gradient, **({"forward": forward} if forward else {}),
                       **extras)


def _epoch_means(state: TrainState, sums: dict, steps: int, lam_sum: float, alpha: float, lr: float,
                 first_bad: torch.Tensor | None = None) -> dict:
    """The epoch's record from summed loss terms: means, averaged over processes; stops on NaN."""
    means = {k: float(v) / max(steps, 1) for k, v in sums.items()}
    means = state.dist.mean(means)
    state.dist.sync_buffers(state.model)  # every process evaluates rank 0's batch-norm statistics
    if not all(math.isfinite(v) for v in means.values()):
        raise NonFiniteLoss(_nonfinite_message("the loss became NaN or infinite", state,
                                             int(first_bad) if first_bad is not None and int(first_bad) else None))
    if not _weights_finite(state.model):  # the last step can blow the weights up with a finite loss
        raise NonFiniteLoss(_nonfinite_message("the weights became NaN or infinite", state, steps))
    return {**means, "alpha": alpha, "lr": lr, "lambda_mean": lam_sum / max(steps, 1)}


def _nonfinite_message(what: str, state: TrainState, step: int | None) -> str:
    which = "the last good epoch" if state.saved_epoch == state.epoch else "the last saved epoch"
    kept = (f"{state.run_dir}/checkpoint.pt still holds {which} ({state.saved_epoch})"
            if state.run_dir is not None else "nothing was saved")
    where = f"epoch {state.epoch + 1}, step {step}" if step else f"epoch {state.epoch + 1}"
    return f"{what} at {where}; the run stopped and {kept} (try a lower --lr or a warm-up: --set warmup_epochs=5)"


@torch.no_grad()
def _weights_finite(model: torch.nn.Module) -> bool:
    """One host sync per epoch: are all floating-point parameters and buffers finite?"""
    flags = [torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def fit(cfg: Config | None = None, *, data: LongTailData | None = None, resume: str | os.PathLike | None = None,
        callbacks: Iterable[Callback] = (), stop: Callable[[], bool] | None = None, save: bool = True,
        device: str | None = None, loader: str = "auto", log: Callable[[str], None] | None = None,
        overrides: dict | None = None, fast: bool | None = None) -> TrainState:
    """Train (or resume) a run; returns the final :class:`TrainState`.

    Args:
        cfg: the run's configuration (ignored when resuming: the run's own config is used).
        data: an already prepared data set (else built from ``cfg``).
        resume: a run folder (or its ``checkpoint.pt``) to continue from its last checkpoint; a
            folder killed before its first checkpoint starts again from its ``config.json``.
        callbacks: ``cb(event, payload)`` for live plots: ``"step"``, ``"epoch_end"``, ``"end"``.
        stop: polled between steps; returning True ends the run after the last full epoch.
        save: write the run folder (config, metrics, checkpoints).
        device: override the device (e.g. resume a GPU run on the CPU).
        loader: ``"auto"``, ``"tensor"`` or ``"dataloader"`` (the reference path); a resumed run
            keeps the one it started with.
        log: where one-line progress messages go (default: stderr; standard output inside a Jupyter
            kernel, where stderr is shown on a red background as if it were an error).
        overrides: config fields to change; when resuming only :data:`RESUME_OVERRIDES`.
        fast: None: the fast path when ``cfg.fast`` and the device is a CUDA GPU; True: the fast
            step wherever it applies (eagerly on the CPU); False: the reference step.

    Under ``torchrun`` with several processes, each trains a DDP replica (see
    :mod:`glmc_core.distributed`) and only rank 0 writes the run folder and logs.
    """
    log = log or default_log
    env = distributed.from_environ()
    cfg, ck, folder, loader = _run_config(cfg, resume, overrides, device, loader, log)
    callbacks = list(callbacks)
    if env.active:  # one replica per process; rank 0 alone writes and talks
        cfg = distributed.setup(cfg, env)
        save, log, callbacks = save and env.is_main, log if env.is_main else silent, callbacks if env.is_main else []
    state = _build(cfg, data, loader, ck, overrides)
    for note in state.data.notes:  # e.g. skipped non-image files
        log(f"data: {note}")
    _attach_folder(state, folder, ck, save, log, str(resume))
    distributed.attach(state, env)
    state.fast = _choose_runner(state, fast, log)  # after the checkpoint: the runner holds optimiser buffers
    if state.fast is None and cfg.compile_step and state.ddp is None:  # the reference step, compiled
        state.compiled = _compile(state.model)
    try:
        if state.folder is not None:  # metrics.jsonl mirrors the checkpoint's history; a new run's epoch 0
            state.folder.start(state, fresh=ck is None)
        _train_epochs(state, callbacks, stop, log)
    except KeyboardInterrupt as exc:  # Ctrl-C, or a notebook's "interrupt kernel"
        exc.run_dir, exc.epoch = state.run_dir, state.saved_epoch  # for the CLI's one-line message
        if state.run_dir is not None and save:
            exc.add_note(f"glmc: the last checkpoint holds epoch {state.saved_epoch}; continue with "
                         f"fit(resume={str(state.run_dir)!r}) or 'glmc train --resume {state.run_dir}'")
        raise
    except NonFiniteLoss:
        raise  # its message points at the run folder's last good checkpoint
    except Exception:
        # A new run that fails before finishing an epoch (a damaged image found by a DataLoader worker, memory
        # running out) has nothing worth keeping: leave no run folder behind, so the same command can be rerun.
        if resume is None and save and state.run_dir is not None and not state.history:
            shutil.rmtree(state.run_dir, ignore_errors=True)
        raise
    _finish(state, callbacks)
    return state


def _train_epochs(state: TrainState, callbacks: list, stop, log: Callable[[str], None]) -> None:
    """Epochs until the last one (or ``stop``): train, evaluate, record (the folder writes), log, callbacks."""
    cfg, data = state.cfg, state.data
    while state.epoch < cfg.epochs:
        t0 = time.perf_counter()
        terms = train_one_epoch(state, callbacks, stop)  # advances state.epoch
        if terms is None:
            log(f"stopped during epoch {state.epoch + 1}; the last checkpoint holds epoch {state.saved_epoch}")
            _emit(callbacks, "stopped", {"epoch": state.saved_epoch, "run_dir": str(state.run_dir or "")})
            break
        t1 = time.perf_counter()
        record = {"epoch": state.epoch, **state.evaluate(data.test)}
        if data.val is not None:
            v = state.evaluate(data.val)
            record.update({f"val_{k}": v[k] for k in ("top1", "many", "medium", "few")})
        record.update({**terms, "train_seconds": t1 - t0, "seconds": time.perf_counter() - t0})
        state.history.append(record)
        improved = state.keep_best(record)
        if state.folder is not None:  # best.pt and checkpoint.pt when due, then the metrics line
            state.folder.record(state, record, improved)
        log(epoch_line(record, cfg.epochs))
        _emit(callbacks, "epoch_end", record)


def _run_config(cfg: Config | None, resume, overrides: dict | None, device: str | None, loader: str,
                log: Callable[[str], None]) -> tuple[Config, dict | None, RunFolder | None, str]:
    """``(cfg, checkpoint or None, run folder or None, loader)``: a new run's config, or a resumed run's own."""
    overrides = {**(overrides or {}), **({"device": device} if device is not None else {})}
    ck, folder = None, None
    if resume is not None:
        folder, ck, cfg = RunFolder.resume(resume, log)
        loader = ck.get("loader", loader) if ck is not None else loader
        refused = sorted(set(overrides) - set(RESUME_OVERRIDES))
        if refused:
            raise GLMCError(f"a resumed run keeps its own settings, so {', '.join(refused)} cannot change; "
                            f"start a new run for that")
    elif cfg is None:
        raise GLMCError("fit needs a config or a run folder to resume")
    return (cfg.replace(**overrides) if overrides else cfg), ck, folder, loader


def _build(cfg: Config, data: LongTailData | None, loader: str, ck: dict | None, overrides: dict | None
           ) -> TrainState:
    """:func:`build_state`; a resumed run's data not found says where they were (not followed by itself)."""
    try:
        return build_state(cfg, data, loader)
    except DataNotFound as exc:
        hint = saved_data_hint(ck, (overrides or {}).get("data_root")) if ck is not None else ""
        if hint:
            raise GLMCError(f"{exc}{hint}") from None
        raise


def _attach_folder(state: TrainState, folder: RunFolder | None, ck: dict | None, save: bool,
                   log: Callable[[str], None], name: str) -> None:
    """A resumed run: its folder and checkpoint restored; a new one: a new folder with config.json (if ``save``)."""
    cfg = state.cfg
    if folder is None:
        state.folder = RunFolder.create(cfg) if save else None
        return
    state.folder, folder.writes = folder, save
    if save:
        folder.remove_temporaries()
    if ck is not None:
        if not state.load_checkpoint_dict(ck, name):
            log(f"note: {folder.path} was saved on another kind of device; its augmentation random stream "
                f"starts afresh, so the continued run is not bit-identical to an uninterrupted one")
        log(f"resuming {folder.path} after epoch {state.epoch} of {cfg.epochs}" if state.epoch < cfg.epochs
            else f"{folder.path} already finished its {cfg.epochs} epochs")


def _choose_runner(state: TrainState, fast: bool | None, log: Callable[[str], None]) -> FastRunner | None:
    """The fast path's runner where it applies and is wanted (else None: the reference step); logs which."""
    runner = maybe_fast_runner(state, fast)
    if runner is not None:
        runner.log = log
        label = runner.describe()
    else:
        where = "on the GPU" if state.device.type == "cuda" else "in memory"
        batches = "a DataLoader (PIL transforms)" if state.loader == "dataloader" else f"tensors {where}"
        compiled = ", compiled" if state.cfg.compile_step and state.ddp is None else ""
        label = (f"the reference step in {describe_precision(state.cfg.precision, state.device)}{compiled}, "
                 f"batches from {batches}")
        wanted = fast is True or (fast is None and state.cfg.fast and state.device.type == "cuda")
        reason = fast_path_reason(state) if wanted else None
        if reason:  # asked for, refused: say why, never fall back silently
            label += f" (no fast path: {reason})"
    log(f"training on {_device_label(state.device)}: {label}")
    return runner


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _finish(state: TrainState, callbacks: list) -> None:
    """``summary.json`` and the ``"end"`` event, once every epoch is done."""
    if not state.history or state.epoch < state.cfg.epochs:
        return
    summary = {"final": {k: state.history[-1][k] for k in ("epoch", "top1", "many", "medium", "few")},
               "best": state.best, "selected_by": state.select, "epochs": state.cfg.epochs,
               "train_seconds": sum(r["train_seconds"] for r in state.history),
               "seconds": sum(r["seconds"] for r in state.history)}
    if state.folder is not None:
        state.folder.write_summary(summary)
    _emit(callbacks, "end", summary)


def train_or_reuse(cfg: Config, *, data: LongTailData | None = None, retrain: bool = False,
                   callbacks: Iterable[Callback] = (), stop: Callable[[], bool] | None = None,
                   log: Callable[[str], None] | None = None) -> Path:
    """The run folder ``cfg.out / cfg.run_name``: trained if missing, resumed if unfinished, reused if finished.

    A folder that holds a run of another configuration (beyond where and how it runs:
    :data:`RESUME_OVERRIDES`) is refused; ``retrain`` deletes the folder first.
    """
    log = log or default_log
    if not cfg.run_name:
        raise GLMCError("train_or_reuse needs a config with a run_name")
    run_dir = Path(cfg.out) / cfg.run_name
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    if not (run_dir / "checkpoint.pt").is_file():
        if run_dir.exists():  # an empty or broken folder from an interrupted start
            shutil.rmtree(run_dir)
        fit(cfg, data=data, callbacks=callbacks, stop=stop, log=log)
        return run_dir
    ck, saved, _ = open_run(run_dir, log)
    # "auto" accepts whichever precision the run resolved it to (bf16 or fp32: older runs are fp32)
    free = (*RESUME_OVERRIDES, "out", "run_name", *(("precision",) if cfg.precision == "auto" else ()))
    if {k: v for k, v in saved.to_dict().items() if k not in free} != \
            {k: v for k, v in cfg.to_dict().items() if k not in free}:
        raise GLMCError(f"{run_dir} holds a run with another configuration; choose another folder or retrain it")
    if int(ck["epoch"]) >= saved.epochs:
        log(f"{run_dir} is already trained: reusing it (retrain=True trains it again)")
    else:
        fit(resume=run_dir, data=data, device=cfg.device, callbacks=callbacks, stop=stop, log=log)
    return run_dir
