"""The fast training path: one captured step per batch, every random draw made once per epoch.

The reference step (:func:`glmc_core.train.train_one_epoch`) is the definition of the method;
this module trains the *same* model with the same losses, schedules and sampling, but

* keeps the uint8 training images on the device and builds each step's four views
  (two of the uniform batch, two of the resampled batch) with index gathers;
* draws a whole epoch's randomness up front (:func:`draw_plan`): the uniform permutation,
  the class-resampled indices, crop offsets and flips from the run's device generator, and
  λ and the CutMix box from the run's numpy generator with the very functions the reference
  path uses (:func:`~glmc_core.mixing.sample_lambda`, :func:`~glmc_core.mixing.sample_box`),
  so both generators stay in the checkpoint and resume stays exact;
* hands the one GLMC step (:func:`glmc_core.methods.step_loss`) λ and the box as device
  tensors (the local mixture is then a mask: static shapes), α and the learning rate as static
  device tensors, and its own forward (:func:`fast_forward`: bf16, channels_last, optionally
  both mixtures in one batch), so nothing in a step talks to the host;
* replaces ``loss.backward(); optimizer.step()`` by ``autograd.grad`` and a foreach SGD update
  (:func:`sgd_update`) on the optimiser's own momentum buffers (identical maths to
  :class:`torch.optim.SGD`);
* on a CUDA GPU, captures the whole step (gathers, crop, flip, normalisation, both mixtures,
  both forward passes, every loss, backward, optimiser) in one CUDA graph per batch size,
  under bf16 autocast with channels_last, and replays it: one launch per step.

On the CPU the same step runs eagerly (``capture=False``), which is what the equivalence
tests compare against the reference step.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from . import mixing
from .augment import normalize
from .data.splits import ArraySplit
from .data.streams import VIEWS, TensorStream, two_view_batch
from .methods import METHOD_SPECS, StepContext, step_loss
from .metrics import summarize
from .models import per_view_batch_norm

__all__ = ["TERMS", "StepSetup", "draw_plan", "fast_forward", "fast_step_loss", "sgd_update", "FastRunner",
           "fast_path_reason", "maybe_fast_runner"]

TERMS = ("loss_c", "loss_cb", "loss_sim", "total")
_VIEWS = len(VIEWS)  # x_u1, x_u2 (uniform batch), x_r1, x_r2 (resampled batch)


@dataclass(frozen=True)
class StepSetup:
    """What a step needs besides its random draws; fixed for the whole run."""

    method: str
    num_classes: int
    class_weights: torch.Tensor  # (C,) on the device
    gamma: float
    cutmix_label: str
    reduction: str
    padding: int
    mean: torch.Tensor  # (3,) float32 on the device
    std: torch.Tensor
    channels_last: bool = False
    autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16 on a GPU
    fuse_views: bool = False  # the two mixtures through the network as one batch (see per_view_batch_norm)
    view_norm: str = "split"  # how batch norm then splits over the fused mixtures ("split" or "grouped")


def draw_plan(num_samples: int, batch_size: int, sample_probs: torch.Tensor, gen: torch.Generator,
              np_rng: np.random.Generator, height: int, width: int, padding: int, flip: bool, beta: float,
              authors_beta: bool = False) -> list[dict[str, torch.Tensor]]:
    """One epoch of random draws, as chunks of steps with equal batch size.

    Returns a list of (at most two) dicts, the full batches and the last partial one, each
    holding per-step tensors on ``gen``'s device: ``idx_u``, ``idx_r`` ``(S, b)``; ``oy``,
    ``ox``, ``flip`` ``(S, 4, b)``; ``box`` ``(S, 4)`` as ``y0, y1, x0, x1``; ``lam`` ``(S,)``
    (float64). The uniform indices are a permutation of the training set (plain shuffling);
    the resampled ones are drawn with replacement with ``sample_probs`` (the reference
    path's :class:`~glmc_core.data.samplers.ClassResampler`).
    """
    dev = gen.device
    perm = torch.randperm(num_samples, device=dev, generator=gen)
    idx_r = torch.multinomial(sample_probs.to(dev), num_samples, replacement=True, generator=gen)
    if padding > 0:
        oy = torch.randint(0, 2 * padding + 1, (_VIEWS, num_samples), device=dev, generator=gen)
        ox = torch.randint(0, 2 * padding + 1, (_VIEWS, num_samples), device=dev, generator=gen)
    else:
        oy = ox = torch.zeros(_VIEWS, num_samples, dtype=torch.long, device=dev)
    flips = (torch.rand(_VIEWS, num_samples, device=dev, generator=gen) < 0.5) if flip else \
        torch.zeros(_VIEWS, num_samples, dtype=torch.bool, device=dev)
    steps = math.ceil(num_samples / batch_size)
    lams, boxes = [], []
    for _ in range(steps):  # same draws, in the same order, as the reference step
        lam = mixing.sample_lambda(np_rng, beta, authors_beta)
        lams.append(lam)
        boxes.append(tuple(mixing.sample_box(np_rng, height, width, lam)))
    lam_t = torch.tensor(lams, dtype=torch.float64).to(dev)
    box_t = torch.tensor(boxes, dtype=torch.long).to(dev)
    full = num_samples // batch_size
    chunks = []
    for first, count, b in ((0, full, batch_size), (full, steps - full, num_samples - full * batch_size)):
        if count == 0:
            continue
        lo, hi = first * batch_size, first * batch_size + count * b
        chunks.append({
            "idx_u": perm[lo:hi].view(count, b), "idx_r": idx_r[lo:hi].view(count, b),
            "oy": oy[:, lo:hi].view(_VIEWS, count, b).transpose(0, 1),
            "ox": ox[:, lo:hi].view(_VIEWS, count, b).transpose(0, 1),
            "flip": flips[:, lo:hi].view(_VIEWS, count, b).transpose(0, 1),
            "box": box_t[first : first + count], "lam": lam_t[first : first + count],
        })
    return chunks


def _autocast(setup: StepSetup):
    if setup.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(setup.class_weights.device.type, dtype=setup.autocast_dtype, cache_enabled=False)


def fast_forward(model, batches, setup: StepSetup) -> list:
    """The fast path's forward (a :data:`~glmc_core.methods.Forward`): autocast, channels_last and,
    with ``fuse_views``, every batch through the network at once while batch norm still sees each on its own."""
    def layout(x):  # torch.where and cat need not keep channels_last
        return x.contiguous(memory_format=torch.channels_last) if setup.channels_last else x

    with _autocast(setup):
        if not setup.fuse_views or len(batches) == 1:
            return [model(layout(x)) for x in batches]
        with per_view_batch_norm(model, len(batches), setup.view_norm):
            out = model(layout(torch.cat(list(batches))))
    n = batches[0].shape[0]
    return [{k: v[i * n : (i + 1) * n] for k, v in out.items()} for i in range(len(batches))]


def fast_step_loss(model, images: torch.Tensor, labels: torch.Tensor, draws: dict[str, torch.Tensor], alpha,
                   setup: StepSetup) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one step from uint8 images and one step's draws (see :func:`draw_plan`).

    The reference step's own batch builder and loss (:func:`~glmc_core.data.streams.two_view_batch`,
    :func:`~glmc_core.methods.step_loss`), given device tensors: ``alpha`` may be a float or a 0-d tensor.
    """
    if not METHOD_SPECS[setup.method].fast:
        raise ValueError(f"method {setup.method!r} has no fast step; use the reference path")
    # λ stays float64, like the reference's Python float: 1 − λ is rounded once, to float32, in both paths
    batch = two_view_batch(images, labels, draws["idx_u"], draws["idx_r"], setup.padding, setup.mean, setup.std,
                           crops=(draws["oy"], draws["ox"], draws["flip"]))
    ctx = StepContext(draws["lam"], draws["box"], alpha, setup.gamma, setup.class_weights, setup.num_classes,
                      setup.cutmix_label, setup.reduction,
                      forward=lambda model, batches: fast_forward(model, batches, setup))
    return step_loss(setup.method, model, batch, ctx)


@torch.no_grad()
def sgd_update(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor], lr,
               momentum: float, weight_decay: float) -> None:
    """SGD with momentum and weight decay, as :class:`torch.optim.SGD` (no dampening, no Nesterov).

    ``bufs`` start at zero (``0·m + g`` is the first-step ``buf = g`` of torch); ``lr`` may be a
    0-d tensor so that a captured graph reads the current epoch's value.
    """
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        grads = bufs
    torch._foreach_add_(params, torch._foreach_mul(grads, -lr))


