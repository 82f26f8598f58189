"""Batch augmentation on any device: random crop with padding, horizontal flip, normalisation.

These act on whole uint8 batches ``(B, C, H, W)`` with index gathers, so the same code
runs on the CPU and, with the data resident on the GPU, without a DataLoader. The
per-sample random draws come from an explicit :class:`torch.Generator` on the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN", "IMAGENET_STD", "random_crop_flip", "crop_flip", "normalize"]

# The authors' CIFAR-10 statistics (their util.get_transform).
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                     flip: bool = True) -> torch.Tensor:
    """Random ``H×W`` crop of the zero-padded batch plus a random horizontal flip, per sample.

    Equivalent to torchvision's ``RandomCrop(H, padding)`` and ``RandomHorizontalFlip()``
    applied to each image independently. ``images``: ``(B, C, H, W)``, any dtype.
    """
    b = images.shape[0]
    dev = images.device
    if padding > 0:
        oy = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
        ox = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    else:
        oy = ox = torch.zeros(b, dtype=torch.long, device=dev)
    do_flip = torch.rand(b, device=dev, generator=generator) < 0.5 if flip else None
    return crop_flip(images, padding, oy, ox, do_flip)


def crop_flip(images: torch.Tensor, padding: int, oy: torch.Tensor, ox: torch.Tensor,
              do_flip: torch.Tensor | None = None) -> torch.Tensor:
    """The crop and flip of :func:`random_crop_flip` for given draws (no randomness, static shapes).

    ``oy``, ``ox``: ``(B,)`` offsets in ``[0, 2·padding]`` into the zero-padded image;
    ``do_flip``: ``(B,)`` bools, or None for no flip. The fast path draws these for a
    whole epoch at once and replays this function inside a captured CUDA graph.
    """
    b, _, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (padding, padding, padding, padding)) if padding > 0 else images
    rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])  # (B, H)
    cols = (ox[:, None] + torch.arange(w, device=dev)[None, :])  # (B, W)
    if do_flip is not None:
        cols = torch.where(do_flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in [0, 255] to float, standardised per channel."""
    m = torch.as_tensor(mean, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float().div_(255.0) - m) / s
