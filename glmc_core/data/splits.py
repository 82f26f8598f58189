"""What a data set is once read: decoded arrays or files on demand, per split, with class names and origin."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ArraySplit", "FileSplit", "Source"]


@dataclass
class ArraySplit:
    """Decoded images ``(N, H, W, 3)`` uint8 and labels ``(N,)`` int64."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "ArraySplit":
        return ArraySplit(self.images[idx], self.labels[idx])


@dataclass
class FileSplit:
    """Image files read on demand: ``opener(path)`` returns the bytes of ``path``."""

    paths: list[str]
    labels: np.ndarray
    root: str = ""
    archive: str | None = None  # a .zip holding the paths, or None for a folder

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "FileSplit":
        return FileSplit([self.paths[i] for i in idx], self.labels[idx], self.root, self.archive)


@dataclass
class Source:
    """A data set as read: class names, a training and a test split, and where it came from."""

    name: str
    classes: list[str]
    train: ArraySplit | FileSplit
    test: ArraySplit | FileSplit
    origin: str
    notes: list[str] = field(default_factory=list)
