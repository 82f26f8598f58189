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
from typing import NamedTuple, Sequence, Union

import numpy as np
import torch

__all__ = [
    "Box",
    "sample_lambda",
    "sample_box",
    "centred_box",
    "box_mask",
    "box_area_fraction",
    "global_mix",
    "local_mix",
    "one_hot",
    "mix_labels",
    "class_weights",
    "reweight_labels",
    "cutmix_label_weight",
    "glmc_targets",
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

    The centre is a uniform pixel, row then column (``rng.integers(height)``, ``rng.integers(width)``);
    :func:`centred_box` does the rest. The box is the region pasted from the resampled batch; when it is
    clipped at a border its area is smaller than ``(1−λ)·H·W`` (see :func:`box_area_fraction`).
    """
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    return centred_box(height, width, lam, cy, cx)


def centred_box(height: int, width: int, lam: float, cy: int, cx: int) -> Box:
    """The CutMix box for ``λ`` centred at pixel ``(cy, cx)``, clipped to the ``height × width`` image.

    Its sides are ``cut_h = ⌈H·√(1−λ)⌉`` and ``cut_w = ⌈W·√(1−λ)⌉``; before clipping it spans rows
    ``cy − ⌊cut_h/2⌋ … cy − ⌊cut_h/2⌋ + cut_h`` (end excluded), and the same for columns; then every
    coordinate is clipped to ``[0, H]`` (``[0, W]``). λ = 1 gives an empty box; λ = 0 a box of the image's
    size that covers the whole image only when centred in the middle.
    """
    cut = math.sqrt(max(0.0, 1.0 - lam))
    cut_h, cut_w = math.ceil(height * cut), math.ceil(width * cut)
    y0 = min(max(cy - cut_h // 2, 0), height)
    x0 = min(max(cx - cut_w // 2, 0), width)
    y1 = min(max(cy - cut_h // 2 + cut_h, 0), height)
    x1 = min(max(cx - cut_w // 2 + cut_w, 0), width)
    return Box(y0, y1, x0, x1)


BoxLike = Union[Box, torch.Tensor]  # a Box, or a (4,) long tensor y0, y1, x0, x1 (the fast path's, on the device)


def box_mask(height: int, width: int, box: BoxLike, device=None) -> torch.Tensor:
    """The paper's ``M``: a ``(1, 1, H, W)`` float mask, 0 inside the box and 1 outside."""
    return (~_in_box(box, height, width, device)).float()[None, None]


def _in_box(box: BoxLike, height: int, width: int, device=None) -> torch.Tensor:
    """``(H, W)`` bool, True inside the box; for a tensor box no value is read back to the host."""
    box_t = box if isinstance(box, torch.Tensor) else torch.tensor(tuple(box), device=device)
    rows = torch.arange(height, device=box_t.device)
    cols = torch.arange(width, device=box_t.device)
    in_rows = (rows >= box_t[0]) & (rows < box_t[1])
    in_cols = (cols >= box_t[2]) & (cols < box_t[3])
    return in_rows[:, None] & in_cols[None, :]


def box_area_fraction(box: BoxLike, height: int, width: int):
    """Fraction of the image covered by the (clipped) box (a float, or a 0-d float64 tensor for a tensor box)."""
    if isinstance(box, torch.Tensor):
        return ((box[1] - box[0]) * (box[3] - box[2])).double() / float(height * width)
    return box.area / float(height * width)


def cutmix_label_weight(lam, box: BoxLike, height: int, width: int, mode: str = "area"):
    """Weight of the *uniform* sample in the local mixture's label.

    ``mode="area"`` (default) uses the unpasted area ``1 − |box|/(H·W)``, which is what
    the image really contains after clipping; ``mode="lambda"`` uses λ itself, as the
    authors' code does. ``lam`` and ``box`` may be host values or device tensors.
    """
    if mode == "area":
        return 1.0 - box_area_fraction(box, height, width)
    if mode == "lambda":
        return lam if isinstance(lam, torch.Tensor) else float(lam)
    raise ValueError(f"cutmix label mode must be 'area' or 'lambda', got {mode!r}")


def global_mix(x_u: torch.Tensor, x_r: torch.Tensor, lam) -> torch.Tensor:
    """MixUp: ``λ·x_u + (1−λ)·x_r`` for batches of shape ``(B, C, H, W)``."""
    return lam * x_u + (1.0 - lam) * x_r


def local_mix(x_u: torch.Tensor, x_r: torch.Tensor, box: BoxLike) -> torch.Tensor:
    """CutMix: ``x_u`` with the box region replaced by the same region of ``x_r``.

    ``box``: a :class:`Box`, or a ``(4,)`` tensor (static shapes whatever the box: capturable).
    """
    return torch.where(_in_box(box, x_u.shape[-2], x_u.shape[-1], x_u.device), x_r, x_u)


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


def glmc_targets(y_u: torch.Tensor, y_r: torch.Tensor, num_classes: int, weights: torch.Tensor, lam, box: BoxLike,
                 height: int, width: int, cutmix_label: str = "area") -> dict[str, torch.Tensor]:
    """The four soft targets of a GLMC step, each ``(B, C)``.

    ``p_g``/``p_l``: the global/local mixture's soft label (the local one weighted by
    :func:`cutmix_label_weight`); ``p_g_w``/``p_l_w``: the same mixtures of the re-weighted
    one-hot rows (the re-balanced branch's targets). ``lam`` and ``box`` may be host values
    or device tensors (the fast path's captured step).
    """
    p_u, p_r = one_hot(y_u, num_classes), one_hot(y_r, num_classes)
    pw_u, pw_r = reweight_labels(p_u, weights), reweight_labels(p_r, weights)
    lam_l = cutmix_label_weight(lam, box, height, width, cutmix_label)
    return {"p_g": mix_labels(p_u, p_r, lam), "p_l": mix_labels(p_u, p_r, lam_l),
            "p_g_w": mix_labels(pw_u, pw_r, lam), "p_l_w": mix_labels(pw_u, pw_r, lam_l)}
