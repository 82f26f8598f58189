"""Checkpoints: plain dicts, written atomically, read with ``weights_only=True``.

A checkpoint is written to a temporary file in the same folder, flushed to disk and
renamed over the old one, so a crash or a full disk mid-write leaves the previous
checkpoint intact. Loading never unpickles arbitrary objects, and a checkpoint made for
another model, class count or data set is refused with a one-line explanation. Which files a run
folder holds, and when they are written, is :mod:`glmc_core.runs`'s.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .errors import GLMCError, interrupts_deferred

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "check_compatible", "load_model", "require_training_state",
           "saved_config", "saved_data_hint", "load_weights", "TRAINING_STATE", "is_slim_finished"]

FORMAT = "glmc-checkpoint/1"
# What only resuming needs: a finished run kept for its results may drop it (slim_finished_run)
TRAINING_STATE = ("optimizer", "rng")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write ``state`` (a plain dict of tensors and primitives) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    with interrupts_deferred():  # a Ctrl-C or SIGTERM sent to the CLI now waits for the write to finish
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
    """Read a checkpoint safely; a missing, truncated or foreign file gets a one-line GLMCError.

    A folder means its ``checkpoint.pt``. ``torch.load(weights_only=True)`` only rebuilds
    tensors and plain values, so a file holding any other Python object is refused.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise GLMCError(f"checkpoint {path} not found; give a run folder or its checkpoint.pt")
    if path.stat().st_size == 0:
        raise GLMCError(f"checkpoint {path} is empty (a write was interrupted?); use an earlier run or retrain")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing foreign files
            warnings.simplefilter("ignore")
            _check_crc(path)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the cause
        raise GLMCError(f"checkpoint {path} {_why_unreadable(path, exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GLMCError(f"{path} is not a glmc checkpoint (format {FORMAT} expected)")
    return state


def _check_crc(path: Path) -> None:
    """torch.load does not verify the zip's CRC-32s, so damaged tensor bytes would load as silent garbage."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        if bad is not None:
            raise zipfile.BadZipFile(f"CRC mismatch in {bad}")


def _why_unreadable(path: Path, exc: Exception) -> str:
    """Tell a refused object, a damaged file and a foreign file apart (torch's messages are pages long)."""
    text = str(exc)
    unsafe = re.search(r"GLOBAL (\S+)", text)
    if unsafe:
        return (f"holds a Python object ({unsafe.group(1)}) that is not a tensor or a plain value; it is refused "
                f"for safety (weights_only); only glmc's own checkpoints are loaded")
    with open(path, "rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
    lowered = text.lower()
    if is_zip or isinstance(exc, (EOFError, zipfile.BadZipFile)) or any(
            w in lowered for w in ("central directory", "truncat", "eof", "failed finding", "zip archive")):
        return "is truncated or corrupt; use an earlier checkpoint or retrain"
    if isinstance(exc, OSError):
        return f"cannot be read: {exc.strerror or exc.__class__.__name__}"
    return "is not a PyTorch checkpoint (unreadable contents); give a glmc run folder or its checkpoint.pt"


def check_compatible(state: dict[str, Any], model: str, num_classes: int, dataset: str | None = None,
                     path: str = "checkpoint", classes: list[str] | None = None) -> None:
    """Refuse a checkpoint made for another model, class count, data set or set of class names."""
    cfg = state.get("config")
    cfg = cfg if isinstance(cfg, dict) else {}
    if not isinstance(state.get("classes", []), list) or not isinstance(state.get("num_classes", 0), (int, type(None))):
        raise GLMCError(f"{path} holds a damaged class list; give a checkpoint that 'glmc train' wrote")
    if cfg.get("model") != model:
        raise GLMCError(f"{path} holds a {str(cfg.get('model'))[:40]!r} model, not {model!r}")
    n = len(state.get("classes", [])) or state.get("num_classes")
    if n != num_classes:
        raise GLMCError(f"{path} was trained on {n} classes, this data set has {num_classes}")
    if dataset is not None and cfg.get("dataset") != dataset:
        raise GLMCError(f"{path} was trained on data set {str(cfg.get('dataset'))[:40]!r}, not {dataset!r}")
    if classes is not None and state.get("classes") and list(state["classes"]) != list(classes):
        theirs, ours = list(state["classes"]), list(classes)
        i = next((i for i, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b), 0)
        raise GLMCError(f"{path} was trained on other classes: class {i} is {str(theirs[i])[:40]!r} there, "
                        f"{str(ours[i])[:40]!r} here")


def saved_config(saved: Any, path: str | os.PathLike = "checkpoint", data_root: str | os.PathLike | None = None,
                 ) -> Config:
    """The :class:`Config` stored in a checkpoint or run folder, with the data location the user names.

    A checkpoint names its data set, never where it lives: ``data_root`` is the user's (``--data-root``;
    None means ``$GLMC_DATA_ROOT`` or ``./data``), whatever the file says. A checkpoint or run folder
    from someone else could otherwise point the loader at a folder of their choosing (CIFAR's python
    batches are pickles). A missing or damaged config is one line.
    """
    if isinstance(saved, dict) and "format" in saved:  # a checkpoint: its "config" entry
        saved = saved.get("config")
    if not isinstance(saved, dict):
        raise GLMCError(f"{path} holds no configuration (or a damaged one); give a checkpoint that 'glmc train' wrote")
    saved = {k: v for k, v in saved.items() if k != "data_root"}
    saved.setdefault("precision", "fp32")  # written before the field existed: every such run trained in fp32
    try:
        cfg = Config.from_dict(saved)
    except GLMCError as exc:
        raise GLMCError(f"{path} holds a configuration glmc cannot use: {exc}") from None
    return cfg.replace(data_root=None if data_root is None else str(data_root))


def saved_data_hint(saved: Any, data_root: str | os.PathLike | None) -> str:
    """A hint for a data set not found: where the run's data was, which glmc does not follow by itself."""
    if isinstance(saved, dict) and "format" in saved:
        saved = saved.get("config")
    old = saved.get("data_root") if isinstance(saved, dict) else None
    if data_root is not None or not isinstance(old, str) or not old:
        return ""
    return (f" (the run was trained on data at {old[:200]!r}; a location stored in a run is not followed: "
            f"pass --data-root {old[:200]} if that is where the data is)")


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: str = "checkpoint") -> torch.nn.Module:
    """``model.load_state_dict(state["model"])`` with one line for weights that are missing or do not fit."""
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise GLMCError(f"{path} holds no model weights; give a checkpoint that 'glmc train' wrote")
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights)
                   if not isinstance(weights[k], torch.Tensor) or weights[k].shape != own[k].shape)
    if missing or extra or wrong:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", extra), ("of another shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {what} (first: {str(keys[0])[:60]})")
        cfg = state.get("config")
        name = cfg.get("model", "?") if isinstance(cfg, dict) else "?"
        raise GLMCError(f"{path} does not fit the {str(name)[:40]!r} model and "
                        f"method its config names: weights {', '.join(parts)}; the file is damaged or was "
                        f"edited")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise GLMCError(f"{path} does not fit this model: {str(exc).splitlines()[0][:160]}") from None
    return model


