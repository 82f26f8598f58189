"""Post-hoc logit adjustment at evaluation (Menon et al., ICLR 2021), beside the plain result.

A model trained on long-tailed data learns the training prior π into its logits; predicting
``argmax(z − τ·log π)`` removes it (``τ = 1``), trading head accuracy for tail accuracy
without retraining. The formula is :func:`glmc_core.longtail_losses.logit_adjust`; this
module only collects logits and scores both predictions with :func:`glmc_core.metrics.summarize`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.streams import eval_batches
from ..longtail_losses import logit_adjust
from ..metrics import forward_logits, run_precision, summarize

__all__ = ["predict_logits", "evaluate_with_adjustment", "adjusted_key"]


@torch.no_grad()
def predict_logits(model, split, cfg, data, device) -> tuple[np.ndarray, torch.Tensor]:
    """Targets ``(N,)`` and inference-head logits ``(N, C)`` (float32, CPU) of ``model`` on ``split``, in the
    run's precision, as :func:`glmc_core.metrics.evaluate` computes them (so τ = 0 is the plain result)."""
    model.eval()
    precision = run_precision(cfg, device)
    ys, zs = [], []
    for x, y in eval_batches(split, cfg, device, data.mean, data.std):
        zs.append(forward_logits(model, x, precision).float().cpu())
        ys.append(y.cpu())
    return torch.cat(ys).numpy(), torch.cat(zs)


def adjusted_key(tau: float) -> str:
    """Name of an adjusted result, e.g. ``la_tau1`` or ``la_tau0.5``."""
    return f"la_tau{float(tau):g}"


def evaluate_with_adjustment(model, split, cfg, data, device, taus=(1.0,)) -> dict[str, dict]:
    """``{"plain": metrics, "la_tau1": metrics, ...}``: the same logits scored as is and adjusted by each τ.

    Each ``metrics`` is :func:`glmc_core.metrics.summarize`'s dict (top-1, many/medium/few, per class).
    """
    targets, logits = predict_logits(model, split, cfg, data, device)
    out = {"plain": summarize(targets, logits.argmax(1).numpy(), data.num_classes, data.groups)}
    for tau in taus:
        preds = logit_adjust(logits, data.counts, tau).argmax(1).numpy()
        out[adjusted_key(tau)] = summarize(targets, preds, data.num_classes, data.groups)
    return out
