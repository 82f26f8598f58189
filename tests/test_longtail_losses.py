"""Long-tail losses beyond the paper, each against a direct computation of its formula, and their methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from glmc_core import longtail_losses as ltl
from glmc_core import mixing
from glmc_core.config import METHODS, get_preset
from glmc_core.methods import METHOD_SPECS, StepContext, build_method_model, method_extras, step_loss
from glmc_core.models import NormedLinear

COUNTS = [50, 20, 7, 3]


def _logits(seed=0, b=6, c=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=torch.float64) * 2, torch.randint(0, c, (b,), generator=g)


def _softmax_row(z):
    e = [math.exp(v) for v in z]
    s = sum(e)
    return [v / s for v in e]


def test_balanced_softmax_matches_formula():
    z, y = _logits()
    direct = 0.0
    for i in range(len(y)):
        num = COUNTS[y[i]] * math.exp(z[i, y[i]])
        den = sum(n * math.exp(z[i, j]) for j, n in enumerate(COUNTS))
        direct += -math.log(num / den)
    direct /= len(y)
    assert ltl.balanced_softmax_loss(z, y, COUNTS).item() == pytest.approx(direct, rel=1e-5)
    # soft labels: the same value for one-hot rows; equal counts: plain cross-entropy
    p = F.one_hot(y, 4).double()
    assert ltl.balanced_softmax_loss(z, p, COUNTS).item() == pytest.approx(direct, rel=1e-5)
    assert ltl.balanced_softmax_loss(z, y, [5] * 4).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-5)


def test_cb_weights_effective_number_matches_formula():
    beta = 0.99
    raw = [(1 - beta) / (1 - beta ** n) for n in COUNTS]
    direct = [w / sum(raw) * len(COUNTS) for w in raw]
    got = ltl.cb_weights_effective_number(COUNTS, beta)
    assert got.tolist() == pytest.approx(direct, rel=1e-5)
    assert got.sum().item() == pytest.approx(len(COUNTS), rel=1e-5)
    assert torch.all(got[1:] > got[:-1])  # rarer classes weigh more
    assert ltl.cb_weights_effective_number(COUNTS, 0.0).tolist() == pytest.approx([1.0] * 4)
    with pytest.raises(ValueError):
        ltl.cb_weights_effective_number(COUNTS, 1.0)


def test_focal_loss_matches_formula_and_reduces_to_cross_entropy():
    z, y = _logits(1)
    w = torch.tensor([0.2, 0.5, 1.3, 2.0])
    gamma = 2.0
    num = den = 0.0
    for i in range(len(y)):
        p = _softmax_row(z[i].tolist())[y[i]]
        num += w[y[i]].item() * -((1 - p) ** gamma) * math.log(p)
        den += w[y[i]].item()
    assert ltl.focal_loss(z, y, gamma, w).item() == pytest.approx(num / den, rel=1e-5)
    assert ltl.focal_loss(z, y, 0.0).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-5)
    assert ltl.focal_loss(z, y, 0.0, w).item() == pytest.approx(F.cross_entropy(z, y, weight=w.double()).item(),
                                                                rel=1e-5)
    assert ltl.focal_loss(z, y, 2.0).item() < ltl.focal_loss(z, y, 0.0).item()  # down-weights easy examples


def test_ldam_margins_and_loss_match_formula():
    m = ltl.ldam_margins(COUNTS, 0.5)
    assert m.tolist() == pytest.approx([0.5 * (min(COUNTS) / n) ** 0.25 for n in COUNTS], rel=1e-5)
    head = NormedLinear(3, 4, scale=30.0)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 3, 3])
    logits = head(x)
    total = 0.0
    for i in range(5):
        xi = x[i] / x[i].norm()
        wt = head.weight.detach()
        cos = [float(xi @ (wt[j] / wt[j].norm())) for j in range(4)]
        assert logits[i].tolist() == pytest.approx([30 * c for c in cos], rel=1e-4, abs=1e-4)
        z = [30 * (c - (m[j].item() if j == y[i] else 0.0)) for j, c in enumerate(cos)]
        total += -math.log(_softmax_row(z)[y[i]])
    assert ltl.ldam_loss(logits, y, m, 30.0).item() == pytest.approx(total / 5, rel=1e-4)
    w = torch.tensor([0.1, 0.4, 1.5, 2.0])
    zero = ltl.ldam_loss(logits, y, torch.zeros(4), 30.0, w).item()
    assert zero == pytest.approx(F.cross_entropy(logits, y, weight=w).item(), rel=1e-5)


def test_drw_switches_at_the_given_fraction():
    assert ltl.drw_weights(159, 200, COUNTS).tolist() == [1.0] * 4
    cb = ltl.cb_weights_effective_number(COUNTS, 0.9999)
    assert torch.equal(ltl.drw_weights(160, 200, COUNTS), cb)
    assert torch.equal(ltl.drw_weights(1, 2, COUNTS, start_fraction=0.5), cb)


def test_logit_adjust_matches_formula_and_tau_zero_is_plain_argmax():
    z, _ = _logits(3, b=50)
    z = z.float()
    prior = np.array(COUNTS) / sum(COUNTS)
    tau = 0.7
    direct = z.numpy() - tau * np.log(prior)[None]
    assert ltl.logit_adjust(z, COUNTS, tau).numpy() == pytest.approx(direct, rel=1e-5, abs=1e-5)
    assert torch.equal(ltl.logit_adjust(z, COUNTS, 0.0).argmax(1), z.argmax(1))
    # a tie between a head and a tail class goes to the tail class after adjustment
    tie = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert int(ltl.logit_adjust(tie, COUNTS, 1.0).argmax(1)) == 3


# --- methods on a tiny batch --------------------------------------------------------------------

NEW_METHODS = ["glmc-bs", "balanced-softmax", "cb-ce", "focal", "cb-focal", "ldam-drw"]


def _batch(seed=0, b=8, c=4):
    g = torch.Generator().manual_seed(seed)
    x = lambda: torch.randn(b, 3, 8, 8, generator=g)  # noqa: E731
    return {"x_u1": x(), "x_u2": x(), "y_u": torch.randint(0, c, (b,), generator=g),
            "x_r1": x(), "x_r2": x(), "y_r": torch.randint(0, c, (b,), generator=g)}


def _ctx(cfg, counts, k=1.2, epoch=0):
    rng = np.random.default_rng(0)
    lam = mixing.sample_lambda(rng, 0.5)
    return StepContext(lam, mixing.sample_box(rng, 8, 8, lam), 0.6, 1.0, mixing.class_weights(counts, k),
                       len(counts), **method_extras(cfg, counts, epoch, torch.device("cpu")))


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    return build_method_model(cfg, 4).eval()  # eval: BatchNorm uses fixed statistics, so losses repeat


@pytest.mark.parametrize("method", NEW_METHODS)
def test_new_methods_give_finite_loss_and_gradients(method):
    assert method in METHODS and method in METHOD_SPECS
    cfg = get_preset("digits-lt", model="resnet8", method=method, epochs=10)
    model = _model(cfg)
    loss, terms = step_loss(method, model, _batch(), _ctx(cfg, COUNTS))
    assert torch.isfinite(loss) and set(terms) >= {"loss_c", "loss_cb", "loss_sim", "total"}
    loss.backward()
    head = model.fc_cb if METHOD_SPECS[method].inference_head == "fc_cb" else model.fc
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_ldam_drw_uses_a_cosine_head_and_defers_weights():
    cfg = get_preset("digits-lt", model="resnet8", method="ldam-drw", epochs=10)
    assert isinstance(_model(cfg).fc, NormedLinear)
    assert method_extras(cfg, COUNTS, 7, "cpu")["ce_weights"].tolist() == [1.0] * 4
    assert method_extras(cfg, COUNTS, 8, "cpu")["ce_weights"].tolist() != [1.0] * 4


def test_reductions_to_plain_methods_with_equal_counts():
    counts, b = [10] * 4, _batch(1)
    ce_cfg = get_preset("digits-lt", model="resnet8", method="ce")
    ce = step_loss("ce", _model(ce_cfg), b, _ctx(ce_cfg, counts))[0]
    for method in ("balanced-softmax", "cb-ce"):
        cfg = get_preset("digits-lt", model="resnet8", method=method)
        assert step_loss(method, _model(cfg), b, _ctx(cfg, counts))[0].item() == pytest.approx(ce.item(), rel=1e-5)
    # GLMC + BS with equal counts: the log n shift cancels and GLMC's weights are all ones (k = 0)
    g_cfg = get_preset("digits-lt", model="resnet8", method="glmc")
    bs_cfg = get_preset("digits-lt", model="resnet8", method="glmc-bs")
    glmc = step_loss("glmc", _model(g_cfg), b, _ctx(g_cfg, counts, k=0.0))[0]
    glmc_bs = step_loss("glmc-bs", _model(bs_cfg), b, _ctx(bs_cfg, counts, k=1.2))[0]
    assert glmc_bs.item() == pytest.approx(glmc.item(), rel=1e-5)


def test_glmc_bs_differs_from_glmc_on_long_tailed_counts():
    b = _batch(2)
    g_cfg = get_preset("digits-lt", model="resnet8", method="glmc")
    bs_cfg = get_preset("digits-lt", model="resnet8", method="glmc-bs")
    glmc = step_loss("glmc", _model(g_cfg), b, _ctx(g_cfg, COUNTS))[1]
    glmc_bs = step_loss("glmc-bs", _model(bs_cfg), b, _ctx(bs_cfg, COUNTS))[1]
    assert glmc_bs["loss_c"].item() == pytest.approx(glmc["loss_c"].item(), rel=1e-6)  # fc branch untouched
    assert glmc_bs["loss_cb"].item() != pytest.approx(glmc["loss_cb"].item(), rel=1e-3)


def test_config_refuses_bad_baseline_parameters():
    from glmc_core.errors import GLMCError

    with pytest.raises(GLMCError, match="cb_beta"):
        get_preset("digits-lt", cb_beta=1.0)
    with pytest.raises(GLMCError, match="focal_gamma"):
        get_preset("digits-lt", focal_gamma=-1)
