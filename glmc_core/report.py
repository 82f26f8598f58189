"""``glmc analyze``: every figure of :mod:`glmc_core.plots` for some run folders, as PNG, plus a results table."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Sequence

from .analysis import (
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


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.savefig(path, dpi=120)
    written.append(path)


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
    out.mkdir(parents=True, exist_ok=True)
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
              out / f"{n}-curves.png", written)
        _save(plots.plot_confusion(ev.confusion, ev.classes, ev.counts, title=f"{n}: confusion (rows sum to 1)"),
              out / f"{n}-confusion.png", written)
        _save(plots.plot_per_class_accuracy(100 * ev.per_class, ev.counts, ev.classes,
                                            (cfg.few_threshold, cfg.many_threshold), title=f"{n}: per-class accuracy"),
              out / f"{n}-per-class.png", written)
        _save(plots.plot_weight_norms(ev.norms, ev.counts, ev.classes, heads=trained_heads(cfg.method),
                                      title=f"{n}: classifier weight norms"), out / f"{n}-weight-norms.png", written)
        if umap:
            log(f"UMAP of {min(len(ev.targets), max_points or len(ev.targets))} test features of {run.name}")
            umaps.append(run_umap(ev, max_points))
    if umap:
        _save(plots.plot_comparison(evals, umaps), out / ("umap-confusion.png" if len(evals) == 1
                                                          else "compare-umap-confusion.png"), written)
    rows = results_rows(evals)
    _save(plots.plot_group_bars(rows), out / "groups.png", written)
    if len(evals) > 1:
        _save(plots.plot_per_class_comparison(evals), out / "compare-per-class.png", written)
        _save(plots.plot_weight_norm_comparison(evals), out / "compare-weight-norms.png", written)
    (out / "results.md").write_text(to_markdown(rows) + "\n")
    (out / "results.csv").write_text(to_csv(rows))
    written += [out / "results.md", out / "results.csv"]
    return written
