"""Training and evaluation batches, in two flavours.

* :class:`TensorStream`: the whole (small-image) training set as one uint8 tensor on the
  training device; batches are index gathers, crop/flip/normalise are batch operations
  (``glmc_core.augment``). No DataLoader, no per-image Python.
* :class:`LoaderStream`: a torch DataLoader with PIL/torchvision transforms per image, like
  the authors' code. Used for large images (file-based splits) and as the reference path.

Both yield, per step, a dict of normalised float views on the device:
``x_u1, x_u2, y_u`` (uniform batch, two views) and ``x_r1, x_r2, y_r`` (resampled batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from ..augment import crop_flip, normalize, random_crop_flip
from .cache import IN_MEMORY_MAX_SIZE
from .reading import open_rgb, read_file, read_member
from .samplers import ClassResampler, uniform_batches
from .splits import ArraySplit, FileSplit

__all__ = ["TensorStream", "LoaderStream", "make_train_stream", "eval_batches", "two_view_batch", "VIEWS"]

VIEWS = ("x_u1", "x_u2", "x_r1", "x_r2")  # two views of the uniform batch, two of the resampled batch


def two_view_batch(images: torch.Tensor, labels: torch.Tensor, idx_u: torch.Tensor, idx_r: torch.Tensor,
                   padding: int, mean: torch.Tensor, std: torch.Tensor, flip: bool = True,
                   generator: torch.Generator | None = None, crops: tuple | None = None) -> dict[str, torch.Tensor]:
    """One step's batch dict from device-resident uint8 images: index gathers, crop/flip, normalise.

    ``crops``: given crop offsets and flips ``(oy, ox, flip)``, each ``(4, B)`` in the order of
    :data:`VIEWS` (the fast path draws a whole epoch of them at once); without them each view
    draws its own from ``generator``, one view after the other.
    """
    out = {"y_u": labels[idx_u], "y_r": labels[idx_r]}
    for v, (name, idx) in enumerate(zip(VIEWS, (idx_u, idx_u, idx_r, idx_r), strict=True)):
        x = images[idx]
        if crops is None:
            x = random_crop_flip(x, padding, generator, flip)
        else:
            x = crop_flip(x, padding, crops[0][v], crops[1][v], crops[2][v])
        out[name] = normalize(x, mean, std)  # (B, 3, H, W) float32
    return out


class TensorStream:
    """Device-resident batches for an :class:`ArraySplit`."""

    def __init__(self, split: ArraySplit, num_classes: int, cfg, device, data_gen: torch.Generator,
                 aug_gen: torch.Generator, mean, std):
        self.images = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous().to(device)  # (N, 3, H, W)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.resampler = ClassResampler(split.labels, num_classes, cfg.resample_q, cfg.resample_convention)
        self.batch_size = cfg.batch_size
        self.padding = cfg.image_size // 8 if cfg.augment != "none" else 0
        self.flip = cfg.augment != "none"
        self.data_gen, self.aug_gen = data_gen, aug_gen
        # device tensors: normalising never copies from the host (the fast path captures it in a graph)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)
        self.std = torch.tensor(std, dtype=torch.float32, device=device)
        self.device = device

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def batch(self, idx_u: torch.Tensor, idx_r: torch.Tensor, crops: tuple | None = None) -> dict[str, torch.Tensor]:
        """The step's batch dict for these indices (see :func:`two_view_batch`)."""
        dev = self.images.device
        return two_view_batch(self.images, self.labels, idx_u.to(dev), idx_r.to(dev), self.padding, self.mean,
                              self.std, self.flip, self.aug_gen, crops)

    def __iter__(self) -> Iterator[dict]:
        for idx_u in uniform_batches(len(self.labels), self.batch_size, self.data_gen):
            yield self.batch(idx_u, self.resampler.sample(len(idx_u), self.data_gen))


def _open_image(split: FileSplit | ArraySplit, i: int, zip_cache: dict):
    from PIL import Image

    if isinstance(split, ArraySplit):
        return Image.fromarray(split.images[i])
    if split.archive:
        import zipfile

        zf = zip_cache.get(split.archive)
        if zf is None:  # one handle per worker process
            zf = zip_cache[split.archive] = zipfile.ZipFile(split.archive)
        data = read_member(zf, split.paths[i], split.archive)
    else:
        data = read_file(Path(split.root), split.paths[i])
    # A damaged, truncated or oversized image is a one-line GLMCError naming the file (from a DataLoader
    # worker too: GLMCError keeps the worker's message, not the traceback around it).
    return open_rgb(data, split.paths[i])


class _TwoViewDataset(torch.utils.data.Dataset):
    def __init__(self, split, transform, views: int = 2):
        self.split, self.transform, self.views = split, transform, views
        self._zip: dict = {}

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        img = _open_image(self.split, i, self._zip)
        views = [self.transform(img) for _ in range(self.views)]
        return (*views, int(self.split.labels[i]))


