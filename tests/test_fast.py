"""The fast path trains the same method as the reference step (on the CPU, eagerly)."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from glmc_core import get_preset, mixing
from glmc_core.data.samplers import ClassResampler
from glmc_core.data.streams import LoaderStream
from glmc_core.fast import (
    TERMS,
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


def _setup(method, c=4, cutmix_label="area", reduction="mean", padding=2, counts=(9, 5, 5, 5), fuse_views=False,
           view_norm="split"):
    return StepSetup(method, c, mixing.class_weights(counts, 1.2), 1.0, cutmix_label, reduction, padding,
                     torch.tensor(MEAN), torch.tensor(STD), fuse_views=fuse_views, view_norm=view_norm)


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
    ("ce", "area", "mean", False), ("glmc", "area", "mean", True), ("glmc-no-consistency", "lambda", "sum", True),
    ("glmc", "area", "mean", "grouped")])
def test_fast_step_equals_reference_step(method, cutmix_label, reduction, fuse):
    images, labels = _toy()
    chunks = _plan(images, labels)
    step = next(i for i in range(chunks[0]["lam"].shape[0])
                if 0 < mixing.Box(*chunks[0]["box"][i].tolist()).area < 16 * 16)  # a real pasted box
    d = {k: v[step] for k, v in chunks[0].items()}
    setup = _setup(method, cutmix_label=cutmix_label, reduction=reduction, fuse_views=bool(fuse),
                   view_norm="grouped" if fuse == "grouped" else "split")  # how fused views split batch norm
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


def test_momentum_buffers_are_the_optimisers_own_made_where_missing_and_relaid_only_where_needed():
    """The fast step updates the optimiser's momentum buffers (checkpoints carry them): one torch has not made yet
    is made as zeros, one of another memory layout than its parameter is copied into that layout (same values),
    and every other one is used as it is."""
    from glmc_core.fast import _momentum_buffers

    conv = torch.nn.Parameter(torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last))
    bias, fresh = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(2))
    opt = torch.optim.SGD([conv, bias, fresh], lr=0.1, momentum=0.9)
    loaded, kept = torch.randn(4, 3, 3, 3), torch.randn(4)  # contiguous, as a reference-path checkpoint holds it
    opt.state[conv]["momentum_buffer"], opt.state[bias]["momentum_buffer"] = loaded, kept
    bufs = _momentum_buffers(opt, [conv, bias, fresh])
    assert bufs[0].is_contiguous(memory_format=torch.channels_last) and torch.equal(bufs[0], loaded)
    assert bufs[1] is kept and torch.equal(bufs[2], torch.zeros(2))
    assert all(opt.state[p]["momentum_buffer"] is b for p, b in zip((conv, bias, fresh), bufs, strict=True))
    again = _momentum_buffers(opt, [conv, bias, fresh])  # a second binding changes nothing
    assert all(a is b for a, b in zip(again, bufs, strict=True))


def _tiny(**kw):
    # fp32: these tests compare the two paths' arithmetic to float32 tolerances (bf16 is tests/test_precision.py's)
    base = dict(epochs=2, batch_size=16, n_max=24, test_per_class=5, progress=False, device="cpu", precision="fp32")
    base.update(kw)
    return get_preset("digits-lt", **base)


@pytest.mark.parametrize("method", ["glmc", "ce"])
def test_fast_epoch_equals_reference_steps_on_the_same_draws(method):
    """A whole fast epoch = the reference step + torch SGD, step by step, on the same plan.

    Every step is compared from the same state: before each step the reference model and its optimiser get
    the fast path's weights, batch-norm statistics and momenta. Comparing only the end of the epoch compares
    two float32 computations (other kernels, other summation orders) after every later step has amplified
    their last-bit differences. Measured with one CPU thread (OMP_NUM_THREADS=1), letting both paths run
    free: the 'ce' weights agree to 3e-8 for three steps, then the fourth step multiplies that by ~700
    (2.2e-5) and the fifth reaches 2.6e-4, beyond the old end-of-epoch rtol 1e-4 / atol 1e-5 (with two threads
    it stays at 1.2e-7; 'glmc' stays at 1.2e-7 either way). The loss is ill-conditioned there (16-image batches
    of a tiny network), so the end state measures that, not the fast path. From equal states every step agrees
    to rtol 1e-5 / atol 1e-6. That ``run_epoch`` is these very steps is checked bit for bit: a twin run
    replays them one by one.
    """
    cfg = _tiny(method=method)
    state, twin = build_state(cfg), build_state(cfg)  # same seed: same weights, same generators
    runner = FastRunner(state, capture=False)
    out = runner.run_epoch(state, alpha=0.6, lr=0.05)

    fast = FastRunner(twin, capture=False)
    s = fast.setup
    images, labels = fast.stream.images, fast.stream.labels
    chunks = draw_plan(len(labels), 16, fast.stream.resampler.sample_probs, twin.aug_gen, twin.np_rng, 16, 16,
                       s.padding, True, 0.5)  # what run_epoch draws first
    fast._bind_params({k: v[0] for k, v in chunks[0].items()})
    fast.lr_t.fill_(0.05)
    fast.alpha_t.fill_(0.6)
    fast.sums.zero_()
    twin.model.train()
    group = twin.optimizer.param_groups[0]
    ref_model = copy.deepcopy(twin.model)
    ref_params = dict(ref_model.named_parameters())
    names = {id(p): n for n, p in twin.model.named_parameters()}
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=group["momentum"],
                              weight_decay=group["weight_decay"])
    steps = 0
    for c in chunks:
        for i in range(c["lam"].shape[0]):
            d = {k: v[i] for k, v in c.items()}
            ref_model.load_state_dict(twin.model.state_dict())  # the same start: weights and statistics
            if steps:  # and momenta (before the first step both paths start from none)
                for p, buf in zip(fast.params, fast.bufs, strict=True):
                    ref_opt.state[ref_params[names[id(p)]]]["momentum_buffer"] = buf.clone()
            b = _reference_batch(images, labels, d, s.padding, s.mean, s.std)
            ctx = StepContext(float(d["lam"]), mixing.Box(*d["box"].tolist()), 0.6, s.gamma, s.class_weights,
                              s.num_classes, s.cutmix_label, s.reduction)
            loss, terms = step_loss(method, ref_model, b, ctx)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()
            fast._step(d)
            for k, v in zip(("loss_c", "loss_cb", "loss_sim", "total"), fast.last.tolist(), strict=True):
                assert v == pytest.approx(float(terms[k]), rel=1e-5, abs=1e-6), (steps, k)
            for (name, pf), pr in zip(twin.model.named_parameters(), ref_model.parameters(), strict=True):
                assert torch.allclose(pf, pr, rtol=1e-5, atol=1e-6), (steps, name)
            for p, buf in zip(fast.params, fast.bufs, strict=True):
                ref_buf = ref_opt.state[ref_params[names[id(p)]]]["momentum_buffer"]
                assert torch.allclose(buf, ref_buf, rtol=1e-5, atol=1e-6), (steps, names[id(p)])
            for bf, br in zip(twin.model.buffers(), ref_model.buffers(), strict=True):
                assert torch.allclose(bf.float(), br.float(), rtol=1e-5, atol=1e-6), steps
            steps += 1
    assert out["steps"] == steps
    # run_epoch is exactly these steps (same ops, same order): equal bit for bit
    assert [out[k] for k in ("loss_c", "loss_cb", "loss_sim", "total")] == fast.sums.tolist()
    for a, b in zip(state.model.state_dict().values(), twin.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
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
    for epoch, lr in enumerate((0.05, 0.02)):  # α and lr both change: a value frozen into the graph would show
        outs = [r.run_epoch(s, alpha=1.0 - epoch / 3, lr=lr) for r, s in zip(runners, states, strict=True)]
        for k in ("loss_c", "loss_cb", "loss_sim", "total"):
            assert outs[0][k] == pytest.approx(outs[1][k], rel=1e-3, abs=1e-4), (epoch, k)
    assert runners[0].capture_status()["capture_held"]  # it really replayed graphs
    for a, b in zip(states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4)
    # the default GPU settings (bf16, channels_last, capture) train through fit and evaluate on the device
    state = fit(cfg, save=False, log=lambda m: None)
    assert isinstance(state.fast, FastRunner) and state.fast.capture_status()["capture_held"]
    assert all(np.isfinite(r["total"]) for r in state.history)
    # and with the other switches of the fast path (compile is measured by bench_speed: it takes a minute)
    state = fit(cfg.replace(view_norm="grouped", eval_graph=True, eval_batch=16), save=False, log=lambda m: None)
    status = state.fast.capture_status()
    assert status["capture_held"] and status["eval_graph_held"], status


# ------------------------------------------------------------------ capture safety, checked on the CPU
class _OpTrace(TorchDispatchMode):
    """Records every aten op that runs (forward and backward): its name, its non-tensor arguments (numbers,
    flags, dtypes: a Python float baked into a captured graph shows here) and its outputs' shapes and dtypes."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, (tuple, list)) else (out,)
        self.ops.append((str(func.overloadpacket), _scalars(args), _scalars(kwargs or {}), tuple(
            (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__ for t in flat)))
        return out


def _scalars(obj):
    """An op's arguments with every tensor replaced by "T": what a captured graph would freeze as constants."""
    if isinstance(obj, torch.Tensor):
        return "T"
    if isinstance(obj, (list, tuple)):
        return tuple(_scalars(o) for o in obj)
    if isinstance(obj, dict):
        return tuple(sorted((k, _scalars(v)) for k, v in obj.items()))
    return repr(obj)


# ops that read tensor values on the host (a device sync, illegal while a CUDA graph is captured), give
# data-dependent shapes, or make a tensor from Python data (a host-to-device copy on a GPU)
_HOST_OPS = {"aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.nonzero_static", "aten.masked_select",
             "aten._unique2", "aten.unique_dim", "aten.unique_consecutive", "aten.bincount", "aten.lift_fresh",
             "aten.lift_fresh_copy", "aten._assert_async", "aten.equal", "aten.is_nonzero"}


def _traced_runner(method="glmc", fuse=False, **kw):
    """A bound eager runner and two steps' draws (different λ, box, indices and crops)."""
    state = build_state(_tiny(method=method, fuse_views=fuse, **kw))
    runner = FastRunner(state, capture=False)
    h, w = runner.stream.images.shape[-2:]
    chunks = draw_plan(len(runner.stream.labels), 16, runner.stream.resampler.sample_probs, state.aug_gen,
                       state.np_rng, h, w, runner.setup.padding, True, 0.5)
    first, second = ({k: v[i] for k, v in chunks[0].items()} for i in (0, 1))
    assert float(first["lam"]) != float(second["lam"]) and not torch.equal(first["idx_u"], second["idx_u"])
    runner._bind_params(first)
    return runner, first, second


def _trace_step(runner, draws, lr: float, alpha: float) -> list[tuple]:
    """The ops of one step at this learning rate and α, the run's state left as it was."""
    snap = runner._snapshot()
    runner.lr_t.fill_(lr)  # what run_epoch does once per epoch: the graph reads these tensors
    runner.alpha_t.fill_(alpha)
    with _OpTrace() as trace:
        runner._step(draws)
    runner._restore(snap)
    return trace.ops


# two points of the schedules: lr and α differ (a value frozen at capture would be wrong at the other)
_SETTINGS = ((0.05, 0.6), (0.0123, 0.25))


@pytest.mark.parametrize("method,fuse,view_norm", [
    ("glmc", False, "split"), ("glmc-no-consistency", False, "split"), ("cumulative-only", False, "split"),
    ("ce", False, "split"), ("glmc", True, "split"), ("glmc", True, "grouped")])
def test_fast_step_is_capturable_no_host_reads_and_static_ops(method, fuse, view_norm):
    """What CUDA-graph capture needs, checked without a GPU: the step (gathers, augmentation, both
    mixtures, both forward passes, losses, backward, SGD) never reads a value back to the host, and steps
    with different draws (λ, box, indices, crops) and at different points of the schedules (lr, α) run the
    very same ops on the very same shapes with the very same non-tensor arguments: nothing that changes
    between steps or epochs is a Python number that a graph would freeze."""
    runner, first, second = _traced_runner(method, fuse, view_norm=view_norm)
    (lr, alpha), (lr2, alpha2) = _SETTINGS
    base = _trace_step(runner, first, lr, alpha)
    names = {op[0] for op in base}
    assert "aten.convolution_backward" in names and "aten._foreach_add_" in names  # backward and SGD were seen
    assert not names & _HOST_OPS, f"host reads inside the step: {sorted(names & _HOST_OPS)}"
    assert _trace_step(runner, second, lr, alpha) == base  # other draws: one graph replays every step
    assert _trace_step(runner, first, lr2, alpha2) == base  # other lr and α: the same graph serves every epoch
    assert not any(repr(v) in str(op[1:3]) for op in base for v in (lr, alpha, lr2, alpha2))


def test_the_capturability_check_catches_a_python_float_frozen_into_the_step(monkeypatch):
    """The check above would fail for a step that took lr or α as a Python float (as ``run_epoch``'s
    arguments are): a captured graph would keep the first epoch's value for the whole run."""
    import glmc_core.fast as fast_mod

    runner, first, _ = _traced_runner()
    now = {}
    plain_sgd, plain_loss = fast_mod.sgd_update, fast_mod.fast_step_loss
    for frozen in ("lr", "alpha"):
        now["frozen"] = frozen
        monkeypatch.setattr(fast_mod, "sgd_update", lambda p, g, b, lr, m, wd: plain_sgd(
            p, g, b, now["lr"] if now["frozen"] == "lr" else lr, m, wd))
        monkeypatch.setattr(fast_mod, "fast_step_loss", lambda net, x, y, d, alpha, setup: plain_loss(
            net, x, y, d, now["alpha"] if now["frozen"] == "alpha" else alpha, setup))
        traces = []
        for lr, alpha in _SETTINGS:
            now.update(lr=lr, alpha=alpha)
            traces.append(_trace_step(runner, first, lr, alpha))
        assert traces[0] != traces[1], frozen


def test_a_failed_capture_falls_back_to_the_eager_step_and_says_so():
    """If a graph cannot be captured (here: no GPU at all), the run goes on eagerly, unchanged, with one note."""
    states = [build_state(_tiny()) for _ in range(2)]
    failing, eager = FastRunner(states[0], capture=False), FastRunner(states[1], capture=False)
    failing.graph.requested = True  # as on a GPU whose capture breaks: torch.cuda.Stream() raises
    notes = []
    failing.log = notes.append
    outs = [r.run_epoch(s, alpha=0.5, lr=0.05) for r, s in ((failing, states[0]), (eager, states[1]))]
    assert outs[0] == outs[1]
    assert failing.graph.on is False and failing.graph.error
    assert len(notes) == 1 and notes[0].startswith("note: CUDA graph capture failed (")
    status = failing.capture_status()  # what reports (bench_speed, gpu_run) record: the fallback, never "captured"
    assert status["capture_requested"] and not status["capture_held"] and status["capture_error"]
    assert eager.capture_status()["capture_requested"] is False and "failed capture" in failing.describe()
    for a, b in zip(states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the failed warm-up left nothing behind


def test_the_log_says_which_step_trains(tmp_path):
    lines = []
    fit(_tiny(epochs=1, precision="bf16"), save=False, log=lines.append)
    assert lines[0] == ("training on cpu: the reference step in bf16 autocast, channels_last, batches from tensors "
                        "in memory")
    lines.clear()
    fit(_tiny(epochs=1), save=False, log=lines.append)
    assert lines[0].startswith("training on cpu: the reference step in fp32")
    assert lines[0].endswith(", batches from tensors in memory")
    lines.clear()
    fit(_tiny(epochs=1, fuse_views=True), save=False, log=lines.append, fast=True)
    assert lines[0] == "training on cpu: the fast path (eager, fp32, both mixtures in one forward pass)"
    lines.clear()
    fit(_tiny(epochs=1), save=False, log=lines.append, loader="dataloader")
    assert lines[0].endswith(", batches from a DataLoader (PIL transforms)")


# ------------------------------------------------------------------ the fast path's switches, on the CPU
def test_compile_that_fails_falls_back_cleanly_and_trains_the_same(monkeypatch):
    """compile_step where torch.compile cannot run (no compiler, an unsupported op): one note, the plain
    step, the same training as without the switch; also when compiling fails only inside a capture."""
    class _Broken:  # what torch.compile returns when its backend fails: an error at the first call
        def __init__(self, model):
            self.model = model

        def __call__(self, *a, **k):
            raise RuntimeError("backend compiler failed\nmore lines")

        def modules(self):
            return self.model.modules()

    monkeypatch.setattr(torch, "compile", lambda model, **kw: _Broken(model))
    states = [build_state(_tiny(compile_step=flag, fuse_views=True)) for flag in (True, False)]
    runners = [FastRunner(s, capture=False) for s in states]
    notes = []
    runners[0].log = notes.append
    outs = [r.run_epoch(s, alpha=0.5, lr=0.05) for r, s in zip(runners, states, strict=True)]
    assert outs[0] == outs[1]
    for a, b in zip(states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    status = runners[0].capture_status()
    assert status["compile_requested"] and not status["compile_held"]
    assert status["compile_error"] == "RuntimeError: backend compiler failed"
    assert len(notes) == 1 and notes[0].startswith("note: torch.compile of the step failed (")
    assert "not compiled after a failed compile" in runners[0].describe()

    # a compile that works eagerly but breaks the capture: capture is retried without it, then falls back
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model.__call__)  # a stand-in "compiled" network
    state = build_state(_tiny(compile_step=True))
    runner = FastRunner(state, capture=False)
    runner.graph.requested = True  # as on a GPU; here torch.cuda.Stream() raises
    notes.clear()
    runner.log = notes.append
    runner.run_epoch(state, alpha=0.5, lr=0.05)
    assert notes[0].startswith("note: torch.compile of the step failed (inside the capture: ")
    assert notes[1].startswith("note: CUDA graph capture failed (") and len(notes) == 2
    assert runner.net is runner.model and not runner.capture_status()["capture_held"]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GLMC_TEST_COMPILE") != "1", reason="compiling takes over 10 minutes on a busy "
                    "2-core CPU; set GLMC_TEST_COMPILE=1 to run it")
def test_compiled_step_trains_like_the_plain_step():
    """compile_step with the real torch.compile (on the CPU: Inductor's C++ backend): the same losses and
    weights as the plain fast step, to float rounding, with fused views."""
    cfg = _tiny(fuse_views=True)
    states = [build_state(cfg.replace(compile_step=flag)) for flag in (True, False)]
    runners = [FastRunner(s, capture=False) for s in states]
    outs = [r.run_epoch(s, alpha=0.6, lr=0.05) for r, s in zip(runners, states, strict=True)]
    if not runners[0].capture_status()["compile_held"]:
        pytest.skip(f"torch.compile cannot run here: {runners[0].compile.error}")
    for k in TERMS:
        assert outs[0][k] == pytest.approx(outs[1][k], rel=1e-4, abs=1e-5), k
    for a, b in zip(states[0].model.state_dict().values(), states[1].model.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("eval_batch,eval_graph", [(1024, False), (7, False), (7, True), (50, True)])
def test_fast_evaluation_batches_and_static_buffer_match_the_reference_evaluation(eval_batch, eval_graph):
    """eval_batch and eval_graph (on the CPU: the same padded static-buffer code, run eagerly) give exactly
    the predictions of train.evaluate."""
    from glmc_core.train import evaluate

    state = build_state(_tiny(eval_batch=eval_batch, eval_graph=eval_graph, test_per_class=11))
    runner = FastRunner(state, capture=False)
    runner.run_epoch(state, alpha=0.6, lr=0.05)
    assert len(state.data.test) % 7  # a partial last batch
    got = runner.evaluate(state.data.test, state)
    want = evaluate(state.model, state.data.test, state.cfg, state.data, state.device)
    assert got == want
    assert runner.evaluate(state.data.test, state) == want  # the cached buffer, a second time
    assert not runner.capture_status()["eval_graph_held"]  # nothing is captured on the CPU


def test_checkpoints_are_sparse_by_default_on_the_fast_path(tmp_path, monkeypatch):
    """checkpoint_every=None: every epoch on the reference path, every FAST_CHECKPOINT_EVERY-th and the last on
    the fast path; an explicit value is kept on both."""
    import glmc_core.runs as runs_mod
    import glmc_core.train as train_mod
    from glmc_core.config import Config

    saved = []
    plain = runs_mod.save_checkpoint
    monkeypatch.setattr(runs_mod, "save_checkpoint", lambda ck, path: saved.append(
        (path.name, ck["epoch"])) or plain(ck, path))
    monkeypatch.setattr(runs_mod, "FAST_CHECKPOINT_EVERY", 2)
    cfg = _tiny(epochs=5, out=str(tmp_path))
    assert cfg.checkpoint_every is None and Config.from_dict(cfg.to_dict()).checkpoint_every is None
    fit(cfg.replace(run_name="fast"), fast=True, log=lambda m: None)
    assert [e for n, e in saved if n == "checkpoint.pt"] == [0, 2, 4, 5]  # epoch 0, every 2nd, the last
    saved.clear()
    fit(cfg.replace(run_name="ref"), fast=False, log=lambda m: None)
    assert [e for n, e in saved if n == "checkpoint.pt"] == [0, 1, 2, 3, 4, 5]
    assert train_mod.checkpoint_interval(cfg.replace(checkpoint_every=3), fast=True) == 3
    assert train_mod.checkpoint_interval(cfg, fast=True) == 2 and train_mod.checkpoint_interval(cfg, fast=False) == 1


@pytest.mark.parametrize("field,value,message", [("view_norm", "stacked", "view_norm must be"),
                                                 ("eval_batch", 0, "eval_batch must be"),
                                                 ("checkpoint_every", 0, "checkpoint_every must be at least 1")])
def test_fast_path_switches_are_validated(field, value, message):
    from glmc_core.errors import GLMCError

    with pytest.raises(GLMCError, match=message):
        _tiny(**{field: value})
