"""The notebooks' static figures (glmc_core.notebook.figures) draw the package's own computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb

from glmc_core.data.longtail import longtail_counts
from glmc_core.notebook import experiments, figures
from glmc_core.plots import GROUP_COLORS

COUNTS = longtail_counts(500, 10, 100)


def _tiny_images(n=12, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 10


def test_class_counts_colours_bars_by_group():
    fig = figures.plot_class_counts(COUNTS, log=True)
    ax = fig.axes[0]
    colours = {tuple(np.round(p.get_facecolor()[:3], 3)) for p in ax.patches}
    assert len(ax.patches) == 10 and len(colours) == 3  # many, medium and few all present at IF 100, n_max 500
    palette = {tuple(np.round(to_rgb(c), 3)) for c in GROUP_COLORS.values()}
    assert colours == palette  # the package's one palette for many / medium / few
    assert ax.get_yscale() == "log"
    assert "imbalance factor 100" in ax.get_title()


def test_counts_for_ifs_has_one_line_per_factor():
    fig = figures.plot_counts_for_ifs(5000, 10, (1, 10, 100))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    assert list(lines[2].get_ydata()) == longtail_counts(5000, 10, 100)


def test_image_grid_titles_are_class_names():
    images, labels = _tiny_images()
    fig = figures.plot_image_grid(images, labels, [f"c{i}" for i in range(10)], ncols=4, max_images=8)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"c{i}" for i in labels[:8]]


def test_mixing_figure_outlines_the_cutmix_box():
    images, _ = _tiny_images()
    mix = experiments.mix_pair(images[0], images[1], 0, 9, COUNTS, lam=0.5, box_seed=1)
    fig = figures.plot_mixing(mix, partner_probs=np.full(10, 0.1))
    box = mix["box"]
    rects = [p for ax in fig.axes for p in ax.patches if type(p).__name__ == "Rectangle" and not p.get_fill()]
    assert len(rects) == 1 and rects[0].get_width() == box.x1 - box.x0
    assert len(fig.axes) == 4 + 3


def test_partner_counts_follow_the_conventions():
    labels = np.repeat(np.arange(10), COUNTS)
    pc = experiments.partner_class_counts(labels, 10, (0.0, 1.0), draws=4000)
    share = {key: v / v.sum() for key, v in pc.items()}
    assert share[("instance", 0.0)][0] > 0.3  # q = 0, instance: as often as in the data (head-heavy)
    assert abs(share[("instance", 1.0)][9] - 0.1) < 0.03  # q = 1, instance: class-balanced
    assert abs(share[("class", 0.0)][9] - 0.1) < 0.03  # q = 0, class: class-balanced
    assert share[("class", 1.0)][9] > share[("class", 1.0)][0]  # q = 1, class: tail-heavy
    fig = figures.plot_partner_classes(pc, COUNTS)
    assert len(fig.axes) == 2


def _model_and_batch():
    from glmc_core.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet8", 10)
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.randn(8, 3, 16, 16, generator=g) for k in ("x_u1", "x_u2", "x_r1", "x_r2")}
    batch.update(y_u=torch.arange(8) % 10, y_r=(torch.arange(8) + 5) % 10)
    return model, batch


def test_loss_sweeps_and_figure():
    model, batch = _model_and_batch()
    sw = experiments.loss_sweeps(model, batch, COUNTS, lam=0.5, k=1.0, gamma=2.0, alpha=0.3,
                              lams=[0.0, 0.5, 1.0], ks=[0.0, 1.0], gammas=[0.0, 2.0])
    g = sw["gamma"]
    # total = α L_c + (1 − α) L_cb + γ L_sim, and L_c does not depend on k or γ
    np.testing.assert_allclose(g["total"], 0.3 * g["loss_c"] + 0.7 * g["loss_cb"] + np.array([0, 2]) * g["loss_sim"],
                               rtol=1e-5)
    assert np.ptp(sw["k"]["loss_c"]) < 1e-6 and np.ptp(sw["k"]["loss_cb"]) > 0
    assert sw["at"]["total"] == pytest.approx(sw["k"]["total"][1], rel=1e-5)
    fig = figures.plot_loss_terms(sw)
    assert len(fig.axes) == 3 and len(fig.axes[0].get_lines()) >= 4


def test_class_weights_figure_one_line_per_k():
    fig = figures.plot_class_weights(COUNTS, ks=(0, 1, 2))
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("k =")]
    assert len(lines) == 3
    assert np.allclose(lines[0].get_ydata(), 1.0)  # k = 0: no re-weighting


def test_alpha_figures():
    fig = figures.plot_alpha_schedules(10, highlight="paper", epoch=3)
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert {"paper", "linear", "cosine", "constant"} <= set(labels)
    paper = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "paper")
    assert paper.get_ydata()[0] == 1.0 and paper.get_ydata()[-1] == pytest.approx(0.0)
    fig = figures.plot_head_weights(10, "linear", epoch=9)
    assert "α=0.10" in fig.axes[0].texts[0].get_text()


def test_schedule_runs_draw_each_schedule_and_its_final_groups():
    hist = [{"epoch": e, "top1": 10.0 * e, "alpha": 1 - e / 3, "many": 50.0, "medium": 20.0, "few": None}
            for e in (1, 2, 3)]
    other = [dict(r, top1=r["top1"] + 1, many=40.0) for r in hist]
    ax_acc, ax_alpha, ax_groups = figures.plot_schedule_runs({"paper": hist, "linear": other}).axes
    assert [ln.get_label() for ln in ax_acc.lines] == ["paper", "linear"]
    assert list(ax_acc.lines[1].get_ydata()) == [11.0, 21.0, 31.0]
    assert list(ax_alpha.lines[0].get_ydata()) == [r["alpha"] for r in hist]
    heights = [p.get_height() for p in ax_groups.patches]  # paper's three groups, then linear's
    np.testing.assert_array_equal(heights, [50.0, 20.0, np.nan, 40.0, 20.0, np.nan])


def test_collapse_figure_plots_each_detector_of_each_run():
    hist = [{"epoch": e, "top1": 10.0 * e, "loss_sim": -1.0 - e / 10, "h_var": 0.1 / e, "r_var": 0.2} for e in (1, 2)]
    free = [dict(r, h_var=r["h_var"] / 10) for r in hist]
    fig = figures.plot_collapse({"with": hist, "without": free})
    by_title = {ax.get_title(): ax for ax in fig.axes}
    spread = by_title["spread of projections h"]
    assert spread.get_yscale() == "log" and [ln.get_label() for ln in spread.lines] == ["with", "without"]
    np.testing.assert_allclose(spread.lines[1].get_ydata(), [0.01, 0.005])
    np.testing.assert_allclose(by_title["L_sim (−2 = perfect agreement)"].lines[0].get_ydata(), [-1.1, -1.2])


def test_notebook_07_figures_draw_the_baselines_corrections():
    import torch

    from glmc_core import longtail_losses as ltl

    counts = torch.tensor([100, 30, 10, 3])
    fig = figures.plot_longtail_corrections(counts, cb_betas=(0.0, 0.99))
    cb, ldam, prior = fig.axes
    assert len(cb.patches) == 2 * 4
    np.testing.assert_allclose([p.get_height() for p in prior.patches], -ltl.log_prior(counts).numpy(), rtol=1e-6)
    assert np.argmax([p.get_height() for p in ldam.patches]) == 3  # the rarest class gets the largest margin
