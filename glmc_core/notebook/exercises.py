"""Every checked exercise of the seven notebooks, in one registry, checked by one function.

One mechanism for all notebooks:

* the notebook's **exercise cell** (tagged ``exercise``) leaves a value at ``None`` (``IF_FIRST_FEW = None``) or
  a function as a stub that raises ``NotImplementedError`` (``def my_cutmix_box(...)``: the student writes part
  of the method, its docstring states the maths);
* the **check cell** after it (tagged ``exercise-check``) calls ``exercises.check("02.2", my_cutmix_box)``;
* ``notebooks/solutions/0N_solutions.md`` gives each exercise's solution as the first ```python block after the
  words ``exercise 02.2``; ``tests/test_notebook_exercises.py`` runs every solution through :func:`check`, and
  plants wrong implementations that it must reject with the right hint.

A **value** exercise compares the answer with the value computed here from the notebook's context
(:func:`~glmc_core.notebook.claims.check_answer`: "correct" or "not yet" with a hint). A **function** exercise
calls the student's function and the package's own on the same inputs (random ones from fixed seeds and the edge
cases) with :func:`~glmc_core.notebook.check.check_function`, which says "✓ matches" or "✗ differs" with the case,
both results and a hint, naming the known mistake the student's function behaves like. :func:`inputs` gives a
case's inputs to debug with. Neither kind ever raises at the student.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Callable

import numpy as np
import torch

from .check import Case, Mistake, NoGradient, check_function
from .claims import check_answer

__all__ = ["EXERCISES", "Exercise", "check", "expected", "inputs", "notebook_exercises"]


@dataclass(frozen=True)
class Exercise:
    """One checked exercise: ``kind`` "value" (``expected(**context)``, ``tol``, ``what`` is asked) or "function"
    (the student's function ``name`` against ``reference`` on ``cases(**context)``, compared by ``observe``)."""

    key: str  # "02.2": notebook 02, exercise 2
    title: str
    kind: str  # "value" | "function"
    name: str  # what the exercise cell defines: the answer's variable or the function
    expected: Callable[..., Any] | None = None
    tol: float = 0.0
    what: str = ""
    reference: Callable | None = None
    ref_name: str = ""
    cases: Callable[..., list[Case]] | None = None
    observe: Callable | None = None
    mistakes: tuple[Mistake, ...] = ()
    hint: str = ""
    cases_hint: str = ""
    atol: float = 1e-5
    rtol: float = 1e-4
    context: tuple[str, ...] = field(default=())  # the notebook names its check needs (none: it runs on its own)

    @property
    def label(self) -> str:
        return f"Exercise {self.key} ({self.title})"


# ================================================================================================ value exercises
def _first_few_if(**_) -> int:
    from ..data import longtail_counts, shot_groups

    return next(f for f in count(1) if "few" in shot_groups(longtail_counts(5000, 10, f)))


def _corner_label(**_) -> float:
    from ..mixing import Box, cutmix_label_weight

    return cutmix_label_weight(0.75, Box(0, 10, 0, 10), 32, 32, "area")


def _two_class_weights(**_) -> list[float]:
    from ..mixing import class_weights

    return class_weights([300, 3], 1.0).tolist()


def _alpha_half(total_epochs: int = 200, **_) -> int:
    from ..losses import alpha_schedule

    return next(t for t in range(total_epochs) if alpha_schedule(t, total_epochs, "paper") <= 0.5)


def _resume_epoch(done: int, **_) -> int:
    return int(done) + 1


def _ahead_for_good(glmc_history, ce_history, **_) -> int | None:
    """The first epoch (as the runs number them) from which GLMC's top-1 is above CE's in that epoch and every later
    one; None when GLMC is not ahead in the last epoch the two runs share."""
    pairs = list(zip(glmc_history, ce_history, strict=False))  # the epochs both runs have
    first = None
    for g, c in reversed(pairs):
        if g["top1"] <= c["top1"]:
            break
        first = g["epoch"]
    return first


def _fc_cb_ratio(evals, **_) -> float:
    from ..analysis import weight_norm_ratio

    ev = next(e for e in evals if "fc_cb" in e.norms and e.run.method == "glmc")
    return weight_norm_ratio(ev.norms["fc_cb"], ev.counts)


def _cb_weights(counts=(100, 10, 1), beta: float = 0.999, **_) -> list[float]:
    from ..longtail_losses import cb_weights_effective_number

    return cb_weights_effective_number(list(counts), beta).tolist()


# ============================================================================================= function exercises
def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_counts(rng: np.random.Generator, c: int) -> np.ndarray:
    return np.sort(rng.integers(1, 5001, size=c))[::-1].copy()


# ----------------------------------------------------------------------------------------------- 01.2 weights
def _class_weights_reference(counts, k):
    from ..mixing import class_weights

    return class_weights(counts, k)


def _class_weights_cases(**_) -> list[Case]:
    cases = [Case(lambda: {"counts": np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]), "k": 1.2},
                  "CIFAR-10-LT at IF 100, the paper's k = 1.2"),
             Case(lambda: {"counts": np.array([300, 3]), "k": 1.0}, "two classes"),
             Case(lambda: {"counts": np.array([120, 40, 7, 1]), "k": 0.0}, "k = 0: every weight is 1"),
             Case(lambda: {"counts": np.array([50, 50, 50, 50, 50]), "k": 1.2}, "equal counts"),
             Case(lambda: {"counts": np.array([1000, 100, 10, 1]), "k": 2.0}, "a class with a single image, k = 2"),
             Case(lambda: {"counts": [40, 9, 3], "k": 0.5}, "counts given as a Python list")]
    for seed in range(12):
        def make(seed=seed):
            rng = _rng(100 + seed)
            c = int(rng.choice([2, 3, 10, 100]))
            return {"counts": _random_counts(rng, c), "k": float(rng.choice([0.5, 1.0, 1.2, 2.0]))}
        cases.append(Case(make, "random counts"))
    return cases


