"""Figures of training results, and the package's one palette.

The package's figures live in two modules, by what they draw:

* here (floor 5, matplotlib only): results of a trained run or model, any user's: curves of training
  (metrics rows, ``history``), accuracy by group and by class (also under post-hoc logit adjustment),
  confusion, feature space, classifier weight norms (also before/after MaxNorm), and runs side by side
  (:class:`glmc_core.analysis.Evaluation` objects). ``glmc analyze`` (:mod:`glmc_core.report`) writes
  them, notebooks 01 and 05–07 show them;
* :mod:`glmc_core.notebook.figures` (floor 6): teaching figures of the method's pieces (class counts,
  mixtures, loss terms, α schedules, long-tail corrections) and of the notebooks' experiments that
  compare one setting over quick runs (α schedules, stop-gradient).

Each function returns a :class:`matplotlib.figure.Figure`; those that draw one panel take an optional
``ax`` to draw into (then they return ``ax.figure``). Figures are built with ``Figure`` rather than
``pyplot``, so nothing is kept in a global figure list and nothing is shown twice in a notebook; show one
with ``display(fig)`` or save it with ``fig.savefig``. Accuracies are always in percent.

Colours come from the palette below and nowhere else: many / medium / few are the same three
colour-blind-safe colours (:data:`GROUP_COLORS`) in every figure of the package, the notebooks' included;
each loss term, head and α schedule has one colour too; classes use ``tab10``/``tab20``, ``turbo`` beyond 20.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from .data.longtail import GROUPS

__all__ = ["GROUP_COLORS", "TOP1_COLOR", "TERM_COLORS", "TermLabel", "TERM_LABELS", "SCHEDULE_COLORS", "SERIES_COLORS",
           "BLUES", "ALPHA_COLOR", "LR_COLOR", "figure_axes", "class_colors", "plot_learning_curves",
           "plot_group_curves", "plot_group_bars", "plot_per_class_accuracy", "plot_logit_adjustment_sweep",
           "plot_confusion", "plot_umap", "plot_weight_norms", "plot_norms_before_after", "plot_comparison",
           "plot_per_class_comparison", "plot_weight_norm_comparison"]


# ---------------------------------------------------------------------------------------- palette
# Okabe–Ito for groups, α and the learning rate; Paul Tol's "bright" for loss terms, heads, schedules and other
# series: both colour-blind safe. Every figure imports these (notebook.figures, notebook.widgets, extras.compare).
GROUP_COLORS = {"many": "#0072B2", "medium": "#009E73", "few": "#D55E00"}  # the package's one palette for groups
TOP1_COLOR = "#333333"  # all classes together
TERM_COLORS = {"loss_c": "#4477AA", "loss_cb": "#EE6677", "loss_sim": "#228833", "total": "#222222"}  # fc, fc_cb too


class TermLabel(NamedTuple):
    plain: str  # long legends of training curves
    tex: str  # the teaching figures' mathtext


TERM_LABELS = {"loss_c": TermLabel("L_c  (fc head)", "$L_c$ (fc)"),
               "loss_cb": TermLabel("L_cb  (fc_cb head, re-weighted labels)", "$L_{cb}$ (fc_cb)"),
               "loss_sim": TermLabel("L_sim  (consistency)", r"$\gamma L_{sim}$"),  # the teaching figure draws γ·L_sim
               "total": TermLabel("total", "$L_{total}$")}
SCHEDULE_COLORS = {"paper": "#222222", "linear": "#4477AA", "cosine": "#EE6677", "constant": "#CCBB44"}
SERIES_COLORS = ("#4477AA", "#EE6677", "#228833", "#CCBB44")  # unnamed series, in this order (global, local, …)
BLUES = ("#AACCEE", "#4477AA", "#223366", "#000000")  # one setting at increasing values (light → dark)
ALPHA_COLOR, LR_COLOR = "#CC79A7", "#56B4E9"  # the cumulative α and the learning rate over epochs
RUN_STYLES = ("-", "--", ":", "-.")


def figure_axes(ax=None, figsize=(6.4, 4.2)):
    """``(figure, axes)``: ``ax`` and its figure, or a new one-panel :class:`Figure` (no pyplot)."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def class_colors(num_classes: int) -> list:
    """One colour per class (or per run): ``tab10``, ``tab20``, then ``turbo`` for more than 20."""
    from matplotlib import colormaps

    if num_classes <= 10:
        return [colormaps["tab10"](i) for i in range(num_classes)]
    if num_classes <= 20:
        return [colormaps["tab20"](i) for i in range(num_classes)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, num_classes)]