def build_transforms(cfg, mean, std):
    """torchvision train / test transforms: the CIFAR recipe or the paper's large-image recipe."""
    from torchvision import transforms as T

    norm = [T.ToTensor(), T.Normalize(mean, std)]
    if cfg.augment == "imagenet":
        train = T.Compose([
            T.RandomResizedCrop(cfg.image_size),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.0)], p=1.0),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel_size=23, sigma=(0.1, 2.0))], p=0.5),
            T.RandomHorizontalFlip(), *norm])
        test = T.Compose([T.Resize(int(round(cfg.image_size * 256 / 224))), T.CenterCrop(cfg.image_size), *norm])
    elif cfg.augment == "cifar":
        train = T.Compose([T.Resize((cfg.image_size, cfg.image_size)),
                           T.RandomCrop(cfg.image_size, padding=cfg.image_size // 8), T.RandomHorizontalFlip(), *norm])
        test = T.Compose([T.Resize((cfg.image_size, cfg.image_size)), *norm])
    else:
        train = test = T.Compose([T.Resize((cfg.image_size, cfg.image_size)), *norm])
    return train, test


class LoaderStream:
    """DataLoader batches (uniform shuffle + weighted resampler), per-image transforms."""

    def __init__(self, split, num_classes: int, cfg, device, data_gen: torch.Generator, mean, std):
        train_tf, _ = build_transforms(cfg, mean, std)
        ds = _TwoViewDataset(split, train_tf)
        self.resampler = ClassResampler(split.labels, num_classes, cfg.resample_q, cfg.resample_convention)
        pin = torch.device(device).type == "cuda"
        # Persistent workers carry their random state across epochs, which a resumed run cannot restore;
        # deterministic runs start fresh workers each epoch, seeded from data_gen (saved in checkpoints).
        common = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers, pin_memory=pin,
                      persistent_workers=cfg.num_workers > 0 and not cfg.deterministic)
        self.uniform = torch.utils.data.DataLoader(ds, shuffle=True, generator=data_gen, **common)
        sampler = torch.utils.data.WeightedRandomSampler(self.resampler.sample_probs.double(), len(ds),
                                                         replacement=True, generator=data_gen)
        self.weighted = torch.utils.data.DataLoader(ds, sampler=sampler, **common)
        self.device = device

    def __len__(self) -> int:
        return len(self.uniform)

    def __iter__(self) -> Iterator[dict]:
        weighted = iter(self.weighted)
        nb = self.device != "cpu"
        for x_u1, x_u2, y_u in self.uniform:
            try:
                x_r1, x_r2, y_r = next(weighted)
            except StopIteration:
                weighted = iter(self.weighted)
                x_r1, x_r2, y_r = next(weighted)
            n = len(y_u)
            yield {"x_u1": x_u1.to(self.device, non_blocking=nb), "x_u2": x_u2.to(self.device, non_blocking=nb),
                   "y_u": y_u.to(self.device, non_blocking=nb),
                   "x_r1": x_r1[:n].to(self.device, non_blocking=nb), "x_r2": x_r2[:n].to(self.device, non_blocking=nb),
                   "y_r": y_r[:n].to(self.device, non_blocking=nb)}


def make_train_stream(data, cfg, device, data_gen, aug_gen, loader: str = "auto"):
    """The stream for ``data.train``: tensors when the images are in memory (unless ``loader="dataloader"``)."""
    if loader == "auto":
        loader = "tensor" if isinstance(data.train, ArraySplit) else "dataloader"
    if loader == "tensor":
        if not isinstance(data.train, ArraySplit):
            raise ValueError(f"the tensor stream needs decoded images (image_size <= {IN_MEMORY_MAX_SIZE})")
        return TensorStream(data.train, data.num_classes, cfg, device, data_gen, aug_gen, data.mean, data.std)
    return LoaderStream(data.train, data.num_classes, cfg, device, data_gen, data.mean, data.std)


def eval_batches(split, cfg, device, mean, std, batch_size: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised, un-augmented ``(x, y)`` batches of an evaluation split, on ``device``."""
    if isinstance(split, ArraySplit) and split.images.shape[1] == cfg.image_size:
        for i in range(0, len(split), batch_size):
            x = torch.from_numpy(split.images[i : i + batch_size]).permute(0, 3, 1, 2).to(device)
            yield normalize(x, mean, std), torch.from_numpy(split.labels[i : i + batch_size]).to(device)
        return
    _, test_tf = build_transforms(cfg, mean, std)
    ds = _TwoViewDataset(split, test_tf, views=1)
    dl = torch.utils.data.DataLoader(ds, batch_size=min(batch_size, 256), shuffle=False,
                                     num_workers=cfg.num_workers)
    for x, y in dl:
        yield x.to(device), y.to(device)

