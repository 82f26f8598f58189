"""The notebooks' configuration from the environment, the stop-gradient switch and the small experiments."""

from __future__ import annotations

import pytest
import torch

from glmc_core import teaching
from glmc_core.data import prepare_data
from glmc_core.errors import GLMCError
from glmc_core.losses import consistency_loss, negative_cosine


def test_notebook_config_offline_digits_by_default(monkeypatch):
    monkeypatch.delenv("GLMC_QUICK", raising=False)
    cfg, note = teaching.notebook_config(quick=True)
    assert cfg.dataset == "digits" and cfg.model == "resnet8" and cfg.epochs == 8
    assert "offline digits" in note and "QUICK" in note
    assert teaching.notebook_config(quick=True, quick_epochs=3)[0].epochs == 3


def test_notebook_config_reads_the_environment(monkeypatch):
    monkeypatch.setenv("GLMC_DATA_ROOT", "/some/cifar10.zip")
    monkeypatch.setenv("GLMC_QUICK", "1")
    cfg, note = teaching.notebook_config(quick=False, epochs=2)
    assert cfg.dataset == "cifar10" and cfg.data_root == "/some/cifar10.zip"
    assert cfg.model == "resnet8" and cfg.n_max == 300 and cfg.test_per_class == 100 and cfg.epochs == 2
    assert "CIFAR-10-LT" in note
    monkeypatch.setenv("GLMC_QUICK", "0")
    cfg, note = teaching.notebook_config(quick=True)
    assert cfg.model == "resnet32-wide" and cfg.epochs == 200 and "FULL" in note
    monkeypatch.setenv("GLMC_QUICK", "maybe")
    with pytest.raises(GLMCError, match="GLMC_QUICK"):
        teaching.notebook_config()


def test_stop_gradient_switch():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    negative_cosine(p, z).backward()
    assert z.grad is None and p.grad is not None
    loss = negative_cosine(p, z, stop_gradient=False)
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    u_g, h_g, u_l, h_l = (torch.randn(3, 5) for _ in range(4))
    assert consistency_loss(u_g, h_g, u_l, h_l) == pytest.approx(float(consistency_loss(u_g, h_g, u_l, h_l, False)))


@pytest.mark.slow
def test_consistency_experiment_and_schedule_runs_are_short_real_runs():
    cfg, _ = teaching.notebook_config(quick=True, epochs=1, n_max=30, test_per_class=10, imbalance_factor=5)
    data = prepare_data(cfg, progress=False)
    for sg in (True, False):
        hist, model = teaching.consistency_experiment(cfg, data, stop_gradient=sg, probe_size=32)
        assert model.num_classes == 10
        assert len(hist) == 1 and 0 <= hist[0]["h_var"] <= 1 and -2 <= hist[0]["loss_sim"] <= 2
    runs = teaching.compare_schedules(cfg, data, ("paper", "constant"))
    assert runs["paper"][0]["alpha"] == 1.0 and runs["constant"][0]["alpha"] == 0.5
