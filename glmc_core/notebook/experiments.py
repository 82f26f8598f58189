"""What the notebooks compute: the mixing of one pair, sweeps, small experiments, runs to reuse.

Everything here wires the package's own functions together (``mixing``, ``losses``,
``methods``, ``data``, ``train``, ``extras``) so that what a notebook shows is exactly what
trains; the figures of these results live in :mod:`glmc_core.notebook.figures`, the
interactive views in :mod:`glmc_core.notebook.widgets`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import mixing
from ..config import Config
from ..data import ClassResampler
from ..data.longtail import GROUPS
from ..data.streams import eval_batches
from ..extras.logit_adjustment import adjusted_key, evaluate_with_adjustment
from ..losses import alpha_schedule
from ..methods import StepContext, step_loss
from ..metrics import evaluate
from ..mixing import sample_lambda
from ..train import build_state, fit, train_one_epoch, train_or_reuse

__all__ = ["train_or_reuse", "logit_adjustment_sweep", "mix_pair", "lambda_draws", "partner_class_counts",
           "loss_sweeps", "projection_spread", "consistency_experiment", "compare_schedules", "alpha_curves",
           "quick_recipe_search"]


def _as_float_image(img) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` (or float in [0, 1]) to a float ``(1, 3, H, W)`` tensor in [0, 1]."""
    t = torch.as_tensor(np.asarray(img))
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    return t.float().permute(2, 0, 1).unsqueeze(0)


def mix_pair(img_u, img_r, y_u: int, y_r: int, counts: Sequence[int], lam: float, k: float = 1.2,
             box_seed: int = 0, cutmix_label: str = "area") -> dict:
    """Both mixtures of one (uniform, resampled) pair and all four soft labels, with the package's functions.

    The box centre comes from ``np.random.default_rng(box_seed)``, so changing ``λ`` at a fixed seed
    only grows or shrinks the box. Images are returned as float ``(H, W, 3)`` arrays in [0, 1].
    """
    x_u, x_r = _as_float_image(img_u), _as_float_image(img_r)  # (1, 3, H, W)
    h, w = x_u.shape[-2:]
    box = mixing.sample_box(np.random.default_rng(box_seed), h, w, lam)
    x_g = mixing.global_mix(x_u, x_r, lam)
    x_l = mixing.local_mix(x_u, x_r, box)
    weights = mixing.class_weights(counts, k)
    targets = mixing.glmc_targets(torch.tensor([y_u]), torch.tensor([y_r]), len(counts), weights, lam, box, h, w,
                                  cutmix_label)

    def img(x):
        return x[0].permute(1, 2, 0).numpy()

    return {"x_u": img(x_u), "x_r": img(x_r), "x_g": img(x_g), "x_l": img(x_l), "box": box, "lam": float(lam),
            "lam_l": float(mixing.cutmix_label_weight(lam, box, h, w, cutmix_label)), "y_u": int(y_u),
            "y_r": int(y_r), "weights": weights.numpy(), **{name: p[0].numpy() for name, p in targets.items()}}


def lambda_draws(betas: Sequence[float] = (0.5, 1.0, 2.0), draws: int = 5000, seed: int = 0) -> dict[float, np.ndarray]:
    """``draws`` values of ``λ ~ Beta(β, β)`` per β from :func:`glmc_core.mixing.sample_lambda` (one generator,
    β after β): what :func:`~glmc_core.notebook.figures.plot_lambda_hist` draws with the same arguments."""
    rng = np.random.default_rng(seed)
    return {float(beta): np.array([sample_lambda(rng, beta) for _ in range(draws)]) for beta in betas}



def partner_class_counts(labels, num_classes: int, qs: Sequence[float], conventions: Sequence[str] = ("instance",
                         "class"), draws: int = 5000, seed: int = 0) -> dict[tuple[str, float], np.ndarray]:
    """How often each class is drawn as the mixing partner: ``draws`` samples of :class:`ClassResampler`
    for every (convention, q). Returns ``{(convention, q): counts per class}``."""
    out = {}
    for conv in conventions:
        for q in qs:
            sampler = ClassResampler(labels, num_classes, q, conv)
            idx = sampler.sample(draws, torch.Generator().manual_seed(seed))
            out[(conv, float(q))] = np.bincount(sampler.labels[idx].numpy(), minlength=num_classes)
    return out


