"""Top-1, per-class and many/medium/few-shot accuracy, the confusion matrix, and a model's predictions."""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np
import torch

from .data.longtail import GROUPS
from .data.streams import eval_batches
from .precision import autocast, layout, resolve_precision

__all__ = ["confusion_matrix", "per_class_accuracy", "group_accuracy", "summarize", "predict", "evaluate",
           "format_number", "MISSING", "forward_logits", "run_precision"]

MISSING = "n/a"  # how every table and log line prints a number that does not exist (e.g. an empty group)


def confusion_matrix(targets: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[i, j]``: number of test images of class ``i`` predicted as ``j``."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class with no test images)."""
    support = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def group_accuracy(class_acc: np.ndarray, groups: np.ndarray) -> dict[str, float | None]:
    """Mean per-class accuracy within each of many/medium/few (None for an empty group)."""
    out: dict[str, float | None] = {}
    for g in GROUPS:
        vals = class_acc[(groups == g) & ~np.isnan(class_acc)]
        out[g] = float(vals.mean()) if len(vals) else None
    return out


def summarize(targets, preds, num_classes: int, groups: np.ndarray) -> dict:
    """Every number a results table needs, as plain Python types (percentages)."""
    cm = confusion_matrix(targets, preds, num_classes)
    acc = per_class_accuracy(cm)
    t = np.asarray(targets)
    top1 = float((np.asarray(preds) == t).mean()) if len(t) else float("nan")
    groups_acc = group_accuracy(acc, groups)
    return {
        "top1": 100.0 * top1,
        **{g: (None if v is None else 100.0 * v) for g, v in groups_acc.items()},
        "per_class": [None if np.isnan(a) else round(100.0 * float(a), 4) for a in acc],
    }


@torch.inference_mode()  # no autograd records at all: about 20 % faster than no_grad on the CPU (bench_cpu.py)
def forward_logits(model, x: torch.Tensor, precision: str, features: bool = False):
    """The inference head's logits of a normalised batch ``x`` in the run's ``precision`` (and the penultimate
    features with ``features``): fp32 through ``model.predict``; bf16 with the encoder under autocast and the
    head in fp32. Every evaluation (metrics, logit adjustment, features) goes through here."""
    if features or precision == "bf16":
        with autocast(precision, x.device.type):
            r = model.encoder(layout(x, precision)).float()
        logits = (model.fc_cb if model.inference_head == "fc_cb" else model.fc)(r)
        return (logits, r) if features else logits
    return model.predict(x)


def predict(model, split, cfg, data, device, features: bool = False,
            batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None):
    """Targets, predictions (and optionally penultimate features) of ``model`` on ``split``, as numpy arrays.

    ``batches``: normalised ``(x, y)`` device batches to use instead of
    :func:`~glmc_core.data.streams.eval_batches` (the fast path's cached copy of the split).
    Predictions go through the model's inference head (:func:`forward_logits`); results come back to the host once.
    """
    model.eval()
    precision = run_precision(cfg, device)
    ys, ps, fs = [], [], []
    for x, y in (batches if batches is not None else eval_batches(split, cfg, device, data.mean, data.std)):
        out = forward_logits(model, x, precision, features)
        logits = out[0] if features else out
        if features:
            fs.append(out[1])
        ys.append(y)
        ps.append(logits.argmax(1))
    t, p = torch.cat(ys).cpu().numpy(), torch.cat(ps).cpu().numpy()
    return (t, p, torch.cat(fs).cpu().numpy()) if features else (t, p)


def run_precision(cfg, device) -> str:
    """The precision a run evaluates in on ``device``: fp32 without a config."""
    return "fp32" if cfg is None else resolve_precision(cfg.precision, torch.device(device))


def evaluate(model, split, cfg, data, device) -> dict:
    """Top-1, many/medium/few and per-class accuracy (percent) on ``split``, through the inference head."""
    t, p = predict(model, split, cfg, data, device)
    return summarize(t, p, data.num_classes, data.groups)


def format_number(value, spec: str = ".1f", missing: str = MISSING) -> str:
    """``value`` formatted with ``spec`` (e.g. ``"5.1f"``); None or NaN print as ``missing``, padded to the
    same width, so columns of log lines and tables stay aligned."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        width = re.match(r"\d*", spec).group()
        return f"{missing:>{width}}" if width else missing
    return format(value, spec)
