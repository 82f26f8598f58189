"""What the notebooks compute (glmc_core.notebook.experiments) is what the package trains with."""

from __future__ import annotations

import numpy as np
import pytest

from glmc_core import get_preset
from glmc_core.data import prepare_data
from glmc_core.data.longtail import longtail_counts
from glmc_core.mixing import Box
from glmc_core.notebook import experiments

COUNTS = longtail_counts(500, 10, 100)


def _tiny_images(n=12, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 10


def test_mix_pair_matches_the_definitions():
    images, _ = _tiny_images()
    mix = experiments.mix_pair(images[0], images[1], 2, 7, COUNTS, lam=0.3, k=1.0, box_seed=0)
    x_u, x_r = images[0] / 255.0, images[1] / 255.0
    np.testing.assert_allclose(mix["x_g"], 0.3 * x_u + 0.7 * x_r, atol=1e-6)
    b: Box = mix["box"]
    np.testing.assert_allclose(mix["x_l"][b.y0:b.y1, b.x0:b.x1], x_r[b.y0:b.y1, b.x0:b.x1], atol=1e-6)
    assert mix["p_g"].sum() == pytest.approx(1.0) and mix["p_l"].sum() == pytest.approx(1.0)
    assert mix["lam_l"] == pytest.approx(1 - b.area / 64)  # "area" label: what the image really holds
    assert mix["p_g_w"][7] > mix["p_g"][7]  # the tail class gains weight after re-weighting


def test_alpha_curves_match_the_schedule():
    curves = experiments.alpha_curves(4)
    np.testing.assert_allclose(curves["paper"], [1, 1 - 1 / 16, 1 - 4 / 16, 1 - 9 / 16])
    np.testing.assert_allclose(curves["constant"], 0.5)


@pytest.mark.slow
def test_the_stop_gradient_switch_reaches_training():
    """Without the stop-gradient, L_sim's gradient also moves the target side, so the same seed, data and
    draws train another model; with it, two runs repeat exactly (the switch, not the noise, makes the change)."""
    cfg = get_preset("digits-lt", epochs=1, image_size=8, batch_size=64, n_max=30, test_per_class=10,
                     imbalance_factor=5, progress=False, device="cpu", deterministic=True, gamma=4.0)
    data = prepare_data(cfg, progress=False)
    (h_sg, m_sg), (h_sg2, m_sg2), (h_free, m_free) = (
        experiments.consistency_experiment(cfg, data, stop_gradient=sg, probe_size=32) for sg in (True, True, False))
    assert h_sg == h_sg2
    assert h_sg[0]["loss_sim"] != h_free[0]["loss_sim"]
    changed = [n for (n, a), b in zip(m_sg.state_dict().items(), m_free.state_dict().values(), strict=True)
               if a.is_floating_point() and not np.allclose(a.numpy(), b.numpy())]
    assert any(n.startswith("proj") or n.startswith("encoder") for n in changed), changed


@pytest.mark.slow
def test_logit_adjustment_sweep_at_tau_zero_is_the_plain_model():
    from glmc_core.metrics import evaluate
    from glmc_core.train import fit

    cfg = get_preset("digits-lt", method="ce", epochs=1, image_size=8, batch_size=64, n_max=30, test_per_class=10,
                     imbalance_factor=5, progress=False, device="cpu")
    data = prepare_data(cfg, progress=False)
    state = fit(cfg, data=data, save=False, log=lambda _m: None)
    sweep = experiments.logit_adjustment_sweep(state.model, data, cfg, taus=(0.0, 1.0, 2.0))
    plain = evaluate(state.model, data.test, cfg, data, "cpu")
    assert sweep["top1"][0] == pytest.approx(plain["top1"]) and len(sweep["few"]) == 3


def test_lambda_draws_are_seeded_in_range_and_smaller_beta_is_more_often_nearly_pure():
    draws = experiments.lambda_draws((0.5, 2.0), draws=2000, seed=1)
    assert set(draws) == {0.5, 2.0} and all(len(v) == 2000 and v.min() >= 0 and v.max() <= 1 for v in draws.values())
    again = experiments.lambda_draws((0.5, 2.0), draws=2000, seed=1)
    assert all((draws[b] == again[b]).all() for b in draws)
    pure = {b: ((v < 0.1) | (v > 0.9)).mean() for b, v in draws.items()}
    assert pure[0.5] > pure[2.0]
