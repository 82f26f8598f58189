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
        with per_view_batch_norm(model, len(batches)):
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
    except Exception:  # noqa: BLE001 - e.g. an unsupported Python version: the caller sees _net is model
        return model


class _CaptureFailed(RuntimeError):
    """Capturing the step in a CUDA graph failed (the run goes on with the eager fast step)."""


class FastRunner:
    """Runs whole epochs of the fast step for a :class:`~glmc_core.train.TrainState`.

    Build it after the state's checkpoint (if any) is loaded: it keeps references to the
    optimiser's momentum buffers.
    """

    def __init__(self, state, capture: bool | None = None, bf16: bool | None = None,
                 channels_last: bool | None = None):
        cfg, dev = state.cfg, state.device
        reason = fast_path_reason(state)
        if reason is not None:
            raise ValueError(f"no fast path here: {reason}")
        cuda = dev.type == "cuda"
        self.capture = cuda if capture is None else capture
        if self.capture and not cuda:
            raise ValueError("CUDA graph capture needs a CUDA device")
        use_bf16 = cfg.precision == "bf16" if bf16 is None else bf16  # build_state resolved "auto"
        cl = (cuda or use_bf16) if channels_last is None else channels_last
        stream: TensorStream = state.stream
        self.images, self.labels = stream.images, stream.labels  # uint8 (N, 3, H, W), (N,) on the device
        self.sample_probs = stream.resampler.sample_probs.to(dev)
        self.setup = StepSetup(cfg.method, state.data.num_classes, state.class_weights, cfg.gamma, cfg.cutmix_label,
                               cfg.loss_reduction, stream.padding, stream.mean, stream.std, cl,
                               torch.bfloat16 if use_bf16 else None, cfg.fuse_views)
        self.flip = stream.flip
        self.model, self.state_ref = state.model, state
        if cl:
            self.model.to(memory_format=torch.channels_last)
        if cuda and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True
        self.lr_t = torch.zeros((), device=dev)
        self.alpha_t = torch.zeros((), device=dev)
        self.sums = torch.zeros(len(TERMS), device=dev)
        self.last = torch.zeros(len(TERMS), device=dev)
        self._graphs: dict[int, tuple] = {}
        self._pool = None
        self._eval_cache: dict[int, tuple] = {}
        self.params: list[torch.Tensor] | None = None  # the parameters the method trains (set on first step)
        self.bufs: list[torch.Tensor] = []
        self.capture_error: str | None = None  # why capture failed, if it did (the step then runs eagerly)
        self.capture_requested = self.capture  # kept when a failed capture turns ``capture`` off: reports say so
        self.log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
        # --- switches (Config fields; benchmarks/README.md says what each is expected to gain) ---
        self.model.view_norm = cfg.view_norm  # how per_view_batch_norm splits batch norm over fused views
        self.compile_requested, self.compile_error = cfg.compile_step, None
        self._net = self.model  # what the step calls: the model, or torch.compile(model) (cfg.compile_step)
        if cfg.compile_step:
            self._net = _compile(self.model)
            if self._net is self.model:
                self.compile_error = "torch.compile is not available here"
        self.eval_batch = cfg.eval_batch
        self.eval_graph = cfg.eval_graph  # captured only on a GPU that captures the step; else the same code eagerly
        self.eval_capture_error: str | None = None
        self._eval_graphs: dict[int, tuple] = {}

    def describe(self) -> str:
        """One line for the log: how this runner trains."""
        if self.capture_error is not None:
            how = "uncaptured after a failed capture"
        else:
            how = "one CUDA graph per batch size" if self.capture else "eager"
        extras = [how, "bf16" if self.setup.autocast_dtype == torch.bfloat16 else "fp32"]
        if self.setup.channels_last:
            extras.append("channels_last")
        if self.setup.fuse_views:
            extras.append("both mixtures in one forward pass")
            if self.model.view_norm == "grouped":
                extras.append("grouped per-mixture batch norm")
        if self.compile_requested:
            extras.append("compiled" if self.compile_error is None else "not compiled after a failed compile")
        if self.eval_graph and self.capture_requested:
            extras.append("evaluation in a CUDA graph")
        return f"the fast path ({', '.join(extras)})"

    def capture_status(self) -> dict:
        """What held of what was asked: CUDA-graph capture, compile, the evaluation graph (for reports).

        ``capture_held`` is True only when the step really replays graphs: a run that fell back to the
        eager step after a failed capture must never be reported as the captured fast path.
        """
        return {
            "capture_requested": self.capture_requested,
            "capture_held": bool(self.capture_requested and self.capture and self.capture_error is None
                                 and self._graphs),
            "capture_error": self.capture_error,
            "graph_batch_sizes": sorted(self._graphs),
            "compile_requested": self.compile_requested,
            "compile_held": bool(self.compile_requested and self.compile_error is None and self._net is not self.model),
            "compile_error": self.compile_error,
            "eval_graph_requested": bool(self.eval_graph and self.capture_requested),
            "eval_graph_held": any(g is not None for g, _, _ in self._eval_graphs.values()),
            "eval_capture_error": self.eval_capture_error,
        }

    # ----------------------------------------------------------------- the step
    def _loss(self, draws):
        loss, terms = fast_step_loss(self._net, self.images, self.labels, draws, self.alpha_t, self.setup)
        return loss, torch.stack([terms[k].float() for k in TERMS])

    def _step(self, draws) -> None:
        loss, terms = self._loss(draws)
        grads = torch.autograd.grad(loss, self.params)
        opt = self.state_ref.optimizer
        group = opt.param_groups[0]
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

    def _try_compiled(self, draws) -> None:
        """Run the compiled network once, forward and backward (that is when torch compiles); on any failure
        go on with the plain network, saying why once. The run's state is left as it was."""
        if self._net is self.model:
            return
        snap = self._snapshot()
        try:
            loss, _ = self._loss(draws)
            torch.autograd.grad(loss, [p for p in self.model.parameters() if p.requires_grad], allow_unused=True)
        except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported op, a backend error: all fall back
            self._drop_compile(exc)
        finally:
            self._restore(snap)

    def _drop_compile(self, exc) -> None:
        self._net = self.model
        self.compile_error = exc if isinstance(exc, str) else _first_line(exc)
        self.log(f"note: torch.compile of the step failed ({self.compile_error}); the step runs without it "
                 f"(same maths)")

    def _bind_params(self, draws) -> None:
        """Which parameters get a gradient (torch's SGD skips the others entirely), and their buffers."""
        self._try_compiled(draws)
        snap = self._snapshot()
        loss, _ = self._loss(draws)
        all_params = [p for p in self.model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, all_params, allow_unused=True)
        self._restore(snap)
        self.params = [p for p, g in zip(all_params, grads, strict=True) if g is not None]
        opt = self.state_ref.optimizer
        self.bufs = []
        for p in self.params:
            st = opt.state[p]
            buf = st.get("momentum_buffer")
            buf = torch.zeros_like(p) if buf is None else buf.to(p.device).clone(memory_format=torch.preserve_format)
            if buf.dim() == 4 and self.setup.channels_last:
                buf = buf.contiguous(memory_format=torch.channels_last)
            st["momentum_buffer"] = buf  # the optimiser's state *is* this tensor: checkpoints see every update
            self.bufs.append(buf)

    def _captured(self, draws):
        """The graph for this batch size and its static inputs (captured on first use)."""
        b = draws["idx_u"].shape[0]
        if b not in self._graphs:
            static = {k: v.clone() for k, v in draws.items()}
            snap = self._snapshot()  # warm-up steps must not change the run
            try:
                graph, _ = _capture_graph(lambda: self._step(static), warmups=3, pool=self._pool)
            except Exception as exc:  # e.g. an op that cannot be captured on this torch/driver
                self._restore(snap)
                raise _CaptureFailed(_first_line(exc)) from exc
            self._pool = graph.pool()
            self._restore(snap)
            self._graphs[b] = (graph, static)
        return self._graphs[b]

    def _replay_or_step(self, draws) -> None:
        """Replay the captured step; if capture fails, say so once and run the same step eagerly from then on."""
        if self.capture:
            try:
                try:
                    graph, static = self._captured(draws)
                except _CaptureFailed as exc:
                    if self._net is self.model:
                        raise
                    self._drop_compile(f"inside the capture: {exc}")  # then capture the plain step
                    self._graphs.clear()
                    self._pool = None
                    graph, static = self._captured(draws)
            except _CaptureFailed as exc:
                self.capture, self.capture_error = False, str(exc)
                self._graphs.clear()
                self._pool = None
                self.log(f"note: CUDA graph capture failed ({exc}); the fast step runs without it "
                         f"(same maths, more launch overhead)")
            else:
                for k, v in draws.items():
                    static[k].copy_(v, non_blocking=True)
                graph.replay()
                return
        self._step(draws)

    # ----------------------------------------------------------------- epochs
    def run_epoch(self, state, alpha: float, lr: float, callbacks: Iterable[Callable] = (),
                  stop: Callable[[], bool] | None = None, step_every: int = 10) -> dict | None:
        """One epoch; returns the summed loss terms (floats), ``steps`` and ``lambda_sum`` (None if stopped)."""
        cfg = state.cfg
        h, w = self.images.shape[-2:]
        chunks = draw_plan(len(self.labels), cfg.batch_size, self.sample_probs, state.aug_gen, state.np_rng, h, w,
                           self.setup.padding, self.flip, cfg.beta, cfg.authors_beta)
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
        key = id(split)
        if key not in self._eval_cache:
            imgs = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous().to(state.device)
            self._eval_cache[key] = (split, imgs)
        _, imgs = self._eval_cache[key]
        self.model.eval()
        p = self._predict_uint8(imgs).cpu().numpy()
        return summarize(split.labels, p, state.data.num_classes, state.data.groups)

    def _eval_forward(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Predicted classes of a uint8 batch: normalise, the inference head, argmax."""
        x = normalize(x_uint8, self.setup.mean, self.setup.std)
        if self.setup.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.setup):
            return self.model.predict(x).argmax(1)

    def _predict_uint8(self, imgs: torch.Tensor) -> torch.Tensor:
        """Predictions for the device-resident uint8 images, ``eval_batch`` at a time.

        With ``eval_graph`` every batch goes through one static buffer of ``eval_batch`` images (the last
        batch padded with the previous images: evaluation works image by image, so padding changes nothing);
        on a capturing GPU that buffer's forward pass is a CUDA graph, replayed once per batch.
        """
        bs = min(self.eval_batch, len(imgs))
        if not self.eval_graph:
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
        if self.capture_requested and self.eval_capture_error is None:
            try:
                graph, y_out = _capture_graph(lambda: self._eval_forward(x_in), warmups=2)
            except Exception as exc:  # noqa: BLE001 - evaluation then runs eagerly through the same buffer
                graph, y_out = None, None
                self.eval_capture_error = _first_line(exc)
                self.log(f"note: capturing the evaluation failed ({self.eval_capture_error}); it runs eagerly")
        self._eval_graphs[bs] = (graph, x_in, y_out)
        return graph, x_in, y_out

