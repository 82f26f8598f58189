"""Method comparisons on one preset: same data, same seed, same schedule; one table and one plot.

:func:`run_comparison` trains each method with :func:`glmc_core.train.fit` into
``OUT/runs/<method>/`` and scores each final model twice: plain and with post-hoc logit
adjustment (:mod:`glmc_core.extras.logit_adjustment`). It writes ``results.csv``, ``results.md``,
``results.json`` and ``results.png`` into ``OUT``. A method whose run folder already holds a
finished run with the same configuration is not retrained, and an unfinished one is resumed,
so a long GPU comparison can be stopped and continued.

Built-in sets (:data:`METHOD_SETS`): ``ablation`` is the paper's ablation table (Table 4: neither
part, cumulative re-balancing only, mixture consistency only, both); ``baselines`` the usual
long-tail baselines beside GLMC; ``all`` every method.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..config import METHODS, get_preset
from ..data import prepare_data
from ..errors import GLMCError
from ..metrics import format_number
from ..plots import GROUP_COLORS, TOP1_COLOR
from ..runs import load_run_model
from ..train import resolve_device, train_or_reuse
from .logit_adjustment import adjusted_key, evaluate_with_adjustment

__all__ = ["METHOD_SETS", "resolve_methods", "run_comparison", "ComparisonResult", "write_results", "plot_results",
           "markdown_table"]

METHOD_SETS: dict[str, list[str]] = {
    # The paper's ablation: neither part / cumulative re-balancing only / mixture consistency only / both.
    "ablation": ["ce", "cumulative-only", "glmc-no-cumulative", "glmc"],
    "baselines": ["ce", "cb-ce", "focal", "ldam-drw", "balanced-softmax", "mixup", "cutmix", "glmc"],
    "all": ["ce", "cb-ce", "focal", "cb-focal", "ldam-drw", "balanced-softmax", "mixup", "cutmix", "cumulative-only",
            "glmc-no-cumulative", "glmc-no-consistency", "glmc", "glmc-bs"],
}
GROUP_KEYS = ("top1", "many", "medium", "few")


def resolve_methods(set_name: str | None = None, methods: Sequence[str] | str | None = None) -> list[str]:
    """The methods to compare: an explicit list (or ``"a,b,c"``) wins over a set name."""
    if methods:
        names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    else:
        if (set_name or "ablation") not in METHOD_SETS:
            raise GLMCError(f"unknown method set {set_name!r}; choose one of: {', '.join(METHOD_SETS)}")
        names = list(METHOD_SETS[set_name or "ablation"])
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise GLMCError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    if len(set(names)) != len(names) or not names:
        raise GLMCError("give each method once, and at least one")
    return names


@dataclass
class ComparisonResult:
    rows: list[dict]  # one per method: final plain metrics, best top-1, adjusted metrics, seconds
    out_dir: Path
    taus: tuple[float, ...]
    plot_path: Path | None = None


def run_comparison(preset: str, methods: Sequence[str] | str | None = None, set_name: str | None = None,
                   epochs: int | None = None, out: str | Path | None = None, seed: int = 0,
                   taus: Sequence[float] = (1.0,), overrides: dict | None = None, data=None,
                   log: Callable[[str], None] | None = None, plot: bool = True) -> ComparisonResult:
    """Train every method on ``preset`` with the same seed and write the comparison.

    Args:
        preset: a preset name (``glmc presets``); its recipe is shared by every method.
        methods, set_name: which methods (see :func:`resolve_methods`; default the ablation set).
        epochs: override the preset's epochs (quick runs).
        out: folder of the results and of the runs (default ``runs/compare-<preset>``).
        taus: post-hoc logit-adjustment strengths reported beside the plain result.
        overrides: any other config fields, e.g. ``{"model": "resnet8", "test_per_class": 50}``.
        data: an already prepared data set (it does not depend on the method).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    names = resolve_methods(set_name, methods)
    out_dir = Path(out) if out is not None else Path("runs") / f"compare-{preset}"
    base = {"progress": False, **(overrides or {}), "seed": seed, "out": str(out_dir / "runs")}
    if epochs is not None:
        base["epochs"] = epochs
    cfgs = [get_preset(preset, **{**base, "method": m, "run_name": m}) for m in names]
    data = data if data is not None else prepare_data(cfgs[0], progress=False)
    rows = []
    for cfg in cfgs:
        log(f"== {cfg.method} ({cfg.epochs} epochs)")
        run_dir = train_or_reuse(cfg, data=data, log=log)
        model = load_run_model(run_dir, "last", data=data, device=resolve_device(cfg.device)).model  # final epoch
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
        scores = evaluate_with_adjustment(model, data.test, cfg, data, resolve_device(cfg.device), taus)
        row = {"method": cfg.method, **{k: scores["plain"][k] for k in GROUP_KEYS},
               "best_top1": (summary.get("best") or {}).get("top1"), "seconds": summary.get("seconds")}
        for tau in taus:
            key = adjusted_key(tau)
            row.update({f"{key}_{k}": scores[key][k] for k in GROUP_KEYS})
        rows.append(row)
    result = ComparisonResult(rows, out_dir, tuple(float(t) for t in taus))
    write_results(result, preset, cfgs[0].epochs)
    if plot:
        result.plot_path = plot_results(result, out_dir / "results.png", title=f"{preset}, {cfgs[0].epochs} epochs")
    return result


