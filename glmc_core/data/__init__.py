"""Long-tailed data: sources, the subset by imbalance factor, groups, samplers and batch streams.

:func:`prepare_data` turns a :class:`~glmc_core.config.Config` into a
:class:`LongTailData`: the long-tailed training subset, an optional validation split,
the (balanced) test set, class counts and many/medium/few groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..augment import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from ..errors import GLMCError
from .longtail import GROUPS, class_counts, longtail_counts, longtail_indices, shot_groups, validation_split
from .samplers import ClassResampler, uniform_batches
from .sources import (
    ArraySplit,
    FileSplit,
    Source,
    decode_subsets,
    index_image_folder,
    load_cifar,
    load_digits,
    load_image_folder,
    load_split_list,
    parse_split_list,
    resolve_data_root,
)

__all__ = ["LongTailData", "prepare_data", "load_source", "longtail_counts", "longtail_indices", "class_counts",
           "shot_groups", "validation_split", "ClassResampler", "uniform_batches", "ArraySplit", "FileSplit",
           "Source", "load_cifar", "load_image_folder", "index_image_folder", "load_split_list", "parse_split_list",
           "load_digits", "GROUPS", "resolve_data_root"]

CIFAR100_MEAN = (0.4914, 0.4822, 0.4465)  # the authors' CIFAR-100 statistics
CIFAR100_STD = (0.2023, 0.1994, 0.2010)


@dataclass
class LongTailData:
    """A long-tailed training set with its test set and the facts the metrics need."""

    name: str
    classes: list[str]
    train: ArraySplit | FileSplit
    test: ArraySplit | FileSplit
    counts: np.ndarray  # training images per class
    groups: np.ndarray  # "many" / "medium" / "few" per class
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str
    val: ArraySplit | FileSplit | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def imbalance_factor(self) -> float:
        return float(self.counts.max() / max(self.counts.min(), 1))

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, ArraySplit)

    def summary(self) -> str:
        """A few lines: counts per class with groups, imbalance factor, test size."""
        lines = [f"{self.name} from {self.origin}: {len(self.train)} training images in {self.num_classes} classes, "
                 f"imbalance factor {self.imbalance_factor:.1f}, {len(self.test)} test images"
                 + (f", {len(self.val)} validation images" if self.val is not None else "")]
        for g in GROUPS:
            members = np.flatnonzero(self.groups == g)
            lines.append(f"  {g:>6}: {len(members)} classes")
        width = max(len(c) for c in self.classes)
        for c, (name, n, g) in enumerate(zip(self.classes, self.counts, self.groups, strict=True)):
            lines.append(f"  {c:>4} {name:<{width}} {int(n):>7} {g}")
        return "\n".join(lines)


def load_source(cfg, progress: bool = True, lazy: bool = False) -> Source:
    """Read the data set named by ``cfg.dataset`` from ``cfg.data_root``.

    ``lazy``: small images of an image folder (such as the CIFAR-10 zip) whose decoded cache does not
    exist yet come back as files; :func:`prepare_data` then decodes only the subsets it keeps.
    """
    decode = cfg.image_size <= 64
    if cfg.dataset == "digits":
        return load_digits(image_size=cfg.image_size)
    if cfg.dataset in ("cifar10", "cifar100"):
        return load_cifar(cfg.data_root, 10 if cfg.dataset == "cifar10" else 100, cfg.download, cfg.image_size,
                          progress, lazy=lazy)
    if cfg.dataset == "imagefolder":
        root = resolve_data_root(cfg.data_root)
        return load_image_folder(root, cfg.image_size, decode=decode, progress=progress, lazy=lazy)
    if cfg.dataset == "splitlist":
        return load_split_list(cfg.data_root, cfg.train_list, cfg.test_list, cfg.image_size, decode=decode,
                               progress=progress)
    raise GLMCError(f"unknown dataset {cfg.dataset!r}")


def _channel_stats(cfg, train) -> tuple[tuple, tuple]:
    if cfg.dataset == "cifar10":
        return CIFAR10_MEAN, CIFAR10_STD
    if cfg.dataset == "cifar100":
        return CIFAR100_MEAN, CIFAR100_STD
    if isinstance(train, ArraySplit) and len(train):
        x = train.images.reshape(-1, 3).astype(np.float64) / 255.0
        return tuple(x.mean(0).tolist()), tuple(np.maximum(x.std(0), 1e-3).tolist())
    return IMAGENET_MEAN, IMAGENET_STD


def prepare_data(cfg, progress: bool = True) -> LongTailData:
    """Load the source and build the long-tailed subset that ``cfg`` describes.

    Small images not decoded yet are decoded only for the subsets kept (training subset, validation,
    test), not the whole source: about a third of CIFAR-10's 60,000 JPEGs at IF 100.
    """
    src = load_source(cfg, progress, lazy=True)
    num_classes = len(src.classes)
    full_counts = class_counts(src.train.labels, num_classes)
    if (full_counts == 0).any():
        empty = [src.classes[c] for c in np.flatnonzero(full_counts == 0)]
        raise GLMCError(f"class(es) {empty} have no training images in {src.origin}")
    train = src.train
    if cfg.imbalance_factor > 1 or cfg.n_max is not None:
        n_max = cfg.n_max if cfg.n_max is not None else int(full_counts.min())
        counts = longtail_counts(n_max, num_classes, cfg.imbalance_factor)
        idx = longtail_indices(src.train.labels, counts, cfg.subset_seed, src.classes)
        train = src.train.subset(idx)
    val = None
    if cfg.val_fraction > 0:
        tr_idx, val_idx = validation_split(train.labels, cfg.val_fraction, cfg.subset_seed)
        train, val = train.subset(tr_idx), train.subset(val_idx)
    test = src.test
    if cfg.test_per_class is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(test.labels == c)[: cfg.test_per_class]
                                       for c in range(num_classes)]))
        test = test.subset(keep)
    if cfg.image_size <= 64 and isinstance(train, FileSplit):  # lazily loaded: decode just these subsets
        subsets = {"train": train, "test": test, **({"val": val} if val is not None else {})}
        decoded = decode_subsets(subsets, cfg.image_size, progress)
        train, test, val = decoded["train"], decoded["test"], decoded.get("val")
    counts = class_counts(train.labels, num_classes)
    mean, std = _channel_stats(cfg, train)
    return LongTailData(src.name, src.classes, train, test, counts,
                        shot_groups(counts, cfg.many_threshold, cfg.few_threshold), mean, std, src.origin, val,
                        list(src.notes))
