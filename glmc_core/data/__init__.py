"""Long-tailed data: sources, the subset by imbalance factor, groups, samplers and batch streams.

Where each concern lives: :mod:`.datasets` (which data sets exist and how each loads), :mod:`.formats` (CIFAR,
image folders, split lists, digits), :mod:`.index` (listing image-folder trees), :mod:`.cache` (decoding small
images once), :mod:`.reading` (safe pickles, capped zips and files, RGB images), :mod:`.splits` (what a data set
is once read), :mod:`.longtail`, :mod:`.samplers`, :mod:`.streams`.

:func:`prepare_data` turns a :class:`~glmc_core.config.Config` into a
:class:`LongTailData`: the long-tailed training subset, an optional validation split,
the (balanced) test set, class counts and many/medium/few groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GLMCError
from .cache import decode_subsets, decoded_in_memory
from .datasets import DATASETS, channel_stats, load_source
from .formats import load_cifar, load_digits, load_image_folder, load_split_list, parse_split_list
from .index import index_image_folder
from .longtail import GROUPS, class_counts, longtail_counts, longtail_indices, shot_groups, validation_split
from .reading import resolve_data_root
from .samplers import ClassResampler, uniform_batches
from .splits import ArraySplit, FileSplit, Source

__all__ = ["LongTailData", "prepare_data", "load_source", "DATASETS", "longtail_counts", "longtail_indices",
           "class_counts", "shot_groups", "validation_split", "ClassResampler", "uniform_batches", "ArraySplit",
           "FileSplit", "Source", "load_cifar", "load_image_folder", "index_image_folder", "load_split_list",
           "parse_split_list", "load_digits", "GROUPS", "resolve_data_root", "decoded_in_memory"]


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
    if decoded_in_memory(cfg.image_size) and isinstance(train, FileSplit):  # lazily loaded: decode just these subsets
        subsets = {"train": train, "test": test, **({"val": val} if val is not None else {})}
        decoded = decode_subsets(subsets, cfg.image_size, progress)
        train, test, val = decoded["train"], decoded["test"], decoded.get("val")
    counts = class_counts(train.labels, num_classes)
    mean, std = channel_stats(cfg, train)
    return LongTailData(src.name, src.classes, train, test, counts,
                        shot_groups(counts, cfg.many_threshold, cfg.few_threshold), mean, std, src.origin, val,
                        list(src.notes))