def _epochs(history: Sequence[dict]) -> np.ndarray:
    return np.array([r["epoch"] for r in history])


# --------------------------------------------------------------------------------- training curves
def plot_group_curves(history: Sequence[dict], ax=None, label: str | None = None, linestyle: str = "-",
                      title: str | None = "Test accuracy by group", legend_below: bool = False) -> Figure:
    """Top-1 and many / medium / few accuracy (percent) over epochs."""
    fig, ax = figure_axes(ax)
    if history:
        ep = _epochs(history)
        prefix = f"{label}: " if label else ""
        ax.plot(ep, [r["top1"] for r in history], linestyle, color=TOP1_COLOR, lw=2, label=f"{prefix}all",
                marker="o" if len(ep) == 1 else None)
        for g in GROUPS:
            vals = [np.nan if r.get(g) is None else r[g] for r in history]
            if not np.all(np.isnan(vals)):
                ax.plot(ep, vals, linestyle, color=GROUP_COLORS[g], lw=1.6, label=f"{prefix}{g}",
                        marker="o" if len(ep) == 1 else None)  # one epoch: a dot, not an invisible line
        if legend_below:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=4, frameon=False)
        else:
            ax.legend(fontsize=8, loc="best")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(-2, 103))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def plot_learning_curves(history: Sequence[dict], title: str | None = None) -> Figure:
    """Three panels over epochs: the loss terms; α and the learning rate; accuracy by group."""
    fig = Figure(figsize=(14, 4.6), layout="constrained")
    ax_loss, ax_alpha, ax_acc = fig.subplots(1, 3)
    ep = _epochs(history) if history else np.zeros(0)
    for key, label in TERM_LABELS.items():
        vals = np.array([r.get(key, np.nan) for r in history], dtype=float)
        if len(vals) and np.any(np.nan_to_num(vals) != 0):  # CE runs have no L_cb / L_sim
            ax_loss.plot(ep, vals, marker="o", ms=3, lw=2 if key == "total" else 1.4, color=TERM_COLORS[key],
                         label=label.plain)
    ax_loss.set(xlabel="epoch", ylabel="mean loss over the epoch", title="Loss terms")
    if history:
        ax_loss.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
    ax_loss.grid(alpha=0.3)
    # α and fc_cb mean something only for cumulative runs (GLMC and its ablations): a CE run gets the lr alone
    cumulative = any(r.get("alpha", 1.0) < 1.0 or r.get("loss_cb", 0.0) for r in history)
    if cumulative:
        ax_alpha.plot(ep, [r.get("alpha", np.nan) for r in history], marker="o", ms=3, color=ALPHA_COLOR, label="α")
        ax_alpha.set(xlabel="epoch", ylabel="α  (weight of fc; 1 − α goes to fc_cb)", ylim=(-0.03, 1.05),
                     title="Cumulative α and learning rate")
    else:
        ax_alpha.set(xlabel="epoch", yticks=[], title="Learning rate (no α: not a cumulative method)")
    ax_alpha.grid(alpha=0.3)
    ax_lr = ax_alpha.twinx()
    ax_lr.plot(ep, [r.get("lr", np.nan) for r in history], marker="s", ms=3, ls="--", color=LR_COLOR, label="lr")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_ylim(bottom=0)
    handles = ax_alpha.get_legend_handles_labels()[0] + ax_lr.get_legend_handles_labels()[0]
    if history:
        names = ["α", "learning rate"] if cumulative else ["learning rate"]
        ax_alpha.legend(handles, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                        ncols=2, frameon=False)
    plot_group_curves(history, ax=ax_acc, legend_below=True)
    last = max((r["epoch"] for r in history), default=1)
    for ax in (ax_loss, ax_alpha, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if last <= 2:  # one or two epochs: whole-epoch ticks, not 0.945 … 1.05
            ax.set_xlim(0.5, last + 0.5)
            ax.set_xticks(range(1, last + 1))
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------ accuracy by group and by class
def plot_group_bars(rows: Sequence[dict], ax=None, title: str | None = "Accuracy by group") -> Figure:
    """Grouped bars: all / many / medium / few for each run (rows as from ``analysis.results_rows``)."""
    fig, ax = figure_axes(ax, (max(6.4, 1.6 + 1.2 * len(rows)), 4.2))
    keys = ("top1", *GROUPS)
    x = np.arange(len(keys))
    width = 0.8 / max(len(rows), 1)
    colors = class_colors(max(len(rows), 1))
    for i, r in enumerate(rows):
        vals = [np.nan if r.get(k) is None else r[k] for k in keys]
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, vals, width * 0.95, label=r.get("run", f"run {i}"),
                      color=colors[i])
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.1f}" for v in vals], fontsize=7, padding=1)
    ax.set_xticks(x, ["all (top-1)", "many", "medium", "few"])
    ax.set(ylabel="test accuracy (%)", ylim=(0, 110))
    ax.legend(fontsize=8, loc="upper right", ncols=min(len(rows), 3))
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    return fig


