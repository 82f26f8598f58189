"""Encoders, heads, parameter counts and the inference head (glmc_core.models)."""

from __future__ import annotations

import copy

import pytest
import torch

from glmc_core.errors import GLMCError
from glmc_core.models import MODELS, GLMCNet, build_model, count_parameters, per_view_batch_norm


@pytest.mark.parametrize("name,encoder_millions", [("resnet32", 0.46), ("resnet32-wide", 7.4)])
def test_resnet32_parameter_counts(name, encoder_millions):
    model = build_model(name, 10)
    enc = count_parameters(model.encoder) / 1e6
    assert enc == pytest.approx(encoder_millions, rel=0.02)
    # The four heads add feat*C + C (x2), feat*128 + 128 and 128*128 + 128.
    feat = model.encoder.out_dim
    heads = 2 * (feat * 10 + 10) + (feat * 128 + 128) + (128 * 128 + 128)
    assert count_parameters(model) == count_parameters(model.encoder) + heads


def test_encoder_widths():
    assert build_model("resnet32", 10).encoder.out_dim == 64
    assert build_model("resnet32-wide", 10).encoder.out_dim == 256
    # resnet32 has 5 blocks per stage (6n+2 = 32 layers); resnet8 has 1.
    assert len(build_model("resnet32", 10).encoder.layers) == 15
    assert len(build_model("resnet8", 10).encoder.layers) == 3


@pytest.mark.parametrize("name", ["resnet8", "resnet32"])
@pytest.mark.parametrize("size", [16, 32])
def test_forward_shapes_and_keys(name, size):
    torch.manual_seed(0)
    model = build_model(name, 7, proj_dim=32).eval()
    out = model(torch.randn(3, 3, size, size))
    assert set(out) == {"features", "logits", "logits_cb", "h", "u"}
    assert out["features"].shape == (3, 64)
    assert out["logits"].shape == out["logits_cb"].shape == (3, 7)
    assert out["h"].shape == out["u"].shape == (3, 32)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("head", ["fc", "fc_cb"])
def test_predict_uses_inference_head(head):
    torch.manual_seed(0)
    model = build_model("resnet8", 5, inference_head=head).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        logits = model.predict(x)
    expected = out["logits_cb"] if head == "fc_cb" else out["logits"]
    other = out["logits"] if head == "fc_cb" else out["logits_cb"]
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, other)  # the two heads are initialised differently


def test_heads_see_the_same_features():
    torch.manual_seed(0)
    model = build_model("resnet8", 4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 16, 16))
        torch.testing.assert_close(out["logits"], model.fc(out["features"]))
        torch.testing.assert_close(out["u"], model.predictor(out["h"]))


def test_unknown_model_and_bad_head():
    with pytest.raises(GLMCError, match="unknown model"):
        build_model("resnet1000", 10)
    with pytest.raises(ValueError):
        GLMCNet(MODELS["resnet8"](), 10, inference_head="fc_both")


def test_every_cifar_model_builds_and_runs():
    torch.manual_seed(0)
    for name in ("resnet8", "resnet20", "resnet32", "resnet32-wide"):
        model = build_model(name, 3).eval()
        with torch.no_grad():
            assert model.predict(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_gradients_reach_encoder():
    torch.manual_seed(0)
    model = build_model("resnet8", 3)
    out = model(torch.randn(4, 3, 16, 16))
    (out["logits"].sum() + out["logits_cb"].sum() + out["u"].sum()).backward()
    assert model.encoder.conv1.weight.grad is not None
    assert float(model.encoder.conv1.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("name,mode,channels_last", [("resnet8", "split", False), ("resnet50", "split", False),
                                                       ("resnet8", "grouped", False), ("resnet8", "grouped", True)])
def test_per_view_batch_norm_equals_one_forward_per_view(name, mode, channels_last):
    """model(cat([a, b])) under per_view_batch_norm = model(a) then model(b): outputs, gradients, buffers;
    with either way of splitting batch norm (``view_norm``), in either memory layout."""
    size = 16 if name == "resnet8" else 32
    torch.manual_seed(0)
    net = build_model(name, 5)
    fused, apart = copy.deepcopy(net), copy.deepcopy(net)
    a, b = torch.randn(6, 3, size, size), torch.randn(6, 3, size, size) * 2 + 1  # different statistics
    if channels_last:
        for m in (fused, apart):
            m.to(memory_format=torch.channels_last)
        a, b = (x.contiguous(memory_format=torch.channels_last) for x in (a, b))
    with per_view_batch_norm(fused, 2, mode):
        out = fused(torch.cat([a, b]))
    out_a, out_b = apart(a), apart(b)
    for k in out:
        assert torch.allclose(out[k], torch.cat([out_a[k], out_b[k]]), rtol=1e-4, atol=1e-5), k
    def loss(o):
        return o["logits"].square().sum() + o["logits_cb"].sum() + o["u"].sum()

    loss(out).backward()
    (loss(out_a) + loss(out_b)).backward()
    for (n, pf), pa in zip(fused.named_parameters(), apart.parameters(), strict=True):
        assert (pf.grad - pa.grad).norm() <= 1e-4 * pa.grad.norm() + 1e-6, n  # float rounding only
    for (n, bf), ba in zip(fused.named_buffers(), apart.buffers(), strict=True):
        assert torch.allclose(bf.float(), ba.float(), rtol=1e-4, atol=1e-5), n  # running stats: two updates, in order
    # in eval mode the block changes nothing (running statistics); after it the layers are plain again
    fused.eval()
    with per_view_batch_norm(fused, 2, mode):
        inside = fused(torch.cat([a, b]))["logits"]
    assert torch.allclose(inside, fused(torch.cat([a, b]))["logits"])
    with per_view_batch_norm(fused, 2, mode):
        with pytest.raises(ValueError, match="equal views"):
            fused.train()(torch.randn(5, 3, size, size))
    assert all("forward" not in vars(m) for m in fused.modules())
    if channels_last:  # the grouped batch norm keeps the layout the next convolution wants
        with per_view_batch_norm(fused.train(), 2, mode):
            y = fused.encoder.bn1(torch.randn(4, 16, 5, 5).contiguous(memory_format=torch.channels_last))
        assert y.is_contiguous(memory_format=torch.channels_last)


def test_grouped_batch_norm_keeps_float32_statistics_for_bf16_inputs():
    """Under bf16 autocast the grouped batch norm computes its statistics in float32 (as cuDNN does), so its
    output stays as close to the split one as bf16 allows and its running statistics are float32-exact."""
    torch.manual_seed(0)
    bn_split, bn_grouped = torch.nn.BatchNorm2d(8), torch.nn.BatchNorm2d(8)
    x = (torch.randn(8, 8, 6, 6) * 3 + 2).bfloat16()
    with per_view_batch_norm(bn_split, 2, "split"):
        ys = bn_split(x)
    with per_view_batch_norm(bn_grouped, 2, "grouped"):
        yg = bn_grouped(x)
    assert yg.dtype == torch.bfloat16 and torch.allclose(yg.float(), ys.float(), atol=3e-2)
    assert torch.allclose(bn_grouped.running_mean, bn_split.running_mean, rtol=1e-5, atol=1e-6)
    assert torch.allclose(bn_grouped.running_var, bn_split.running_var, rtol=1e-5, atol=1e-6)
    assert int(bn_grouped.num_batches_tracked) == int(bn_split.num_batches_tracked) == 2
    with pytest.raises(ValueError, match="view_norm"):
        with per_view_batch_norm(bn_split, 2, "stacked"):
            pass
