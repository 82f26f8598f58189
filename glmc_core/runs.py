"""The run folder's one owner: what a run writes, when, and how it is read back.

A run folder holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON line per
epoch), ``checkpoint.pt`` (everything needed to resume, written atomically every
:meth:`RunFolder.due` epoch), ``best.pt`` (the best model so far), at the end ``summary.json``,
and for a shipped finished run ``test_outputs.npz``. :class:`RunFolder` is the only code that
names these files; :func:`load_run_model` is the one "this run's model with its data"
(checkpoint → config → data → model) that the CLI, the analysis, the extras and the notebooks call.
The file format itself (atomic save, safe load, compatibility checks) is :mod:`glmc_core.checkpoint`'s.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from .checkpoint import (
    TRAINING_STATE,
    is_slim_finished,
    load_checkpoint,
    load_model,
    require_training_state,
    save_checkpoint,
    saved_config,
    saved_data_hint,
)
from .config import Config, check_run_name
from .errors import DataNotFound, GLMCError, interrupts_deferred

__all__ = ["RunFolder", "LoadedRun", "load_run_model", "checkpoint_file", "RESUME_OVERRIDES", "FAST_CHECKPOINT_EVERY",
           "checkpoint_interval", "new_run_dir", "open_run", "finished_run_checkpoint", "slim_finished_run",
           "remove_stale_temporaries", "write_text_atomic"]

# Config fields that may change when a run is resumed: where it runs and where its data are now.
# Anything else would make the continued run differ from the one that was started.
RESUME_OVERRIDES = ("device", "data_root", "progress", "num_workers", "fuse_views", "checkpoint_every", "view_norm",
                    "compile_step", "eval_batch", "eval_graph")
FAST_CHECKPOINT_EVERY = 25  # checkpoint_every=None on the fast path: every 25th epoch (and the last)
# Fields config.json and a checkpoint may disagree on and still belong together (a resumed run's new place)
_FREE = (*RESUME_OVERRIDES, "out", "run_name")


def checkpoint_interval(cfg: Config, fast: bool) -> int:
    """Epochs between checkpoints: ``cfg.checkpoint_every``, or per path when it is None (every epoch on the
    reference path, every :data:`FAST_CHECKPOINT_EVERY` on the fast path). The last epoch is always saved."""
    if cfg.checkpoint_every is not None:
        return cfg.checkpoint_every
    return FAST_CHECKPOINT_EVERY if fast else 1


class _Trainable(Protocol):  # what the owner needs of a training state (glmc_core.train.TrainState)
    cfg: Config
    epoch: int
    history: list[dict]
    fast: Any  # the fast path's runner, or None

    def checkpoint_dict(self) -> dict: ...
    def best_dict(self, copy: bool) -> dict: ...


class RunFolder:
    """One run folder, for writing (a run in progress) and reading (evaluate, analyze, resume).

    ``writes=False``: a run that saves nothing (``fit(save=False)``) or a folder only read: nothing is written.
    ``saved_epoch`` is the epoch ``checkpoint.pt`` holds (behind a run's epoch between sparse checkpoints);
    ``best.pt``'s contents wait here until the next checkpoint is due.
    """

    def __init__(self, path: str | os.PathLike, writes: bool = True):
        self.path, self.writes = Path(path), writes
        self.saved_epoch = 0
        self._pending_best: dict | None = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ the layout
    def file(self, name: str) -> Path:
        """The folder's ``name``: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``best.pt``,
        ``summary.json``, ``test_outputs.npz``."""
        return self.path / name

    def checkpoint(self, which: str = "best") -> Path:
        """``best.pt`` (``"best"``, falling back to the last checkpoint) or ``checkpoint.pt`` (``"last"``)."""
        if which not in ("best", "last"):
            raise GLMCError(f"checkpoint must be 'best' or 'last', got {which!r}")
        best, last = self.file("best.pt"), self.file("checkpoint.pt")
        if which == "best" and best.is_file():
            return best
        if last.is_file():
            return last
        raise GLMCError(f"{self.path} holds no checkpoint (best.pt or checkpoint.pt); train it first")

    # ------------------------------------------------------------------ creating and opening
    @classmethod
    def create(cls, cfg: Config) -> RunFolder:
        """A new folder ``out/run_name`` holding ``config.json``."""
        folder = cls(new_run_dir(cfg))
        write_text_atomic(folder.file("config.json"), cfg.to_json() + "\n")
        return folder

    @classmethod
    def resume(cls, resume: str | os.PathLike, log: Callable[[str], None] = print
               ) -> tuple[RunFolder, dict | None, Config]:
        """``(folder, checkpoint or None, config)`` of a run to continue (:func:`open_run`), its files checked."""
        ck, cfg, run_dir = open_run(resume, log)
        folder = cls(run_dir)
        if ck is not None:
            folder.saved_epoch = int(ck["epoch"])
        return folder, ck, cfg

    def remove_temporaries(self) -> list[Path]:
        """What a killed write left behind (:func:`remove_stale_temporaries`)."""
        return remove_stale_temporaries(self.path)

    def load(self, which: str = "best") -> tuple[dict, Path]:
        """``(checkpoint, its file)`` of :meth:`checkpoint`, checked against ``config.json``."""
        path = self.checkpoint(which)
        ck = load_checkpoint(path)
        check_belongs(ck, path)
        return ck, path

    # ------------------------------------------------------------------ writing a run
    def write_metrics(self, rows: list[dict], append: bool = False) -> None:
        """``metrics.jsonl``: rewritten from a whole history (atomically), or ``rows`` appended."""
        if not self.writes:
            return
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if append:
            with open(self.file("metrics.jsonl"), "a") as fh:
                fh.write(text)
        else:
            write_text_atomic(self.file("metrics.jsonl"), text)

    def start(self, state: _Trainable, fresh: bool) -> None:
        """Before the first epoch: ``metrics.jsonl`` mirrors the checkpoint's history; a ``fresh`` run (no
        checkpoint yet) writes its epoch-0 checkpoint, so a run killed in its first epoch resumes exactly too."""
        self.write_metrics(state.history)
        if fresh and self.writes:
            save_checkpoint(state.checkpoint_dict(), self.file("checkpoint.pt"))

    @staticmethod
    def due(state: _Trainable) -> bool:
        """Is a checkpoint due after ``state.epoch``: every :func:`checkpoint_interval` epochs, and the last."""
        every = checkpoint_interval(state.cfg, state.fast is not None)
        return state.epoch % every == 0 or state.epoch == state.cfg.epochs

    def record(self, state: _Trainable, row: dict, improved: bool) -> None:
        """An epoch done: keep the best model (written with the next checkpoint), the checkpoint when due,
        then the metrics row."""
        if not self.writes:
            return
        due = self.due(state)
        if improved:  # between checkpoints the best weights wait in memory (a copy on the device)
            self._pending_best = state.best_dict(copy=not due)
        if due:
            with interrupts_deferred():  # Ctrl-C / SIGTERM in the CLI: both files written, then stop
                if self._pending_best is not None:
                    save_checkpoint(self._pending_best, self.file("best.pt"))
                    self._pending_best = None
                # checkpoint.pt before metrics.jsonl: a kill in between is repaired on resume from the history
                save_checkpoint(state.checkpoint_dict(), self.file("checkpoint.pt"))
                self.saved_epoch = state.epoch
        self.write_metrics([row], append=True)

    def write_summary(self, summary: dict) -> None:
        if self.writes:
            write_text_atomic(self.file("summary.json"), json.dumps(summary, indent=2) + "\n")


# ---------------------------------------------------------------------------- files that belong together
def check_belongs(ck: dict, path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose run folder's ``config.json`` describes another run (another method, model,
    data set...): only where the run goes on (:data:`RESUME_OVERRIDES`) may differ. No config.json, or one that
    cannot be read: nothing to compare (a checkpoint copied on its own; whoever reads config.json says what is
    wrong with it)."""
    path = Path(path)
    cfg_file = path.parent / "config.json"
    try:
        folder = saved_config(json.loads(cfg_file.read_text(encoding="utf-8")), cfg_file).to_dict()
    except (OSError, ValueError, UnicodeDecodeError, GLMCError):
        return
    own = saved_config(ck, path).to_dict()
    if folder.get("precision") == "auto":  # a config.json written before precision was resolved
        folder["precision"] = own["precision"]
    differ = [k for k in own if k not in _FREE and own[k] != folder.get(k)]
    if differ:
        k = differ[0]
        raise GLMCError(f"{path.name} and config.json in {path.parent} belong to different runs: {k} is "
                        f"{str(own[k])[:40]!r} in {path.name} and {str(folder.get(k))[:40]!r} in config.json"
                        f"{f' ({len(differ) - 1} more fields differ)' if len(differ) > 1 else ''}; "
                        f"give a folder 'glmc train' wrote, unedited")


