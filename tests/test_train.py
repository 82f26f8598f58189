"""The training loop on the CPU: repeatable seeded runs, a falling loss, every method's step (glmc_core.train)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glmc_core import analysis as A
from glmc_core import mixing
from glmc_core.config import METHODS, get_preset
from glmc_core.data import prepare_data
from glmc_core.errors import GLMCError
from glmc_core.methods import StepContext, method_extras, step_loss
from glmc_core.train import build_state, fit, lr_at, train_or_reuse

_TIMING = {"seconds", "train_seconds"}


def _tiny(**overrides):
    """digits-lt cut down to ~100 training images: a CPU epoch takes about a second."""
    base = dict(epochs=2, n_max=40, test_per_class=20, batch_size=32, progress=False, device="cpu")
    return get_preset("digits-lt", **{**base, **overrides})


@pytest.fixture(scope="module")
def tiny_data():
    return prepare_data(_tiny(), progress=False)


def test_lr_schedule():
    cfg = get_preset("digits-lt", epochs=10, lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(5, cfg) == pytest.approx(0.05)
    assert lr_at(9, cfg) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.9)))
    warm = cfg.replace(warmup_epochs=2)
    assert [lr_at(e, warm) for e in (0, 1)] == pytest.approx([0.05, 0.1])
    assert lr_at(2, warm) == pytest.approx(0.1)


def test_two_seeded_cpu_runs_are_identical(tiny_data):
    runs = [fit(_tiny(), data=tiny_data, save=False, log=lambda _: None) for _ in range(2)]
    a, b = ([{k: v for k, v in r.items() if k not in _TIMING} for r in s.history] for s in runs)
    assert len(a) == 2 and a == b
    for (name, p), q in zip(runs[0].model.state_dict().items(), runs[1].model.state_dict().values(),
                               strict=True):
        assert torch.equal(p, q), name
    # A different seed gives a different run.
    other = fit(_tiny(seed=1, epochs=1), data=tiny_data, save=False, log=lambda _: None)
    assert other.history[0]["total"] != a[0]["total"]


def test_history_records_and_callbacks(tiny_data):
    events = []
    state = fit(_tiny(epochs=1), data=tiny_data, save=False, log=lambda _: None,
                callbacks=[lambda e, p: events.append(e)])
    assert events.count("epoch_end") == 1 and events[-1] == "end"
    (rec,) = state.history
    assert rec["epoch"] == 1 and rec["alpha"] == pytest.approx(1.0)
    for key in ("top1", "many", "medium", "few", "loss_c", "loss_cb", "loss_sim", "total", "lr", "lambda_mean"):
        assert key in rec
    assert 0.0 <= rec["top1"] <= 100.0 and len(rec["per_class"]) == 10
    assert rec["total"] == pytest.approx(rec["alpha"] * rec["loss_c"] + (1 - rec["alpha"]) * rec["loss_cb"]
                                         + 1.0 * rec["loss_sim"], rel=1e-4, abs=1e-4)
    assert state.best["epoch"] == 1 and state.best["top1"] == rec["top1"]


def test_short_cpu_run_lowers_the_loss():
    cfg = get_preset("digits-lt", method="ce", epochs=4, n_max=60, imbalance_factor=5, progress=False, device="cpu")
    state = fit(cfg, save=False, log=lambda _: None)
    losses = [r["total"] for r in state.history]
    assert losses[-1] < 0.8 * losses[0], losses


def test_stop_before_the_first_step(tiny_data):
    stopped = fit(_tiny(epochs=2), data=tiny_data, save=False, log=lambda _: None, stop=lambda: True)
    assert stopped.epoch == 0 and stopped.history == []


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_step_is_finite_and_trains_its_heads(method, tiny_data):
    cfg = _tiny(method=method)
    state = build_state(cfg, tiny_data)
    batch = next(iter(state.stream))
    rng = np.random.default_rng(0)
    lam = mixing.sample_lambda(rng, 0.5)
    b, _, h, w = batch["x_u1"].shape
    partner = torch.from_numpy(rng.permutation(b))
    extras = method_extras(cfg, tiny_data.counts, cfg.epochs - 1, state.device)  # DRW's re-weighted phase
    ctx = StepContext(lam, mixing.sample_box(rng, h, w, lam), 0.5, 1.0, state.class_weights, 10, partner=partner,
                      **extras)
    loss, terms = step_loss(method, state.model, batch, ctx)
    assert torch.isfinite(loss) and set(terms) == {"loss_c", "loss_cb", "loss_sim", "total"}
    loss.backward()
    assert float(state.model.fc.weight.grad.abs().sum()) > 0
    trains_cb = method in ("glmc", "glmc-no-consistency", "cumulative-only", "glmc-bs")
    cb_grad = state.model.fc_cb.weight.grad
    assert (cb_grad is not None and float(cb_grad.abs().sum()) > 0) == trains_cb
    uses_sim = method in ("glmc", "glmc-no-cumulative", "glmc-bs")
    pred_grad = state.model.predictor.weight.grad
    assert (pred_grad is not None and float(pred_grad.abs().sum()) > 0) == uses_sim


def test_stream_batches(tiny_data):
    state = build_state(_tiny(), tiny_data)
    batches = list(state.stream)
    assert len(batches) == len(state.stream) == math.ceil(len(tiny_data.train) / 32)
    first = batches[0]
    assert first["x_u1"].shape == (32, 3, 16, 16) and first["x_u1"].dtype == torch.float32
    assert not torch.equal(first["x_u1"], first["x_u2"])  # two independently augmented views
    assert sorted(torch.cat([b["y_u"] for b in batches]).tolist()) == sorted(tiny_data.train.labels.tolist())


@pytest.mark.slow
def test_train_or_reuse_trains_then_reuses_and_refuses_another_config(tmp_path, monkeypatch):
    cfg = get_preset("digits-lt", method="ce", epochs=1, image_size=8, batch_size=64, out=str(tmp_path),
                     run_name="ce", progress=False, device="cpu")
    run_dir = train_or_reuse(cfg, log=lambda _m: None)
    assert A.load_run(run_dir).finished
    messages = []

    def no_training(*_a, **_k):
        raise AssertionError("a finished run must be reused")

    monkeypatch.setattr("glmc_core.train.fit", no_training)
    assert train_or_reuse(cfg, log=messages.append) == run_dir and "already trained" in messages[0]
    with pytest.raises(GLMCError, match="another configuration"):
        train_or_reuse(cfg.replace(epochs=2), log=messages.append)
    # precision "auto" reuses the run whatever it resolved to; an explicit other precision is another run
    saved = A.load_run(run_dir).config.precision
    assert saved in ("bf16", "fp32") and train_or_reuse(cfg.replace(precision=saved), log=messages.append) == run_dir
    with pytest.raises(GLMCError, match="another configuration"):
        train_or_reuse(cfg.replace(precision="fp32" if saved == "bf16" else "bf16"), log=messages.append)