def _count_axis(ax, counts: np.ndarray, class_names: Sequence[str] | None,
                thresholds: tuple[int, int] | None) -> None:
    """A log count axis: bands for few / medium / many, and class names along the top (≤ 12 classes)."""
    lo, hi = counts.min() / 1.35, counts.max() * 1.35
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    if thresholds is not None:
        few_t, many_t = thresholds
        ax.axvspan(few_t, many_t, color=GROUP_COLORS["medium"], alpha=0.07, lw=0)
        tr = ax.get_xaxis_transform()
        for g, a, b in (("few", lo, few_t), ("medium", few_t, many_t), ("many", many_t, hi)):
            a, b = max(a, lo), min(b, hi)
            if b > a * 1.2:  # room for the word
                ax.text(np.sqrt(a * b), 0.985, g, transform=tr, ha="center", va="top", fontsize=8,
                        color=GROUP_COLORS[g], fontweight="bold")
        for t in thresholds:
            if lo < t < hi:
                ax.axvline(t, color="grey", lw=0.8, ls=":")
    if class_names is not None and len(class_names) <= 12:
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(counts), list(class_names), rotation=90, fontsize=7)
        top.tick_params(length=2, colors="dimgrey")
        top.xaxis.set_minor_locator(NullLocator())


def plot_per_class_accuracy(per_class: Sequence[float | None], counts: Sequence[int],
                            class_names: Sequence[str] | None = None, thresholds: tuple[int, int] | None = None,
                            ax=None, label: str | None = None, linestyle: str = "-", color: str | None = None,
                            title: str | None = "Per-class accuracy vs training images") -> Figure:
    """Accuracy of each class in percent (as in ``metrics.summarize``'s ``per_class``; None: no test images)
    against its training count (log x), classes as points; ``thresholds`` ``(few, many)`` shade the groups."""
    fig, ax = figure_axes(ax)
    counts = np.asarray(counts)
    order = np.argsort(counts)
    acc = np.array([np.nan if a is None else a for a in per_class], dtype=float)
    if not ax.lines:  # decorate once when several runs share the axes
        _count_axis(ax, counts, class_names, thresholds)
    ax.plot(counts[order], acc[order], linestyle, marker="o", ms=5, color=color, label=label)
    ax.set(xlabel="training images of the class (log scale)", ylabel="test accuracy (%)", ylim=(-2, 108))
    ax.grid(alpha=0.3, which="both")
    if label:
        ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def plot_logit_adjustment_sweep(sweep: Mapping[str, Sequence[float]], title: str = "post-hoc logit adjustment",
                                ax=None) -> Figure:
    """Accuracy (%) of top-1 and each group against the logit-adjustment τ, τ = 1 marked (``sweep``: ``tau`` and
    an accuracy per τ for each key, e.g. from :func:`glmc_core.notebook.experiments.logit_adjustment_sweep`)."""
    fig, ax = figure_axes(ax, (6, 3.5))
    colours = {"top1": TOP1_COLOR, **GROUP_COLORS}
    for key in ("top1", *GROUPS):
        ax.plot(sweep["tau"], sweep[key], marker="o", color=colours[key], label=key)
    ax.axvline(1.0, color="grey", ls=":")
    ax.set(xlabel="τ", ylabel="accuracy (%)", title=title)
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------- confusion
def plot_confusion(cm: np.ndarray, class_names: Sequence[str], counts: np.ndarray | None = None, ax=None,
                   title: str | None = "Confusion matrix (rows sum to 1)", annotate: bool | None = None,
                   colorbar: bool = True) -> Figure:
    """Row-normalised confusion matrix: row = true class, column = predicted class."""
    n = len(class_names)
    fig, ax = figure_axes(ax, (max(5.0, 0.45 * n + 2.5), max(4.2, 0.4 * n + 1.8)))
    cm = np.asarray(cm, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    # An inset colour bar follows the (square) image; a gridspec one would sit at the far edge of a wide cell.
    if colorbar:
        fig.colorbar(im, cax=ax.inset_axes([1.03, 0.0, 0.04, 1.0]), label="fraction of the true class")
    ticks = np.arange(n)
    rows = list(class_names)
    if counts is not None:
        rows = [f"{c} ({int(k)})" for c, k in zip(class_names, counts, strict=True)]
    if n <= 40:
        ax.set_xticks(ticks, list(class_names), rotation=45, ha="right", fontsize=8)
        ax.set_yticks(ticks, rows, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class" + (" (training images)" if counts is not None else ""))
    if annotate if annotate is not None else n <= 12:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.55 else "black")
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------------- feature space
def plot_umap(embedding: np.ndarray, labels: np.ndarray, class_names: Sequence[str], groups: np.ndarray | None = None,
              color_by: str = "class", counts: np.ndarray | None = None, ax=None, title: str | None = None) -> Figure:
    """UMAP scatter of test features, coloured by class or by the class's group.

    ``labels`` are the points' classes; ``groups`` the group of each class (needed for
    ``color_by="group"``); ``counts`` adds each class's training count to the legend.
    """
    fig, ax = figure_axes(ax, (6.4, 5))
    labels = np.asarray(labels)
    point_size = float(np.clip(30000 / max(len(labels), 1), 8, 40))  # visible whether 300 or 5000 points
    if color_by == "class":
        colors = class_colors(len(class_names))
        for c, name in enumerate(class_names):
            m = labels == c
            if m.any():
                text = f"{name} ({int(counts[c])})" if counts is not None else name
                ax.scatter(embedding[m, 0], embedding[m, 1], s=point_size, alpha=0.8, color=colors[c], label=text,
                           linewidths=0)
        legend_title = "class (training images)" if counts is not None else "class"
    elif color_by == "group":
        if groups is None:
            raise ValueError("color_by='group' needs the group of each class")
        point_groups = np.asarray(groups)[labels]
        for g in GROUPS:
            m = point_groups == g
            if m.any():
                ax.scatter(embedding[m, 0], embedding[m, 1], s=point_size, alpha=0.8, color=GROUP_COLORS[g],
                           label=f"{g} ({len(np.unique(labels[m]))} classes)", linewidths=0)
        legend_title = "group"
    else:
        raise ValueError("color_by must be 'class' or 'group'")
    if len(class_names) <= 20 or color_by == "group":
        ax.legend(title=legend_title, fontsize=7, title_fontsize=8, markerscale=2.5, loc="center left",
                  bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
    ax.set_title(title or f"Test features, coloured by {color_by}")
    return fig


# ------------------------------------------------------------------------------ classifier weights
def plot_weight_norms(norms: dict[str, np.ndarray], counts: np.ndarray, class_names: Sequence[str] | None = None,
                      ax=None, label: str | None = None, heads: Sequence[str] | None = None,
                      title: str | None = "Classifier weight norm per class") -> Figure:
    """‖W_c‖ of each head's class weights against the class's training count (log x)."""
    fig, ax = figure_axes(ax)
    counts = np.asarray(counts)
    order = np.argsort(counts)
    if not ax.lines:
        _count_axis(ax, counts, class_names, None)
    styles = {"fc": ("o", "-"), "fc_cb": ("s", "--")}
    for head in heads or list(norms):
        marker, ls = styles.get(head, ("^", ":"))
        text = f"{label}: {head}" if label else head
        ax.plot(counts[order], np.asarray(norms[head])[order], ls, marker=marker, ms=5, label=text)
    ax.set(xlabel="training images of the class (log scale)", ylabel="‖W_c‖  (L2 norm of the class's weights)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_norms_before_after(before: Sequence[float], after: Sequence[float], delta: float, head: str = "fc",
                            ax=None) -> Figure:
    """Per-class weight norms of a classifier before and after MaxNorm fine-tuning, with the radius δ."""
    fig, ax = figure_axes(ax, (7.6, 3.2))
    x = np.arange(len(before))
    ax.bar(x - 0.2, np.asarray(before), 0.4, label="after training")
    ax.bar(x + 0.2, np.asarray(after), 0.4, label="after MaxNorm fine-tuning")
    ax.axhline(delta, color="black", ls=":", label=f"δ = {delta:.2f}")
    ax.set(xlabel="class (head → tail)", ylabel="‖w_c‖", title=f"per-class weight norms of {head}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over one
    return fig


# ------------------------------------------------------------------------------- runs side by side
def plot_comparison(evals: Sequence, umaps: Sequence | None = None) -> Figure:
    """Runs side by side (one column each): UMAP by class, UMAP by group (if given), confusion matrix.

    ``evals`` are :class:`glmc_core.analysis.Evaluation` objects; ``umaps`` the matching
    ``(indices, embedding)`` pairs from :func:`glmc_core.analysis.run_umap`.
    """
    n_rows = 3 if umaps is not None else 1
    fig = Figure(figsize=(6.6 * len(evals), 5.0 * n_rows), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, len(evals), squeeze=False))
    for j, ev in enumerate(evals):
        name = f"{ev.run.name} ({ev.run.method}, epoch {ev.epoch})"
        if umaps is not None:
            idx, emb = umaps[j]
            plot_umap(emb, ev.targets[idx], ev.classes, ev.groups, "class", ev.counts, ax=axes[0, j],
                      title=f"{name}\nfeatures by class")
            plot_umap(emb, ev.targets[idx], ev.classes, ev.groups, "group", ax=axes[1, j],
                      title=f"{name}\nfeatures by group")
        plot_confusion(ev.confusion, ev.classes, ev.counts, ax=axes[-1, j], title=f"{name}\nconfusion (rows sum to 1)",
                       colorbar=j == len(evals) - 1)  # one inset colour bar, beside the last matrix
    return fig


def plot_per_class_comparison(evals: Sequence, ax=None) -> Figure:
    """Per-class accuracy vs count for several runs on one axes."""
    fig, ax = figure_axes(ax, (7.5, 4.5))
    for i, ev in enumerate(evals):
        cfg = ev.run.config
        plot_per_class_accuracy(100 * ev.per_class, ev.counts, ev.classes, (cfg.few_threshold, cfg.many_threshold),
                                ax=ax, label=f"{ev.run.name} ({ev.run.method})", linestyle=RUN_STYLES[i % 4])
    return fig


def plot_weight_norm_comparison(evals: Sequence) -> Figure:
    """One panel per run: the weight norms of the heads that run trained."""
    from .analysis import trained_heads

    fig = Figure(figsize=(6.0 * len(evals), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(evals), sharey=True))
    for i, (ax, ev) in enumerate(zip(axes, evals, strict=True)):
        plot_weight_norms(ev.norms, ev.counts, ev.classes, ax=ax, heads=trained_heads(ev.run.method),
                          title=f"{ev.run.name} ({ev.run.method})")
        if i:
            ax.set_ylabel("")
    return fig
