"""The fast path trains the same method as the reference step (on the CPU, eagerly)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from glmc_core import get_preset, mixing
from glmc_core.data.samplers import ClassResampler
from glmc_core.data.streams import LoaderStream
from glmc_core.fast import (
    FastRunner,
    StepSetup,
    draw_plan,
    fast_path_reason,
    fast_step_loss,
    maybe_fast_runner,
    sgd_update,
)
from glmc_core.methods import METHOD_SPECS, StepContext, step_loss
from glmc_core.models import build_model
from glmc_core.train import build_state, fit

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _toy(n=24, c=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.tensor([i % c for i in range(n)][: n - 3] + [0, 0, 0])  # long-tailed-ish
    return images, labels


def _setup(method, c=4, cutmix_label="area", reduction="mean", padding=2, counts=(9, 5, 5, 5), fuse_views=False):
    return StepSetup(method, c, mixing.class_weights(counts, 1.2), 1.0, cutmix_label, reduction, padding,
                     torch.tensor(MEAN), torch.tensor(STD), fuse_views=fuse_views)


def _reference_view(images, idx, oy, ox, flip, padding, mean, std):
    """Crop and flip one image at a time (as torchvision would), then normalise."""
    out = []
    for i, y, x, f in zip(idx.tolist(), oy.tolist(), ox.tolist(), flip.tolist(), strict=True):
        img = F.pad(images[i], (padding,) * 4)[:, y : y + images.shape[2], x : x + images.shape[3]]
        out.append(img.flip(-1) if f else img)
    x = torch.stack(out).float() / 255.0
    return (x - torch.as_tensor(mean).view(1, 3, 1, 1)) / torch.as_tensor(std).view(1, 3, 1, 1)


def _reference_batch(images, labels, d, padding, mean=MEAN, std=STD):
    """The reference stream's batch dict for one step's draws, built image by image."""
    views = {}
    for v, (name, key) in enumerate((("x_u1", "idx_u"), ("x_u2", "idx_u"), ("x_r1", "idx_r"), ("x_r2", "idx_r"))):
        views[name] = _reference_view(images, d[key], d["oy"][v], d["ox"][v], d["flip"][v], padding, mean, std)
    return {**views, "y_u": labels[d["idx_u"]], "y_r": labels[d["idx_r"]]}


def _plan(images, labels, batch=8, seed=5, padding=2, beta=0.5):
    probs = ClassResampler(labels.numpy(), 4, 0.5, "class").sample_probs
    return draw_plan(len(labels), batch, probs, torch.Generator().manual_seed(seed), np.random.default_rng(seed),
                     images.shape[2], images.shape[3], padding, True, beta)


@pytest.mark.parametrize("method,cutmix_label,reduction,fuse", [
    ("glmc", "area", "mean", False), ("glmc", "lambda", "sum", False), ("glmc-no-consistency", "area", "mean", False),
    ("glmc-no-cumulative", "area", "mean", False), ("cumulative-only", "area", "mean", False),
    ("ce", "area", "mean", False), ("glmc", "area", "mean", True), ("glmc-no-consistency", "lambda", "sum", True)])
def test_fast_step_equals_reference_step(method, cutmix_label, reduction, fuse):
    images, labels = _toy()
    chunks = _plan(images, labels)
    step = next(i for i in range(chunks[0]["lam"].shape[0])
                if 0 < mixing.Box(*chunks[0]["box"][i].tolist()).area < 16 * 16)  # a real pasted box
    d = {k: v[step] for k, v in chunks[0].items()}
    setup = _setup(method, cutmix_label=cutmix_label, reduction=reduction, fuse_views=fuse)
    torch.manual_seed(0)
    model = build_model("resnet8", 4, 16, METHOD_SPECS[method].inference_head)
    m_fast, m_ref = copy.deepcopy(model), copy.deepcopy(model)
    alpha = 0.7

    loss_f, terms_f = fast_step_loss(m_fast, images, labels, d, torch.tensor(alpha), setup)
    loss_f.backward()
    ctx = StepContext(float(d["lam"]), mixing.Box(*d["box"].tolist()), alpha, 1.0, setup.class_weights, 4,
                      cutmix_label, reduction)
    loss_r, terms_r = step_loss(method, m_ref, _reference_batch(images, labels, d, 2), ctx)
    loss_r.backward()

    for k in terms_r:
        assert torch.allclose(terms_f[k].float(), terms_r[k].float(), rtol=1e-5, atol=1e-6), k
    for (name, pf), pr in zip(m_fast.named_parameters(), m_ref.parameters(), strict=True):
        assert (pf.grad is None) == (pr.grad is None), name
        if pr.grad is not None:
            assert torch.allclose(pf.grad, pr.grad, rtol=1e-4, atol=1e-6), name
    for bf, br in zip(m_fast.buffers(), m_ref.buffers(), strict=True):  # batch-norm statistics moved the same way
        assert torch.allclose(bf.float(), br.float(), atol=1e-6)


def test_draw_plan_shapes_permutation_and_reference_draws():
    images, labels = _toy(n=27)
    chunks = _plan(images, labels, batch=8, seed=3)
    assert [c["idx_u"].shape for c in chunks] == [(3, 8), (1, 3)]  # 3 full batches and the last 3 images
    idx_u = torch.cat([c["idx_u"].flatten() for c in chunks])
    assert sorted(idx_u.tolist()) == list(range(27))  # plain shuffling: each image once per epoch
    for c in chunks:
        assert c["oy"].shape == c["flip"].shape == (c["idx_u"].shape[0], 4, c["idx_u"].shape[1])
        assert int(c["oy"].min()) >= 0 and int(c["ox"].max()) <= 4
    # λ and the box: the reference step's functions, in its order, on the same numpy generator
    rng = np.random.default_rng(3)
    want = []
    for _ in range(4):
        lam = mixing.sample_lambda(rng, 0.5)
        want.append((lam, tuple(mixing.sample_box(rng, 16, 16, lam))))
    got = [(float(lam), tuple(box.tolist())) for c in chunks for lam, box in zip(c["lam"], c["box"], strict=True)]
    assert got == want


def test_draw_plan_resampled_classes_follow_the_resampler():
    labels = np.repeat(np.arange(3), [600, 60, 6])
    res = ClassResampler(labels, 3, 1.0, "class")  # class-balanced
    chunks = draw_plan(len(labels), 64, res.sample_probs, torch.Generator().manual_seed(0),
                       np.random.default_rng(0), 8, 8, 1, True, 0.5)
    idx_r = torch.cat([c["idx_r"].flatten() for c in chunks]).numpy()
    freq = np.bincount(labels[idx_r], minlength=3) / len(idx_r)
    assert np.allclose(freq, res.class_probs.numpy(), atol=0.05)
    flips = torch.cat([c["flip"].flatten() for c in chunks]).float().mean()
    assert 0.45 < float(flips) < 0.55


def test_sgd_update_matches_torch_sgd():
    torch.manual_seed(0)
    params = [torch.randn(5, 3), torch.randn(7)]
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.SGD(ref, lr=0.1, momentum=0.9, weight_decay=5e-3)
    bufs = [torch.zeros_like(p) for p in params]
    for _ in range(4):
        grads = [torch.randn_like(p) for p in params]
        for r, g in zip(ref, grads, strict=True):
            r.grad = g.clone()
        opt.step()
        sgd_update(params, grads, bufs, torch.tensor(0.1), 0.9, 5e-3)
    for p, r in zip(params, ref, strict=True):
        assert torch.allclose(p, r.detach(), rtol=1e-6, atol=1e-7)
    for b, r in zip(bufs, ref, strict=True):
        assert torch.allclose(b, opt.state[r]["momentum_buffer"], rtol=1e-6, atol=1e-7)


def _tiny(**kw):
    base = dict(epochs=2, batch_size=16, n_max=24, test_per_class=5, progress=False, device="cpu")
    base.update(kw)
    return get_preset("digits-lt", **base)


@pytest.mark.parametrize("method", ["glmc", "ce"])
def test_fast_epoch_equals_reference_steps_on_the_same_draws(method):
    """A whole fast epoch = the reference step + torch SGD, step by step, on the same plan."""
    state = build_state(_tiny(method=method))
    ref_model = copy.deepcopy(state.model)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen_state, np_state = state.aug_gen.get_state(), copy.deepcopy(state.np_rng.bit_generator.state)
    runner = FastRunner(state, capture=False)
    out = runner.run_epoch(state, alpha=0.6, lr=0.05)

    gen = torch.Generator().manual_seed(0)
    gen.set_state(gen_state)
    rng = np.random.default_rng(0)
    rng.bit_generator.state = np_state
    s = runner.setup
    chunks = draw_plan(len(runner.labels), 16, runner.sample_probs, gen, rng, 16, 16, s.padding, True, 0.5)
    sums, steps = {}, 0
    for c in chunks:
        for i in range(c["lam"].shape[0]):
            d = {k: v[i] for k, v in c.items()}
            b = _reference_batch(runner.images, runner.labels, d, s.padding, s.mean, s.std)
            ctx = StepContext(float(d["lam"]), mixing.Box(*d["box"].tolist()), 0.6, s.gamma, s.class_weights,
                              s.num_classes, s.cutmix_label, s.reduction)
            loss, terms = step_loss(method, ref_model, b, ctx)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()
            sums = {k: sums.get(k, 0.0) + float(v) for k, v in terms.items()}
            steps += 1
    assert out["steps"] == steps
    for k in sums:
        assert out[k] == pytest.approx(sums[k], rel=1e-4, abs=1e-5)
    for (name, pf), pr in zip(state.model.named_parameters(), ref_model.parameters(), strict=True):
        assert torch.allclose(pf, pr, rtol=1e-4, atol=1e-5), name
    # the optimiser's own state holds the fast path's momentum (so checkpoints carry it)
    pairs = zip(runner.params, runner.bufs, strict=True)
    assert all(state.optimizer.state[p]["momentum_buffer"] is b for p, b in pairs)


@pytest.mark.slow
def test_fast_resume_is_exact(tmp_path):
    cfg = _tiny(out=str(tmp_path), run_name="straight")
    straight = fit(cfg, fast=True, log=lambda m: None)
    assert straight.fast  # the fast step ran, eagerly, on the CPU
    stop = _stop_after_epochs(1)
    part = fit(cfg.replace(run_name="parted"), fast=True, log=lambda m: None, stop=stop, callbacks=[stop.callback])
    assert part.epoch == 1
    resumed = fit(resume=tmp_path / "parted", fast=True, log=lambda m: None)
    assert resumed.epoch == 2
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [r["total"] for r in straight.history] == [r["total"] for r in resumed.history]


def _stop_after_epochs(n):
    """A ``stop`` callback that ends the run at the first step of epoch ``n + 1``."""
    calls = {"epochs": 0}

    def cb(event, _payload):
        if event == "epoch_end":
            calls["epochs"] += 1

    def stop():
        return calls["epochs"] >= n

    stop.callback = cb
    return stop


def test_fast_path_falls_back_cleanly_on_the_cpu():
    state = build_state(_tiny())
    assert maybe_fast_runner(state) is None  # cfg.fast, but no GPU: the reference step
    assert fast_path_reason(state) is None and maybe_fast_runner(state, force=True) is not None
    with pytest.raises(ValueError, match="CUDA"):
        FastRunner(state, capture=True)
    mix = build_state(_tiny(method="mixup"))
    assert maybe_fast_runner(mix, force=True) is None and "mixup" in fast_path_reason(mix)
    loader = build_state(_tiny(), loader="dataloader")
    assert isinstance(loader.stream, LoaderStream) and maybe_fast_runner(loader, force=True) is None


def test_fit_without_gpu_trains_with_the_reference_step(tmp_path):
    state = fit(_tiny(epochs=1), save=False, log=lambda m: None)
    assert state.fast is None and len(state.history) == 1


@pytest.mark.parametrize("flag,loader", [("--no-fast", "auto"), ("--reference", "dataloader")])
def test_cli_flags_select_the_reference_path(flag, loader, monkeypatch):
    from glmc_core import cli

    seen = {}

    def fake_fit(cfg=None, **kw):
        seen.update(cfg=cfg, **kw)
        raise SystemExit(0)

    monkeypatch.setattr("glmc_core.train.fit", fake_fit)
    with pytest.raises(SystemExit):
        cli.main(["train", "--preset", "digits-lt", flag])
    assert seen["cfg"].fast is False and seen["loader"] == loader
    seen.clear()
    with pytest.raises(SystemExit):
        cli.main(["train", "--preset", "digits-lt"])
    assert seen["cfg"].fast is True and seen["loader"] == "auto"  # default: fast wherever there is a GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fuse", [False, True])
def test_gpu_captured_step_matches_the_eager_fast_step(fuse):
    """On a GPU: the CUDA-graph replay trains like the same step run eagerly (fp32, same draws)."""
    cfg = _tiny(device="cuda", epochs=3, fuse_views=fuse)
    states = [build_state(cfg) for _ in range(2)]
    runners = [FastRunner(states[0], capture=True, bf16=False, channels_last=False),
               FastRunner(states[1], capture=False, bf16=False, channels_last=False)]
    for epoch in range(2):
        outs = [r.run_epoch(s, alpha=1.0 - epoch / 3, lr=0.05) for r, s in zip(runners, states, strict=True)]
        for k in ("loss_c", "loss_cb", "loss_sim", "total"):
            assert outs[0][k] == pytest.approx(outs[1][k], rel=1e-3, abs=1e-4), (epoch, k)
    assert runners[0].capture and runners[0].capture_error is None  # it really replayed graphs
    for a, b in zip(states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4)
    # the default GPU settings (bf16, channels_last, capture) train through fit and evaluate on the device
    state = fit(cfg, save=False, log=lambda m: None)
    assert isinstance(state.fast, FastRunner) and state.fast.capture and state.fast.capture_error is None
    assert all(np.isfinite(r["total"]) for r in state.history)


# ------------------------------------------------------------------ capture safety, checked on the CPU
class _OpTrace(TorchDispatchMode):
    """Records every aten op that runs (forward and backward) with its output shapes and dtypes."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, (tuple, list)) else (out,)
        self.ops.append((str(func.overloadpacket), tuple(
            (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__ for t in flat)))
        return out


# ops that read tensor values on the host (a device sync, illegal while a CUDA graph is captured), give
# data-dependent shapes, or make a tensor from Python data (a host-to-device copy on a GPU)
_HOST_OPS = {"aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.nonzero_static", "aten.masked_select",
             "aten._unique2", "aten.unique_dim", "aten.unique_consecutive", "aten.bincount", "aten.lift_fresh",
             "aten.lift_fresh_copy", "aten._assert_async", "aten.equal", "aten.is_nonzero"}


@pytest.mark.parametrize("method,fuse", [("glmc", False), ("glmc-no-consistency", False), ("cumulative-only", False),
                                         ("ce", False), ("glmc", True)])
def test_fast_step_is_capturable_no_host_reads_and_static_ops(method, fuse):
    """What CUDA-graph capture needs, checked without a GPU: the step (gathers, augmentation, both
    mixtures, both forward passes, losses, backward, SGD) never reads a value back to the host, and two
    steps with different draws (λ, box, indices, crops) run the very same ops on the very same shapes."""
    state = build_state(_tiny(method=method, fuse_views=fuse))
    runner = FastRunner(state, capture=False)
    h, w = runner.images.shape[-2:]
    chunks = draw_plan(len(runner.labels), 16, runner.sample_probs, state.aug_gen, state.np_rng, h, w,
                       runner.setup.padding, True, 0.5)
    first, second = ({k: v[i] for k, v in chunks[0].items()} for i in (0, 1))
    assert float(first["lam"]) != float(second["lam"]) and not torch.equal(first["idx_u"], second["idx_u"])
    runner._bind_params(first)
    runner.lr_t.fill_(0.05)
    runner.alpha_t.fill_(0.6)
    traces = []
    for draws in (first, second):
        with _OpTrace() as trace:
            runner._step(draws)
        traces.append(trace.ops)
    names = {name for name, _ in traces[0]}
    assert "aten.convolution_backward" in names and "aten._foreach_add_" in names  # backward and SGD were seen
    assert not names & _HOST_OPS, f"host reads inside the step: {sorted(names & _HOST_OPS)}"
    assert traces[0] == traces[1]  # same ops, same shapes: one graph replays every step of this batch size


def test_a_failed_capture_falls_back_to_the_eager_step_and_says_so():
    """If a graph cannot be captured (here: no GPU at all), the run goes on eagerly, unchanged, with one note."""
    states = [build_state(_tiny()) for _ in range(2)]
    failing, eager = FastRunner(states[0], capture=False), FastRunner(states[1], capture=False)
    failing.capture = True  # as on a GPU whose capture then breaks: torch.cuda.Stream() raises here
    notes = []
    failing.log = notes.append
    outs = [r.run_epoch(s, alpha=0.5, lr=0.05) for r, s in ((failing, states[0]), (eager, states[1]))]
    assert outs[0] == outs[1]
    assert failing.capture is False and failing.capture_error
    assert len(notes) == 1 and notes[0].startswith("note: CUDA graph capture failed (")
    for a, b in zip(states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the failed warm-up left nothing behind


def test_the_log_says_which_step_trains(tmp_path):
    lines = []
    fit(_tiny(epochs=1), save=False, log=lines.append)
    assert lines[0] == "training on cpu: the reference step, batches from tensors in memory"
    lines.clear()
    fit(_tiny(epochs=1, fuse_views=True), save=False, log=lines.append, fast=True)
    assert lines[0] == "training on cpu: the fast path (eager, fp32, both mixtures in one forward pass)"
    lines.clear()
    fit(_tiny(epochs=1), save=False, log=lines.append, loader="dataloader")
    assert lines[0] == "training on cpu: the reference step, batches from a DataLoader (PIL transforms)"