class _MemoModel:
    """Remembers the model's outputs per input (by value): the k and γ sweeps change only targets and
    weights, so their mixtures need no new forward pass."""

    def __init__(self, model):
        self.model, self.cache = model, {}

    def __call__(self, x: torch.Tensor):
        key = (tuple(x.shape), hash(x.detach().cpu().numpy().tobytes()))
        if key not in self.cache:
            self.cache[key] = self.model(x)
        return self.cache[key]


@torch.no_grad()
def _terms(model, batch, counts, lam, k, gamma, alpha, box, cutmix_label):
    ctx = StepContext(lam, box, alpha, gamma, mixing.class_weights(counts, k), len(counts), cutmix_label)
    _, terms = step_loss("glmc", model, batch, ctx)
    return {name: float(v) for name, v in terms.items()}


def loss_sweeps(model, batch: dict, counts: Sequence[int], lam: float = 0.5, k: float = 1.2, gamma: float = 1.0,
                alpha: float = 0.5, lams=None, ks=None, gammas=None, box_seed: int = 0,
                cutmix_label: str = "area") -> dict:
    """Every GLMC loss term on one fixed batch while one of λ, k, γ moves and the others stay put.

    Uses :func:`glmc_core.methods.step_loss` (the training step's own loss) with the model in
    eval mode. Returns ``{"lam": {...}, "k": {...}, "gamma": {...}, "at": terms at (λ, k, γ)}``;
    each sweep holds the swept ``values`` and one list per term.
    """
    lams = np.linspace(0.0, 1.0, 21) if lams is None else np.asarray(lams, dtype=float)
    ks = np.linspace(0.0, 2.0, 11) if ks is None else np.asarray(ks, dtype=float)
    gammas = np.linspace(0.0, 4.0, 9) if gammas is None else np.asarray(gammas, dtype=float)
    h, w = batch["x_u1"].shape[-2:]

    def box_for(la):
        return mixing.sample_box(np.random.default_rng(box_seed), h, w, la)

    was_training = model.training
    model.eval()
    memo = _MemoModel(model)
    try:
        sweeps = {"lam": [_terms(memo, batch, counts, v, k, gamma, alpha, box_for(v), cutmix_label) for v in lams],
                  "k": [_terms(memo, batch, counts, lam, v, gamma, alpha, box_for(lam), cutmix_label) for v in ks],
                  "gamma": [_terms(memo, batch, counts, lam, k, v, alpha, box_for(lam), cutmix_label)
                            for v in gammas]}
        at = _terms(memo, batch, counts, lam, k, gamma, alpha, box_for(lam), cutmix_label)
    finally:
        model.train(was_training)
    out = {name: {"values": vals, **{t: np.array([r[t] for r in rows]) for t in rows[0]}}
           for (name, rows), vals in zip(sweeps.items(), (lams, ks, gammas), strict=False)}
    out["at"] = {**at, "lam": lam, "k": k, "gamma": gamma, "alpha": alpha}
    return out


@torch.no_grad()
def projection_spread(model, x: torch.Tensor) -> dict[str, float]:
    """Collapse detectors on a fixed batch ``x``.

    ``h_var`` / ``r_var``: the fraction of the projections' (features') energy that differs between
    images, ``tr Cov(h) / mean ‖h‖²``: 0 when every image gets the same vector (collapse), larger when
    they spread out. ``cos_u_h``: mean cosine between ``u`` and ``h`` of the same images.
    """
    was_training = model.training
    model.eval()
    out = model(x)
    model.train(was_training)

    def var_fraction(v):
        v = v.float()
        return float(v.var(0, unbiased=False).sum() / v.pow(2).sum(1).mean().clamp_min(1e-12))

    cos = torch.nn.functional.cosine_similarity(out["u"].float(), out["h"].float(), dim=1).mean()
    return {"h_var": var_fraction(out["h"]), "r_var": var_fraction(out["features"]), "cos_u_h": float(cos)}


