"""Teaching figures: the method's pieces, and the notebooks' experiments that compare one setting.

The package's figures live in two modules, by what they draw. :mod:`glmc_core.plots` draws results of a
trained run or model (curves of training, accuracy by group and by class, confusion, feature space, weight
norms) and holds the palette every figure here uses. This module draws the method's pieces before any
training, from :mod:`glmc_core.data`, :mod:`glmc_core.mixing`, :mod:`glmc_core.losses` and
:mod:`glmc_core.longtail_losses`: the data (class counts, images), the mixtures (λ, one pair and its soft
labels, resampled partners), the losses (class weights, loss terms, the long-tail baselines' corrections), the
α schedules; and the notebooks' experiments that train quick runs to compare one setting (α schedules,
stop-gradient), from :mod:`glmc_core.notebook.experiments`.

Each function returns a :class:`matplotlib.figure.Figure` and accepts an optional ``ax`` (or ``fig``) to draw
into an existing figure. Figures are built without ``pyplot`` so a notebook shows each one exactly once and
widgets can redraw them without piling up open figures.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from .. import longtail_losses as ltl
from .. import mixing
from ..data.longtail import GROUPS, longtail_counts, shot_groups
from ..losses import ALPHA_SCHEDULES, alpha_schedule
from ..plots import BLUES, GROUP_COLORS, SCHEDULE_COLORS, SERIES_COLORS, TERM_COLORS, TERM_LABELS, figure_axes
from .experiments import lambda_draws

__all__ = ["plot_class_counts", "plot_counts_for_ifs", "plot_image_grid", "plot_lambda_hist", "plot_mixing",
           "plot_partner_classes", "plot_class_weights", "plot_loss_terms", "plot_longtail_corrections",
           "plot_alpha_schedules", "plot_head_weights", "plot_schedule_runs", "plot_collapse"]


def _names(class_names, n):
    return list(class_names) if class_names is not None else [str(c) for c in range(n)]


def _group_legend(ax, groups, **kw):
    present = [g for g in GROUPS if g in set(groups)]
    ax.legend(handles=[Patch(color=GROUP_COLORS[g], label=g) for g in present], **kw)


# ---------------------------------------------------------------------------------------- the data
def plot_class_counts(counts: Sequence[int], groups: Sequence[str] | None = None, class_names=None,
                      many_threshold: int = 100, few_threshold: int = 20, log: bool = False, ax=None,
                      title: str | None = None) -> Figure:
    """Training images per class, coloured by many/medium/few, with the thresholds and the imbalance factor."""
    counts = np.asarray(counts)
    groups = shot_groups(counts, many_threshold, few_threshold) if groups is None else np.asarray(groups)
    fig, ax = figure_axes(ax, (7, 3.6))
    names = _names(class_names, len(counts))
    x = np.arange(len(counts))
    ax.bar(x, counts, color=[GROUP_COLORS[g] for g in groups], edgecolor="white", linewidth=0.5)
    for thr, style in ((many_threshold, "--"), (few_threshold, ":")):
        ax.axhline(thr, color="0.4", linestyle=style, linewidth=1)
    if log:
        ax.set_yscale("log")
    if len(counts) <= 20:
        ax.set_xticks(x, names, rotation=45 if max(len(n) for n in names) > 3 else 0, ha="right"
                      if max(len(n) for n in names) > 3 else "center")
    ax.set_xlabel("class (sorted as in the data set)")
    ax.set_ylabel("training images" + (" (log scale)" if log else ""))
    imbalance = counts.max() / max(counts.min(), 1)
    ax.set_title(title or f"{int(counts.sum())} images, imbalance factor {imbalance:.0f} "
                 f"(many > {many_threshold} ≥ medium ≥ {few_threshold} > few)", fontsize=10)
    _group_legend(ax, groups, loc="upper right")
    return fig


def plot_counts_for_ifs(n_max: int, num_classes: int, imbalance_factors: Sequence[float] = (1, 10, 50, 100),
                        log: bool = True, ax=None) -> Figure:
    """``n_i = ⌊n_max · IF^(−i/(C−1))⌋`` for several imbalance factors (from :func:`longtail_counts`)."""
    fig, ax = figure_axes(ax, (6, 3.6))
    for imb in imbalance_factors:
        counts = longtail_counts(n_max, num_classes, imb)
        ax.plot(range(num_classes), counts, marker="o", markersize=3, label=f"IF {imb:g}: {sum(counts)} images")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("class index i")
    ax.set_ylabel("training images n_i")
    ax.set_title(f"Exponential profile, n_max = {n_max}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_image_grid(images: np.ndarray, labels: Sequence[int], class_names=None, ncols: int = 8,
                    max_images: int = 32) -> Figure:
    """A grid of uint8 ``(N, H, W, 3)`` images titled by their class."""
    n = min(len(images), max_images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig = Figure(figsize=(1.2 * ncols, 1.35 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    names = _names(class_names, int(np.max(labels)) + 1 if class_names is None else len(class_names))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            ax.set_title(names[int(labels[i])], fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------- mixtures
def plot_lambda_hist(betas: Sequence[float] = (0.5, 1.0, 2.0), draws: int = 5000, seed: int = 0, ax=None) -> Figure:
    """Histograms of ``λ ~ Beta(β, β)`` drawn with :func:`glmc_core.mixing.sample_lambda`, one per β."""
    fig, ax = figure_axes(ax, (6, 3.4))
    for beta, lams in lambda_draws(betas, draws, seed).items():
        ax.hist(lams, bins=25, range=(0, 1), density=True, histtype="step", linewidth=1.8, label=f"β = {beta:g}")
    ax.set_xlabel("λ (weight of the uniform image)")
    ax.set_ylabel("density")
    ax.set_title("β < 1 favours nearly pure images, β > 1 even blends", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _label_bars(ax, rows: Mapping[str, np.ndarray], names, title):
    x = np.arange(len(names))
    width = 0.8 / len(rows)
    for j, (label, p) in enumerate(rows.items()):
        ax.bar(x + (j - (len(rows) - 1) / 2) * width, p, width, label=label, color=SERIES_COLORS[j % 2])
    ax.set_xticks(x, names, rotation=60 if max(len(n) for n in names) > 3 else 0, ha="right", rotation_mode="anchor",
                  fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center")


def plot_mixing(mix: Mapping, class_names=None, partner_probs: Sequence[float] | None = None,
                fig: Figure | None = None) -> Figure:
    """One (uniform, resampled) pair, its global (MixUp) and local (CutMix, box outlined) mixtures, and the soft
    labels and re-weighted soft labels of both as bar charts side by side. ``mix`` comes from
    :func:`glmc_core.notebook.experiments.mix_pair`; ``partner_probs`` (optional, e.g. ``ClassResampler.class_probs``)
    adds a third panel: the probability of each class being drawn as the partner."""
    names = _names(class_names, len(mix["p_g"]))
    fig = fig or Figure(figsize=(10, 5.2), layout="constrained")
    grid = fig.add_gridspec(2, 12, height_ratios=(1.1, 1))
    bottom = ((0, 6), (6, 12)) if partner_probs is None else ((0, 4), (4, 8), (8, 12))
    lam, lam_l, box = mix["lam"], mix["lam_l"], mix["box"]
    panels = [("x_u", f"uniform: {names[mix['y_u']]}"), ("x_r", f"resampled: {names[mix['y_r']]}"),
              ("x_g", f"global (MixUp), λ={lam:.2f}"), ("x_l", f"local (CutMix), {lam_l:.2f} kept")]
    for j, (key, title) in enumerate(panels):
        ax = fig.add_subplot(grid[0, 3 * j : 3 * j + 3])
        ax.imshow(np.clip(mix[key], 0, 1), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if key == "x_l" and box.area > 0:
            ax.add_patch(Rectangle((box.x0 - 0.5, box.y0 - 0.5), box.x1 - box.x0, box.y1 - box.y0, fill=False,
                                   edgecolor=SERIES_COLORS[1], linewidth=2))  # local: as in its bars
    (a0, a1), (b0, b1) = bottom[0], bottom[1]
    _label_bars(fig.add_subplot(grid[1, a0:a1]), {"global p_g": mix["p_g"], "local p_l": mix["p_l"]}, names,
                "soft labels (sum to 1)")
    _label_bars(fig.add_subplot(grid[1, b0:b1]), {"global": mix["p_g_w"], "local": mix["p_l_w"]}, names,
                "re-weighted soft labels (w_c = n_c^-k, Σw = C)")
    if partner_probs is not None:
        ax = fig.add_subplot(grid[1, bottom[2][0]:bottom[2][1]])
        ax.bar(np.arange(len(names)), np.asarray(partner_probs), color="0.35")
        ax.set_xticks(np.arange(len(names)), names, rotation=60 if max(len(n) for n in names) > 3 else 0,
                      ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_title("P(partner class) of the resampler", fontsize=9)
    return fig


def plot_partner_classes(partner_counts: Mapping[tuple[str, float], np.ndarray], counts: Sequence[int],
                         class_names=None) -> Figure:
    """Which classes are drawn as the mixing partner, per resampling convention and q (``partner_counts``
    from :func:`glmc_core.notebook.experiments.partner_class_counts`), beside the data's own share."""
    counts = np.asarray(counts)
    names = _names(class_names, len(counts))
    conventions = sorted({c for c, _ in partner_counts}, key=lambda c: c != "instance")
    fig = Figure(figsize=(5.2 * len(conventions), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(conventions), sharey=True))
    x = np.arange(len(counts))
    groups = shot_groups(counts)
    for ax, conv in zip(axes, conventions, strict=False):
        qs = sorted(q for c, q in partner_counts if c == conv)
        ax.step(x, counts / counts.sum(), where="mid", color="0.3", linestyle="--", label="share in the data")
        width = 0.8 / len(qs)
        for j, q in enumerate(qs):
            frac = partner_counts[(conv, q)] / partner_counts[(conv, q)].sum()
            ax.bar(x + (j - (len(qs) - 1) / 2) * width, frac, width, color=BLUES[j % len(BLUES)], label=f"q = {q:g}")
        long_names = max(len(n) for n in names) > 3
        ax.set_xticks(x, names, fontsize=8, rotation=45 if long_names else 0, ha="right" if long_names else "center",
                      rotation_mode="anchor")
        for tick, g in zip(ax.get_xticklabels(), groups, strict=False):
            tick.set_color(GROUP_COLORS[g])
        what = "P(image) ∝ n_c^-q" if conv == "instance" else "P(class) ∝ n_c^-q"
        ax.set_title(f"{conv} convention: {what}", fontsize=9)
        ax.set_xlabel("partner class (tick colour: many / medium / few)")
    # One legend for both panels, outside the bars.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside right upper")
    axes[0].set_ylabel("share of resampled partners")
    return fig