def fast_path_reason(state) -> str | None:
    """Why ``state`` cannot take the fast path (None if it can)."""
    if type(state.stream) is not TensorStream:
        return "the training images are not in device memory (DataLoader or sharded stream)"
    if not METHOD_SPECS[state.cfg.method].fast:
        return f"method {state.cfg.method!r} has no fast step"
    if not state.cfg.stop_gradient:
        return "stop_gradient=false (notebook 03's collapse demonstration) needs the reference step"
    if state.aug_gen.device.type != state.device.type:
        return "the device has no generator of its own"
    return None


def maybe_fast_runner(state, force: bool | None = None):
    """A :class:`FastRunner` when the fast path applies, else None (the reference step).

    ``force=None``: fast when ``cfg.fast`` and the device is a CUDA GPU; ``True``: fast
    wherever it applies (eager on the CPU); ``False``: never.
    """
    want = force if force is not None else (state.cfg.fast and state.device.type == "cuda")
    if not want or fast_path_reason(state) is not None:
        return None
    return FastRunner(state)


def _capture_graph(fn: Callable[[], object], warmups: int, pool=None):
    """Run ``fn`` ``warmups`` times on a side stream (as capture requires), then capture one call of it in a
    CUDA graph: ``(graph, what that call returned)``, its output living in the graph's static memory."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmups):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        out = fn()
    return graph, out


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _compile(model):
    """``torch.compile(model)`` (default mode: our own CUDA graph captures the compiled kernels), or the model
    itself where torch has no compile; errors of a compile that cannot run show at its first call."""
    if not hasattr(torch, "compile"):
        return model
    try:
        return torch.compile(model)
    except Exception:  # noqa: BLE001 - e.g. an unsupported Python version: the caller gets the model back
        return model


class _CaptureFailed(RuntimeError):
    """Capturing the step in a CUDA graph failed (the run goes on with the next step of the fallback chain)."""


@dataclass
class Feature:
    """A switch of the fast path that may fail at run time (the step's CUDA graph, torch.compile, the evaluation
    graph): asked for or not, and why it dropped, once it did; the run then goes on without it, same maths."""

    requested: bool
    note: str  # the one log line of a drop, formatted with its reason
    error: str | None = None  # the first line of what failed

    @property
    def on(self) -> bool:
        return self.requested and self.error is None

    def drop(self, why: str, log: Callable[[str], None]) -> None:
        self.error = why
        log(self.note.format(why))


def _momentum_buffers(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The optimiser's own momentum buffers of ``params``, for :func:`sgd_update` to update in place (so
    checkpoints carry them). A buffer torch's SGD would only make at its first step is made now, as zeros
    (``0·m + g`` is that first ``buf = g``), and one whose memory layout is not its parameter's (a checkpoint of
    contiguous buffers, channels_last parameters) is copied into that layout, which the foreach kernels' fast
    route wants; every other buffer is used as it is."""
    bufs = []
    for p in params:
        state = optimizer.state[p]
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = torch.zeros_like(p)
        elif buf.stride() != p.stride() or buf.device != p.device:
            buf = state["momentum_buffer"] = torch.empty_like(p).copy_(buf)
        bufs.append(buf)
    return bufs


