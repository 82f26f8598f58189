"""One step's loss per method (glmc_core.methods): written once, whatever forward it is handed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glmc_core import mixing
from glmc_core.config import METHODS
from glmc_core.losses import glmc_loss
from glmc_core.methods import METHOD_SPECS, STEP_LOSSES, StepContext, step_loss

C, B, H = 4, 6, 8
WEIGHTS = mixing.class_weights([40, 12, 5, 2], 1.2)


class _Tiny(torch.nn.Module):
    """Flatten + the four heads: enough network for a step, fast on the CPU."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(3 * H * H, 16)
        self.fc, self.fc_cb, self.h, self.u = (torch.nn.Linear(16, C), torch.nn.Linear(16, C),
                                               torch.nn.Linear(16, 8), torch.nn.Linear(8, 8))

    def forward(self, x):
        r = torch.relu(self.enc(x.flatten(1)))
        h = self.h(r)
        return {"features": r, "logits": self.fc(r), "logits_cb": self.fc_cb(r), "h": h, "u": self.u(h)}


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {k: torch.randn(B, 3, H, H, generator=g) for k in ("x_u1", "x_u2", "x_r1", "x_r2")}
    b.update(y_u=torch.randint(0, C, (B,), generator=g), y_r=torch.randint(0, C, (B,), generator=g))
    return b


BOX = mixing.Box(1, 6, 2, 7)


def _ctx(lam=0.3, box=BOX, **kw):
    return StepContext(lam, box, kw.pop("alpha", 0.6), kw.pop("gamma", 2.0), WEIGHTS, C, **kw)


def test_the_registry_covers_every_method_and_says_what_the_fast_path_serves():
    assert set(METHOD_SPECS) == set(METHODS)
    for name, spec in METHOD_SPECS.items():
        assert spec.cumulative == (spec.inference_head == "fc_cb"), name  # what α trains is what predicts
        assert not (spec.fast and spec.partner), name  # in-batch partners are drawn on the host: reference only
    assert {m for m, s in METHOD_SPECS.items() if s.fast} >= {"glmc", "ce"}


def test_each_registry_entry_names_a_step_loss_and_says_how_its_model_is_built():
    assert {s.loss for s in METHOD_SPECS.values()} == set(STEP_LOSSES)  # every loss named, none left over
    for name, spec in METHOD_SPECS.items():
        assert spec.inference_head in ("fc", "fc_cb") and spec.classifier in ("linear", "cosine"), name
        assert spec.ce_weights in (None, "cb", "drw"), name
        assert METHODS[name] == spec.description  # config.METHODS is derived from the one registry


def test_the_glmc_step_hands_its_forward_both_mixtures_and_scores_the_four_targets():
    b, seen = _batch(), []
    model = _Tiny()

    def recording_forward(net, batches):
        seen.append([x.clone() for x in batches])
        return [net(x) for x in batches]

    ctx = _ctx(forward=recording_forward)
    loss, terms = step_loss("glmc", model, b, ctx)
    (x_g, x_l), = seen
    torch.testing.assert_close(x_g, mixing.global_mix(b["x_u1"], b["x_r1"], ctx.lam))
    torch.testing.assert_close(x_l, mixing.local_mix(b["x_u2"], b["x_r2"], ctx.box))
    targets = mixing.glmc_targets(b["y_u"], b["y_r"], C, WEIGHTS, ctx.lam, ctx.box, H, H)
    want, _ = glmc_loss(model(x_g), model(x_l), targets, ctx.alpha, ctx.gamma)
    want = float(want.detach())
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6) and float(terms["total"]) == pytest.approx(want)


def test_host_values_and_device_tensors_give_the_same_step():
    """The reference step (a Box, a float λ) and the fast path (tensors) share one function: same loss, same grads."""
    b = _batch(1)
    rng = np.random.default_rng(5)
    lam = mixing.sample_lambda(rng, 0.5)
    box = mixing.sample_box(rng, H, H, lam)
    grads = []
    for ctx in (_ctx(lam, box), _ctx(torch.tensor(lam, dtype=torch.float64), torch.tensor(tuple(box)),
                                     alpha=torch.tensor(0.6))):
        model = _Tiny()
        loss, _ = step_loss("glmc", model, b, ctx)
        loss.backward()
        grads.append((float(loss.detach()), [p.grad.clone() for p in model.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for g0, g1 in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(g0, g1)


def test_the_ablations_drop_exactly_their_part():
    b, model = _batch(2), _Tiny()
    _, full = step_loss("glmc", model, b, _ctx())
    _, no_sim = step_loss("glmc-no-consistency", model, b, _ctx())
    _, no_cum = step_loss("glmc-no-cumulative", model, b, _ctx())
    assert float(no_sim["loss_sim"]) == 0.0 and float(no_sim["loss_c"]) == pytest.approx(float(full["loss_c"]))
    assert float(no_sim["total"]) == pytest.approx(float(full["total"] - 2.0 * full["loss_sim"]), rel=1e-5)
    assert float(no_cum["total"]) == pytest.approx(float(full["loss_c"] + 2.0 * full["loss_sim"]), rel=1e-5)


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_the_stop_gradient_switch_reaches_the_loss_through_any_forward(stop_gradient):
    """With sg, L_sim sends no gradient into the projections it uses as targets; without it, it does."""
    outs = []

    def leaf_forward(_net, batches):  # outputs as leaf tensors: their gradients show where L_sim pulls
        g = torch.Generator().manual_seed(len(outs))
        res = [{k: torch.randn(x.shape[0], n, generator=g, requires_grad=True)
                for k, n in (("logits", C), ("logits_cb", C), ("h", 8), ("u", 8))} for x in batches]
        outs.extend(res)
        return res

    loss, _ = step_loss("glmc", None, _batch(), _ctx(forward=leaf_forward, stop_gradient=stop_gradient))
    loss.backward()
    out_g, out_l = outs
    assert out_g["u"].grad.abs().sum() > 0 and out_l["u"].grad.abs().sum() > 0
    for h in (out_g["h"], out_l["h"]):
        assert (h.grad is None) == stop_gradient