# ---------------------------------------------------------------------------- this run's model with its data
@dataclass
class LoadedRun:
    """A run's checkpoint with what it needs: its config, its data (from where the user says) and its model."""

    path: Path  # the checkpoint file
    checkpoint: dict
    config: Config
    data: Any  # glmc_core.data.LongTailData
    model: torch.nn.Module  # in eval mode, on ``device``
    device: torch.device

    @property
    def epoch(self) -> Any:
        return self.checkpoint.get("epoch")


def checkpoint_file(source: str | os.PathLike, which: str = "best") -> Path:
    """A run folder's ``best.pt`` or ``checkpoint.pt`` (:meth:`RunFolder.checkpoint`); a file is itself."""
    path = Path(source)
    return RunFolder(path).checkpoint(which) if path.is_dir() else path


def load_run_model(source: str | os.PathLike, which: str = "best", *, data=None, data_root: str | None = None,
                   device: torch.device | str | Callable[[Config], torch.device] = "cpu", progress: bool = False,
                   ) -> LoadedRun:
    """Checkpoint → config → data → model, checked at each step: the one loader of a trained run.

    Args:
        source: a run folder (its :meth:`RunFolder.checkpoint` ``which``: ``"best"`` or ``"last"``) or a
            checkpoint file; a checkpoint that does not belong with its folder's ``config.json`` is refused.
        data: an already prepared data set (else rebuilt from the checkpoint's config, read from ``data_root``:
            default ``$GLMC_DATA_ROOT`` or ``./data``; a location stored in a run is never followed).
        device: where the model goes, or a function of the run's config that says (e.g. resolving its device).
        progress: show the data set's decoding progress.
    """
    from .data import prepare_data  # floor 2 beside this one; imported when a model is loaded

    path = checkpoint_file(source, which)
    ck = load_checkpoint(path)
    cfg = saved_config(ck, path, data_root)
    if data is None:
        try:
            data = prepare_data(cfg, progress=progress)
        except DataNotFound as exc:  # say where the run's data were (not followed by itself)
            raise GLMCError(f"{exc}{saved_data_hint(ck, data_root)}") from None
    dev = torch.device(device(cfg) if callable(device) else device)
    model = load_model(ck, data, dev, str(path))  # first the file against itself, then against its folder
    check_belongs(ck, path)
    return LoadedRun(path, ck, cfg, data, model, dev)


