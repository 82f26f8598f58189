"""MaxNorm fine-tuning: a second stage that re-balances the classifier's per-class weight norms.

From "Long-Tailed Recognition via Weight Balancing" (Alshammari et al., CVPR 2022), which the
GLMC authors' update reports as "+ MaxNorm" (and never released). With the encoder frozen,
the classifier is trained with a class-balanced loss and weight decay, and each class weight
(a row ``w_c`` of the head) is projected onto the ball of radius δ:

    ``w_c ← w_c · min(1, δ / ‖w_c‖)``        (projected gradient descent, :func:`maxnorm_project_`)

The paper projects after every step; the published code (``MaxNorm_via_PGD``) projects once
per epoch: ``per="step"`` (default) or ``per="epoch"``. Also as in that code, the bias is not
constrained and the default radius is relative to the loaded head's norms:
``δ = min‖w‖ + thresh·(max‖w‖ − min‖w‖)`` with ``thresh = 0.1``; pass ``delta`` for an
absolute radius. Their recipe: 10 epochs, lr 0.01 (cosine), momentum 0.9, weight decay 0.1,
class-balanced loss with β = 0.9999.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..config import Config
from ..data.streams import make_train_stream
from ..errors import GLMCError
from ..longtail_losses import cb_weights_effective_number, focal_loss
from ..methods import METHOD_SPECS
from ..models import NormedLinear
from ..runs import RunFolder, load_run_model
from ..train import evaluate, lr_at, resolve_device

__all__ = ["row_norms", "relative_radius", "maxnorm_project_", "MaxNormResult", "finetune_maxnorm"]


def row_norms(weight: torch.Tensor) -> torch.Tensor:
    """``‖w_c‖₂`` of each class row of a ``(C, D)`` classifier weight."""
    return weight.detach().float().norm(dim=1)


def relative_radius(weight: torch.Tensor, thresh: float = 0.1) -> float:
    """The published code's radius: ``min‖w_c‖ + thresh·(max‖w_c‖ − min‖w_c‖)``."""
    n = row_norms(weight)
    return float(n.min() + thresh * (n.max() - n.min()))


@torch.no_grad()
def maxnorm_project_(weight: torch.Tensor, delta: float) -> torch.Tensor:
    """In place: ``w_c ← w_c · min(1, δ/‖w_c‖)`` for every row; rows already inside the ball are untouched."""
    if not delta > 0:
        raise ValueError(f"the MaxNorm radius must be positive, got {delta}")
    norms = weight.norm(dim=1, keepdim=True)  # (C, 1)
    weight.mul_(torch.clamp(delta / norms.clamp_min(1e-12), max=1.0))
    return weight


@dataclass
class MaxNormResult:
    model: torch.nn.Module
    delta: float
    history: list[dict] = field(default_factory=list)  # epoch 0 = before fine-tuning
    summary: dict = field(default_factory=dict)
    out_dir: Path | None = None


def _record(epoch: int, metrics: dict, head: torch.nn.Module, **extra) -> dict:
    n = row_norms(head.weight)
    return {"epoch": epoch, **{k: metrics[k] for k in ("top1", "many", "medium", "few")},
            "norm_min": float(n.min()), "norm_max": float(n.max()), **extra}


