"""The explorers redraw what their controls say, without a browser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")

from glmc_core.data import LongTailData  # noqa: E402
from glmc_core.data.longtail import longtail_counts, shot_groups  # noqa: E402
from glmc_core.data.splits import ArraySplit  # noqa: E402
from glmc_core.losses import alpha_schedule  # noqa: E402
from glmc_core.notebook import widgets  # noqa: E402


@pytest.fixture(scope="module")
def data():
    counts = np.array(longtail_counts(40, 10, 10))
    labels = np.repeat(np.arange(10), counts)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(labels), 8, 8, 3), dtype=np.uint8)
    split = ArraySplit(images, labels)
    return LongTailData("toy", [f"c{i}" for i in range(10)], split, split, counts, shot_groups(counts, 30, 10),
                        (0.5,) * 3, (0.25,) * 3, "test")


def test_imbalance_slider_redraws_counts():
    e = widgets.ImbalanceExplorer(num_classes=10, n_max=500, imbalance_factor=10)
    assert e.redraws == 1 and e.counts[-1] == 50
    e.if_slider.value = 100
    assert e.redraws == 2 and e.counts[-1] == 5
    assert e.result["classes_per_group"]["few"] > 0
    assert e.last_png.startswith(b"\x89PNG")
    assert e.last_figure.axes[0].get_yscale() == "log"  # the default: tail classes stay visible
    e.log_box.value = False
    assert e.redraws == 3 and e.last_figure.axes[0].get_yscale() == "linear"


def test_lambda_slider_changes_the_mixed_image(data):
    m = widgets.MixingExplorer(data, lam=0.7)
    assert m.lam_slider.description == "λ"
    before, cut_before = m.mixed_image.copy(), m.cutmix_image.copy()
    m.lam_slider.value = 0.2
    assert not np.allclose(before, m.mixed_image)
    assert not np.array_equal(cut_before, m.cutmix_image)  # smaller λ: a bigger box is pasted
    x_u, x_r = data.train.images[m.u_index.value] / 255, data.train.images[m.r_index.value] / 255
    np.testing.assert_allclose(m.mixed_image, 0.2 * x_u + 0.8 * x_r, atol=1e-6)
    assert m.mix["p_g"][m.mix["y_u"]] == pytest.approx(0.2) or m.mix["y_u"] == m.mix["y_r"]


def test_beta_slider_resamples_lambda(data):
    m = widgets.MixingExplorer(data, lam=0.5)
    seen = set()
    for beta in (0.2, 0.3, 0.4, 0.6, 3.0):
        m.beta_slider.value = beta
        seen.add(m.lam_slider.value)
        assert m.mix["lam"] == m.lam_slider.value
    assert len(seen) > 1


def test_samplers_pick_a_pair_with_one_redraw(data):
    m = widgets.MixingExplorer(data)
    m.q_slider.value = 1.0
    m.convention.value = "class"
    n = m.redraws
    i_u, i_r = m.sample_pair()
    assert m.redraws == n + 1 and (m.u_index.value, m.r_index.value) == (i_u, i_r)
    # q = 1 under the class convention favours the tail; the panel shows the resampler's class probabilities
    probs = m.resampler.class_probs.numpy()
    assert probs[-1] > probs[0]
    heights = [p.get_height() for p in m.last_figure.axes[-1].patches]
    np.testing.assert_allclose(heights, probs, rtol=1e-6)


def test_k_slider_changes_reweighted_labels_only(data):
    m = widgets.MixingExplorer(data, lam=0.5)
    p_g, p_g_w = m.mix["p_g"].copy(), m.mix["p_g_w"].copy()
    m.k_slider.value = 0.0
    np.testing.assert_allclose(m.mix["p_g"], p_g)
    assert not np.allclose(m.mix["p_g_w"], p_g_w)
    np.testing.assert_allclose(m.mix["p_g_w"], p_g, atol=1e-6)  # k = 0: all weights 1


def test_loss_explorer_gamma_scales_the_consistency_term():
    from glmc_core.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet8", 10)
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.randn(4, 3, 8, 8, generator=g) for k in ("x_u1", "x_u2", "x_r1", "x_r2")}
    batch.update(y_u=torch.tensor([0, 1, 2, 3]), y_r=torch.tensor([9, 8, 7, 6]))
    e = widgets.LossExplorer(model, batch, longtail_counts(100, 10, 10), alpha=0.5, points=3)
    t1 = dict(e.terms)
    e.gamma_slider.value = 3.0
    t3 = e.terms
    assert t3["loss_sim"] == pytest.approx(t1["loss_sim"], rel=1e-5)
    assert t3["total"] - t1["total"] == pytest.approx(2.0 * t1["loss_sim"], rel=1e-4, abs=1e-5)
    e.k_slider.value = 0.0
    assert e.terms["loss_c"] == pytest.approx(t1["loss_c"], rel=1e-5)
    assert e.terms["loss_cb"] != pytest.approx(t1["loss_cb"], rel=1e-3)


def test_alpha_explorer_follows_schedule_and_epoch():
    e = widgets.AlphaExplorer(total_epochs=10)
    assert e.alpha == pytest.approx(alpha_schedule(5, 10, "paper"))
    e.schedule.value = "linear"
    assert e.alpha == pytest.approx(0.5)
    e.epochs_slider.value = 4  # the epoch slider is clamped to the new T_max
    assert e.epoch_slider.value == 4 and e.alpha == pytest.approx(0.0)
    e.schedule.value = "constant"
    e.constant_slider.value = 0.25
    assert e.result == {"alpha": 0.25, "fc_weight": 0.25, "fc_cb_weight": 0.75}
