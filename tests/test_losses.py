"""Loss terms, the stop-gradient and the cumulative α schedule (glmc_core.losses)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from glmc_core.losses import (
    ALPHA_SCHEDULES,
    alpha_schedule,
    consistency_loss,
    glmc_loss,
    negative_cosine,
    soft_cross_entropy,
)
from glmc_core.mixing import class_weights, mix_labels, one_hot, reweight_labels


# ----------------------------------------------------------------------------------- α
@pytest.mark.parametrize("kind", ["paper", "linear", "cosine"])
def test_alpha_is_one_at_start_and_zero_at_end(kind):
    assert alpha_schedule(0, 200, kind) == pytest.approx(1.0)
    assert alpha_schedule(200, 200, kind) == pytest.approx(0.0, abs=1e-12)
    values = [alpha_schedule(t, 200, kind) for t in range(201)]
    assert all(a >= b for a, b in pairwise(values))  # non-increasing


@pytest.mark.parametrize("t", [0, 1, 37, 100, 150, 199, 200])
def test_paper_alpha_is_one_minus_squared_progress(t):
    assert alpha_schedule(t, 200, "paper") == pytest.approx(1 - (t / 200) ** 2)
    assert alpha_schedule(t, 200, "linear") == pytest.approx(1 - t / 200)
    assert alpha_schedule(t, 200, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * t / 200)))


def test_paper_alpha_at_half_time():
    assert alpha_schedule(50, 100) == pytest.approx(0.75)


def test_constant_alpha():
    assert [alpha_schedule(t, 10, "constant", constant=0.3) for t in (0, 5, 10)] == [0.3, 0.3, 0.3]


def test_unknown_alpha_schedule_and_bad_total():
    with pytest.raises(ValueError):
        alpha_schedule(0, 10, "exponential")
    with pytest.raises(ValueError):
        alpha_schedule(0, 0)
    assert set(ALPHA_SCHEDULES) == {"paper", "linear", "cosine", "constant"}


# ---------------------------------------------------------------------------- cross-entropy
def test_soft_cross_entropy_equals_cross_entropy_for_one_hot_targets():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 10, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot(y, 10)), F.cross_entropy(logits, y))


def test_soft_cross_entropy_equals_probability_target_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 5, generator=g)
    p = mix_labels(one_hot(torch.randint(0, 5, (8,), generator=g), 5),
                   one_hot(torch.randint(0, 5, (8,), generator=g), 5), 0.3)
    torch.testing.assert_close(soft_cross_entropy(logits, p), F.cross_entropy(logits, p))


# ---------------------------------------------------------------------------- stop-gradient
def test_negative_cosine_sends_no_gradient_to_target():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(4, 16, generator=g, requires_grad=True)
    z = torch.randn(4, 16, generator=g, requires_grad=True)
    loss = negative_cosine(p, z)
    loss.backward()
    assert z.grad is None
    assert p.grad is not None and float(p.grad.abs().sum()) > 0
    torch.testing.assert_close(loss.detach(), -F.cosine_similarity(p, z, dim=-1).mean().detach())


def test_consistency_loss_gradients_reach_predictions_only():
    g = torch.Generator().manual_seed(0)
    u_g, h_g, u_l, h_l = (torch.randn(4, 8, generator=g, requires_grad=True) for _ in range(4))
    loss = consistency_loss(u_g, h_g, u_l, h_l)
    loss.backward()
    assert h_g.grad is None and h_l.grad is None
    assert float(u_g.grad.abs().sum()) > 0 and float(u_l.grad.abs().sum()) > 0
    expected = -F.cosine_similarity(u_g, h_l).mean() - F.cosine_similarity(u_l, h_g).mean()
    torch.testing.assert_close(loss.detach(), expected.detach())


def test_consistency_loss_through_shared_projector_only_via_prediction_branch():
    """With u = predictor(h), the gradient on h comes from the u branch alone (sg on the other)."""
    g = torch.Generator().manual_seed(0)
    h_g = torch.randn(4, 8, generator=g, requires_grad=True)
    h_l = torch.randn(4, 8, generator=g, requires_grad=True)
    pred = torch.nn.Linear(8, 8)
    consistency_loss(pred(h_g), h_g, pred(h_l), h_l).backward()
    grad_full = h_g.grad.clone()
    h_g.grad = None
    # Gradient of the u_g term alone (the only place h_g enters with a gradient).
    (-F.cosine_similarity(pred(h_g), h_l.detach()).mean()).backward()
    torch.testing.assert_close(grad_full, h_g.grad)


def test_identical_views_have_minimal_consistency_loss():
    h = torch.randn(3, 8)
    assert float(consistency_loss(h, h, h, h)) == pytest.approx(-2.0, abs=1e-5)


# ------------------------------------------------------------------------------- GLMC total
def _outputs(seed: int, b: int = 6, c: int = 5, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(b, c if k.startswith("logits") else d, generator=g) for k in ("logits", "logits_cb", "h",
                                                                                          "u")}


def _targets(b: int = 6, c: int = 5, lam: float = 0.3, lam_l: float = 0.6):
    g = torch.Generator().manual_seed(9)
    p_u, p_r = one_hot(torch.randint(0, c, (b,), generator=g), c), one_hot(torch.randint(0, c, (b,), generator=g), c)
    w = class_weights([50, 20, 10, 5, 2][:c], 1.2)
    return {"p_g": mix_labels(p_u, p_r, lam), "p_l": mix_labels(p_u, p_r, lam_l),
            "p_g_w": mix_labels(reweight_labels(p_u, w), reweight_labels(p_r, w), lam),
            "p_l_w": mix_labels(reweight_labels(p_u, w), reweight_labels(p_r, w), lam_l)}


@pytest.mark.parametrize("alpha,gamma", [(1.0, 1.0), (0.75, 2.0), (0.0, 4.0), (0.4, 0.0)])
def test_glmc_loss_combines_terms(alpha, gamma):
    out_g, out_l, t = _outputs(0), _outputs(1), _targets()
    total, terms = glmc_loss(out_g, out_l, t, alpha, gamma)
    loss_c = 0.5 * (soft_cross_entropy(out_g["logits"], t["p_g"]) + soft_cross_entropy(out_l["logits"], t["p_l"]))
    loss_cb = 0.5 * (soft_cross_entropy(out_g["logits_cb"], t["p_g_w"])
                     + soft_cross_entropy(out_l["logits_cb"], t["p_l_w"]))
    loss_sim = consistency_loss(out_g["u"], out_g["h"], out_l["u"], out_l["h"]) if gamma else torch.tensor(0.0)
    torch.testing.assert_close(terms["loss_c"], loss_c)
    torch.testing.assert_close(terms["loss_cb"], loss_cb)
    torch.testing.assert_close(terms["loss_sim"], loss_sim)
    torch.testing.assert_close(total, alpha * loss_c + (1 - alpha) * loss_cb + gamma * loss_sim)
    torch.testing.assert_close(terms["total"], total)
    assert all(not v.requires_grad for v in terms.values())


def test_sum_reduction_doubles_cross_entropy_terms():
    out_g, out_l, t = _outputs(0), _outputs(1), _targets()
    _, mean = glmc_loss(out_g, out_l, t, 0.5, 1.0, reduction="mean")
    _, summed = glmc_loss(out_g, out_l, t, 0.5, 1.0, reduction="sum")
    torch.testing.assert_close(summed["loss_c"], 2 * mean["loss_c"])
    torch.testing.assert_close(summed["loss_cb"], 2 * mean["loss_cb"])
    torch.testing.assert_close(summed["loss_sim"], mean["loss_sim"])
    with pytest.raises(ValueError):
        glmc_loss(out_g, out_l, t, 0.5, 1.0, reduction="max")


def test_glmc_loss_backpropagates_into_every_head():
    torch.manual_seed(0)
    enc = torch.nn.Linear(4, 8)
    heads = {"logits": torch.nn.Linear(8, 5), "logits_cb": torch.nn.Linear(8, 5), "h": torch.nn.Linear(8, 8)}
    pred = torch.nn.Linear(8, 8)

    def net(x):
        r = enc(x)
        out = {k: m(r) for k, m in heads.items()}
        out["u"] = pred(out["h"])
        return out

    total, _ = glmc_loss(net(torch.randn(6, 4)), net(torch.randn(6, 4)), _targets(), 0.5, 1.0)
    total.backward()
    for m in (enc, pred, *heads.values()):
        assert m.weight.grad is not None and float(m.weight.grad.abs().sum()) > 0