class FastRunner:
    """Runs whole epochs of the fast step for a :class:`~glmc_core.train.TrainState`.

    It holds what capture needs: the step's static device tensors (learning rate, α, the summed and the last
    loss terms), the trained parameters and their momentum buffers, and the graphs with their static draws.
    Build it after the state's checkpoint (if any) is loaded: it updates the optimiser's momentum buffers.
    """

    def __init__(self, state, capture: bool | None = None, bf16: bool | None = None,
                 channels_last: bool | None = None):
        cfg, dev = state.cfg, state.device
        reason = fast_path_reason(state)
        if reason is not None:
            raise ValueError(f"no fast path here: {reason}")
        cuda = dev.type == "cuda"
        capture = cuda if capture is None else capture
        if capture and not cuda:
            raise ValueError("CUDA graph capture needs a CUDA device")
        use_bf16 = cfg.precision == "bf16" if bf16 is None else bf16  # build_state resolved "auto"
        cl = (cuda or use_bf16) if channels_last is None else channels_last
        self.stream: TensorStream = state.stream  # uint8 (N, 3, H, W) images and (N,) labels on the device
        self.setup = StepSetup(cfg.method, state.data.num_classes, state.class_weights, cfg.gamma, cfg.cutmix_label,
                               cfg.loss_reduction, self.stream.padding, self.stream.mean, self.stream.std, cl,
                               torch.bfloat16 if use_bf16 else None, cfg.fuse_views, cfg.view_norm)
        self.model, self.optimizer = state.model, state.optimizer
        if cl:
            self.model.to(memory_format=torch.channels_last)
        if cuda and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True
        # --- switches (Config fields; benchmarks/README.md says what each is expected to gain) ---
        self._compiled = _compile(self.model) if cfg.compile_step else self.model
        self.graph = Feature(capture, "note: CUDA graph capture failed ({}); the fast step runs without it "
                                      "(same maths, more launch overhead)")
        unavailable = cfg.compile_step and self._compiled is self.model
        self.compile = Feature(cfg.compile_step, "note: torch.compile of the step failed ({}); the step runs without "
                               "it (same maths)", "torch.compile is not available here" if unavailable else None)
        # eval_graph: a static evaluation buffer everywhere, captured only where the step is (else run eagerly)
        self.eval_graph = Feature(cfg.eval_graph, "note: capturing the evaluation failed ({}); it runs eagerly")
        # --- what the step reads and writes: static device tensors, captured once ---
        self.lr_t = torch.zeros((), device=dev)
        self.alpha_t = torch.zeros((), device=dev)
        self.sums = torch.zeros(len(TERMS), device=dev)
        self.last = torch.zeros(len(TERMS), device=dev)
        self.params: list[torch.Tensor] | None = None  # the parameters the method trains (set on first step)
        self.bufs: list[torch.Tensor] = []  # their momentum buffers: the optimiser's own
        self._graphs: dict[int, tuple] = {}  # batch size -> (graph, its static draws)
        self._eval_graphs: dict[int, tuple] = {}  # evaluation batch size -> (graph or None, static in, static out)
        self._eval_images: dict[int, tuple] = {}  # id(split) -> (split, its uint8 images on the device)
        self.log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)

    @property
    def net(self):
        """What the step calls: ``torch.compile(model)`` while the compile holds, else the model."""
        return self._compiled if self.compile.on else self.model

    def describe(self) -> str:
        """One line for the log: how this runner trains."""
        how = ("uncaptured after a failed capture" if self.graph.error is not None
               else "one CUDA graph per batch size" if self.graph.on else "eager")
        extras = [how, "bf16" if self.setup.autocast_dtype == torch.bfloat16 else "fp32"]
        if self.setup.channels_last:
            extras.append("channels_last")
        if self.setup.fuse_views:
            extras.append("both mixtures in one forward pass")
            if self.setup.view_norm == "grouped":
                extras.append("grouped per-mixture batch norm")
        if self.compile.requested:
            extras.append("compiled" if self.compile.error is None else "not compiled after a failed compile")
        if self.eval_graph.requested and self.graph.requested:
            extras.append("evaluation in a CUDA graph")
        return f"the fast path ({', '.join(extras)})"

    def capture_status(self) -> dict:
        """What held of what was asked: CUDA-graph capture, compile, the evaluation graph (for reports).

        ``capture_held`` is True only when the step really replays graphs: a run that fell back to the
        eager step after a failed capture must never be reported as the captured fast path.
        """
        return {
            "capture_requested": self.graph.requested,
            "capture_held": bool(self.graph.on and self._graphs),
            "capture_error": self.graph.error,
            "graph_batch_sizes": sorted(self._graphs),
            "compile_requested": self.compile.requested,
            "compile_held": self.compile.on,
            "compile_error": self.compile.error,
            "eval_graph_requested": self.eval_graph.requested and self.graph.requested,
            "eval_graph_held": any(g is not None for g, _, _ in self._eval_graphs.values()),
            "eval_capture_error": self.eval_graph.error,
        }

    # ----------------------------------------------------------------- the step
    def _loss(self, draws):
        loss, terms = fast_step_loss(self.net, self.stream.images, self.stream.labels, draws, self.alpha_t, self.setup)
        return loss, torch.stack([terms[k].float() for k in TERMS])

    def _step(self, draws) -> None:
        loss, terms = self._loss(draws)
        grads = torch.autograd.grad(loss, self.params)
        group = self.optimizer.param_groups[0]
        sgd_update(self.params, list(grads), self.bufs, self.lr_t, group["momentum"], group["weight_decay"])
        self.sums.add_(terms)
        self.last.copy_(terms)

    def _snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        tensors = [*self.model.state_dict(keep_vars=True).values(), *self.bufs, self.sums, self.last]
        return [(t, t.detach().clone()) for t in tensors]

    @staticmethod
    def _restore(snapshot) -> None:
        with torch.no_grad():
            for t, saved in snapshot:
                t.copy_(saved)

    def _bind_params(self, draws) -> None:
        """Which parameters get a gradient (torch's SGD skips the others entirely), and their momentum buffers.

        Found by one trial step, forward and backward, that leaves the run as it was; it is also where a compiled
        network first runs (torch compiles then): if that fails, the compile drops and the plain network retries.
        """
        trainable = [p for p in self.model.parameters() if p.requires_grad]

        def trial():
            return torch.autograd.grad(self._loss(draws)[0], trainable, allow_unused=True)

        snap = self._snapshot()
        try:
            grads = trial()
        except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported op, a backend error: all fall back
            if not self.compile.on:
                raise
            self._restore(snap)
            self.compile.drop(_first_line(exc), self.log)
            grads = trial()
        self._restore(snap)
        self.params = [p for p, g in zip(trainable, grads, strict=True) if g is not None]
        self.bufs = _momentum_buffers(self.optimizer, self.params)

    def _captured(self, draws):
        """The graph for this batch size and its static draws (captured on first use, in the graphs' one pool)."""
        b = draws["idx_u"].shape[0]
        if b not in self._graphs:
            static = {k: v.clone() for k, v in draws.items()}
            pool = next(iter(self._graphs.values()))[0].pool() if self._graphs else None
            snap = self._snapshot()  # warm-up steps must not change the run
            try:
                graph, _ = _capture_graph(lambda: self._step(static), warmups=3, pool=pool)
            except Exception as exc:  # e.g. an op that cannot be captured on this torch/driver
                raise _CaptureFailed(_first_line(exc)) from exc
            finally:
                self._restore(snap)
            self._graphs[b] = (graph, static)
        return self._graphs[b]

    def _replay_or_step(self, draws) -> None:
        """Replay the captured step, else run it eagerly. A failed capture drops one switch, saying why once, and
        the step goes on with the next of the chain: compiled network in a graph, plain network in a graph, plain
        network eagerly (same maths all along)."""
        while self.graph.on:
            try:
                graph, static = self._captured(draws)
            except _CaptureFailed as exc:
                self._graphs.clear()  # graphs of the dropped switch, and their pool
                if self.compile.on:
                    self.compile.drop(f"inside the capture: {exc}", self.log)
                else:
                    self.graph.drop(str(exc), self.log)
                continue
            for k, v in draws.items():
                static[k].copy_(v, non_blocking=True)
            graph.replay()
            return
        self._step(draws)

    # ----------------------------------------------------------------- epochs
    def run_epoch(self, state, alpha: float, lr: float, callbacks: Iterable[Callable] = (),
                  stop: Callable[[], bool] | None = None, step_every: int = 10) -> dict | None:
        """One epoch; returns the summed loss terms (floats), ``steps`` and ``lambda_sum`` (None if stopped)."""
        cfg, images = state.cfg, self.stream.images
        chunks = draw_plan(len(images), cfg.batch_size, self.stream.resampler.sample_probs, state.aug_gen,
                           state.np_rng, *images.shape[-2:], self.setup.padding, self.stream.flip, cfg.beta,
                           cfg.authors_beta)
        if self.params is None:
            self._bind_params({k: v[0] for k, v in chunks[0].items()})
        self.lr_t.fill_(lr)
        self.alpha_t.fill_(alpha)
        self.model.train()
        self.sums.zero_()
        total = sum(c["lam"].shape[0] for c in chunks)
        steps = 0
        for chunk in chunks:
            for i in range(chunk["lam"].shape[0]):
                if stop is not None and stop():
                    return None
                self._replay_or_step({k: v[i] for k, v in chunk.items()})
                steps += 1
                if callbacks and steps % step_every == 0:  # live plots only: this syncs with the device
                    payload = {"epoch": state.epoch + 1, "step": steps, "steps": total,
                               **dict(zip(TERMS, self.last.tolist(), strict=True))}
                    for cb in callbacks:
                        cb("step", payload)
        lam_sum = float(sum(float(c["lam"].sum()) for c in chunks))
        return {**dict(zip(TERMS, self.sums.tolist(), strict=True)), "steps": steps, "lambda_sum": lam_sum}

    @torch.no_grad()
    def evaluate(self, split, state) -> dict | None:
        """Top-1 and groups like :func:`glmc_core.metrics.evaluate`, with the split cached on the device.

        Returns None for splits that are not decoded arrays of the training size.
        """
        if not isinstance(split, ArraySplit) or split.images.shape[1] != state.cfg.image_size:
            return None
        if id(split) not in self._eval_images:  # the split is kept with its copy: its id stays its own
            imgs = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous().to(state.device)
            self._eval_images[id(split)] = (split, imgs)
        _, imgs = self._eval_images[id(split)]
        self.model.eval()
        p = self._predict_uint8(imgs, state.cfg.eval_batch).cpu().numpy()
        return summarize(split.labels, p, state.data.num_classes, state.data.groups)

    def _eval_forward(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Predicted classes of a uint8 batch: normalise, the inference head, argmax."""
        x = normalize(x_uint8, self.setup.mean, self.setup.std)
        if self.setup.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.setup):
            return self.model.predict(x).argmax(1)

    def _predict_uint8(self, imgs: torch.Tensor, eval_batch: int) -> torch.Tensor:
        """Predictions for the device-resident uint8 images, ``eval_batch`` at a time.

        With ``eval_graph`` every batch goes through one static buffer of ``eval_batch`` images (the last
        batch padded with the previous images: evaluation works image by image, so padding changes nothing);
        on a capturing GPU that buffer's forward pass is a CUDA graph, replayed once per batch.
        """
        bs = min(eval_batch, len(imgs))
        if not self.eval_graph.requested:
            return torch.cat([self._eval_forward(imgs[i : i + bs]) for i in range(0, len(imgs), bs)])
        graph, x_in, y_out = self._eval_static(imgs, bs)
        preds = []
        for i in range(0, len(imgs), bs):
            n = min(bs, len(imgs) - i)
            x_in[:n].copy_(imgs[i : i + n])
            if graph is not None:
                graph.replay()
                preds.append(y_out[:n].clone())
            else:
                preds.append(self._eval_forward(x_in)[:n])
        return torch.cat(preds)

    def _eval_static(self, imgs: torch.Tensor, bs: int):
        """``(graph or None, static input, static output)`` for evaluation batches of ``bs`` (made on first use)."""
        if bs in self._eval_graphs:
            return self._eval_graphs[bs]
        x_in = imgs[:bs].clone()
        graph, y_out = None, None
        if self.graph.requested and self.eval_graph.on:
            try:
                graph, y_out = _capture_graph(lambda: self._eval_forward(x_in), warmups=2)
            except Exception as exc:  # noqa: BLE001 - evaluation then runs eagerly through the same buffer
                graph, y_out = None, None
                self.eval_graph.drop(_first_line(exc), self.log)
        self._eval_graphs[bs] = (graph, x_in, y_out)
        return graph, x_in, y_out
