"""One training step's loss for each method: GLMC, its ablations and simple baselines.

Each function takes the model, a batch from a stream (``x_u1, x_u2, y_u, x_r1, x_r2, y_r``),
and a :class:`StepContext` (λ and box for this step, α for this epoch, class weights), and
returns ``(loss, terms)``. The maths live in :mod:`glmc_core.mixing` and
:mod:`glmc_core.losses`; this module only wires them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import mixing
from .losses import glmc_loss, soft_cross_entropy

__all__ = ["StepContext", "METHOD_SPECS", "MethodSpec", "step_loss"]


@dataclass
class StepContext:
    lam: float  # λ of this step
    box: mixing.Box  # CutMix box of this step
    alpha: float  # cumulative coefficient of this epoch
    gamma: float  # consistency weight
    class_weights: torch.Tensor  # (C,) w_c = n_c^-k normalised to sum C
    num_classes: int
    cutmix_label: str = "area"
    reduction: str = "mean"
    partner: torch.Tensor | None = None  # permutation of the uniform batch (MixUp / CutMix baselines)
    stop_gradient: bool = True  # keep sg in L_sim; False only for notebook 03's collapse demonstration


def _glmc(model, b, ctx: StepContext, gamma: float, alpha: float):
    c = ctx.num_classes
    h, w = b["x_u1"].shape[-2:]
    x_g = mixing.global_mix(b["x_u1"], b["x_r1"], ctx.lam)  # (B, 3, H, W)
    x_l = mixing.local_mix(b["x_u2"], b["x_r2"], ctx.box)
    p_u, p_r = mixing.one_hot(b["y_u"], c), mixing.one_hot(b["y_r"], c)
    lam_l = mixing.cutmix_label_weight(ctx.lam, ctx.box, h, w, ctx.cutmix_label)
    wts = ctx.class_weights
    targets = {
        "p_g": mixing.mix_labels(p_u, p_r, ctx.lam),
        "p_l": mixing.mix_labels(p_u, p_r, lam_l),
        "p_g_w": mixing.mix_labels(mixing.reweight_labels(p_u, wts), mixing.reweight_labels(p_r, wts), ctx.lam),
        "p_l_w": mixing.mix_labels(mixing.reweight_labels(p_u, wts), mixing.reweight_labels(p_r, wts), lam_l),
    }
    out_g, out_l = model(x_g), model(x_l)
    return glmc_loss(out_g, out_l, targets, alpha, gamma, ctx.reduction, ctx.stop_gradient)


def _glmc_full(model, b, ctx):
    return _glmc(model, b, ctx, ctx.gamma, ctx.alpha)


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
    return glmc_loss(model(b["x_u1"]), model(b["x_r1"]), targets, ctx.alpha, 0.0, ctx.reduction)


def _single(loss: torch.Tensor):
    z = torch.zeros((), device=loss.device)
    return loss, {"loss_c": loss.detach(), "loss_cb": z, "loss_sim": z, "total": loss.detach()}


def _ce(model, b, ctx):
    out = model(b["x_u1"])
    return _single(soft_cross_entropy(out["logits"], mixing.one_hot(b["y_u"], ctx.num_classes)))


def _mixup(model, b, ctx):
    p = mixing.one_hot(b["y_u"], ctx.num_classes)
    perm = ctx.partner
    x = mixing.global_mix(b["x_u1"], b["x_u1"][perm], ctx.lam)
    return _single(soft_cross_entropy(model(x)["logits"], mixing.mix_labels(p, p[perm], ctx.lam)))


def _cutmix(model, b, ctx):
    p = mixing.one_hot(b["y_u"], ctx.num_classes)
    perm = ctx.partner
    h, w = b["x_u1"].shape[-2:]
    x = mixing.local_mix(b["x_u1"], b["x_u1"][perm], ctx.box)
    lam = mixing.cutmix_label_weight(ctx.lam, ctx.box, h, w, ctx.cutmix_label)
    return _single(soft_cross_entropy(model(x)["logits"], mixing.mix_labels(p, p[perm], lam)))


@dataclass(frozen=True)
class MethodSpec:
    loss: Callable
    inference_head: str  # "fc_cb" (re-balanced) or "fc"
    cumulative: bool  # does α move weight from fc to fc_cb?


METHOD_SPECS: dict[str, MethodSpec] = {
    "glmc": MethodSpec(_glmc_full, "fc_cb", True),
    "glmc-no-consistency": MethodSpec(_glmc_no_consistency, "fc_cb", True),
    "glmc-no-cumulative": MethodSpec(_glmc_no_cumulative, "fc", False),
    "cumulative-only": MethodSpec(_cumulative_only, "fc_cb", True),
    "ce": MethodSpec(_ce, "fc", False),
    "mixup": MethodSpec(_mixup, "fc", False),
    "cutmix": MethodSpec(_cutmix, "fc", False),
}


def step_loss(method: str, model, batch: dict, ctx: StepContext):
    """``(loss, terms)`` of ``method`` for one batch."""
    return METHOD_SPECS[method].loss(model, batch, ctx)
