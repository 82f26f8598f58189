"""The uniform sampler and the class-resampled sampler.

* uniform: a random permutation of the training set each epoch (plain shuffling);
* class-resampled: draws with replacement. Two readings of the exponent ``q``:
  ``resample_convention="instance"`` (default) weights each *image* of class ``c`` by
  ``n_c^(−q)``, as the authors' code does (class probability ∝ ``n_c^(1−q)``; ``q = 0`` is
  plain uniform sampling), and the published ``q`` values were tuned with it;
  ``"class"`` picks class ``c`` with probability ∝ ``n_c^(−q)`` (``q = 0`` is class-balanced
  sampling), the reading of REFERENCE.md §1. With the published ``q`` the latter
  re-balances twice (sampling and label weights); see the README.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["uniform_batches", "ClassResampler"]


def uniform_batches(num_samples: int, batch_size: int, generator: torch.Generator,
                    drop_last: bool = False) -> list[torch.Tensor]:
    """One epoch of uniform batches: a permutation cut into index tensors of ``batch_size``."""
    perm = torch.randperm(num_samples, generator=generator)
    stop = (num_samples // batch_size) * batch_size if drop_last else num_samples
    return [perm[i : i + batch_size] for i in range(0, stop, batch_size)]


class ClassResampler:
    """Samples training indices with replacement with class probability ∝ ``n_c^(−q)``.

    Attributes:
        sample_probs: ``(N,)`` probability of each training image.
        class_probs: ``(C,)`` resulting probability of each class.
    """

    def __init__(self, labels, num_classes: int, q: float, convention: str = "instance"):
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        counts = torch.bincount(labels, minlength=num_classes).double()
        present = counts > 0
        if convention == "class":
            class_w = torch.zeros(num_classes, dtype=torch.float64)
            class_w[present] = counts[present].pow(-float(q))
            class_p = class_w / class_w.sum()
            per_sample = class_p[labels] / counts[labels]
        elif convention == "instance":
            per_sample = counts[labels].pow(-float(q))
        else:
            raise ValueError(f"resample convention must be 'class' or 'instance', got {convention!r}")
        self.sample_probs = (per_sample / per_sample.sum()).float()
        self.class_probs = torch.zeros(num_classes, dtype=torch.float64).index_add_(
            0, labels, self.sample_probs.double()).float()
        self.labels = labels

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` training indices drawn with replacement."""
        return torch.multinomial(self.sample_probs, batch_size, replacement=True, generator=generator)
