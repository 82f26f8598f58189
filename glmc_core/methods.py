"""One training step's loss for each method: GLMC, its ablations and simple baselines.

Each function takes the model, a batch from a stream (``x_u1, x_u2, y_u, x_r1, x_r2, y_r``),
and a :class:`StepContext` (λ and box for this step, α for this epoch, class weights, and the
forward pass to use), and returns ``(loss, terms)``. The maths live in :mod:`glmc_core.mixing`
and :mod:`glmc_core.losses`; this module only wires them together, once for every path: the
reference step hands it host values and plain model calls, the fast path
(:mod:`glmc_core.fast`) device tensors and its own forward (bf16, channels_last, both mixtures
in one batch) under a captured graph.

The method registry, :data:`METHOD_SPECS` (re-exported here), is plain data in :mod:`glmc_core.config`
(floor 1), so a :class:`~glmc_core.config.Config` is checked without this module; each entry names
its step loss, a key of :data:`STEP_LOSSES`, and says how its model is built and which per-class
loss weights its epochs use (:func:`build_method_model`, :func:`method_extras`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from . import longtail_losses as ltl
from . import mixing
from .config import METHOD_SPECS, MethodSpec
from .losses import glmc_loss, soft_cross_entropy

__all__ = ["StepContext", "METHOD_SPECS", "MethodSpec", "STEP_LOSSES", "Forward", "separate_forward", "step_loss",
           "method_extras", "build_method_model"]

# forward(model, batches) -> one output dict per batch; how the network is run is the caller's business
Forward = Callable[[torch.nn.Module, Sequence[torch.Tensor]], list]


def separate_forward(model, batches: Sequence[torch.Tensor]) -> list:
    """One model call per batch: the reference step's forward."""
    return [model(x) for x in batches]


@dataclass
class StepContext:
    lam: float | torch.Tensor  # λ of this step (a 0-d float64 tensor on the fast path)
    box: mixing.Box | torch.Tensor  # CutMix box of this step (a (4,) tensor y0, y1, x0, x1 on the fast path)
    alpha: float | torch.Tensor  # cumulative coefficient of this epoch
    gamma: float  # consistency weight
    class_weights: torch.Tensor  # (C,) w_c = n_c^-k normalised to sum C
    num_classes: int
    cutmix_label: str = "area"
    reduction: str = "mean"
    partner: torch.Tensor | None = None  # permutation of the uniform batch (MixUp / CutMix baselines)
    stop_gradient: bool = True  # keep sg in L_sim; False only for notebook 03's collapse demonstration
    forward: Forward = separate_forward  # how the network runs on the step's batches
    # --- long-tail baselines and variants (see method_extras and glmc_core.longtail_losses) ---
    class_counts: torch.Tensor | None = None  # (C,) training images per class (Balanced Softmax)
    ce_weights: torch.Tensor | None = None  # (C,) per-class loss weights of this epoch (CB, DRW)
    focal_gamma: float = 1.0  # focusing parameter γ of the focal loss
    ldam_margins: torch.Tensor | None = None  # (C,) LDAM margins m_c
    ldam_scale: float = 30.0  # LDAM's cosine scale s


def _glmc(model, b, ctx: StepContext, gamma: float, alpha, balanced_softmax: bool = False):
    """The GLMC step (paper §3): both mixtures, their four targets, both forward passes, every loss term."""
    h, w = b["x_u1"].shape[-2:]
    x_g = mixing.global_mix(b["x_u1"], b["x_r1"], ctx.lam)  # (B, 3, H, W)
    x_l = mixing.local_mix(b["x_u2"], b["x_r2"], ctx.box)  # the box is pasted from the resampled batch
    targets = mixing.glmc_targets(b["y_u"], b["y_r"], ctx.num_classes, ctx.class_weights, ctx.lam, ctx.box, h, w,
                                  ctx.cutmix_label)
    out_g, out_l = ctx.forward(model, (x_g, x_l))
    if balanced_softmax:
        # GLMC + BS: the re-balanced branch is a Balanced Softmax on the plain mixed labels (logits + log n_c);
        # the prior shift replaces the label re-weighting, which would otherwise compensate twice.
        shift = ctx.class_counts.to(out_g["logits_cb"].device, torch.float32).log()
        out_g, out_l = ({**o, "logits_cb": o["logits_cb"].float() + shift} for o in (out_g, out_l))
        targets.update(p_g_w=targets["p_g"], p_l_w=targets["p_l"])
    return glmc_loss(out_g, out_l, targets, alpha, gamma, ctx.reduction, ctx.stop_gradient)


def _glmc_full(model, b, ctx):
    return _glmc(model, b, ctx, ctx.gamma, ctx.alpha)


def _glmc_bs(model, b, ctx):
    return _glmc(model, b, ctx, ctx.gamma, ctx.alpha, balanced_softmax=True)


def _glmc_no_consistency(model, b, ctx):
    return _glmc(model, b, ctx, 0.0, ctx.alpha)


def _glmc_no_cumulative(model, b, ctx):
    return _glmc(model, b, ctx, ctx.gamma, 1.0)


def _cumulative_only(model, b, ctx):
    """No mixing: the uniform batch and the resampled batch each through both heads."""
    c, wts = ctx.num_classes, ctx.class_weights
    p_u, p_r = mixing.one_hot(b["y_u"], c), mixing.one_hot(b["y_r"], c)
    targets = {"p_g": p_u, "p_l": p_r, "p_g_w": mixing.reweight_labels(p_u, wts),
               "p_l_w": mixing.reweight_labels(p_r, wts)}
    out_u, out_r = ctx.forward(model, (b["x_u1"], b["x_r1"]))
    return glmc_loss(out_u, out_r, targets, ctx.alpha, 0.0, ctx.reduction)


