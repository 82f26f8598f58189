"""Long-tailed subsets, class counts and many/medium/few groups (glmc_core.data.longtail, prepare_data)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from glmc_core.config import get_preset
from glmc_core.data import prepare_data
from glmc_core.data.longtail import class_counts, longtail_counts, longtail_indices, shot_groups, validation_split
from glmc_core.errors import GLMCError

CIFAR10_LT_IF100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_cifar10_lt_if100_counts():
    assert longtail_counts(5000, 10, 100) == CIFAR10_LT_IF100


@pytest.mark.parametrize("n_max,num_classes,imbalance,total", [
    (5000, 10, 100, 12406), (5000, 10, 50, 13996), (5000, 10, 10, 20431),
    (500, 100, 100, 10847), (500, 100, 50, 12608), (500, 100, 10, 19573),
])
def test_published_training_set_sizes(n_max, num_classes, imbalance, total):
    counts = longtail_counts(n_max, num_classes, imbalance)
    assert len(counts) == num_classes
    assert sum(counts) == total
    assert counts[0] == n_max and counts[-1] == int(n_max / imbalance)
    assert all(a >= b for a, b in pairwise(counts))


def test_imbalance_factor_one_keeps_data_balanced_and_single_class():
    assert longtail_counts(500, 4, 1) == [500] * 4
    assert longtail_counts(7, 1, 100) == [7]


@pytest.mark.parametrize("args", [(5000, 10, 0.5), (0, 10, 10), (10, 0, 10)])
def test_longtail_counts_refuse_bad_arguments(args):
    with pytest.raises(GLMCError):
        longtail_counts(*args)


def _balanced_labels(per_class: int, num_classes: int, seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


def test_longtail_indices_pick_counts_without_duplicates():
    labels = _balanced_labels(60, 5)
    counts = longtail_counts(60, 5, 10)
    idx = longtail_indices(labels, counts, seed=3)
    assert len(np.unique(idx)) == len(idx) == sum(counts)
    assert np.all(np.diff(idx) > 0)  # sorted
    assert class_counts(labels[idx], 5).tolist() == counts


def test_longtail_indices_are_deterministic_per_seed():
    labels = _balanced_labels(60, 5)
    counts = longtail_counts(60, 5, 10)
    a, b = longtail_indices(labels, counts, seed=3), longtail_indices(labels, counts, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, longtail_indices(labels, counts, seed=4))


def test_longtail_indices_refuse_more_images_than_a_class_has():
    labels = _balanced_labels(10, 3)
    with pytest.raises(GLMCError, match="'b' has only 10 training images"):
        longtail_indices(labels, [5, 11, 1], class_names=["a", "b", "c"])


def test_class_counts():
    assert class_counts(np.array([0, 2, 2, 2]), 4).tolist() == [1, 0, 3, 0]


@pytest.mark.parametrize("count,group", [
    (5000, "many"), (101, "many"), (100, "medium"), (50, "medium"), (20, "medium"), (19, "few"), (1, "few"),
])
def test_shot_group_thresholds(count, group):
    assert shot_groups([count]).tolist() == [group]


def test_shot_groups_of_cifar10_lt_and_custom_thresholds():
    assert shot_groups(CIFAR10_LT_IF100).tolist() == ["many"] * 8 + ["medium"] * 2
    assert shot_groups([20, 21], few_threshold=21).tolist() == ["few", "medium"]
    assert shot_groups([10, 30, 60], many_threshold=50, few_threshold=15).tolist() == ["few", "medium", "many"]


def test_validation_split_takes_a_fraction_of_every_class():
    labels = np.repeat(np.arange(3), [100, 10, 2])
    tr, val = validation_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(tr, val)) == 0 and len(tr) + len(val) == len(labels)
    assert class_counts(labels[val], 3).tolist() == [10, 1, 1]
    tr2, val2 = validation_split(labels, 0.1, seed=0)
    np.testing.assert_array_equal(val, val2)


# ------------------------------------------------------------------------------ real CIFAR-10
def test_cifar10_zip_lt_if100(cifar10_zip):
    """The shared CIFAR-10 zip gives the published long-tailed counts and the balanced test set.

    The first call decodes 60,000 JPEGs (about 15-40 s on 2 cores) into data/cache; later calls load the cache.
    """
    data = prepare_data(get_preset("cifar10-lt-if100", data_root=str(cifar10_zip)), progress=False)
    assert data.counts.tolist() == CIFAR10_LT_IF100
    assert data.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert len(data.train) == 12406
    assert data.train.images.shape == (12406, 32, 32, 3) and data.train.images.dtype == np.uint8
    assert len(data.test) == 10000
    assert class_counts(data.test.labels, 10).tolist() == [1000] * 10
    assert data.imbalance_factor == pytest.approx(100.0)
    assert data.groups.tolist() == ["many"] * 8 + ["medium"] * 2
    # Same seed, same subset; no image twice.
    again = prepare_data(get_preset("cifar10-lt-if100", data_root=str(cifar10_zip)), progress=False)
    np.testing.assert_array_equal(again.train.images, data.train.images)
    assert len(np.unique(data.train.images.reshape(len(data.train), -1), axis=0)) == len(data.train)


@pytest.mark.parametrize("preset,total", [("cifar10-lt-if50", 13996), ("cifar10-lt-if10", 20431)])
def test_cifar10_zip_other_imbalance_factors(cifar10_zip, preset, total):
    data = prepare_data(get_preset(preset, data_root=str(cifar10_zip)), progress=False)
    assert int(data.counts.sum()) == total and len(data.test) == 10000
