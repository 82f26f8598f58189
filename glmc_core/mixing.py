"""Global and local mixtures, λ, and (re-weighted) soft labels: small pure functions.

Notation follows the paper (Du et al., CVPR 2023, §3.1):

* uniform batch ``(x_u, y_u)`` and class-resampled batch ``(x_r, y_r)``;
* one ``λ ~ Beta(β, β)`` per step, shared by both mixtures;
* global mixture (MixUp):  ``x_g = λ·x_u + (1−λ)·x_r``,  ``p_g = λ·p_u + (1−λ)·p_r``;
* local mixture (CutMix):  ``x_l = M⊙x_u + (1−M)⊙x_r`` with ``M`` zero inside a box of
  size ``(W·√(1−λ), H·√(1−λ))`` centred at a uniform random point (the box is pasted
  from the resampled batch);
* re-weighted soft labels: each one-hot row times ``w_c = n_c^(−k)`` normalised so that
  ``Σ_c w_c = C``.

Randomness never comes from global state: λ and the box are drawn from an explicit
:class:`numpy.random.Generator` so that runs repeat and resume exactly, and the
mixing functions themselves take λ and the box as arguments.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch

__all__ = [
    "Box",
    "sample_lambda",
    "sample_box",
    "box_mask",
    "box_area_fraction",
    "global_mix",
    "local_mix",
    "one_hot",
    "mix_labels",
    "class_weights",
    "reweight_labels",
    "cutmix_label_weight",
]


class Box(NamedTuple):
    """A rectangle in pixel coordinates, ``[y0, y1) × [x0, x1)``, already clipped to the image."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def area(self) -> int:
        return max(0, self.y1 - self.y0) * max(0, self.x1 - self.x0)


def sample_lambda(rng: np.random.Generator, beta: float, authors_beta: bool = False) -> float:
    """Draw the mixing coefficient ``λ ~ Beta(β, β)``.

    Args:
        rng: the generator that owns this randomness.
        beta: the paper's β (0.5 in every published recipe); must be > 0.
        authors_beta: reproduce the authors' code, whose mixing function ignores
            ``--beta`` and always draws ``λ ~ Beta(1, 1)`` (uniform).
    """
    if authors_beta:
        beta = 1.0
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return float(rng.beta(beta, beta))


def sample_box(rng: np.random.Generator, height: int, width: int, lam: float) -> Box:
    """Sample the CutMix box for ``λ``: side ``⌈W·√(1−λ)⌉ × ⌈H·√(1−λ)⌉``, uniform centre, clipped.

    The box is the region pasted from the resampled batch; when it is clipped at a
    border its area is smaller than ``(1−λ)·H·W`` (see :func:`box_area_fraction`).
    """
    cut = math.sqrt(max(0.0, 1.0 - lam))
    cut_h, cut_w = math.ceil(height * cut), math.ceil(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0 = min(max(cy - cut_h // 2, 0), height)
    x0 = min(max(cx - cut_w // 2, 0), width)
    y1 = min(max(cy - cut_h // 2 + cut_h, 0), height)
    x1 = min(max(cx - cut_w // 2 + cut_w, 0), width)
    return Box(y0, y1, x0, x1)


def box_mask(height: int, width: int, box: Box, device=None) -> torch.Tensor:
    """The paper's ``M``: a ``(1, 1, H, W)`` float mask, 0 inside the box and 1 outside."""
    mask = torch.ones(1, 1, height, width, device=device)
    mask[..., box.y0 : box.y1, box.x0 : box.x1] = 0.0
    return mask


def box_area_fraction(box: Box, height: int, width: int) -> float:
    """Fraction of the image covered by the (clipped) box."""
    return box.area / float(height * width)


def cutmix_label_weight(lam: float, box: Box, height: int, width: int, mode: str = "area") -> float:
    """Weight of the *uniform* sample in the local mixture's label.

    ``mode="area"`` (default) uses the unpasted area ``1 − |box|/(H·W)``, which is what
    the image really contains after clipping; ``mode="lambda"`` uses λ itself, as the
    authors' code does.
    """
    if mode == "area":
        return 1.0 - box_area_fraction(box, height, width)
    if mode == "lambda":
        return float(lam)
    raise ValueError(f"cutmix label mode must be 'area' or 'lambda', got {mode!r}")


def global_mix(x_u: torch.Tensor, x_r: torch.Tensor, lam) -> torch.Tensor:
    """MixUp: ``λ·x_u + (1−λ)·x_r`` for batches of shape ``(B, C, H, W)``."""
    return lam * x_u + (1.0 - lam) * x_r


def local_mix(x_u: torch.Tensor, x_r: torch.Tensor, box: Box) -> torch.Tensor:
    """CutMix: ``x_u`` with the box region replaced by the same region of ``x_r``."""
    x_l = x_u.clone()
    x_l[..., box.y0 : box.y1, box.x0 : box.x1] = x_r[..., box.y0 : box.y1, box.x0 : box.x1]
    return x_l


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float one-hot rows, ``(B,) -> (B, C)``.

    A comparison with ``arange(C)`` rather than ``F.one_hot``, which reads the labels' minimum and
    maximum back to the host on some devices (the CPU): this never syncs, so the fast path's captured
    step can use it. Labels are checked when the data set is loaded.
    """
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.long()[:, None] == classes).float()


def mix_labels(p_u: torch.Tensor, p_r: torch.Tensor, weight) -> torch.Tensor:
    """Soft label of a mixture: ``weight·p_u + (1−weight)·p_r``."""
    return weight * p_u + (1.0 - weight) * p_r


def class_weights(class_counts: Sequence[int] | torch.Tensor, k: float) -> torch.Tensor:
    """Re-balancing weights ``w_c = n_c^(−k)``, normalised so that ``Σ_c w_c = C``.

    ``k = 0`` gives all ones; larger ``k`` favours the tail (the paper's label
    weighting, 1.2 for most CIFAR settings).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if (counts <= 0).any():
        raise ValueError("every class needs at least one training image to be weighted")
    w = counts.pow(-float(k))
    return (w / w.sum() * len(counts)).float()


def reweight_labels(p: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Re-weighted soft labels: each one-hot (or soft) row multiplied by the class weights."""
    return p * weights.to(p.device, p.dtype)