def consistency_experiment(cfg: Config, data, stop_gradient: bool = True,
                           probe_size: int = 256) -> tuple[list[dict], torch.nn.Module]:
    """Train GLMC for ``cfg.epochs`` with or without the stop-gradient of ``L_sim``.

    Returns ``(history, model)``: per epoch, the loss terms, test accuracy and the collapse detectors of
    :func:`projection_spread` on a fixed test batch; and the trained model."""
    state = build_state(cfg.replace(method="glmc", stop_gradient=stop_gradient), data)
    x_probe, _ = next(eval_batches(data.test, cfg, state.device, data.mean, data.std, batch_size=probe_size))
    history = []
    while state.epoch < cfg.epochs:
        terms = train_one_epoch(state)  # advances state.epoch
        acc = evaluate(state.model, data.test, cfg, data, state.device)
        history.append({"epoch": state.epoch, **terms, **{g: acc[g] for g in ("top1", "many", "medium", "few")},
                        **projection_spread(state.model, x_probe)})
    return history, state.model


def compare_schedules(cfg: Config, data, schedules: Sequence[str] = ("paper", "linear", "cosine", "constant"),
                      log=None) -> dict[str, list[dict]]:
    """One quick :func:`~glmc_core.train.fit` per α schedule (``Config.alpha_schedule``), same seed and data;
    returns each run's per-epoch history."""
    quiet = log if log is not None else (lambda msg: None)
    return {s: fit(cfg.replace(alpha_schedule=s, method="glmc"), data=data, save=False, log=quiet).history
            for s in schedules}


def alpha_curves(total_epochs: int, schedules: Sequence[str] = ("paper", "linear", "cosine", "constant"),
                 constant: float = 0.5) -> dict[str, np.ndarray]:
    """α at each epoch ``T = 0 … T_max-1`` (what training uses) for each schedule."""
    return {s: np.array([alpha_schedule(t, total_epochs, s, constant) for t in range(total_epochs)])
            for s in schedules}


def logit_adjustment_sweep(model, data, cfg: Config, taus: Sequence[float] = tuple(np.linspace(0.0, 2.5, 11)),
                           device="cpu") -> dict[str, np.ndarray]:
    """Test accuracy (%) of top-1 and each group when ``model``'s logits are adjusted by each τ
    (:func:`~glmc_core.extras.logit_adjustment.evaluate_with_adjustment`, one forward pass); NaN for an empty group."""
    scores = evaluate_with_adjustment(model, data.test, cfg, data, device, taus)
    out = {"tau": np.asarray(taus, dtype=float)}
    for key in ("top1", *GROUPS):
        out[key] = np.array([np.nan if scores[adjusted_key(t)][key] is None else scores[adjusted_key(t)][key]
                             for t in taus])
    return out


def quick_recipe_search(results: str | None = None) -> dict:
    """What the search behind the ``cifar10-lt-quick`` preset measured, read from the shipped
    ``benchmarks/results/quick-recipe-search-*.json`` (no data, nothing trained).

    Returns ``{"tried": [recipes run on seed 0, in order], "chosen": the recipe that passed,
    "seeds": {method: {"top1": [...], "few": [...]}} of the chosen recipe by seed (0, 1, 2), "rows": every run}``.
    The search tried recipes on seed 0 until GLMC beat CE, then ran seeds 1 and 2 of that one: seed 0 of the chosen
    recipe was selected for GLMC's win, seeds 1 and 2 were not.
    """
    import json
    from pathlib import Path

    folder = Path(results) if results else Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    rows = []
    for f in sorted(folder.glob("quick-recipe-search-2*.json")):
        rows += json.loads(f.read_text()).get("runs", [])
    tried = list(dict.fromkeys(r["recipe"] for r in rows if r["seed"] == 0))
    multi = [rec for rec in tried if len({r["seed"] for r in rows if r["recipe"] == rec}) > 1]
    chosen = multi[-1] if multi else None
    seeds: dict = {}
    for r in sorted((r for r in rows if r["recipe"] == chosen), key=lambda r: r["seed"]):
        m = seeds.setdefault(r["method"], {"seed": [], "top1": [], "few": []})
        for key in m:
            m[key].append(r[key])
    return {"tried": tried, "chosen": chosen, "seeds": seeds, "rows": rows}