def _single(loss: torch.Tensor):
    z = torch.zeros((), device=loss.device)
    return loss, {"loss_c": loss.detach(), "loss_cb": z, "loss_sim": z, "total": loss.detach()}


def _logits(model, x, ctx) -> torch.Tensor:
    """``fc``'s logits of one batch, through the context's forward."""
    return ctx.forward(model, (x,))[0]["logits"]


def _ce(model, b, ctx):
    return _single(soft_cross_entropy(_logits(model, b["x_u1"], ctx), mixing.one_hot(b["y_u"], ctx.num_classes)))


def _mixup(model, b, ctx):
    p = mixing.one_hot(b["y_u"], ctx.num_classes)
    perm = ctx.partner
    x = mixing.global_mix(b["x_u1"], b["x_u1"][perm], ctx.lam)
    return _single(soft_cross_entropy(_logits(model, x, ctx), mixing.mix_labels(p, p[perm], ctx.lam)))


def _cutmix(model, b, ctx):
    p = mixing.one_hot(b["y_u"], ctx.num_classes)
    perm = ctx.partner
    h, w = b["x_u1"].shape[-2:]
    x = mixing.local_mix(b["x_u1"], b["x_u1"][perm], ctx.box)
    lam = mixing.cutmix_label_weight(ctx.lam, ctx.box, h, w, ctx.cutmix_label)
    return _single(soft_cross_entropy(_logits(model, x, ctx), mixing.mix_labels(p, p[perm], lam)))


def _balanced_softmax(model, b, ctx):
    return _single(ltl.balanced_softmax_loss(_logits(model, b["x_u1"], ctx), b["y_u"], ctx.class_counts))


def _weighted_ce(model, b, ctx):
    """Cross-entropy re-weighted by ``ctx.ce_weights`` (the focal loss with γ = 0)."""
    return _single(ltl.focal_loss(_logits(model, b["x_u1"], ctx), b["y_u"], 0.0, ctx.ce_weights))


def _focal(model, b, ctx):
    """Focal loss, re-weighted by ``ctx.ce_weights`` where the method has them (``cb-focal``)."""
    return _single(ltl.focal_loss(_logits(model, b["x_u1"], ctx), b["y_u"], ctx.focal_gamma, ctx.ce_weights))


def _ldam_drw(model, b, ctx):
    logits = _logits(model, b["x_u1"], ctx)  # s·cos from the NormedLinear head
    return _single(ltl.ldam_loss(logits, b["y_u"], ctx.ldam_margins, ctx.ldam_scale, ctx.ce_weights))


# The step losses that METHOD_SPECS entries name (glmc_core.config holds the registry, on floor 1).
STEP_LOSSES: dict[str, Callable] = {
    "glmc": _glmc_full, "glmc-no-consistency": _glmc_no_consistency, "glmc-no-cumulative": _glmc_no_cumulative,
    "cumulative-only": _cumulative_only, "ce": _ce, "mixup": _mixup, "cutmix": _cutmix, "glmc-bs": _glmc_bs,
    "balanced-softmax": _balanced_softmax, "weighted-ce": _weighted_ce, "focal": _focal, "ldam": _ldam_drw,
}

# Per-class loss weights by an entry's ``ce_weights``, for (0-based) ``epoch``.
_CE_WEIGHTS: dict[str, Callable] = {
    "cb": lambda cfg, counts, epoch: ltl.cb_weights_effective_number(counts, cfg.cb_beta),
    "drw": lambda cfg, counts, epoch: ltl.drw_weights(epoch, cfg.epochs, counts, cfg.cb_beta, cfg.drw_start),
}


def method_extras(cfg, class_counts, epoch: int, device) -> dict:
    """The :class:`StepContext` fields of the long-tail baselines for (0-based) ``epoch``.

    ``ce_weights``: class-balanced weights for ``cb-ce``/``cb-focal``; for ``ldam-drw`` ones
    until ``drw_start·epochs``, then the class-balanced weights (deferred re-weighting).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    kind = METHOD_SPECS[cfg.method].ce_weights
    weights = None if kind is None else _CE_WEIGHTS[kind](cfg, counts, epoch)
    return {"class_counts": counts.to(device), "ce_weights": None if weights is None else weights.to(device),
            "focal_gamma": cfg.focal_gamma, "ldam_margins": ltl.ldam_margins(counts, cfg.ldam_max_margin).to(device),
            "ldam_scale": cfg.ldam_scale}


def build_method_model(cfg, num_classes: int):
    """:func:`glmc_core.models.build_model` for ``cfg.method``: LDAM's ``fc`` is a cosine classifier."""
    from .models import NormedLinear, build_model

    spec = METHOD_SPECS[cfg.method]
    model = build_model(cfg.model, num_classes, cfg.proj_dim, spec.inference_head)
    if spec.classifier == "cosine":
        model.fc = NormedLinear(model.fc.in_features, num_classes, cfg.ldam_scale)
    return model


def step_loss(method: str, model, batch: dict, ctx: StepContext):
    """``(loss, terms)`` of ``method`` for one batch."""
    return STEP_LOSSES[METHOD_SPECS[method].loss](model, batch, ctx)
