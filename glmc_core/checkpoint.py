"""Checkpoints: plain dicts, written atomically, read with ``weights_only=True``.

A checkpoint is written to a temporary file in the same folder, flushed to disk and
renamed over the old one, so a crash or a full disk mid-write leaves the previous
checkpoint intact. Loading never unpickles arbitrary objects, and a checkpoint made for
another model, class count or data set is refused with a one-line explanation.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import GLMCError

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "check_compatible"]

FORMAT = "glmc-checkpoint/1"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write ``state`` (a plain dict of tensors and primitives) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint safely; a missing, truncated or foreign file gets a one-line GLMCError."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise GLMCError(f"checkpoint {path} not found; give a run folder or its checkpoint.pt")
    if path.stat().st_size == 0:
        raise GLMCError(f"checkpoint {path} is empty (a write was interrupted?); use an earlier run or retrain")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        text = str(exc).lower()
        if any(w in text for w in ("central directory", "truncat", "eof", "failed finding", "zip archive")):
            raise GLMCError(f"checkpoint {path} is truncated or corrupt; use an earlier checkpoint or retrain") \
                from None
        raise GLMCError(f"checkpoint {path} cannot be read: {str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. the weights-only unpickler refusing an object
        raise GLMCError(f"checkpoint {path} is not a glmc checkpoint or holds unsafe objects "
                        f"({exc.__class__.__name__}); only glmc's own checkpoints are loaded") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GLMCError(f"{path} is not a glmc checkpoint (format {FORMAT} expected)")
    return state


def check_compatible(state: dict[str, Any], model: str, num_classes: int, dataset: str | None = None,
                     path: str = "checkpoint") -> None:
    """Refuse a checkpoint made for another model, class count or data set."""
    cfg = state.get("config", {})
    if cfg.get("model") != model:
        raise GLMCError(f"{path} holds a {cfg.get('model')!r} model, not {model!r}")
    n = len(state.get("classes", [])) or state.get("num_classes")
    if n != num_classes:
        raise GLMCError(f"{path} was trained on {n} classes, this data set has {num_classes}")
    if dataset is not None and cfg.get("dataset") != dataset:
        raise GLMCError(f"{path} was trained on data set {cfg.get('dataset')!r}, not {dataset!r}")