# ---------------------------------------------------------------------------- folders: new, resumed, finished
def new_run_dir(cfg: Config) -> Path:
    """A new, empty run folder ``out/run_name``; an existing one is never reused silently."""
    name = cfg.run_name or f"{cfg.preset or cfg.dataset}-{cfg.method}-{datetime.now():%Y%m%d-%H%M%S}"
    check_run_name(name)
    run_dir = Path(cfg.out) / name
    exists = GLMCError(f"run folder {run_dir} already exists; continue it with --resume {run_dir} "
                       f"or choose another --run-name")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise exists
    try:  # exist_ok=False unless it is there and empty: two runs started at once cannot share a folder
        run_dir.mkdir(parents=True, exist_ok=run_dir.is_dir())
    except FileExistsError:
        raise exists from None
    except OSError as exc:
        raise GLMCError(f"cannot create the run folder {run_dir}: {exc.strerror}; choose another --out") from None
    return run_dir


def open_run(resume: str | os.PathLike, log: Callable[[str], None] = print) -> tuple[dict | None, Config, Path]:
    """The checkpoint (None if the run was stopped before it wrote one), config and folder of a run to resume;
    a checkpoint that does not belong with its folder's ``config.json`` is refused."""
    try:
        path = Path(resume).expanduser()
    except RuntimeError:  # ~name of a user that does not exist
        raise GLMCError(f"cannot expand {str(resume)[:80]}: no such user (or no home folder)") from None
    if not path.exists():
        raise GLMCError(f"nothing to resume at {path}: no such run folder or checkpoint")
    run_dir = path if path.is_dir() else path.parent
    if path.is_dir() and not (path / "checkpoint.pt").exists():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise GLMCError(f"{path} is not a run folder (no checkpoint.pt, no config.json); give a folder that "
                            f"'glmc train' made")
        try:
            cfg = saved_config(json.loads(cfg_file.read_text()), cfg_file)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GLMCError(f"{cfg_file} is not valid JSON ({exc}); fix it or start a new run") from None
        log(f"{path} has no checkpoint yet (it stopped in its first epoch): starting it again from its config.json")
        return None, cfg, run_dir
    ck_path = path / "checkpoint.pt" if path.is_dir() else path
    ck = load_checkpoint(ck_path)
    if is_slim_finished(ck):  # reused as it is (train_or_reuse); fit cannot continue it and says why
        log(f"{run_dir} already finished its {ck['epoch']} epochs (kept without its training state)")
    else:
        require_training_state(ck, str(path))
    check_belongs(ck, ck_path)
    return ck, saved_config(ck, path), run_dir  # the data location is the user's (--data-root), not the file's


