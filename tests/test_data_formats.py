"""Data-set formats (glmc_core.data.formats): CIFAR pickles, image folders (folder and .zip), split lists, digits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from data_files import (
    check_image_folder_source,
    dump,
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_split_list,
    zip_folder,
)

from glmc_core.config import get_preset
from glmc_core.data import prepare_data
from glmc_core.data.formats import load_cifar, load_digits, load_image_folder, load_split_list, parse_split_list
from glmc_core.data.index import index_image_folder
from glmc_core.data.longtail import class_counts, longtail_counts
from glmc_core.errors import GLMCError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Decoded-image caches of these small test sets go to the test's own folder.
    monkeypatch.setenv("GLMC_CACHE_DIR", str(tmp_path / "cache"))


class _Planted:
    """What a hostile ``data_batch_1`` holds: unpickling it would call ``marker.touch()`` (any code could run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cifar10_pickles(tmp_path):
    train_x, test_x = write_cifar10(tmp_path)
    src = load_cifar(tmp_path, 10)
    assert src.name == "cifar10" and src.classes[0] == "airplane" and src.classes[-1] == "truck"
    assert src.train.images.shape == (150, 32, 32, 3) and len(src.test) == 20
    np.testing.assert_array_equal(src.train.images, train_x)  # (N, H, W, C) back from CIFAR's rows
    np.testing.assert_array_equal(src.test.images, test_x)
    assert class_counts(src.train.labels, 10).tolist() == [15] * 10
    # The pickle folder itself as the data root works too.
    assert len(load_cifar(tmp_path / "cifar-10-batches-py", 10).train) == 150


def test_cifar100_pickles(tmp_path):
    train_x, _ = write_cifar100(tmp_path)
    src = load_cifar(tmp_path, 100)
    assert src.name == "cifar100" and src.classes[:2] == ["c00", "c01"] and len(src.classes) == 100
    np.testing.assert_array_equal(src.train.images, train_x)
    assert class_counts(src.train.labels, 100).tolist() == [4] * 100
    assert src.test.labels.tolist() == list(range(100))


def test_prepare_data_from_cifar10_pickles(tmp_path):
    write_cifar10(tmp_path)
    cfg = get_preset("cifar10-lt-if10", data_root=str(tmp_path))
    data = prepare_data(cfg, progress=False)
    assert data.counts.tolist() == longtail_counts(15, 10, 10)  # n_max: the smallest full class
    assert len(data.test) == 20 and data.num_classes == 10


def test_cifar_missing_file_and_corrupt_pickle(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(GLMCError, match="data_batch_3 is missing"):
        load_cifar(tmp_path, 10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(GLMCError, match="cannot read CIFAR-10 file"):
        load_cifar(tmp_path, 10)


@pytest.mark.parametrize("where", ["data_batch_1", "batches.meta"])
def test_cifar_pickles_cannot_run_code(tmp_path, where):
    """CIFAR batches are pickles: only dicts, lists, bytes, numbers and numpy arrays are rebuilt."""
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    if where == "data_batch_1":
        dump(folder / where, {b"data": _Planted(marker), b"labels": [0]})
    else:
        dump(folder / where, {b"label_names": [_Planted(marker)]})
    with pytest.raises(GLMCError, match="refused for safety") as info:
        load_cifar(tmp_path, 10)
    assert not marker.exists()
    assert "pathlib" in str(info.value) and "\n" not in str(info.value)


def test_cifar_pickles_refuse_object_arrays_and_builtins(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    dump(folder / "data_batch_2", {b"data": np.array([print], dtype=object), b"labels": [0]})
    with pytest.raises(GLMCError, match="refused for safety"):
        load_cifar(tmp_path, 10)
    with open(folder / "data_batch_2", "wb") as fh:  # a bare GLOBAL of builtins.eval, protocol 0
        fh.write(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(GLMCError, match=r"\(refused builtins.eval\); it is refused for safety"):
        load_cifar(tmp_path, 10)


@pytest.mark.parametrize("protocol", [0, 2])
def test_cifar_pickles_of_python2_and_3_protocols_load(tmp_path, protocol):
    """The real files are protocol-2 pickles written by Python 2 (numpy.core.multiarray._reconstruct,
    numpy.ndarray, numpy.dtype); Python 3 writes bytes through _codecs.encode at protocols < 3."""
    folder = tmp_path / "cifar-10-batches-py"
    train_x, _ = write_cifar10(tmp_path)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        with open(folder / name, "rb") as fh:
            obj = pickle.load(fh)
        with open(folder / name, "wb") as fh:
            pickle.dump(obj, fh, protocol=protocol)
    src = load_cifar(tmp_path, 10)
    np.testing.assert_array_equal(src.train.images, train_x)
    assert src.classes[0] == "airplane"


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_cifar_not_found(tmp_path, make):
    root = tmp_path / "nowhere"
    if make == "empty":
        root.mkdir()
    with pytest.raises(GLMCError, match="CIFAR-10 not found"):
        load_cifar(root, 10)


def test_image_folder_from_folder(tmp_path):
    write_image_folder(tmp_path / "fruit")
    check_image_folder_source(load_image_folder(tmp_path / "fruit", image_size=8, progress=False))


def test_image_folder_from_zip_with_one_top_level_folder(tmp_path):
    write_image_folder(tmp_path / "fruit")
    zip_folder(tmp_path / "fruit", tmp_path / "fruit.zip", "fruit")
    check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))
    classes, train, test, _ = index_image_folder(tmp_path / "fruit.zip")
    assert train.archive == str(tmp_path / "fruit.zip") and train.paths[0].startswith("fruit/train/apple/")


def test_split_list_reads_files_comments_and_blank_lines(tmp_path):
    write_split_list(tmp_path)
    src = load_split_list(tmp_path, "train.txt", "test.txt", image_size=6, progress=False)
    assert src.classes == ["0", "1", "2"]
    assert src.train.labels.tolist() == [0, 1, 2, 2] and src.test.labels.tolist() == [1, 0]
    assert src.train.images.shape == (4, 6, 6, 3)
    assert src.train.images[1, 0, 0].tolist() == [40, 50, 60]
    assert src.train.images[3, 5, 5].tolist() == [1, 2, 3]  # a path with spaces
    assert src.test.images[0, 0, 0].tolist() == [200, 100, 0]


def test_split_list_undecoded_keeps_paths(tmp_path):
    write_split_list(tmp_path)
    src = load_split_list(tmp_path, "train.txt", "test.txt", image_size=224)
    assert src.train.paths == ["imgs/0.png", "imgs/1.png", "imgs/2.png", "imgs/sub dir/x y.png"]


@pytest.mark.parametrize("line,message", [
    ("imgs/0.png", r"train.txt:3: expected 'relative/path label'"),
    ("imgs/0.png zero", r"train.txt:3: label 'zero' is not a whole number"),
    ("imgs/0.png -1", r"train.txt:3: label -1 is out of range"),
])
def test_split_list_bad_lines_name_file_and_line(tmp_path, line, message):
    (tmp_path / "train.txt").write_text(f"# header\nimgs/1.png 1\n{line}\n")
    with pytest.raises(GLMCError, match=message):
        parse_split_list(tmp_path / "train.txt")


def test_split_list_test_label_out_of_range_and_missing_files(tmp_path):
    write_split_list(tmp_path)
    (tmp_path / "test.txt").write_text("imgs/0.png 7\n")
    with pytest.raises(GLMCError, match="out of range 0..2"):
        load_split_list(tmp_path, "train.txt", "test.txt", image_size=6)
    (tmp_path / "test.txt").write_text("imgs/missing.png 0\n")
    with pytest.raises(GLMCError, match="missing under"):
        load_split_list(tmp_path, "train.txt", "test.txt", image_size=6)
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(GLMCError, match="has no entries"):
        parse_split_list(tmp_path / "empty.txt")


@pytest.mark.parametrize("line", ["../outside.png 0", "/etc/passwd 0", "a/../../x.png 0", "~/x.png 0",
                                  "C:\\\\x.png 0", "a\\\\..\\\\..\\\\x.png 0", "a/\x00.png 0"])
def test_split_list_paths_stay_inside_the_root(tmp_path, line):
    (tmp_path / "train.txt").write_text(f"a/0.png 0\n{line}\n")
    with pytest.raises(GLMCError, match="train.txt:2: path .* leaves the data root"):
        parse_split_list(tmp_path / "train.txt")


def test_huge_label_is_a_short_message(tmp_path):
    (tmp_path / "train.txt").write_text("a/0.png " + "9" * 10_000_000 + "\n")
    with pytest.raises(GLMCError, match="train.txt:1: label 9+… is too large") as info:
        parse_split_list(tmp_path / "train.txt")
    assert len(str(info.value)) < 300


def test_digits_source():
    src = load_digits(image_size=16)
    assert src.classes == [str(c) for c in range(10)]
    assert len(src.train) + len(src.test) == 1797
    assert src.train.images.shape[1:] == (16, 16, 3) and src.train.images.dtype == np.uint8
    assert (src.train.images[..., 0] == src.train.images[..., 2]).all()  # grey, three channels
    test_frac = class_counts(src.test.labels, 10) / (class_counts(src.test.labels, 10)
                                                     + class_counts(src.train.labels, 10))
    assert np.all(np.abs(test_frac - 0.3) < 0.01)


def test_digits_lt_preset_builds():
    cfg = get_preset("digits-lt")
    data = prepare_data(cfg, progress=False)
    full = class_counts(load_digits(cfg.image_size).train.labels, 10)
    assert data.counts.tolist() == longtail_counts(int(full.min()), 10, 20)
    assert data.imbalance_factor == pytest.approx(20, rel=0.1)
    assert data.in_memory and data.train.images.shape[1:] == (16, 16, 3)
    assert set(data.groups.tolist()) == {"many", "medium", "few"}
    assert "digits" in data.summary()
