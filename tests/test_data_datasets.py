"""The data-set registry (glmc_core.data.datasets) and how a missing data set is told apart: by type."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from data_files import write_split_list

from glmc_core.augment import CIFAR10_MEAN, IMAGENET_MEAN
from glmc_core.config import DATASETS as NAMES
from glmc_core.config import Config, get_preset
from glmc_core.data import DATASETS, decoded_in_memory, load_source, prepare_data
from glmc_core.data.datasets import channel_stats
from glmc_core.data.formats import load_cifar, load_split_list, parse_split_list
from glmc_core.data.index import index_image_folder
from glmc_core.data.splits import FileSplit
from glmc_core.errors import DataNotFound, DownloadFailed, GLMCError


def test_the_registry_and_the_config_name_the_same_data_sets():
    assert tuple(DATASETS) == NAMES
    with pytest.raises(GLMCError, match="unknown dataset 'svhn'; choose cifar10, cifar100, imagefolder, splitlist "
                                        "or digits"):
        Config(dataset="svhn").validate()
    with pytest.raises(GLMCError, match="unknown dataset 'svhn'"):
        load_source(SimpleNamespace(dataset="svhn"))  # a config not validated (read from an old file, say)


def test_small_images_are_decoded_to_memory_large_ones_stay_files():
    assert decoded_in_memory(32) and decoded_in_memory(64) and not decoded_in_memory(65)
    assert not decoded_in_memory(224)


def test_channel_stats_come_from_the_registry_else_the_images(tmp_path):
    assert channel_stats(get_preset("cifar10-lt-if100"), None) == (CIFAR10_MEAN, DATASETS["cifar10"].std)
    data = prepare_data(get_preset("digits-lt"), progress=False)  # measured on the decoded digits
    assert data.mean != IMAGENET_MEAN and 0 < data.mean[0] < 1
    files = FileSplit(["a.jpg"], data.train.labels[:1])
    assert channel_stats(get_preset("imagenet-lt"), files)[0] == IMAGENET_MEAN  # files: ImageNet's


def test_missing_data_is_a_data_not_found_with_todays_words(tmp_path):
    cases = [
        (lambda: load_cifar(tmp_path / "nowhere", 10), "CIFAR-10 not found under "),
        (lambda: index_image_folder(tmp_path / "nowhere"), "data root "),
        (lambda: parse_split_list(tmp_path / "none.txt"), "split list "),
        (lambda: load_split_list(tmp_path / "nowhere", "a.txt", "b.txt"), "data root "),
    ]
    for call, start in cases:
        with pytest.raises(DataNotFound) as info:
            call()
        text = str(info.value)
        assert text.startswith(start) and text.startswith(info.value.what) and "; " in text
        assert ";" not in info.value.what  # what is missing, without the advice
    write_split_list(tmp_path / "lt")
    (tmp_path / "lt" / "test.txt").write_text("imgs/missing.png 0\n")
    with pytest.raises(DataNotFound, match="1 image file\\(s\\) of the split list are missing under .*missing.png"):
        load_split_list(tmp_path / "lt", "train.txt", "test.txt", image_size=6)
    with pytest.raises(GLMCError) as info:  # present but unreadable is not "not found"
        parse_split_list(tmp_path / "lt")
    assert not isinstance(info.value, DataNotFound)


def test_data_not_found_keeps_one_line_and_pickles():
    import pickle

    exc = DataNotFound("data root /x\n does not exist", "pass --data-root")
    assert str(exc) == "data root /x does not exist; pass --data-root" and exc.what == "data root /x does not exist"
    again = pickle.loads(pickle.dumps(exc))  # as a DataLoader worker or multiprocessing sends it
    assert isinstance(again, DataNotFound) and str(again) == str(exc)
    assert DownloadFailed("downloading failed (URLError: x); by hand", "URLError: x").cause == "URLError: x"
