"""MaxNorm: the projection keeps every class row inside the ball; fine-tuning touches only the classifier."""

from __future__ import annotations

import json

import pytest
import torch

from glmc_core.config import get_preset
from glmc_core.errors import GLMCError
from glmc_core.extras.maxnorm import finetune_maxnorm, maxnorm_project_, relative_radius, row_norms
from glmc_core.train import fit


def test_projection_caps_every_row_and_keeps_directions():
    w = torch.randn(10, 6, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 3, 10)[:, None]
    before = w.clone()
    delta = float(row_norms(w).median())
    maxnorm_project_(w, delta)
    norms = row_norms(w)
    assert torch.all(norms <= delta * (1 + 1e-6))
    inside = row_norms(before) <= delta
    assert torch.equal(w[inside], before[inside])  # rows inside the ball are untouched
    scaled = ~inside
    assert norms[scaled].tolist() == pytest.approx([delta] * int(scaled.sum()), rel=1e-5)
    cos = torch.nn.functional.cosine_similarity(w, before, dim=1)
    assert cos.tolist() == pytest.approx([1.0] * 10, abs=1e-5)  # w_c <- w_c * min(1, δ/‖w_c‖)
    with pytest.raises(ValueError):
        maxnorm_project_(w, 0.0)


def test_relative_radius_follows_the_published_code():
    w = torch.diag(torch.tensor([1.0, 2.0, 5.0]))
    assert relative_radius(w, 0.1) == pytest.approx(1.0 + 0.1 * 4.0)
    assert relative_radius(w, 0.0) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = get_preset("digits-lt", method="glmc", epochs=1, out=str(out), run_name="g", progress=False, seed=0)
    state = fit(cfg, log=lambda m: None)
    return state.run_dir


@pytest.mark.parametrize("per", ["step", "epoch"])
def test_finetune_keeps_rows_in_the_ball_and_the_encoder_fixed(trained_run, per):
    from glmc_core.checkpoint import load_checkpoint

    ck = load_checkpoint(trained_run / "checkpoint.pt")
    r = finetune_maxnorm(trained_run, epochs=2, lr=0.05, per=per, thresh=0.1, log=lambda m: None)
    w0 = ck["model"]["fc_cb.weight"]
    assert r.delta == pytest.approx(relative_radius(w0, 0.1), rel=1e-6)
    assert torch.all(row_norms(r.model.fc_cb.weight) <= r.delta * (1 + 1e-5))
    sd = r.model.state_dict()
    for k, v in ck["model"].items():  # encoder (incl. BatchNorm statistics) and other heads unchanged
        if not k.startswith("fc_cb."):
            assert torch.equal(sd[k].cpu(), v), k
    assert not torch.equal(sd["fc_cb.weight"].cpu(), w0)
    lines = (trained_run / "maxnorm" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2]
    summary = json.loads((trained_run / "maxnorm" / "summary.json").read_text())
    assert summary["per"] == per and summary["after"]["norm_max"] <= r.delta * (1 + 1e-5)
    assert (trained_run / "maxnorm" / "model.pt").is_file()


def test_finetune_refuses_bad_arguments(trained_run, tmp_path):
    with pytest.raises(GLMCError, match="per"):
        finetune_maxnorm(trained_run, per="batch")
    with pytest.raises(GLMCError, match="not found"):
        finetune_maxnorm(tmp_path)


def test_cli_finetune_maxnorm(trained_run, capsys):
    from glmc_core.cli import main

    assert main(["finetune-maxnorm", str(trained_run), "--epochs", "1", "--per", "epoch", "--delta", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "MaxNorm (δ=0.5)" in out and "before" in out
    assert json.loads((trained_run / "maxnorm" / "summary.json").read_text())["delta"] == 0.5
