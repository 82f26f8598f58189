"""Precision: "auto" resolves to what the device computes fastest and is recorded in the run; bf16 trains
(the autocast weight cache never goes stale), is repeatable with --deterministic, and old runs stay fp32."""

from __future__ import annotations

import json

import pytest
import torch

from glmc_core.checkpoint import saved_config
from glmc_core.config import Config, get_preset
from glmc_core.errors import GLMCError
from glmc_core.methods import build_method_model
from glmc_core.precision import native_bf16, precision_forward, resolve_precision
from glmc_core.train import fit


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides) -> Config:
    base = dict(image_size=8, test_per_class=5, n_max=40, batch_size=16, epochs=2, device="cpu", progress=False,
                deterministic=True)
    return get_preset("digits-lt", **{**base, **overrides})


def test_auto_resolves_by_what_the_device_has():
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert resolve_precision("auto", "mps") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_bad_precision_is_one_line():
    with pytest.raises(GLMCError, match="precision must be auto, bf16 or fp32"):
        Config(precision="fp16").validate()


def test_a_run_records_its_resolved_precision(tmp_path):
    state = fit(tiny(out=str(tmp_path), run_name="r"), log=lambda m: None)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["precision"] == resolve_precision("auto", "cpu") == state.cfg.precision
    want = torch.channels_last if state.cfg.precision == "bf16" else torch.contiguous_format
    conv = next(p for p in state.model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=want)


def test_runs_saved_before_the_field_are_fp32():
    old = {k: v for k, v in tiny().to_dict().items() if k != "precision"}
    assert saved_config(old).precision == "fp32"


def test_bf16_forward_sees_every_weight_update():
    # One autocast context with its weight cache around a whole run keeps using the first bf16 copies of the
    # weights; the forward is entered per call with the cache off, so an update shows at once.
    torch.manual_seed(0)
    model = build_method_model(tiny(), 10)
    forward = precision_forward("bf16", "cpu")
    x = torch.randn(4, 3, 8, 8)
    model.eval()
    before = forward(model, [x])[0]["logits"]
    assert before.dtype == torch.bfloat16
    with torch.no_grad():
        model.fc.weight.mul_(-1.0)
        model.fc.bias.mul_(-1.0)
    after = forward(model, [x])[0]["logits"]
    assert torch.allclose(after.float(), -before.float(), atol=0.05, rtol=0.02)


def test_bf16_trains_and_is_repeatable():
    cfg = tiny(precision="bf16", epochs=8, n_max=None, image_size=16, test_per_class=None)
    runs = [fit(cfg, save=False, log=lambda m: None) for _ in range(2)]
    last = [r.history[-1] for r in runs]
    assert last[0]["top1"] == last[1]["top1"] and last[0]["total"] == last[1]["total"]  # --deterministic holds
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert last[0]["top1"] > 50  # no collapse to one class (10 % on digits)


def test_compile_step_compiles_the_reference_step_on_the_cpu():
    lines = []
    state = fit(tiny(epochs=1, compile_step=True), save=False, log=lines.append)
    assert ", compiled, batches from" in lines[0]
    assert state.compiled is not None and state.history[-1]["top1"] >= 0
    assert torch.isfinite(torch.tensor(state.history[-1]["total"]))