def finished_run_checkpoint(resume: str | os.PathLike) -> tuple[dict, Path] | None:
    """``(checkpoint, run folder)`` when ``resume`` names a finished run kept without its training state (so
    ``glmc train --resume`` can say it is finished without loading any data), else None (anything else, including
    what cannot be read: :func:`open_run` says what is wrong with it)."""
    try:
        path = Path(resume).expanduser()
        ck_path = path / "checkpoint.pt" if path.is_dir() else path
        if not ck_path.is_file():
            return None
        ck = load_checkpoint(ck_path)
    except (GLMCError, RuntimeError, OSError):
        return None
    if not is_slim_finished(ck):
        return None
    check_belongs(ck, ck_path)
    return ck, ck_path.parent


def _run_size(run_dir: Path) -> int:
    return sum(p.stat().st_size for p in run_dir.iterdir() if p.is_file())


def slim_finished_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Keep of a FINISHED run only what its results need: ``checkpoint.pt`` is rewritten (atomically) with the
    final weights, config, classes, class counts, epoch, history and best epoch, without the optimiser state and
    the random generators' states (:data:`~glmc_core.checkpoint.TRAINING_STATE`, needed only to resume), and
    ``best.pt`` is deleted (the reference runs are shown at their final epoch; ``metrics.jsonl`` keeps every
    epoch's numbers).

    A run without ``summary.json`` is refused: an unfinished run keeps its whole checkpoint, so that it resumes
    exactly. So is a checkpoint whose epoch is not the summary's final one. Running it again changes nothing.
    Returns ``{"run", "before", "after", "removed"}`` (the folder's bytes before and after, the files deleted).
    """
    run_dir = Path(run_dir)
    summary_path, ck_path = run_dir / "summary.json", run_dir / "checkpoint.pt"
    if not summary_path.is_file():
        raise GLMCError(f"{run_dir} has no summary.json: an unfinished run keeps its whole checkpoint (it must "
                        f"resume exactly); finish it first")
    try:
        final = json.loads(summary_path.read_text(encoding="utf-8")).get("final", {})
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise GLMCError(f"{summary_path} is damaged (not a summary's JSON); leave the run as it is") from None
    ck = load_checkpoint(ck_path)
    cfg = ck.get("config") if isinstance(ck.get("config"), dict) else {}
    epoch, epochs = ck.get("epoch"), cfg.get("epochs")
    if not isinstance(epoch, int) or epoch != epochs or not isinstance(final, dict) or final.get("epoch") != epoch:
        raise GLMCError(f"{ck_path} holds epoch {epoch} of {epochs} and summary.json's final epoch is "
                        f"{final.get('epoch') if isinstance(final, dict) else None}: not a finished run's last "
                        f"checkpoint; leave the run as it is")
    before = _run_size(run_dir)
    if not is_slim_finished(ck):
        slim = {k: v for k, v in ck.items() if k not in (*TRAINING_STATE, "format")}
        mode = ck_path.stat().st_mode & 0o777
        save_checkpoint({**slim, "slim": True}, ck_path)
        os.chmod(ck_path, mode)  # the temporary file it replaces is private (0600)
    removed = remove_stale_temporaries(run_dir)
    best = run_dir / "best.pt"
    if best.is_file():
        best.unlink()
        removed.append(best)
    return {"run": str(run_dir), "before": before, "after": _run_size(run_dir), "removed": [p.name for p in removed]}


# ---------------------------------------------------------------------------- temporaries
def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a killed :func:`~glmc_core.checkpoint.save_checkpoint` left in ``folder``
    (a SIGKILL mid-write cannot clean up after itself); returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