# ------------------------------------------------------------------------- losses and re-weighting
def plot_class_weights(counts: Sequence[int], ks: Sequence[float] = (0.0, 0.5, 1.0, 1.2, 2.0), ax=None) -> Figure:
    """Class weights ``w_c = n_c^-k`` (normalised to ``Σ w_c = C``, :func:`glmc_core.mixing.class_weights`)
    against the class counts, log-log, one line per k."""
    counts = np.asarray(counts)
    fig, ax = figure_axes(ax, (6, 3.8))
    order = np.argsort(counts)
    for k in ks:
        w = mixing.class_weights(counts, k).numpy()
        ax.plot(counts[order], w[order], marker="o", markersize=4, label=f"k = {k:g}")
    for c, g in zip(counts, shot_groups(counts), strict=False):
        ax.axvline(c, color=GROUP_COLORS[g], alpha=0.25, linewidth=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlabel("training images of the class, n_c (band colour: many / medium / few)")
    ax.set_ylabel("weight w_c (Σ w_c = C)")
    ax.set_title("Re-weighting favours the tail more as k grows", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_loss_terms(sweeps: Mapping, axes=None) -> Figure:
    """Each loss term as λ, k and γ move (from :func:`glmc_core.notebook.experiments.loss_sweeps`), the others fixed."""
    at = sweeps["at"]
    if axes is None:
        fig = Figure(figsize=(11, 3.4), layout="constrained")
        axes = fig.subplots(1, 3)
    fig = axes[0].figure
    spec = (("lam", "λ (weight of the uniform image)"), ("k", "k (label re-weighting exponent)"),
            ("gamma", "γ (consistency weight)"))
    for ax, (name, xlabel) in zip(axes, spec, strict=False):
        s = sweeps[name]
        gamma = np.asarray(s["values"]) if name == "gamma" else at["gamma"]
        for term in ("loss_c", "loss_cb", "loss_sim", "total"):
            y = s[term] * gamma if term == "loss_sim" else s[term]
            ax.plot(s["values"], y, color=TERM_COLORS[term], label=TERM_LABELS[term].tex,
                    linewidth=2 if term == "total" else 1.4)
        ax.axvline(at[name], color="0.5", linestyle=":", linewidth=1)
        ax.axhline(0, color="0.8", linewidth=0.8)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("loss on one fixed batch")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside right upper")  # off the curves
    fig.suptitle(f"α = {at['alpha']:.2f}; fixed at λ = {at['lam']:.2f}, k = {at['k']:.2f}, γ = {at['gamma']:.2f} "
                 f"(dotted)", fontsize=10)
    return fig


def plot_longtail_corrections(counts: Sequence[int], cb_betas: Sequence[float] = (0.0, 0.9, 0.99, 0.9999),
                              max_margin: float = 0.5) -> Figure:
    """What each long-tail baseline does per class (:mod:`glmc_core.longtail_losses`): class-balanced weights
    for several β, LDAM's margins, and the ``−log π_c`` that post-hoc logit adjustment adds (τ = 1)."""
    import torch

    counts_t = torch.as_tensor(np.asarray(counts))
    fig = Figure(figsize=(13, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    x = np.arange(len(counts_t))
    width = 0.8 / len(cb_betas)
    for i, beta in enumerate(cb_betas):
        axes[0].bar(x + (i - (len(cb_betas) - 1) / 2) * width,
                    ltl.cb_weights_effective_number(counts_t, beta).numpy(), width, label=f"β={beta}")
    axes[0].set(title="class-balanced weights (Σ w = C)", xlabel="class (head → tail)")
    axes[0].legend(fontsize=8)
    axes[1].bar(x, ltl.ldam_margins(counts_t, max_margin).numpy())
    axes[1].set(title=f"LDAM margins m_c (max {max_margin:g})", xlabel="class")
    axes[2].bar(x, -ltl.log_prior(counts_t).numpy())
    axes[2].set(title="−log π_c: what logit adjustment adds (τ = 1)", xlabel="class")
    return fig


# ------------------------------------------------------------------------------------- α schedules
def plot_alpha_schedules(total_epochs: int, schedules: Sequence[str] = ALPHA_SCHEDULES, constant: float = 0.5,
                         highlight: str | None = None, epoch: int | None = None, ax=None) -> Figure:
    """α over training for each schedule of :func:`glmc_core.losses.alpha_schedule`; dots: the values
    training uses at each (0-based) epoch; optional highlighted schedule and current epoch."""
    fig, ax = figure_axes(ax, (6, 3.6))
    t = np.linspace(0, total_epochs, 200)
    epochs = np.arange(total_epochs)
    for s in schedules:
        emphasis = highlight is None or s == highlight
        ax.plot(t, [alpha_schedule(v, total_epochs, s, constant) for v in t], color=SCHEDULE_COLORS.get(s),
                linewidth=2.2 if emphasis else 1, alpha=1 if emphasis else 0.45, label=s)
        if emphasis and total_epochs <= 60:
            ax.plot(epochs, [alpha_schedule(v, total_epochs, s, constant) for v in epochs], "o", markersize=3,
                    color=SCHEDULE_COLORS.get(s))
    if epoch is not None:
        ax.axvline(epoch, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlim(0, total_epochs)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"epoch T (T_max = {total_epochs})")
    ax.set_ylabel("α (weight of L_c, fc)")
    ax.set_title("Cumulative coefficient: paper α = 1 − (T/T_max)²", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_head_weights(total_epochs: int, schedule: str = "paper", constant: float = 0.5, epoch: int | None = None,
                      ax=None) -> Figure:
    """How the loss weight moves from ``fc`` (α) to ``fc_cb`` (1 − α) over training, stacked."""
    fig, ax = figure_axes(ax, (6, 3.6))
    t = np.linspace(0, total_epochs, 200)
    a = np.array([alpha_schedule(v, total_epochs, schedule, constant) for v in t])
    ax.fill_between(t, 0, a, color=TERM_COLORS["loss_c"], alpha=0.8, label="α: L_c, plain classifier fc")
    ax.fill_between(t, a, 1, color=TERM_COLORS["loss_cb"], alpha=0.8, label="1 − α: L_cb, re-balanced fc_cb")
    if epoch is not None:
        ax.axvline(epoch, color="black", linestyle=":", linewidth=1.2)
        now = alpha_schedule(epoch, total_epochs, schedule, constant)
        side = "right" if epoch > 0.8 * total_epochs else ("left" if epoch < 0.2 * total_epochs else "center")
        ax.text(epoch, 1.02, f"T={epoch}: α={now:.2f}", ha=side, va="bottom", fontsize=8)
    ax.set_xlim(0, total_epochs)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel(f"epoch T (T_max = {total_epochs})")
    ax.set_ylabel("share of the classification loss")
    ax.set_title(f"{schedule} schedule", fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="lower left")
    return fig


# --------------------------------------------------------------- experiments comparing one setting
def plot_schedule_runs(histories: Mapping[str, Sequence[Mapping]]) -> Figure:
    """Quick runs per α schedule (``fit()`` histories): test top-1 per epoch, α per epoch, and the final
    many/medium/few accuracy."""
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax_acc, ax_alpha, ax_groups = fig.subplots(1, 3)
    for s, hist in histories.items():
        ep = [r["epoch"] for r in hist]
        ax_acc.plot(ep, [r["top1"] for r in hist], marker="o", markersize=3, color=SCHEDULE_COLORS.get(s), label=s)
        ax_alpha.plot(ep, [r["alpha"] for r in hist], marker="o", markersize=3, color=SCHEDULE_COLORS.get(s),
                      label=s)
    ax_acc.set(xlabel="epoch", ylabel="test top-1 (%) via fc_cb", title="accuracy during training")
    ax_alpha.set(xlabel="epoch", ylabel="α used in that epoch", title="α per epoch", ylim=(-0.03, 1.03))
    ax_acc.legend(fontsize=8)
    x = np.arange(len(GROUPS))
    width = 0.8 / max(len(histories), 1)
    for j, (s, hist) in enumerate(histories.items()):
        final = hist[-1]
        vals = [final[g] if final[g] is not None else np.nan for g in GROUPS]
        ax_groups.bar(x + (j - (len(histories) - 1) / 2) * width, vals, width, color=SCHEDULE_COLORS.get(s), label=s)
    ax_groups.set_xticks(x, GROUPS)
    ax_groups.set(ylabel="final test accuracy (%)", title="final epoch by group")
    for ax in (ax_acc, ax_alpha, ax_groups):
        ax.title.set_fontsize(10)
    for ax in (ax_acc, ax_alpha):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    return fig


def plot_collapse(histories: Mapping[str, Sequence[Mapping]]) -> Figure:
    """With vs without stop-gradient (from :func:`glmc_core.notebook.experiments.consistency_experiment`): the
    consistency loss, the spread of the projections ``h`` and of the features, and test top-1, per epoch."""
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = (("loss_sim", "L_sim (−2 = perfect agreement)"), ("h_var", "spread of projections h"),
              ("r_var", "spread of features r"), ("top1", "test top-1 (%)"))
    for ax, (key, title) in zip(axes, panels, strict=False):
        for (label, hist), colour in zip(histories.items(), SERIES_COLORS, strict=False):
            ax.plot([r["epoch"] for r in hist], [r[key] for r in hist], marker="o", markersize=3, color=colour,
                    label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_yscale("log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=len(labels))  # off the curves
    return fig