def finetune_maxnorm(run: str | os.PathLike, epochs: int = 10, lr: float = 0.01, weight_decay: float = 0.1,
                     delta: float | None = None, thresh: float = 0.1, per: str = "step", loss: str = "cb",
                     head: str | None = None, which: str = "final", device: str | None = None, seed: int = 0,
                     data=None, save: bool = True, log: Callable[[str], None] | None = None,
                     data_root: str | None = None) -> MaxNormResult:
    """Fine-tune a trained run's classifier with weight decay and MaxNorm; the encoder stays frozen.

    Args:
        run: a run folder (or a ``.pt`` checkpoint in one); the results go to ``RUN/maxnorm/``:
            ``metrics.jsonl`` (epoch 0 is the loaded model), ``summary.json`` and ``model.pt``.
        epochs, lr, weight_decay: the second stage's SGD (cosine schedule, the run's momentum).
        delta: absolute radius δ; None: :func:`relative_radius` of the loaded head with ``thresh``.
        per: project after every ``"step"`` (the paper) or every ``"epoch"`` (the published code).
        loss: ``"cb"`` (cross-entropy re-weighted by the effective number, the run's ``cb_beta``) or ``"ce"``.
        head: ``"fc"`` or ``"fc_cb"``; default the method's inference head (``fc_cb`` for GLMC).
        which: fine-tune the ``"final"`` model (``checkpoint.pt``) or the ``"best"`` one (``best.pt``).
        data: an already prepared data set (else rebuilt from the run's config).
        data_root: where the run's data set is (default ``$GLMC_DATA_ROOT`` or ``./data``); a location
            stored in the checkpoint is never followed.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if per not in ("step", "epoch"):
        raise GLMCError(f"per must be 'step' or 'epoch', got {per!r}")
    if loss not in ("cb", "ce"):
        raise GLMCError(f"loss must be 'cb' or 'ce', got {loss!r}")
    if not (epochs >= 1 and 0 < lr < float("inf") and 0 <= weight_decay < float("inf")
            and (delta is None or 0 < delta < float("inf")) and 0 <= thresh < float("inf")):
        raise GLMCError("finetune-maxnorm needs epochs ≥ 1, lr > 0, weight_decay ≥ 0, delta > 0 and thresh ≥ 0, "
                        "all finite")
    source = Path(run)
    if source.is_dir():  # "best" is best.pt itself: no fallback to the final model the user did not ask for
        if which not in ("final", "best"):
            raise GLMCError(f"which must be 'final' or 'best', got {which!r}")
        source = RunFolder(source).file("checkpoint.pt" if which == "final" else "best.pt")
    loaded = load_run_model(source, data=data, data_root=data_root, device=lambda c: resolve_device(device or c.device))
    path, ck, data, model, dev = loaded.path, loaded.checkpoint, loaded.data, loaded.model, loaded.device
    cfg = loaded.config.replace(device=device) if device else loaded.config
    head = head or METHOD_SPECS[cfg.method].inference_head
    if head not in ("fc", "fc_cb"):
        raise GLMCError(f"head must be 'fc' or 'fc_cb', got {head!r}")
    layer = getattr(model, head)
    if isinstance(layer, NormedLinear):
        raise GLMCError(f"{cfg.method}'s {head} is a cosine classifier: MaxNorm on normalised weights does nothing")
    model.inference_head = head  # evaluate the head being fine-tuned
    ft_cfg = cfg.replace(epochs=epochs, lr=lr, weight_decay=weight_decay, warmup_epochs=0, seed=seed)
    radius = float(delta) if delta is not None else relative_radius(layer.weight, thresh)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=weight_decay)
    class_w = cb_weights_effective_number(data.counts, cfg.cb_beta).to(dev) if loss == "cb" else None
    gen = torch.Generator().manual_seed(seed + 1)
    aug_gen = torch.Generator(device=dev if dev.type in ("cuda", "cpu") else "cpu").manual_seed(seed + 2)
    stream = make_train_stream(data, ft_cfg, dev, gen, aug_gen)
    history = [_record(0, evaluate(model, data.test, cfg, data, dev), layer, loss=None, lr=None)]
    log(f"maxnorm: δ = {radius:.4f} on {head} (row norms {history[0]['norm_min']:.3f}–{history[0]['norm_max']:.3f}), "
        f"before: top1 {history[0]['top1']:.2f}")
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch, ft_cfg)
        model.eval()  # frozen encoder: BatchNorm statistics stay as trained
        total, steps = 0.0, 0
        for batch in stream:
            with torch.no_grad():
                feats = model.encoder(batch["x_u1"])  # (B, D)
            step_loss = focal_loss(layer(feats), batch["y_u"], 0.0, class_w)
            optimizer.zero_grad(set_to_none=True)
            step_loss.backward()
            optimizer.step()
            if per == "step":
                maxnorm_project_(layer.weight.data, radius)
            total, steps = total + float(step_loss.detach()), steps + 1
        if per == "epoch":
            maxnorm_project_(layer.weight.data, radius)
        rec = _record(epoch + 1, evaluate(model, data.test, cfg, data, dev), layer, loss=total / max(steps, 1),
                      lr=lr_at(epoch, ft_cfg))
        history.append(rec)
        log(f"maxnorm epoch {epoch + 1}/{epochs}  top1 {rec['top1']:.2f}  loss {rec['loss']:.3f}  "
            f"norms {rec['norm_min']:.3f}–{rec['norm_max']:.3f}")
    summary = {"before": history[0], "after": history[-1], "delta": radius, "per": per, "loss": loss, "head": head,
               "epochs": epochs, "lr": lr, "weight_decay": weight_decay, "thresh": None if delta else thresh,
               "source": str(path)}
    result = MaxNormResult(model, radius, history, summary)
    if save:
        result.out_dir = _save(path.parent / "maxnorm", ck, cfg, model, data, history, summary)
    return result


def _save(out: Path, ck: dict, cfg: Config, model, data, history: list[dict], summary: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    save_checkpoint({"config": cfg.to_dict(), "epoch": ck.get("epoch"), "model": model.state_dict(),
                     "classes": list(data.classes), "class_counts": [int(c) for c in np.asarray(data.counts)],
                     "maxnorm": summary}, out / "model.pt")
    return out