def _w_raw(counts, k):
    return np.asarray(counts, dtype=float) ** -k


def _w_sum1(counts, k):
    w = _w_raw(counts, k)
    return w / w.sum()


def _w_positive_exponent(counts, k):
    w = np.asarray(counts, dtype=float) ** k
    return w / w.sum() * len(w)


def _w_inverse(counts, k):
    w = 1.0 / np.asarray(counts, dtype=float)
    return w / w.sum() * len(w)


_CLASS_WEIGHT_MISTAKES = (
    Mistake(_w_raw, "normalise: divide the n_c^(−k) by their sum and multiply by C, so that the weights add up to C"),
    Mistake(_w_sum1, "the weights add up to C (the number of classes), not to 1: multiply by C"),
    Mistake(_w_positive_exponent, "the exponent is −k: the rare classes get the larger weights"),
    Mistake(_w_inverse, "use the exponent k: w_c ∝ n_c^(−k), not 1/n_c (they agree only at k = 1)"),
)


# -------------------------------------------------------------------------------------------------- 02.2 box
def _box_reference(height, width, lam, cy, cx):
    from ..mixing import centred_box

    return centred_box(height, width, lam, cy, cx)


def _box_cases(**_) -> list[Case]:
    odd = 1 - (15 / 32) ** 2  # √(1−λ) = 15/32: a 15-pixel side on 32 pixels
    fixed = [((32, 32, 0.75, 2, 2), "the box in the corner of exercise 02.1"),
             ((32, 32, 0.0, 16, 16), "λ = 0, centred in the middle: the whole image"),
             ((32, 32, 0.0, 3, 27), "λ = 0 off-centre: clipped on two sides"),
             ((32, 32, 1.0, 10, 20), "λ = 1: an empty box"),
             ((32, 32, 0.3, 31, 31), "clipped at the bottom-right corner"),
             ((32, 32, 0.3, 0, 16), "clipped at the top border only"),
             ((32, 32, odd, 16, 16), "an odd side (15 pixels), not clipped"),
             ((24, 40, 0.5, 12, 20), "a wide image, not clipped"),
             ((40, 24, 0.6, 39, 0), "a tall image, clipped at the bottom-left corner")]
    cases = [Case(lambda a=a: dict(zip(("height", "width", "lam", "cy", "cx"), a, strict=True)), note)
             for a, note in fixed]
    for seed in range(24):
        def make(seed=seed):
            rng = _rng(200 + seed)
            h, w = (int(v) for v in rng.choice([7, 8, 16, 24, 32, 33], size=2))
            return {"height": h, "width": w, "lam": float(rng.uniform(0, 1)), "cy": int(rng.integers(h)),
                    "cx": int(rng.integers(w))}
        cases.append(Case(make, "random λ and centre"))
    return cases


def _observe_box(fn, kwargs) -> dict[str, Any]:
    box = fn(*kwargs.values())
    if box is None:
        return {"the box": None}
    try:
        y0, y1, x0, x1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return {"the box": box}
    if max(0.0, y1 - y0) * max(0.0, x1 - x0) == 0:
        return {"the box": "an empty box (no pixel)"}  # every empty box is the same box
    return {"the box": (y0, y1, x0, x1)}


def _box_parts(height, width, lam, cy, cx, side=None, rounding=math.ceil):
    cut = math.sqrt(max(0.0, 1.0 - lam)) if side is None else side(lam)
    return rounding(height * cut), rounding(width * cut)


def _clip(v, hi):
    return min(max(v, 0), hi)