def _cell(v) -> str:
    return format_number(v, ".2f")


def markdown_table(result: ComparisonResult) -> str:
    """Methods as rows; plain top-1 / many / medium / few, then the adjusted ones per τ."""
    head = ["method", "top-1", "many", "medium", "few"]
    for tau in result.taus:
        head += [f"LA τ={tau:g} top-1", "many", "medium", "few"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result.rows:
        cells = [r["method"]] + [_cell(r[k]) for k in GROUP_KEYS]
        for tau in result.taus:
            cells += [_cell(r[f"{adjusted_key(tau)}_{k}"]) for k in GROUP_KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(result: ComparisonResult, preset: str, epochs: int) -> None:
    """``results.csv`` (every number), ``results.md`` (the table with its conventions), ``results.json``."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    keys = list(result.rows[0])
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(result.rows)
    note = (f"# Comparison on `{preset}`, {epochs} epochs, same seed for every method\n\n"
            f"Top-1 and many/medium/few-shot accuracy (%) of each final model on the test set; "
            f"LA: the same model with post-hoc logit adjustment, argmax(z − τ·log π). "
            f"`best_top1` in results.csv is the best epoch on the test set (the paper's selection).\n\n")
    (out / "results.md").write_text(note + markdown_table(result) + "\n")
    (out / "results.json").write_text(json.dumps({"preset": preset, "epochs": epochs, "taus": list(result.taus),
                                                  "rows": result.rows}, indent=2) + "\n")


def plot_results(result: ComparisonResult, path: str | Path | None = None, title: str = ""):
    """Grouped bars (top-1, many, medium, few) per method; a diamond marks top-1 after logit adjustment (first τ).

    Returns the saved path (or the figure when ``path`` is None).
    """
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no backend switching, no global figure state


    rows = result.rows
    x = np.arange(len(rows))
    width = 0.2
    fig = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.2))
    ax = fig.add_subplot()
    colors = {"top1": TOP1_COLOR, **GROUP_COLORS}
    for i, k in enumerate(GROUP_KEYS):
        vals = [np.nan if r[k] is None else r[k] for r in rows]
        ax.bar(x + (i - 1.5) * width, vals, width, label=k if k != "top1" else "top-1", color=colors[k])
    if result.taus:
        key = f"{adjusted_key(result.taus[0])}_top1"
        ax.scatter(x - 1.5 * width, [r[key] for r in rows], marker="D", color="white", edgecolor="black", zorder=3,
                   label=f"top-1, LA τ={result.taus[0]:g}")
    ax.set_xticks(x, [r["method"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 118)  # headroom for the legend above the 100 % bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title)
    ax.legend(ncol=5, fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=120)
    return Path(path)
