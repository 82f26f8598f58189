"""Long-tail losses beyond the paper, as small pure functions (tensors in, tensors out).

Each is the formula of its source, written out so that a test can check it against a
direct computation (``tests/test_longtail_losses.py``) and ``docs/methods.md`` can cite it:

* :func:`balanced_softmax_loss`: Ren et al., NeurIPS 2020: cross-entropy on ``z + log n_c``.
* :func:`cb_weights_effective_number`: Cui et al., CVPR 2019: ``w_c ∝ (1−β)/(1−β^{n_c})``.
* :func:`focal_loss`: Lin et al., ICCV 2017, softmax form: ``−w_y·(1−p_y)^γ·log p_y``.
* :func:`ldam_margins`, :func:`ldam_loss`, :func:`drw_weights`: Cao et al., NeurIPS 2019
  (LDAM-DRW): margins ``m_c ∝ n_c^(−1/4)``, ``CE(s·(cos − m_y))``, and deferred re-weighting.
* :func:`logit_adjust`: Menon et al., ICLR 2021, post-hoc: predict ``argmax(z − τ·log π)``.

Weighted losses are normalised by ``Σ_i w_{y_i}`` (the weighted mean of
``torch.nn.functional.cross_entropy(weight=...)``, which the LDAM-DRW code uses for its
re-weighting baselines), so re-weighting changes the balance between classes and not the
overall scale of the loss (and hence of the learning rate).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["log_prior", "balanced_softmax_loss", "cb_weights_effective_number", "weighted_mean", "focal_loss",
           "ldam_margins", "ldam_loss", "drw_weights", "logit_adjust"]


def _counts(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.ndim != 1 or (counts <= 0).any():
        raise ValueError("class counts must be a 1-D sequence of positive numbers")
    return counts


def log_prior(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``log π_c = log(n_c / Σ n)``: the log training-label prior, shape ``(C,)``."""
    counts = _counts(class_counts)
    return (counts / counts.sum()).log().float()


def balanced_softmax_loss(logits: torch.Tensor, target: torch.Tensor,
                          class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Balanced Softmax (Ren et al. 2020): cross-entropy of ``softmax(z + log n_c)``.

    ``target`` is either class indices ``(B,)`` or soft labels ``(B, C)`` (mixed labels,
    as in "GLMC + BS"). Adding ``log n_c`` (equivalently ``log π_c``: the constant cancels
    in the softmax) during training makes the raw logits ``z`` estimate the *balanced*
    posterior, so inference uses ``argmax z`` unchanged.
    """
    shift = _counts(class_counts).log().to(logits.device, torch.float32)
    z = logits.float() + shift
    if target.ndim == 1:
        return F.cross_entropy(z, target.long())
    return -(target * F.log_softmax(z, dim=1)).sum(dim=1).mean()


def cb_weights_effective_number(class_counts: Sequence[int] | torch.Tensor, beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights by the effective number of samples (Cui et al. 2019).

    ``E_n = (1 − β^n)/(1 − β)``; ``w_c ∝ 1/E_{n_c} = (1 − β)/(1 − β^{n_c})``, normalised so that
    ``Σ_c w_c = C``. ``β = 0`` gives all ones (no re-weighting); ``β → 1`` tends to ``1/n_c``.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    counts = _counts(class_counts)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (w / w.sum() * len(counts)).float()


def weighted_mean(per_sample: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``Σ_i w_{y_i}·ℓ_i / Σ_i w_{y_i}`` (plain mean when ``weights`` is None)."""
    if weights is None:
        return per_sample.mean()
    w = weights.to(per_sample.device, per_sample.dtype)[targets.long()]
    return (w * per_sample).sum() / w.sum()


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 1.0,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax focal loss (Lin et al. 2017): ``ℓ_i = −(1 − p_{i,y})^γ · log p_{i,y}``.

    ``γ = 0`` is cross-entropy. With class ``weights`` (e.g. :func:`cb_weights_effective_number`,
    "class-balanced focal loss", Cui et al. 2019) the weighted mean of :func:`weighted_mean`
    is taken; without, the plain mean.
    """
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, targets.long()[:, None]).squeeze(1)  # (B,)
    per_sample = -((1.0 - log_p.exp()).clamp_min(0.0) ** gamma) * log_p if gamma else -log_p
    return weighted_mean(per_sample, targets, weights)


def ldam_margins(class_counts: Sequence[int] | torch.Tensor, max_margin: float = 0.5) -> torch.Tensor:
    """LDAM margins (Cao et al. 2019): ``m_c = K / n_c^{1/4}``, ``K`` chosen so that ``max_c m_c = max_margin``."""
    m = _counts(class_counts).pow(-0.25)
    return (m * (max_margin / m.max())).float()


def ldam_loss(logits: torch.Tensor, targets: torch.Tensor, margins: torch.Tensor, scale: float = 30.0,
              weights: torch.Tensor | None = None) -> torch.Tensor:
    """LDAM loss: cross-entropy of ``s·(cos θ_j − m_y·[j = y])``.

    ``logits`` are the *scaled* cosines ``s·cos θ`` of :class:`glmc_core.models.NormedLinear`
    (so that they live on the same scale as a linear head's logits, e.g. for post-hoc logit
    adjustment); the margin is subtracted from the true class after scaling: ``s·m_y``.
    ``weights`` (DRW) give the weighted mean of :func:`weighted_mean`.
    """
    y = targets.long()
    m = margins.to(logits.device, torch.float32)[y]  # (B,)
    z = logits.float() - F.one_hot(y, logits.shape[1]).float() * (scale * m)[:, None]
    return weighted_mean(F.cross_entropy(z, y, reduction="none"), y, weights)


def drw_weights(epoch: int, total_epochs: int, class_counts: Sequence[int] | torch.Tensor, beta: float = 0.9999,
                start_fraction: float = 0.8) -> torch.Tensor:
    """Deferred re-weighting (Cao et al. 2019): all ones before ``start_fraction·T_max``, then the
    class-balanced weights of :func:`cb_weights_effective_number` (epoch 160 of 200 in LDAM-DRW).

    ``epoch`` is 0-based: with 200 epochs and 0.8, epochs 0–159 use ones, 160–199 the CB weights.
    """
    if epoch >= int(start_fraction * total_epochs):
        return cb_weights_effective_number(class_counts, beta)
    return torch.ones(len(_counts(class_counts)))


def logit_adjust(logits: torch.Tensor, class_counts: Sequence[int] | torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al. 2021): ``z − τ·log π``, π the training-label prior.

    Predicting ``argmax`` of the result trades head-class accuracy for tail-class accuracy;
    ``τ = 0`` leaves the logits (and predictions) unchanged, ``τ = 1`` is the Bayes-optimal
    correction for a balanced test set when ``softmax(z)`` estimates the training posterior.
    """
    return logits - float(tau) * log_prior(class_counts).to(logits.device, logits.dtype)
