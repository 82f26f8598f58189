"""Uniform batches and the class-resampled sampler (glmc_core.data.samplers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glmc_core.data.samplers import ClassResampler, uniform_batches

COUNTS = np.array([400, 200, 100, 50, 25])
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(5), COUNTS))


def _expected(convention: str, q: float) -> np.ndarray:
    w = COUNTS ** (1.0 - q) if convention == "instance" else COUNTS ** (-q)
    return w / w.sum()


@pytest.mark.parametrize("convention", ["instance", "class"])
@pytest.mark.parametrize("q", [0.0, 0.2, 1.0])
def test_class_probabilities_follow_the_convention(convention, q):
    rs = ClassResampler(LABELS, 5, q, convention)
    np.testing.assert_allclose(rs.class_probs.numpy(), _expected(convention, q), rtol=1e-5)
    assert float(rs.sample_probs.sum()) == pytest.approx(1.0, abs=1e-5)
    # Images of one class are equally likely.
    for c in range(5):
        p = rs.sample_probs[torch.from_numpy(LABELS == c)]
        assert float(p.max() - p.min()) < 1e-9


@pytest.mark.parametrize("convention,q", [("instance", 0.0), ("instance", 0.5), ("class", 0.0), ("class", 0.5)])
def test_sampled_class_frequencies_match(convention, q):
    rs = ClassResampler(LABELS, 5, q, convention)
    gen = torch.Generator().manual_seed(0)
    idx = torch.cat([rs.sample(1000, gen) for _ in range(40)]).numpy()
    freq = np.bincount(LABELS[idx], minlength=5) / len(idx)
    np.testing.assert_allclose(freq, _expected(convention, q), atol=0.01)


def test_instance_q1_and_class_q0_are_class_balanced():
    for rs in (ClassResampler(LABELS, 5, 1.0, "instance"), ClassResampler(LABELS, 5, 0.0, "class")):
        np.testing.assert_allclose(rs.class_probs.numpy(), np.full(5, 0.2), rtol=1e-5)


def test_resampler_is_seeded_and_ignores_absent_classes():
    labels = np.array([0, 0, 2, 2, 2])
    rs = ClassResampler(labels, 4, 0.5, "class")
    assert rs.class_probs[1] == 0 and rs.class_probs[3] == 0
    a = rs.sample(64, torch.Generator().manual_seed(5))
    b = rs.sample(64, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() < 5 and set(labels[a.numpy()].tolist()) == {0, 2}


def test_unknown_convention():
    with pytest.raises(ValueError):
        ClassResampler(LABELS, 5, 0.0, "image")


@pytest.mark.parametrize("drop_last", [False, True])
def test_uniform_batches_cover_a_permutation(drop_last):
    batches = uniform_batches(103, 10, torch.Generator().manual_seed(0), drop_last=drop_last)
    assert all(len(b) == 10 for b in batches[:-1])
    flat = torch.cat(batches)
    assert len(set(flat.tolist())) == len(flat)
    if drop_last:
        assert len(batches) == 10 and len(flat) == 100
    else:
        assert len(batches) == 11 and sorted(flat.tolist()) == list(range(103))
