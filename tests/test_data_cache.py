"""The decoded-image cache (glmc_core.data.cache): decoded once, only what a run keeps, rebuilt when data change."""

from __future__ import annotations

import numpy as np
import pytest
from data_files import (
    check_image_folder_source,
    distinct_image_folder,
    write_image_folder,
    write_split_list,
    zip_folder,
)
from PIL import Image

from glmc_core.config import get_preset
from glmc_core.data import prepare_data
from glmc_core.data.formats import load_image_folder, load_split_list


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Decoded-image caches of these small test sets go to the test's own folder.
    monkeypatch.setenv("GLMC_CACHE_DIR", str(tmp_path / "cache"))


def test_image_folder_is_cached(tmp_path):
    write_image_folder(tmp_path / "fruit")
    load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    again = load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    check_image_folder_source(again)


def test_cold_cache_decodes_only_the_long_tailed_subset_and_equals_the_full_decode(tmp_path, monkeypatch):
    """prepare_data with no decoded cache decodes the kept training images, the validation and the test images
    only (a third of CIFAR-10's JPEGs at IF 100), and gives exactly what decoding everything then subsetting does."""
    import glmc_core.data.cache as cache

    distinct_image_folder(tmp_path / "fruit")
    zip_folder(tmp_path / "fruit", tmp_path / "fruit.zip", "fruit")
    decoded = []
    plain = cache._decode
    monkeypatch.setattr(cache, "_decode", lambda data, name, size: decoded.append(name) or plain(data, name, size))
    cfg = get_preset("cifar10-lt-if100", dataset="imagefolder", data_root=str(tmp_path / "fruit.zip"), image_size=8,
                     imbalance_factor=4, n_max=8, test_per_class=2, val_fraction=0.2)
    lazy = prepare_data(cfg, progress=False)
    kept = len(lazy.train) + len(lazy.val) + len(lazy.test)
    assert len(decoded) == kept == 8 + 4 + 2 + 3 * 2 and len(decoded) < 19 + 9  # not the whole tree
    assert len(lazy.train) + len(lazy.val) == 14
    decoded.clear()
    again = prepare_data(cfg, progress=False)  # warm: the subset's cache, nothing decoded
    assert decoded == [] and np.array_equal(again.train.images, lazy.train.images)
    # the full decode (what a warm whole-tree cache gives) then the same subsets: the very same arrays
    full = load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False)
    assert len(decoded) == 19 + 9
    full_data = prepare_data(cfg, progress=False)  # the whole tree's cache now exists: prepare_data uses it
    for a, b in ((lazy.train, full_data.train), (lazy.val, full_data.val), (lazy.test, full_data.test)):
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert full.train.images.shape[0] == 19


def test_cache_is_rebuilt_when_images_or_lists_change(tmp_path):
    write_image_folder(tmp_path / "fruit")
    first = load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    assert len(first.train) == 10
    Image.new("RGB", (12, 12), (0, 0, 255)).save(tmp_path / "fruit" / "train" / "plum" / "new.png")
    assert len(load_image_folder(tmp_path / "fruit", image_size=8, progress=False).train) == 11
    # Same names, other pixels (a size or time change): rebuilt too.
    Image.new("RGB", (30, 30), (0, 0, 0)).save(tmp_path / "fruit" / "train" / "plum" / "new.png")
    again = load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    assert (again.train.images[-1] == 0).all()
    # An edited split list (same file size and second) is a different data set.
    write_split_list(tmp_path / "lt")
    before = load_split_list(tmp_path / "lt", "train.txt", "test.txt", image_size=8, progress=False)
    text = (tmp_path / "lt" / "train.txt").read_text()
    (tmp_path / "lt" / "train.txt").write_text(text.replace(" 0\n", " 1\n", 1))
    after = load_split_list(tmp_path / "lt", "train.txt", "test.txt", image_size=8, progress=False)
    assert (before.train.labels != after.train.labels).sum() == 1
