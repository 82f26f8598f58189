"""``glmc analyze``: every figure of :mod:`glmc_core.plots` for some run folders, as PNG, plus a results table."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Sequence

from .analysis import (
    EVAL_COLUMNS,
    Evaluation,
    evaluate_run,
    load_run,
    results_rows,
    run_data,
    run_umap,
    to_csv,
    to_markdown,
    trained_heads,
)
from .errors import GLMCError

__all__ = ["write_report"]

# Config fields that decide which data a run saw: runs that agree on them share one loaded data set.
_DATA_FIELDS = ("dataset", "data_root", "train_list", "test_list", "imbalance_factor", "n_max", "subset_seed",
                "test_per_class", "val_fraction", "image_size", "many_threshold", "few_threshold")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names, seen = [], {}
    for p in paths:
        base = _safe(p.name)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def _save(fig, path: Path, written: list[Path], pending: dict | None = None) -> None:
    """Render ``fig`` as PNG into ``pending`` (written all at once at the end), or straight to ``path``."""
    import io

    if pending is None:
        fig.savefig(path, dpi=120)
    else:
        buf = io.BytesIO()
        fig.savefig(buf, dpi=120, format="png")
        pending[path] = buf.getvalue()
    written.append(path)


def _write_all(out: Path, pending: dict[Path, bytes]) -> None:
    """Create ``out`` and write every file; on a failure remove what this call wrote (and ``out`` if new)."""
    created = [d for d in (out, *out.parents) if not d.exists()]
    done: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, data in pending.items():
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            done.append(path)
    except BaseException:
        for path in done + [p.with_name(f".{p.name}.tmp") for p in pending]:
            try:
                path.unlink()
            except OSError:
                pass
        for d in created:  # innermost first
            try:
                d.rmdir()
            except OSError:
                pass
        raise


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, umap: bool = True,
                 which: str = "best", device: str = "cpu", max_points: int | None = 2000,
                 data_root: str | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Evaluate each run, draw its figures and the comparisons; returns the files written."""
    from . import plots

    if not run_dirs:
        raise GLMCError("analyze needs at least one run folder")
    names = _unique_names([Path(p) for p in run_dirs])
    runs = [load_run(p, name) for p, name in zip(run_dirs, names, strict=True)]
    out = Path(out)
    # Everything is drawn in memory first and written at the end: an analysis that fails half way
    # (a missing data set, a damaged checkpoint) leaves no figures and no empty folder behind.
    pending: dict[Path, bytes] = {}
    written: list[Path] = []
    datasets: dict[tuple, object] = {}
    evals: list[Evaluation] = []
    umaps = []
    for run in runs:
        key = tuple(getattr(run.config, f) for f in _DATA_FIELDS) + (data_root,)
        if key not in datasets:
            datasets[key] = run_data(run, data_root)
        log(f"evaluating {run.path} ({which} checkpoint)")
        ev = evaluate_run(run, datasets[key], which, device)
        evals.append(ev)
        cfg, n = run.config, run.name
        _save(plots.plot_learning_curves(run.history, title=f"{n} ({cfg.method}, {cfg.model})"),
              out / f"{n}-curves.png", written, pending)
        _save(plots.plot_confusion(ev.confusion, ev.classes, ev.counts, title=f"{n}: confusion (rows sum to 1)"),
              out / f"{n}-confusion.png", written, pending)
        _save(plots.plot_per_class_accuracy(100 * ev.per_class, ev.counts, ev.classes,
                                            (cfg.few_threshold, cfg.many_threshold), title=f"{n}: per-class accuracy"),
              out / f"{n}-per-class.png", written, pending)
        _save(plots.plot_weight_norms(ev.norms, ev.counts, ev.classes, heads=trained_heads(cfg.method),
                                      title=f"{n}: classifier weight norms"), out / f"{n}-weight-norms.png",
              written, pending)
        if umap:
            log(f"UMAP of {min(len(ev.targets), max_points or len(ev.targets))} test features of {run.name}")
            umaps.append(run_umap(ev, max_points))
    if umap:
        _save(plots.plot_comparison(evals, umaps), out / ("umap-confusion.png" if len(evals) == 1
                                                          else "compare-umap-confusion.png"), written, pending)
    rows = results_rows(evals)
    _save(plots.plot_group_bars(rows), out / "groups.png", written, pending)
    if len(evals) > 1:
        _save(plots.plot_per_class_comparison(evals), out / "compare-per-class.png", written, pending)
        _save(plots.plot_weight_norm_comparison(evals), out / "compare-weight-norms.png", written, pending)
    pending[out / "results.md"] = (to_markdown(rows, EVAL_COLUMNS) + "\n").encode()
    pending[out / "results.csv"] = to_csv(rows, EVAL_COLUMNS).encode()
    written += [out / "results.md", out / "results.csv"]
    _write_all(out, pending)
    return written
