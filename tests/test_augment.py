"""Batch crop/flip and normalisation (glmc_core.augment)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from glmc_core.augment import normalize, random_crop_flip


def _batch(b=6, c=3, h=8, w=10, seed=0):
    return torch.randint(0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_no_padding_no_flip_is_identity():
    x = _batch()
    assert torch.equal(random_crop_flip(x, 0, torch.Generator().manual_seed(0), flip=False), x)


def test_output_shape_and_dtype():
    x = _batch()
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.is_contiguous()
    f = random_crop_flip(x.float(), 2, torch.Generator().manual_seed(0))
    assert f.dtype == torch.float32 and torch.equal(f, out.float())


def test_flip_only_flips_or_keeps_each_image():
    x = _batch(b=32)
    out = random_crop_flip(x, 0, torch.Generator().manual_seed(1), flip=True)
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 4 < sum(flipped) < 28  # about half


@pytest.mark.parametrize("flip", [False, True])
def test_matches_per_image_crop_and_flip(flip):
    """Replay the generator's draws (offsets, then flips) and crop each padded image directly."""
    x, pad, seed = _batch(), 3, 7
    out = random_crop_flip(x, pad, torch.Generator().manual_seed(seed), flip=flip)
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = x.shape
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    do_flip = torch.rand(b, generator=g) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    for i in range(b):
        padded = F.pad(x[i], (pad, pad, pad, pad))  # zeros around, like RandomCrop(padding=pad)
        crop = padded[:, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        expected = crop.flip(-1) if do_flip[i] else crop
        assert torch.equal(out[i], expected), i


def test_crops_show_zero_padding_and_original_pixels():
    x = torch.full((64, 1, 4, 4), 7, dtype=torch.uint8)
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(0), flip=False)
    assert set(out.unique().tolist()) == {0, 7}
    # Every crop keeps at least the overlapping (4-2)x(4-2) block of the image.
    assert ((out == 7).flatten(1).sum(1) >= 4).all()


def test_same_seed_same_augmentation():
    x = _batch()
    a = random_crop_flip(x, 2, torch.Generator().manual_seed(3))
    b = random_crop_flip(x, 2, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_normalize():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = normalize(x, (0.5, 0.5, 0.5), (0.5, 0.25, 1.0))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([-1.0, -2.0, -0.5]))
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([1.0, 2.0, 0.5]))
    assert x.dtype == torch.uint8  # the input is not changed in place
