"""Long-tailed subsets by imbalance factor, class counts and many/medium/few-shot groups."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import GLMCError

__all__ = ["longtail_counts", "longtail_indices", "class_counts", "shot_groups", "validation_split", "GROUPS"]

GROUPS = ("many", "medium", "few")


def longtail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """Images per class: ``n_i = ⌊n_max · IF^(−i/(C−1))⌋`` for ``i = 0 … C−1``.

    CIFAR-10-LT with IF 100 gives 5000 2997 1796 1077 645 387 232 139 83 50.
    """
    if imbalance_factor < 1:
        raise GLMCError(f"imbalance factor must be at least 1 (n_max / n_min), got {imbalance_factor}")
    if num_classes < 1 or n_max < 1:
        raise GLMCError("a long-tailed subset needs at least one class and one image per class")
    if num_classes == 1:
        return [int(n_max)]
    # (1/IF)^(i/(C-1)) as the authors and LDAM compute it; a tiny epsilon guards the floor
    # against results like 49.99999999 for exact integers.
    counts = [int(np.floor(n_max * (1.0 / imbalance_factor) ** (i / (num_classes - 1.0)) + 1e-9))
              for i in range(num_classes)]
    if counts[-1] < 1:
        raise GLMCError(f"imbalance factor {imbalance_factor:g} with {n_max} images in the largest class leaves the "
                        f"smallest class empty; use an imbalance factor of at most {n_max}")
    return counts


def longtail_indices(labels: np.ndarray, counts: Sequence[int], seed: int = 0,
                     class_names: Sequence[str] | None = None) -> np.ndarray:
    """Pick ``counts[c]`` images of each class ``c``: shuffle each class with a fixed seed, keep the first ones.

    Sampling is without replacement, so the subset has no duplicates (the LDAM-DRW
    convention, and the authors' later fix). Returns indices into ``labels``, sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep = []
    for c, n_c in enumerate(counts):
        idx = np.flatnonzero(labels == c)
        if n_c > len(idx):
            name = class_names[c] if class_names is not None else str(c)
            raise GLMCError(f"class {name!r} has only {len(idx)} training images but the subset asks for {n_c}; "
                            f"lower n_max or the imbalance factor")
        rng.shuffle(idx)
        keep.append(idx[:n_c])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Number of images of each class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def shot_groups(counts: Sequence[int], many_threshold: int = 100, few_threshold: int = 20) -> np.ndarray:
    """Group of each class by its training count: ``many`` (> many_threshold),
    ``few`` (< few_threshold), ``medium`` otherwise.

    With the defaults: many > 100, medium 20–100, few < 20 (the usual convention of
    Liu et al. 2019; the GLMC code puts classes with exactly 20 images in *few*: pass
    ``few_threshold=21`` to match it).
    """
    counts = np.asarray(counts)
    groups = np.full(len(counts), "medium", dtype=object)
    groups[counts > many_threshold] = "many"
    groups[counts < few_threshold] = "few"
    return groups


def validation_split(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation), taking ``fraction`` of every class (at least one
    image per class when the class has two or more)."""
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed + 1)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