def _box_unclipped(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx)
    return (cy - ch // 2, cy - ch // 2 + ch, cx - cw // 2, cx - cw // 2 + cw)


def _box_floor(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx, rounding=int)
    return (_clip(cy - ch // 2, height), _clip(cy - ch // 2 + ch, height),
            _clip(cx - cw // 2, width), _clip(cx - cw // 2 + cw, width))


def _box_half_end(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx)
    return (_clip(cy - ch // 2, height), _clip(cy + ch // 2, height),
            _clip(cx - cw // 2, width), _clip(cx + cw // 2, width))


def _box_order(height, width, lam, cy, cx):
    b = _box_reference(height, width, lam, cy, cx)
    return (b.y0, b.x0, b.y1, b.x1)


def _box_linear_side(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx, side=lambda lam: 1.0 - lam)
    return (_clip(cy - ch // 2, height), _clip(cy - ch // 2 + ch, height),
            _clip(cx - cw // 2, width), _clip(cx - cw // 2 + cw, width))


def _box_swapped_sides(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx)
    return (_clip(cy - cw // 2, height), _clip(cy - cw // 2 + cw, height),
            _clip(cx - ch // 2, width), _clip(cx - ch // 2 + ch, width))


def _box_clip_last_pixel(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx)
    return (_clip(cy - ch // 2, height - 1), _clip(cy - ch // 2 + ch, height - 1),
            _clip(cx - cw // 2, width - 1), _clip(cx - cw // 2 + cw, width - 1))


def _box_corner_at_centre(height, width, lam, cy, cx):
    ch, cw = _box_parts(height, width, lam, cy, cx)
    return (_clip(cy, height), _clip(cy + ch, height), _clip(cx, width), _clip(cx + cw, width))


_BOX_MISTAKES = (
    Mistake(_box_unclipped, "clip the box to the image: y0 and y1 to [0, H], x0 and x1 to [0, W] "
                            "(min(max(v, 0), H)); near a border the box sticks out otherwise"),
    Mistake(_box_floor, "round the sides up: cut_h = ⌈H·√(1−λ)⌉ (math.ceil), not int(H·√(1−λ))"),
    Mistake(_box_half_end, "the box starts at cy − ⌊cut_h/2⌋ and is cut_h long, so y1 = y0 + cut_h before clipping "
                           "(cy + ⌊cut_h/2⌋, as in the original CutMix code, loses a pixel when the side is odd)"),
    Mistake(_box_order, "return the coordinates in the order (y0, y1, x0, x1): the rows first, start then end"),
    Mistake(_box_linear_side, "the sides are √(1−λ) of the image's (so that the unclipped box covers 1−λ of the "
                              "image), not 1−λ"),
    Mistake(_box_swapped_sides, "the rows go with the height: cut_h = ⌈H·√(1−λ)⌉ for y, cut_w = ⌈W·√(1−λ)⌉ for x"),
    Mistake(_box_clip_last_pixel, "the ends are excluded (the box is rows y0 … y1 − 1), so clip them to H and W, "
                                  "not to H − 1 and W − 1"),
    Mistake(_box_corner_at_centre, "(cy, cx) is the box's centre, not its corner: it starts at cy − ⌊cut_h/2⌋"),
)


# ------------------------------------------------------------------------------------------- 02.3 area label
def _label_reference(lam, box, height, width):
    from ..mixing import cutmix_label_weight

    return cutmix_label_weight(lam, box, height, width, "area")


def _label_cases(**_) -> list[Case]:
    from ..mixing import Box, centred_box

    fixed = [((0.75, Box(0, 10, 0, 10), 32, 32), "the box in the corner of exercise 02.1"),
             ((0.3, centred_box(32, 32, 0.3, 0, 0), 32, 32), "λ = 0.3, clipped at the top-left corner"),
             ((0.0, centred_box(32, 32, 0.0, 16, 16), 32, 32), "λ = 0, the whole image"),
             ((0.0, centred_box(32, 32, 0.0, 30, 4), 32, 32), "λ = 0, clipped"),
             ((1.0, centred_box(32, 32, 1.0, 5, 5), 32, 32), "λ = 1: an empty box"),
             ((0.5, centred_box(24, 40, 0.5, 12, 20), 24, 40), "a wide image, not clipped")]
    cases = [Case(lambda a=a: dict(zip(("lam", "box", "height", "width"), a, strict=True)), note)
             for a, note in fixed]
    for seed in range(16):
        def make(seed=seed):
            rng = _rng(300 + seed)
            h, w = (int(v) for v in rng.choice([8, 16, 24, 32], size=2))
            lam = float(rng.uniform(0, 1))
            return {"lam": lam, "box": centred_box(h, w, lam, int(rng.integers(h)), int(rng.integers(w))),
                    "height": h, "width": w}
        cases.append(Case(make, "random λ and box"))
    return cases


_LABEL_MISTAKES = (
    Mistake(lambda lam, box, height, width: lam,
            "use the box that was really pasted: 1 − (y1 − y0)·(x1 − x0)/(H·W). λ is the authors' label, and once the "
            "box is clipped it no longer says how much of the uniform image is left"),
    Mistake(lambda lam, box, height, width: 1 - math.ceil(height * math.sqrt(1 - lam))
            * math.ceil(width * math.sqrt(1 - lam)) / (height * width),
            "the box was clipped: compute its area from its coordinates, (y1 − y0)·(x1 − x0), not from the side "
            "lengths λ gives (those describe the box before clipping)"),
    Mistake(lambda lam, box, height, width: (box[1] - box[0]) * (box[3] - box[2]) / (height * width),
            "that is the partner's share (the box); the uniform image keeps the rest: 1 − area/(H·W)"),
    Mistake(lambda lam, box, height, width: 1 - (box[1] - box[0] + 1) * (box[3] - box[2] + 1) / (height * width),
            "the ends are excluded: the box is y1 − y0 rows high and x1 − x0 columns wide"),
    Mistake(lambda lam, box, height, width: 1 - (box[1] - box[0]) * (box[3] - box[2]) / (height * height),
            "divide by the image's area H·W"),
)


# --------------------------------------------------------------------------------- 02.4 re-weighted soft labels
def _reweighted_reference(y_u, y_r, weight, class_weights):
    """What :func:`~glmc_core.mixing.glmc_targets` computes for ``p_g_w`` (``weight`` = λ) and ``p_l_w``."""
    from ..mixing import mix_labels, one_hot, reweight_labels

    c = len(class_weights)
    return mix_labels(reweight_labels(one_hot(y_u, c), class_weights),
                      reweight_labels(one_hot(y_r, c), class_weights), weight)


def _reweighted_cases(**_) -> list[Case]:
    from ..mixing import class_weights

    def make(seed, b, c, weight=None, same=False, absent=False):
        rng = _rng(400 + seed)
        labels = np.arange(c // 2) if absent else np.arange(c)  # absent: the upper half of the classes never occurs
        y_u = rng.choice(labels, size=b)
        y_r = y_u.copy() if same else rng.choice(labels, size=b)
        lam = float(rng.uniform(0, 1)) if weight is None else weight
        return {"y_u": torch.as_tensor(y_u), "y_r": torch.as_tensor(y_r), "weight": lam,
                "class_weights": class_weights(_random_counts(rng, c), 1.2)}

    cases = [Case(lambda: make(0, 4, 3, weight=0.0), "weight = 0: the partner's labels alone"),
             Case(lambda: make(1, 4, 3, weight=1.0), "weight = 1: the uniform image's labels alone"),
             Case(lambda: make(2, 6, 5, same=True), "both images of the same class in every pair"),
             Case(lambda: make(3, 8, 10, absent=True), "half of the classes absent from the batch"),
             Case(lambda: make(4, 1, 2), "a batch of one pair, two classes")]
    for seed in range(5, 20):
        cases.append(Case(lambda seed=seed: make(seed, int(_rng(seed).choice([2, 8, 16])),
                                                 int(_rng(seed + 50).choice([2, 3, 10]))), "random pairs and weight"))
    return cases


def _rw_plain(y_u, y_r, weight, class_weights):
    return _reweighted_reference(y_u, y_r, weight, torch.ones_like(class_weights))


def _rw_swapped(y_u, y_r, weight, class_weights):
    return _reweighted_reference(y_u, y_r, 1 - weight, class_weights)


def _rw_overwrite(y_u, y_r, weight, class_weights):
    p = torch.zeros(len(y_u), len(class_weights))
    rows = torch.arange(len(y_u))
    p[rows, y_u] = weight * class_weights[y_u]
    p[rows, y_r] = (1 - weight) * class_weights[y_r]
    return p


def _rw_normalised(y_u, y_r, weight, class_weights):
    p = _reweighted_reference(y_u, y_r, weight, class_weights)
    return p / p.sum(dim=1, keepdim=True)


def _rw_one_weight(y_u, y_r, weight, class_weights):
    from ..mixing import mix_labels, one_hot

    c = len(class_weights)
    return mix_labels(one_hot(y_u, c), one_hot(y_r, c), weight) * class_weights[y_u][:, None]


_REWEIGHTED_MISTAKES = (
    Mistake(_rw_plain, "multiply each one-hot row by its class's weight before mixing: w[y_u] for the uniform "
                       "image, w[y_r] for the partner"),
    Mistake(_rw_swapped, "weight is the uniform image's share: weight·w[y_u] on class y_u, (1 − weight)·w[y_r] on "
                         "class y_r"),
    Mistake(_rw_overwrite, "when both images of a pair are of the same class the two shares add up on that class; "
                           "assigning the second share overwrote the first (add them: +=, or mix two full rows)"),
    Mistake(_rw_normalised, "do not normalise the rows: a re-weighted row sums to weight·w[y_u] + (1 − weight)·w[y_r], "
                            "not to 1 (that is how the tail classes count more)"),
    Mistake(_rw_one_weight, "each image gets its own class's weight: w[y_u] for the uniform image and w[y_r] for "
                            "the partner"),
)


# ------------------------------------------------------------------------------------------------ 03.2 the loss
_LOSS_LEAVES = ("logits", "logits_cb", "u", "h")


def _loss_reference(out_g, out_l, targets, alpha, gamma):
    from ..losses import glmc_loss

    return glmc_loss(out_g, out_l, targets, alpha, gamma)[0]


def _loss_inputs(seed: int, alpha: float, gamma: float, b: int = 6, c: int = 5, d: int = 8) -> dict:
    from ..mixing import centred_box, class_weights, glmc_targets

    rng = _rng(500 + seed)
    gen = torch.Generator().manual_seed(500 + seed)

    def out():
        return {name: (torch.randn(b, c if name.startswith("logits") else d, generator=gen) * 2).requires_grad_()
                for name in _LOSS_LEAVES}

    lam = float(rng.uniform(0, 1))
    box = centred_box(16, 16, lam, int(rng.integers(16)), int(rng.integers(16)))
    y_u, y_r = torch.as_tensor(rng.integers(c, size=b)), torch.as_tensor(rng.integers(c, size=b))
    targets = glmc_targets(y_u, y_r, c, class_weights(_random_counts(rng, c), 1.2), lam, box, 16, 16)
    return {"out_g": out(), "out_l": out(), "targets": targets, "alpha": alpha, "gamma": gamma}


def _loss_cases(**_) -> list[Case]:
    settings = [(1.0, 0.0, "α = 1, γ = 0: L_c alone"), (0.0, 0.0, "α = 0, γ = 0: L_cb alone"),
                (1.0, 1.0, "α = 1, γ = 1"), (0.5, 4.0, "α = 0.5, γ = 4"), (0.3, 1.0, "α = 0.3, γ = 1"),
                (0.0, 2.0, "α = 0, γ = 2")]
    cases = [Case(lambda s=s, a=a, g=g: _loss_inputs(s, a, g), note) for s, (a, g, note) in enumerate(settings)]
    for seed in range(6, 14):
        a, g = float(_rng(seed).uniform(0, 1)), float(_rng(seed).choice([0.0, 1.0, 4.0]))
        cases.append(Case(lambda s=seed, a=a, g=g: _loss_inputs(s, a, g, b=int(_rng(s).choice([1, 4, 8])),
                                                                c=int(_rng(s + 1).choice([2, 3, 10]))),
                          "random outputs and targets"))
    return cases


def _observe_loss(fn, kwargs) -> dict[str, Any]:
    result = fn(*kwargs.values())
    total = result[0] if isinstance(result, (tuple, list)) else result
    if not isinstance(total, torch.Tensor) or total.grad_fn is None:
        raise NoGradient("your loss carries no gradient: build it from the input tensors with torch operations "
                         "(no .item(), float() or .detach() on the result)")
    leaves = [(f"out_{m}['{k}']", kwargs[f"out_{m}"][k]) for m in "gl" for k in _LOSS_LEAVES]
    grads = torch.autograd.grad(total, [t for _, t in leaves], allow_unused=True)
    obs: dict[str, Any] = {"the loss": total.detach()}
    for (name, t), g in zip(leaves, grads, strict=True):
        obs[f"the gradient reaching {name}"] = torch.zeros_like(t) if g is None else g
    return obs


def _soft_ce(z, p):
    return -(p * torch.log_softmax(z, dim=1)).sum(dim=1).mean()


def _neg_cos(p, z):
    return -torch.nn.functional.cosine_similarity(p, z, dim=-1).mean()


def _loss_custom(out_g, out_l, targets, alpha, gamma, *, sim=None, reduce=0.5, cb_targets=("p_g_w", "p_l_w"),
                 cb_logits="logits_cb"):
    l_c = reduce * (_soft_ce(out_g["logits"], targets["p_g"]) + _soft_ce(out_l["logits"], targets["p_l"]))
    l_cb = reduce * (_soft_ce(out_g[cb_logits], targets[cb_targets[0]])
                     + _soft_ce(out_l[cb_logits], targets[cb_targets[1]]))
    if sim is None:
        sim = _neg_cos(out_g["u"], out_l["h"].detach()) + _neg_cos(out_l["u"], out_g["h"].detach())
    return alpha * l_c + (1 - alpha) * l_cb + gamma * sim


_LOSS_MISTAKES = (
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(
        out_g, out_l, targets, alpha, gamma, sim=_neg_cos(out_g["u"], out_l["h"]) + _neg_cos(out_l["u"], out_g["h"])),
        "the stop-gradient is missing: the projections h are L_sim's targets and must not receive its gradient; "
        "use sg(h) = h.detach() in both cosines (only the predictions u learn from L_sim)"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(
        out_g, out_l, targets, alpha, gamma,
        sim=_neg_cos(out_g["u"].detach(), out_l["h"]) + _neg_cos(out_l["u"].detach(), out_g["h"])),
        "detach the projections h (the targets), not the predictions u"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(out_g, out_l, targets, alpha, gamma, reduce=1.0),
            "average the two mixtures: L_c = ½·(CE_g + CE_l), and the same for L_cb (adding them is the authors' "
            "code, glmc_loss(..., reduction='sum'))"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(out_g, out_l, targets, 1 - alpha, gamma),
            "α weighs L_c (the plain classifier fc) and 1 − α weighs L_cb"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(out_g, out_l, targets, alpha, gamma,
                                                                     cb_targets=("p_g", "p_l")),
            "L_cb trains fc_cb on the re-weighted labels targets['p_g_w'] and targets['p_l_w']"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(out_g, out_l, targets, alpha, gamma,
                                                                     cb_logits="logits"),
            "L_cb uses the re-balanced classifier's logits, out['logits_cb']"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(
        out_g, out_l, targets, alpha, gamma,
        sim=_neg_cos(out_g["u"], out_g["h"].detach()) + _neg_cos(out_l["u"], out_l["h"].detach())),
        "cross the pairs: the global mixture's prediction u_g against the local mixture's projection h_l, "
        "and u_l against h_g"),
    Mistake(lambda out_g, out_l, targets, alpha, gamma: _loss_custom(
        out_g, out_l, targets, alpha, gamma,
        sim=-_neg_cos(out_g["u"], out_l["h"].detach()) - _neg_cos(out_l["u"], out_g["h"].detach())),
        "L_sim is minus the cosines, −cos(u_g, sg(h_l)) − cos(u_l, sg(h_g)), so that agreeing lowers the loss"),
)


# --------------------------------------------------------------------------------------------------- 04.2 α
def _alpha_reference(epoch, total_epochs):
    from ..losses import alpha_schedule

    return alpha_schedule(epoch, total_epochs, "paper")


def _alpha_cases(**_) -> list[Case]:
    fixed = [((0, 200), "T = 0: α = 1"), ((200, 200), "T = T_max: α = 0"), ((100, 200), "half-way"),
             ((141, 200), "the last epoch with α > 0.5 at T_max = 200"), ((0, 1), "T_max = 1"), ((7, 8), "T_max = 8"),
             ((59, 60), "the last epoch of a 60-epoch run")]
    cases = [Case(lambda a=a: {"epoch": a[0], "total_epochs": a[1]}, note) for a, note in fixed]
    for seed in range(12):
        def make(seed=seed):
            rng = _rng(600 + seed)
            t_max = int(rng.choice([8, 30, 60, 200]))
            return {"epoch": int(rng.integers(t_max + 1)), "total_epochs": t_max}
        cases.append(Case(make, "a random epoch"))
    return cases


_ALPHA_MISTAKES = (
    Mistake(lambda epoch, total_epochs: 1 - epoch / total_epochs,
            "that is the linear schedule: the paper's squares the fraction, α = 1 − (T/T_max)²"),
    Mistake(lambda epoch, total_epochs: (1 - epoch / total_epochs) ** 2,
            "square the fraction T/T_max, then subtract from 1: α = 1 − (T/T_max)², not (1 − T/T_max)²"),
    Mistake(lambda epoch, total_epochs: (epoch / total_epochs) ** 2,
            "that is 1 − α, the weight of L_cb: α = 1 − (T/T_max)² starts at 1"),
    Mistake(lambda epoch, total_epochs: 0.5 * (1 + math.cos(math.pi * epoch / total_epochs)),
            "that is the cosine schedule: the paper's is α = 1 − (T/T_max)²"),
    Mistake(lambda epoch, total_epochs: 1 - ((epoch + 1) / total_epochs) ** 2,
            "T counts from 0: the first epoch has α = 1 (the log numbers epochs from 1, the schedule from 0)"),
    Mistake(lambda epoch, total_epochs: 1 - epoch ** 2 / total_epochs,
            "square T_max too: α = 1 − T²/T_max²"),
    Mistake(lambda epoch, total_epochs: 1 - (epoch // total_epochs) ** 2,
            "T // T_max is an integer division (0 until the end): use T / T_max"),
)


# ----------------------------------------------------------------------------------------- 05.2 the loss mix
def _total_reference(loss_c, loss_cb, loss_sim, alpha, gamma):
    from ..losses import cumulative_total

    return cumulative_total(loss_c, loss_cb, loss_sim, alpha, gamma)


def _total_cases(history=None, gamma=None, **_) -> list[Case]:
    def make(seed, alpha=None, g=None):
        rng = _rng(700 + seed)
        return {"loss_c": float(rng.uniform(0.1, 3)), "loss_cb": float(rng.uniform(0.1, 6)),
                "loss_sim": float(rng.uniform(-2, 0)), "alpha": float(rng.uniform(0, 1)) if alpha is None else alpha,
                "gamma": float(rng.choice([1.0, 4.0])) if g is None else g}

    cases = [Case(lambda: make(0, alpha=1.0), "α = 1: L_c and L_sim"), Case(lambda: make(1, alpha=0.0), "α = 0"),
             Case(lambda: make(2, g=0.0), "γ = 0: no consistency term"), Case(lambda: make(3, alpha=0.0, g=0.0),
                                                                               "α = 0, γ = 0: L_cb alone")]
    cases += [Case(lambda s=s: make(s), "random terms, α and γ") for s in range(4, 16)]
    for row in history or ():
        if all(k in row for k in ("loss_c", "loss_cb", "loss_sim", "alpha")) and gamma is not None:
            cases.append(Case(lambda r=row: {"loss_c": r["loss_c"], "loss_cb": r["loss_cb"], "loss_sim": r["loss_sim"],
                                             "alpha": r["alpha"], "gamma": float(gamma)},
                              f"epoch {row.get('epoch', '?')} of your run"))
    return cases


_TOTAL_MISTAKES = (
    Mistake(lambda loss_c, loss_cb, loss_sim, alpha, gamma: (1 - alpha) * loss_c + alpha * loss_cb + gamma * loss_sim,
            "α weighs L_c (the plain classifier fc) and 1 − α weighs L_cb"),
    Mistake(lambda loss_c, loss_cb, loss_sim, alpha, gamma: alpha * loss_c + (1 - alpha) * loss_cb + loss_sim,
            "multiply L_sim by γ"),
    Mistake(lambda loss_c, loss_cb, loss_sim, alpha, gamma: alpha * loss_c + (1 - alpha) * loss_cb,
            "add the consistency term γ·L_sim"),
    Mistake(lambda loss_c, loss_cb, loss_sim, alpha, gamma: alpha * loss_c + (1 - alpha) * (loss_cb + gamma * loss_sim),
            "γ·L_sim is added on its own, not weighted by 1 − α"),
)


# ------------------------------------------------------------------------------------------------ 06.2 kNN
def _knn_reference(features, labels, k):
    from ..analysis import knn_accuracy

    return knn_accuracy(features, labels, k)


def _knn_inputs(seed: int, n: int, c: int, d: int, k: int, spread: float = 1.0) -> dict:
    rng = _rng(800 + seed)
    centres = rng.normal(size=(c, d)) * 2
    labels = rng.integers(c, size=n)
    x = centres[labels] + rng.normal(size=(n, d)) * spread
    x *= rng.uniform(0.1, 10, size=(n, 1))  # lengths that say nothing about the class: only directions count
    return {"features": x.astype(np.float32), "labels": labels, "k": k}


def _knn_cases(**_) -> list[Case]:
    fixed = [((0, 12, 2, 2, 1), "k = 1, two classes in the plane"), ((1, 30, 3, 4, 4), "k = 4: votes can tie"),
             ((2, 40, 5, 8, 10), "k = 10, five classes"), ((3, 20, 2, 3, 3), "k = 3")]
    cases = [Case(lambda a=a: _knn_inputs(*a), note) for a, note in fixed]
    for seed in range(4, 12):
        def make(seed=seed):
            rng = _rng(seed)
            return _knn_inputs(seed, int(rng.choice([15, 30, 60])), int(rng.choice([2, 3, 5])), int(rng.choice([2, 8])),
                               int(rng.choice([1, 2, 5, 10])), spread=float(rng.choice([0.5, 1.5, 3.0])))
        cases.append(Case(make, "random clusters"))
    return cases


def _knn_votes(features, labels, k, *, self_in=False, euclid=False, tie_high=False, share=False):
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if euclid:
        sim = -((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    else:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = x @ x.T
    if not self_in:
        np.fill_diagonal(sim, -np.inf)
    nn = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    c = int(y.max()) + 1
    votes = np.stack([np.bincount(y[row], minlength=c) for row in nn])
    if share:
        return float(np.mean(votes[np.arange(len(y)), y] / k))
    pred = (c - 1 - votes[:, ::-1].argmax(1)) if tie_high else votes.argmax(1)
    return float(np.mean(pred == y))


_KNN_MISTAKES = (
    Mistake(lambda features, labels, k: _knn_votes(features, labels, k, self_in=True),
            "leave each point out of its own neighbours (its similarity with itself is the largest): set it to −inf"),
    Mistake(lambda features, labels, k: _knn_votes(features, labels, k, euclid=True),
            "use the cosine similarity (normalise every feature vector to length 1 first), not the Euclidean "
            "distance: a feature's length says little about its class"),
    Mistake(lambda features, labels, k: _knn_votes(features, labels, k, tie_high=True),
            "a tied vote goes to the smallest label (np.bincount(...).argmax() does that)"),
    Mistake(lambda features, labels, k: _knn_votes(features, labels, k, share=True),
            "each point's k neighbours vote, and the point counts as correct when the majority is its own label: "
            "the accuracy is the share of such points, not the share of neighbours with the right label"),
)


# ------------------------------------------------------------------------------------- 07.2 Balanced Softmax
def _bs_reference(logits, targets, counts):
    from ..longtail_losses import balanced_softmax_loss

    return balanced_softmax_loss(logits, targets, counts)


def _bs_cases(**_) -> list[Case]:
    def make(seed, b, c, scale=2.0, absent=False):
        rng = _rng(900 + seed)
        gen = torch.Generator().manual_seed(900 + seed)
        return {"logits": torch.randn(b, c, generator=gen) * scale,
                "targets": torch.as_tensor(rng.integers(c // 2 if absent else c, size=b)),
                "counts": _random_counts(rng, c)}

    cases = [Case(lambda: make(0, 1, 2), "one image, two classes"), Case(lambda: make(1, 8, 10), "ten classes"),
             Case(lambda: make(2, 16, 5, scale=60.0), "large logits (an overflow in a naive softmax)"),
             Case(lambda: make(3, 8, 10, absent=True), "the rare half of the classes absent from the batch")]
    cases += [Case(lambda s=s: make(s, int(_rng(s).choice([2, 4, 16])), int(_rng(s + 1).choice([2, 3, 10]))),
                   "random logits and counts") for s in range(4, 14)]
    return cases


def _bs_shift(logits, targets, counts, shift):
    return torch.nn.functional.cross_entropy(logits + shift(torch.as_tensor(counts, dtype=torch.float32)), targets)


_BS_MISTAKES = (
    Mistake(lambda logits, targets, counts: _bs_shift(logits, targets, counts, lambda n: -n.log()),
            "add log n_c to the logits (subtracting it is post-hoc logit adjustment, the other way round)"),
    Mistake(lambda logits, targets, counts: _bs_shift(logits, targets, counts, lambda n: n),
            "add the logarithm of the counts, log n_c, not the counts"),
    Mistake(lambda logits, targets, counts: _bs_shift(logits, targets, counts, lambda n: 0 * n),
            "shift the logits by log n_c before the cross-entropy: that is the whole method"),
    Mistake(lambda logits, targets, counts: len(targets) * _bs_shift(logits, targets, counts, lambda n: n.log()),
            "average over the batch (the mean of the per-image losses), do not sum"),
)


# =================================================================================================== registry
def _value(key, title, name, expected, what, tol=0.0, context=()):
    return Exercise(key, title, "value", name, expected=expected, tol=tol, what=what, context=tuple(context))


def _function(key, title, name, reference, ref_name, cases, mistakes, hint, cases_hint="", observe=None, **kw):
    return Exercise(key, title, "function", name, reference=reference, ref_name=ref_name, cases=cases,
                    observe=observe, mistakes=tuple(mistakes), hint=hint, cases_hint=cases_hint, **kw)


EXERCISES: dict[str, Exercise] = {e.key: e for e in [
    _value("01.1", "first few-shot class", "IF_FIRST_FEW", _first_few_if,
           "the smallest whole IF at which CIFAR-10-LT has a few-shot class: the last class has ⌊5000 / IF⌋ images "
           "and 'few' means fewer than 20"),
    _function("01.2", "the class weights", "my_class_weights", _class_weights_reference,
              "glmc_core.mixing.class_weights", _class_weights_cases, _CLASS_WEIGHT_MISTAKES,
              "w_c = n_c^(−k) · C / Σ_j n_j^(−k): the weights of all C classes add up to C",
              "k = 0 to 2, two to a hundred classes, equal counts, a class of one image", atol=1e-8),
    _value("02.1", "box in the corner", "LAM_L_CORNER", _corner_label,
           "the box covers 10 × 10 of the 32 × 32 pixels; the uniform image keeps the rest", tol=1e-6),
    _function("02.2", "the CutMix box", "my_cutmix_box", _box_reference, "glmc_core.mixing.centred_box", _box_cases,
              _BOX_MISTAKES, "cut_h = ⌈H·√(1−λ)⌉, y0 = cy − ⌊cut_h/2⌋, y1 = y0 + cut_h, both clipped to [0, H]; the "
              "same for x with W; return (y0, y1, x0, x1)",
              "λ = 0 and 1, boxes clipped at every border and corner, odd sides, non-square images",
              observe=_observe_box),
    _function("02.3", "the local label", "my_local_label", _label_reference,
              "glmc_core.mixing.cutmix_label_weight(..., 'area')", _label_cases, _LABEL_MISTAKES,
              "the uniform image's share of the local label is the part of the image the box does not cover: "
              "1 − (y1 − y0)·(x1 − x0)/(H·W)", "clipped boxes, λ = 0 and 1, an empty box"),
    _function("02.4", "the re-weighted soft labels", "my_reweighted_labels", _reweighted_reference,
              "the package's p_g_w (glmc_core.mixing.glmc_targets)", _reweighted_cases, _REWEIGHTED_MISTAKES,
              "row i is weight·w[y_u[i]] on class y_u[i] plus (1 − weight)·w[y_r[i]] on class y_r[i], zeros elsewhere",
              "weight = 0 and 1, pairs of the same class, absent classes"),
    _value("03.1", "two-class weights", "W_TWO_CLASSES", _two_class_weights,
           "w_c is proportional to 1 / n_c, and the two weights add up to 2", tol=1e-3),
    _function("03.2", "the GLMC loss", "my_glmc_loss", _loss_reference, "glmc_core.losses.glmc_loss", _loss_cases,
              _LOSS_MISTAKES, "L = α·½(CE(fc_g, p_g) + CE(fc_l, p_l)) + (1−α)·½(CE(fc_cb_g, p_g_w) + "
              "CE(fc_cb_l, p_l_w)) + γ·(−cos(u_g, sg(h_l)) − cos(u_l, sg(h_g))), each term a mean over the batch",
              "the loss and the gradient reaching each of the eight inputs; α = 0 and 1, γ = 0", observe=_observe_loss),
    _value("04.1", "α crosses 0.5", "answer_1", _alpha_half,
           "the answer is the first epoch T (counting from 0) at which the paper's α is ≤ 0.5 for T_max = 200"),
    _function("04.2", "the α schedule", "my_alpha", _alpha_reference, "glmc_core.losses.alpha_schedule(..., 'paper')",
              _alpha_cases, _ALPHA_MISTAKES, "α = 1 − (T/T_max)², T counted from 0", "T = 0 and T = T_max"),
    _value("05.1", "the resumed epoch", "answer_1", _resume_epoch, "the answer is the epoch a resumed run starts with",
           context=("done",)),
    _function("05.2", "the loss mix", "my_total_loss", _total_reference, "glmc_core.losses.cumulative_total",
              _total_cases, _TOTAL_MISTAKES, "total = α·L_c + (1 − α)·L_cb + γ·L_sim",
              "α = 0 and 1, γ = 0, and the epochs of your run when given as history="),
    _value("05.3", "GLMC ahead for good", "answer_3", _ahead_for_good,
           "the answer is the first epoch (counting from 1) from which GLMC's top-1 is above CE's in every epoch to "
           "the end: in the epoch just before it CE is ahead or level (the first epoch GLMC leads at all comes "
           "earlier)",
           context=("glmc_history", "ce_history")),
    _value("06.1", "the norm ratio of fc_cb", "answer_1", _fc_cb_ratio,
           "the answer is ‖W‖ of the largest class / ‖W‖ of the smallest for GLMC's fc_cb", tol=1e-3,
           context=("evals",)),
    _function("06.2", "the kNN accuracy", "my_knn_accuracy", _knn_reference, "glmc_core.analysis.knn_accuracy",
              _knn_cases, _KNN_MISTAKES, "for every point: the k most cosine-similar other points vote with their "
              "labels, the majority (ties: the smallest label) is its prediction; return the share predicted right",
              "k = 1 to 10, tied votes, features of random lengths"),
    _value("07.1", "class-balanced weights", "answer_1", _cb_weights,
           "the answer is the class-balanced weights for counts (100, 10, 1) and β = 0.999, summing to 3", tol=1e-3),
    _function("07.2", "Balanced Softmax", "my_balanced_softmax_loss", _bs_reference,
              "glmc_core.longtail_losses.balanced_softmax_loss", _bs_cases, _BS_MISTAKES,
              "the mean cross-entropy of softmax(z + log n_c) against the targets", "large logits, absent classes"),
]}


def notebook_exercises(notebook: str) -> list[Exercise]:
    """The exercises of notebook ``"02"`` (or ``"02_global_local_mixtures"``), in order."""
    return [e for k, e in sorted(EXERCISES.items()) if k.startswith(notebook[:2] + ".")]


def expected(key: str, **context) -> Any:
    """The right answer of value exercise ``key`` given the notebook's ``context`` (e.g. ``evals=evals``)."""
    ex = EXERCISES[key]
    if ex.kind != "value":
        raise ValueError(f"exercise {key} asks for a function: its reference is {ex.ref_name}")
    return ex.expected(**context)


def inputs(key: str, case: int, **context) -> dict:
    """The inputs of case number ``case`` of function exercise ``key`` (to call your function on them and debug)."""
    return EXERCISES[key].cases(**context)[case].make()


def check(key: str, answer: Any, **context) -> bool | None:
    """Check exercise ``key``: True when right, False with a hint when not, None while unanswered or not written.

    ``answer`` is the value (a value exercise) or the student's function (a function exercise); ``context`` is
    what the exercise needs from the notebook (``done=``, ``evals=``, ``history=``). Never raises at the student.
    """
    ex = EXERCISES[key]
    if ex.kind == "function":
        return check_function(answer, ex.reference, ex.cases(**context), label=ex.label,
                              name=getattr(answer, "__name__", ex.name), ref_name=ex.ref_name,
                              observe=ex.observe or (lambda fn, kw: {"the result": fn(*kw.values())}),
                              mistakes=ex.mistakes,
                              hint=ex.hint, cases_hint=ex.cases_hint,
                              inputs_call=f'exercises.inputs("{key}", {{case}})', atol=ex.atol, rtol=ex.rtol)
    if answer is None:
        return check_answer(ex.label, None)
    want = expected(key, **context)
    tol = ex.tol or 1e-9
    if isinstance(want, (list, tuple, np.ndarray)):
        answer = list(np.ravel(answer)) if hasattr(answer, "__len__") and not isinstance(answer, str) else answer
        want = list(want)
    return check_answer(ex.label, answer, want, tol=tol, hint=ex.what)
