"""Mixtures, λ, the CutMix box and (re-weighted) soft labels (glmc_core.mixing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glmc_core.mixing import (
    Box,
    box_area_fraction,
    box_mask,
    class_weights,
    cutmix_label_weight,
    glmc_targets,
    global_mix,
    local_mix,
    mix_labels,
    one_hot,
    reweight_labels,
    sample_box,
    sample_lambda,
)


class _FixedCentre:
    """Stands in for a numpy Generator whose ``integers`` always returns the same centre coordinate."""

    def __init__(self, value):
        self.value = value

    def integers(self, high):
        return min(self.value, high - 1) if self.value >= 0 else high - 1


# ----------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("weight", [0.0, 0.13, 0.5, 0.87, 1.0])
def test_mixed_one_hot_labels_sum_to_one(weight):
    y_u, y_r = torch.tensor([0, 3, 9, 9]), torch.tensor([1, 3, 0, 9])
    p = mix_labels(one_hot(y_u, 10), one_hot(y_r, 10), weight)
    assert p.shape == (4, 10)
    torch.testing.assert_close(p.sum(1), torch.ones(4))
    # Same class on both sides: the label stays that one-hot row.
    torch.testing.assert_close(p[1], one_hot(torch.tensor([3]), 10)[0])


def test_mixed_soft_labels_sum_to_one():
    g = torch.Generator().manual_seed(0)
    p_u = torch.rand(8, 7, generator=g).softmax(1)
    p_r = torch.rand(8, 7, generator=g).softmax(1)
    for lam in (0.0, 0.3, 1.0):
        torch.testing.assert_close(mix_labels(p_u, p_r, lam).sum(1), torch.ones(8))


def test_global_and_local_labels_from_sampled_lambda_and_box_sum_to_one():
    rng = np.random.default_rng(1)
    p_u, p_r = one_hot(torch.tensor([0, 1, 2]), 5), one_hot(torch.tensor([4, 1, 3]), 5)
    for _ in range(50):
        lam = sample_lambda(rng, 0.5)
        box = sample_box(rng, 32, 32, lam)
        w_l = cutmix_label_weight(lam, box, 32, 32)
        for w in (lam, w_l):
            torch.testing.assert_close(mix_labels(p_u, p_r, w).sum(1), torch.ones(3))


def test_one_hot_rows():
    p = one_hot(torch.tensor([2, 0]), 4)
    assert p.dtype == torch.float32
    assert p.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]


# ------------------------------------------------------------------------------ class weights
@pytest.mark.parametrize("k", [0.0, 0.5, 1.0, 1.2, 2.0])
def test_class_weights_sum_to_num_classes(k):
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    w = class_weights(counts, k)
    assert w.shape == (10,)
    assert float(w.sum()) == pytest.approx(10.0, rel=1e-5)
    if k > 0:  # the tail gets more weight, monotonically
        assert torch.all(w[1:] > w[:-1])


def test_class_weights_k0_all_ones():
    torch.testing.assert_close(class_weights([500, 50, 5], 0.0), torch.ones(3))


def test_class_weights_follow_power_law():
    w = class_weights([100, 25], 0.5)  # n^-0.5: 0.1 and 0.2, normalised to sum 2
    torch.testing.assert_close(w, torch.tensor([2 / 3, 4 / 3]))


def test_class_weights_refuse_empty_class():
    with pytest.raises(ValueError):
        class_weights([10, 0, 3], 1.0)


def test_reweighted_labels_scale_each_class():
    w = class_weights([100, 10, 1], 1.0)
    p = mix_labels(one_hot(torch.tensor([0, 2]), 3), one_hot(torch.tensor([1, 1]), 3), 0.25)
    pw = reweight_labels(p, w)
    torch.testing.assert_close(pw, p * w[None, :])
    # Averaged over classes uniformly, the weights keep the label mass: sum_c w_c / C = 1.
    torch.testing.assert_close(reweight_labels(torch.full((1, 3), 1 / 3), w).sum(), torch.tensor(1.0))


# ------------------------------------------------------------------------------------ lambda
def test_sample_lambda_small_beta_gives_extreme_values():
    rng = np.random.default_rng(0)
    lam = np.array([sample_lambda(rng, 0.1) for _ in range(4000)])
    assert np.all((lam >= 0) & (lam <= 1))
    extreme = np.minimum(lam, 1 - lam) < 0.1
    assert extreme.mean() > 0.7  # Beta(0.1, 0.1): about 0.77
    assert abs(lam.mean() - 0.5) < 0.05


def test_sample_lambda_large_beta_concentrates_at_half():
    rng = np.random.default_rng(0)
    lam = np.array([sample_lambda(rng, 50.0) for _ in range(4000)])
    assert abs(lam.mean() - 0.5) < 0.01
    assert lam.std() == pytest.approx(math.sqrt(1 / (4 * 101)), rel=0.1)  # Var Beta(b,b) = 1/(4(2b+1))
    assert np.all(np.abs(lam - 0.5) < 0.25)


def test_authors_beta_draws_uniform_whatever_beta():
    rng = np.random.default_rng(0)
    lam = np.array([sample_lambda(rng, 0.1, authors_beta=True) for _ in range(4000)])
    assert abs(lam.mean() - 0.5) < 0.02
    assert lam.var() == pytest.approx(1 / 12, rel=0.08)
    hist, _ = np.histogram(lam, bins=10, range=(0, 1))
    assert hist.min() > 300 and hist.max() < 500  # flat: 400 expected per bin


def test_sample_lambda_is_seeded():
    a = [sample_lambda(np.random.default_rng(3), 0.5) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_sample_lambda_refuses_non_positive_beta(beta):
    with pytest.raises(ValueError):
        sample_lambda(np.random.default_rng(0), beta)


# ------------------------------------------------------------------------------- CutMix box
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size", [(32, 32), (16, 24)])
def test_local_mix_pixel_mean_equals_area_label_weight(seed, size):
    """All-ones x_u pasted with an all-zeros box from x_r: the image mean is the label weight."""
    h, w = size
    rng = np.random.default_rng(seed)
    lam = sample_lambda(rng, 0.5)
    box = sample_box(rng, h, w, lam)
    x_l = local_mix(torch.ones(2, 3, h, w), torch.zeros(2, 3, h, w), box)
    assert float(x_l.mean()) == pytest.approx(cutmix_label_weight(lam, box, h, w, mode="area"), abs=1e-6)
    # The paper's mask M (0 in the box) gives the same mixture.
    m = box_mask(h, w, box)
    torch.testing.assert_close(x_l, m * torch.ones(2, 3, h, w) + (1 - m) * torch.zeros(2, 3, h, w))


@pytest.mark.parametrize("centre", [0, -1])  # top-left corner, bottom-right corner
def test_box_is_clipped_at_borders_and_area_weight_exceeds_lambda(centre):
    lam = 0.3
    box = sample_box(_FixedCentre(centre), 32, 32, lam)
    assert 0 <= box.y0 <= box.y1 <= 32 and 0 <= box.x0 <= box.x1 <= 32
    assert (box.y0 == 0 and box.x0 == 0) if centre == 0 else (box.y1 == 32 and box.x1 == 32)
    assert box_area_fraction(box, 32, 32) < 1 - lam  # a clipped box covers less than 1-λ
    x_l = local_mix(torch.ones(1, 1, 32, 32), torch.zeros(1, 1, 32, 32), box)
    assert float(x_l.mean()) == pytest.approx(cutmix_label_weight(lam, box, 32, 32, "area"))
    assert cutmix_label_weight(lam, box, 32, 32, "area") > lam
    assert cutmix_label_weight(lam, box, 32, 32, "lambda") == lam


def test_box_side_is_sqrt_one_minus_lambda_when_not_clipped():
    rng = np.random.default_rng(0)
    h, w = 32, 48
    unclipped = 0
    for _ in range(400):
        lam = float(rng.uniform(0.05, 0.95))
        box = sample_box(rng, h, w, lam)
        assert 0 <= box.y0 <= box.y1 <= h and 0 <= box.x0 <= box.x1 <= w
        if box.y0 > 0 and box.x0 > 0 and box.y1 < h and box.x1 < w:
            unclipped += 1
            assert box.y1 - box.y0 == math.ceil(h * math.sqrt(1 - lam))
            assert box.x1 - box.x0 == math.ceil(w * math.sqrt(1 - lam))
            assert box_area_fraction(box, h, w) == pytest.approx(1 - lam, abs=2 * (1 / h + 1 / w))
    assert unclipped > 20


def test_box_for_lambda_one_is_empty_and_lambda_zero_covers_what_fits():
    rng = np.random.default_rng(0)
    assert sample_box(rng, 32, 32, 1.0).area == 0
    assert cutmix_label_weight(1.0, sample_box(rng, 32, 32, 1.0), 32, 32) == 1.0
    centred = sample_box(_FixedCentre(16), 32, 32, 0.0)
    assert centred == Box(0, 32, 0, 32)


def test_cutmix_label_weight_lambda_mode_and_bad_mode():
    box = Box(0, 10, 0, 10)
    assert cutmix_label_weight(0.42, box, 32, 32, mode="lambda") == 0.42
    assert cutmix_label_weight(0.42, box, 32, 32, mode="area") == pytest.approx(1 - 100 / 1024)
    with pytest.raises(ValueError):
        cutmix_label_weight(0.42, box, 32, 32, mode="other")


def test_global_mix_is_convex_combination():
    g = torch.Generator().manual_seed(0)
    x_u, x_r = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    torch.testing.assert_close(global_mix(x_u, x_r, 1.0), x_u)
    torch.testing.assert_close(global_mix(x_u, x_r, 0.0), x_r)
    torch.testing.assert_close(global_mix(x_u, x_r, 0.25), 0.25 * x_u + 0.75 * x_r)


def test_local_mix_leaves_inputs_untouched():
    x_u, x_r = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    out = local_mix(x_u, x_r, Box(2, 5, 1, 4))
    assert float(x_u.min()) == 1.0 and float(x_r.max()) == 0.0
    assert float(out[..., 2:5, 1:4].abs().sum()) == 0.0
    assert float(out.sum()) == 3 * (64 - 9)


@pytest.mark.parametrize("mode", ["area", "lambda"])
def test_glmc_targets_mix_one_hot_and_reweighted_labels_from_a_box_or_a_tensor(mode):
    rng = np.random.default_rng(3)
    lam = sample_lambda(rng, 0.5)
    box = sample_box(rng, 16, 16, lam)
    y_u, y_r = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 3, 0, 1])
    w = class_weights([50, 20, 5, 2], 1.2)
    t = glmc_targets(y_u, y_r, 4, w, lam, box, 16, 16, mode)
    lam_l = cutmix_label_weight(lam, box, 16, 16, mode)
    torch.testing.assert_close(t["p_g"].sum(1), torch.ones(4))
    torch.testing.assert_close(t["p_l"].sum(1), torch.ones(4))
    torch.testing.assert_close(t["p_g_w"].sum(1), lam * w[y_u] + (1 - lam) * w[y_r])
    torch.testing.assert_close(t["p_l_w"].sum(1), lam_l * w[y_u] + (1 - lam_l) * w[y_r])
    assert float(t["p_l"][0, 0]) == pytest.approx(lam_l) and float(t["p_l"][0, 3]) == pytest.approx(1 - lam_l)
    # the fast path's device tensors give the very same targets (no host value read)
    on_device = glmc_targets(y_u, y_r, 4, w, torch.tensor(lam, dtype=torch.float64), torch.tensor(tuple(box)),
                             16, 16, mode)
    for k in t:
        torch.testing.assert_close(on_device[k], t[k], rtol=0, atol=0)


def test_local_mix_from_a_tensor_box_equals_the_box():
    rng = np.random.default_rng(1)
    for _ in range(10):
        lam = sample_lambda(rng, 0.5)
        box = sample_box(rng, 12, 10, lam)
        x_u, x_r = torch.rand(2, 3, 12, 10), torch.rand(2, 3, 12, 10)
        want = x_u.clone()
        want[..., box.y0 : box.y1, box.x0 : box.x1] = x_r[..., box.y0 : box.y1, box.x0 : box.x1]
        torch.testing.assert_close(local_mix(x_u, x_r, box), want, rtol=0, atol=0)
        torch.testing.assert_close(local_mix(x_u, x_r, torch.tensor(tuple(box))), want, rtol=0, atol=0)
        assert float(box_area_fraction(torch.tensor(tuple(box)), 12, 10)) == pytest.approx(box.area / 120)