def load_model(checkpoint: dict[str, Any] | str | os.PathLike, data, device: str | torch.device = "cpu",
               path: str | None = None) -> torch.nn.Module:
    """The model a checkpoint holds, for ``data``: checked once, built for its method, in eval mode on ``device``.

    Args:
        checkpoint: a checkpoint dict (already read with :func:`load_checkpoint`) or its file.
        data: what the model will see (a :class:`~glmc_core.data.LongTailData`): a checkpoint made
            for another model, data set, class count or class names is refused with one line.
        path: the name to give in messages (default the file, else ``"checkpoint"``).
    """
    if not isinstance(checkpoint, dict):
        path = path or str(checkpoint)
        checkpoint = load_checkpoint(checkpoint)
    path = path or "checkpoint"
    cfg = saved_config(checkpoint, path)  # the data location is never taken from a checkpoint
    check_compatible(checkpoint, cfg.model, data.num_classes, cfg.dataset, path, list(data.classes))
    from .methods import build_method_model  # the method decides the heads (LDAM's fc is a cosine classifier)

    model = build_method_model(cfg, data.num_classes)
    load_weights(model, checkpoint, path)
    return model.to(device).eval()


def is_slim_finished(state: Any) -> bool:
    """True for the ``checkpoint.pt`` of a finished run kept without its training state (:func:`slim_finished_run`):
    its final weights, config, classes, class counts, epoch and history, no optimiser, no random generators."""
    if not isinstance(state, dict) or state.get("slim") is not True:
        return False
    cfg, epoch = state.get("config"), state.get("epoch")
    epochs = cfg.get("epochs") if isinstance(cfg, dict) else None
    return isinstance(epoch, int) and isinstance(epochs, int) and epoch >= epochs


def require_training_state(state: dict[str, Any], path: str = "checkpoint") -> None:
    """Refuse to resume from a weights-only file such as ``best.pt`` or a finished run's slimmed checkpoint."""
    missing = [k for k in ("config", "model", "optimizer", "epoch", "history", "rng") if k not in state]
    if missing and is_slim_finished(state):
        raise GLMCError(f"{path} is a finished run ({state['epoch']} of {state['config']['epochs']} epochs) kept "
                        f"without its training state (optimiser, random generators): there is nothing to resume; "
                        f"start a new run to train longer")
    if missing:
        raise GLMCError(f"{path} holds no training state ({', '.join(missing)} missing; best.pt keeps only the "
                        f"weights): resume from the run folder or its checkpoint.pt")
