"""Which data sets exist and how each loads: one registry, keyed by :data:`glmc_core.config.DATASETS`.

To add a data set: write its reader in :mod:`~glmc_core.data.formats` (or reuse one), add its name to
``config.DATASETS`` and its :class:`Dataset` entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..augment import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from ..config import DATASETS as NAMES
from ..errors import GLMCError
from .cache import decoded_in_memory
from .formats import load_cifar, load_digits, load_image_folder, load_split_list
from .reading import resolve_data_root
from .splits import ArraySplit, FileSplit, Source

__all__ = ["Dataset", "DATASETS", "load_source", "channel_stats", "CIFAR100_MEAN", "CIFAR100_STD"]

CIFAR100_MEAN = (0.4914, 0.4822, 0.4465)  # the authors' CIFAR-100 statistics
CIFAR100_STD = (0.2023, 0.1994, 0.2010)

Loader = Callable[..., Source]  # (cfg, progress, lazy) -> Source


@dataclass(frozen=True)
class Dataset:
    """How one data set loads: its reader, its number of classes when fixed, its normalisation."""

    load: Loader  # (cfg, progress, lazy): ``lazy`` lets small images not decoded yet come back as files
    num_classes: int | None  # None: as many as the folders or split lists hold
    mean: tuple[float, float, float] | None = None  # None: measured on the decoded training images, else ImageNet's
    std: tuple[float, float, float] | None = None


def _cifar(num_classes: int) -> Loader:
    def load(cfg, progress: bool, lazy: bool) -> Source:
        return load_cifar(cfg.data_root, num_classes, cfg.download, cfg.image_size, progress, lazy=lazy)

    return load


def _image_folder(cfg, progress: bool, lazy: bool) -> Source:
    return load_image_folder(resolve_data_root(cfg.data_root), cfg.image_size, decode=decoded_in_memory(cfg.image_size),
                             progress=progress, lazy=lazy)


def _split_list(cfg, progress: bool, lazy: bool) -> Source:
    return load_split_list(cfg.data_root, cfg.train_list, cfg.test_list, cfg.image_size,
                           decode=decoded_in_memory(cfg.image_size), progress=progress)


def _digits(cfg, progress: bool, lazy: bool) -> Source:
    return load_digits(image_size=cfg.image_size)


DATASETS: dict[str, Dataset] = {
    "cifar10": Dataset(_cifar(10), 10, CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": Dataset(_cifar(100), 100, CIFAR100_MEAN, CIFAR100_STD),
    "imagefolder": Dataset(_image_folder, None),
    "splitlist": Dataset(_split_list, None),
    "digits": Dataset(_digits, 10),
}
if tuple(DATASETS) != NAMES:  # config validates against NAMES: the two must not drift apart
    raise ImportError(f"glmc_core.data.datasets lists {tuple(DATASETS)}, glmc_core.config.DATASETS {NAMES}")


def load_source(cfg, progress: bool = True, lazy: bool = False) -> Source:
    """Read the data set named by ``cfg.dataset`` from ``cfg.data_root``.

    ``lazy``: small images of an image folder (such as the CIFAR-10 zip) whose decoded cache does not
    exist yet come back as files; :func:`~glmc_core.data.prepare_data` then decodes only the subsets it keeps.
    """
    spec = DATASETS.get(cfg.dataset)
    if spec is None:
        raise GLMCError(f"unknown dataset {cfg.dataset!r}")
    return spec.load(cfg, progress, lazy)


def channel_stats(cfg, train: ArraySplit | FileSplit) -> tuple[tuple, tuple]:
    """The normalisation of ``cfg.dataset``: its registered mean and std, else measured on the decoded
    training images, else (files read per batch) ImageNet's."""
    spec = DATASETS[cfg.dataset]
    if spec.mean is not None:
        return spec.mean, spec.std
    if isinstance(train, ArraySplit) and len(train):
        x = train.images.reshape(-1, 3).astype(np.float64) / 255.0
        return tuple(x.mean(0).tolist()), tuple(np.maximum(x.std(0), 1e-3).tolist())
    return IMAGENET_MEAN, IMAGENET_STD
