"""Every loss term of GLMC and the cumulative α schedule (paper §3.2–3.3).

``L_total = α·L_c + (1−α)·L_cb + γ·L_sim``,  ``α = 1 − (T/T_max)²``

* ``L_c``: mixed-label cross-entropy of the plain classifier ``fc`` on both mixtures;
* ``L_cb``: the same for the re-balanced classifier ``fc_cb`` with re-weighted soft labels;
* ``L_sim = −cos(u_g, sg(h_l)) − cos(u_l, sg(h_g))``: SimSiam-style consistency between the
  global and local mixtures, ``sg`` the stop-gradient.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F

__all__ = [
    "ALPHA_SCHEDULES",
    "alpha_schedule",
    "soft_cross_entropy",
    "negative_cosine",
    "consistency_loss",
    "cumulative_total",
    "glmc_loss",
]

ALPHA_SCHEDULES = ("paper", "linear", "cosine", "constant")


def alpha_schedule(epoch: float, total_epochs: int, kind: str = "paper", constant: float = 0.5) -> float:
    """The cumulative coefficient α at epoch ``T`` of ``T_max``.

    * ``paper``: ``1 − (T/T_max)²`` (the paper's, and the authors' code with 0-based epochs);
    * ``linear``: ``1 − T/T_max``;  ``cosine``: ``½(1 + cos(π·T/T_max))``;
    * ``constant``: ``constant`` at every epoch (for teaching and ablations).

    α is 1 at ``T = 0`` and 0 at ``T = T_max`` for every schedule but ``constant``.
    """
    if total_epochs <= 0:
        raise ValueError("total_epochs must be positive")
    t = min(max(epoch / total_epochs, 0.0), 1.0)
    if kind == "paper":
        return 1.0 - t * t
    if kind == "linear":
        return 1.0 - t
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if kind == "constant":
        return float(constant)
    raise ValueError(f"unknown alpha schedule {kind!r}; choose one of {', '.join(ALPHA_SCHEDULES)}")


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i −Σ_c p_ic · log softmax(z_i)_c`` for soft (possibly re-weighted) targets."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """``−mean cos(p, sg(z))``: no gradient flows into ``z`` (SimSiam's stop-gradient).

    ``stop_gradient=False`` lets the gradient flow into ``z`` too. That is *not* the method:
    it exists only so notebook 03 can show why the stop-gradient matters (without it the
    network can satisfy the loss trivially by collapsing its projections).
    """
    z = z.detach() if stop_gradient else z
    return -F.cosine_similarity(p.float(), z.float(), dim=-1).mean()


def consistency_loss(u_g: torch.Tensor, h_g: torch.Tensor, u_l: torch.Tensor, h_l: torch.Tensor,
                     stop_gradient: bool = True) -> torch.Tensor:
    """``L_sim = −cos(u_g, sg(h_l)) − cos(u_l, sg(h_g))`` (prediction ``u``, projection ``h``).

    ``stop_gradient=False`` drops ``sg`` (teaching only, see :func:`negative_cosine`).
    """
    return negative_cosine(u_g, h_l, stop_gradient) + negative_cosine(u_l, h_g, stop_gradient)


def cumulative_total(loss_c, loss_cb, loss_sim, alpha, gamma):
    """``α·L_c + (1−α)·L_cb + γ·L_sim``: the three terms mixed with the cumulative coefficient α.

    Linear in the terms, so the epoch means of ``loss_c``, ``loss_cb`` and ``loss_sim`` in ``metrics.jsonl``
    (α is fixed for an epoch) give that epoch's mean ``total`` the same way.
    """
    return alpha * loss_c + (1.0 - alpha) * loss_cb + gamma * loss_sim


def glmc_loss(
    out_g: Mapping[str, torch.Tensor],
    out_l: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    alpha: float,
    gamma: float,
    reduction: str = "mean",
    stop_gradient: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total GLMC loss and each of its terms.

    Args:
        out_g, out_l: network outputs for the global / local mixture, each a mapping with
            ``logits`` (fc), ``logits_cb`` (fc_cb), ``h`` (projection) and ``u`` (prediction).
        targets: ``p_g``, ``p_l`` (soft labels) and ``p_g_w``, ``p_l_w`` (re-weighted).
        alpha: the cumulative coefficient for this epoch.
        gamma: weight of the consistency loss (the authors' ``contrast_weight``).
        reduction: ``"mean"`` averages the two mixtures (the paper's ``1/2N``);
            ``"sum"`` adds them, as the authors' code does (doubling both CE terms).
        stop_gradient: keep the paper's ``sg`` in ``L_sim`` (always, except to demonstrate collapse).

    Returns:
        ``(total, terms)`` where ``terms`` holds ``loss_c``, ``loss_cb``, ``loss_sim`` and
        ``total``, each detached.
    """
    ce_g = soft_cross_entropy(out_g["logits"], targets["p_g"])
    ce_l = soft_cross_entropy(out_l["logits"], targets["p_l"])
    cb_g = soft_cross_entropy(out_g["logits_cb"], targets["p_g_w"])
    cb_l = soft_cross_entropy(out_l["logits_cb"], targets["p_l_w"])
    if reduction == "mean":
        loss_c, loss_cb = 0.5 * (ce_g + ce_l), 0.5 * (cb_g + cb_l)
    elif reduction == "sum":
        loss_c, loss_cb = ce_g + ce_l, cb_g + cb_l
    else:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if gamma:
        loss_sim = consistency_loss(out_g["u"], out_g["h"], out_l["u"], out_l["h"], stop_gradient)
    else:
        loss_sim = torch.zeros((), device=loss_c.device)
    total = cumulative_total(loss_c, loss_cb, loss_sim, alpha, gamma)
    terms = {
        "loss_c": loss_c.detach(),
        "loss_cb": loss_cb.detach(),
        "loss_sim": loss_sim.detach(),
        "total": total.detach(),
    }
    return total, terms
