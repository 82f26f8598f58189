"""Small data sets written for the data tests: CIFAR pickles, image folders (folder and .zip), split lists."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from glmc_core.data.longtail import class_counts


def images(n: int, seed: int) -> np.ndarray:
    """``n`` random RGB 32x32 images ``(n, 32, 32, 3)`` uint8."""
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def dump(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def flat(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CIFAR's (N, 3072) channel-major rows


def write_cifar10(root: Path, per_class_per_batch: int = 3, test_per_class: int = 2) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x = []
    for i in range(1, 6):
        x = images(10 * per_class_per_batch, i)
        y = np.tile(np.arange(10), per_class_per_batch)
        dump(folder / f"data_batch_{i}", {b"data": flat(x), b"labels": y.tolist(), b"batch_label": b"x"})
        train_x.append(x)
    tx = images(10 * test_per_class, 99)
    dump(folder / "test_batch", {b"data": flat(tx), b"labels": np.tile(np.arange(10), test_per_class).tolist()})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return np.concatenate(train_x), tx


def write_cifar100(root: Path, per_class: int = 4) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    x, y = images(100 * per_class, 1), np.tile(np.arange(100), per_class)
    dump(folder / "train", {b"data": flat(x), b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist()})
    tx = images(100, 2)
    dump(folder / "test", {b"data": flat(tx), b"fine_labels": list(range(100)), b"coarse_labels": [0] * 100})
    dump(folder / "meta", {b"fine_label_names": [f"c{i:02d}".encode() for i in range(100)],
                            b"coarse_label_names": [b"x"] * 20})
    return x, tx


COLOURS = {"apple": (255, 0, 0), "kiwi": (0, 255, 0), "plum": (0, 0, 255)}


def write_image_folder(root: Path, train_per_class=(5, 3, 2), test_per_class: int = 2) -> None:
    for (name, colour), n_train in zip(COLOURS.items(), train_per_class, strict=True):
        for split, n in (("train", n_train), ("test", test_per_class)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (12, 12), colour).save(d / f"{i:03d}.png")
    (root / "train" / "apple" / "notes.txt").write_text("not an image")


def zip_folder(folder: Path, archive: Path, top: str) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, f"{top}/{p.relative_to(folder).as_posix()}")


def check_image_folder_source(src) -> None:
    assert src.classes == ["apple", "kiwi", "plum"]
    assert class_counts(src.train.labels, 3).tolist() == [5, 3, 2]
    assert class_counts(src.test.labels, 3).tolist() == [2, 2, 2]
    assert src.train.images.shape == (10, 8, 8, 3)
    for c, colour in enumerate(COLOURS.values()):  # PNG is lossless: each class keeps its colour
        assert (src.train.images[src.train.labels == c] == np.array(colour, np.uint8)).all()
    assert len(src.notes) == 1 and src.notes[0].startswith("skipped 1 non-image file(s)")
    assert "train/apple/notes.txt" in src.notes[0]


def write_split_list(root: Path) -> None:
    (root / "imgs" / "sub dir").mkdir(parents=True)
    for i, colour in enumerate([(10, 20, 30), (40, 50, 60), (70, 80, 90), (200, 100, 0)]):
        Image.new("RGB", (6, 6), colour).save(root / "imgs" / f"{i}.png")
    Image.new("RGB", (6, 6), (1, 2, 3)).save(root / "imgs" / "sub dir" / "x y.png")
    (root / "train.txt").write_text("# ImageNet-LT style list\n\nimgs/0.png 0\n  imgs/1.png 1\nimgs/2.png 2\n"
                                    "imgs/sub dir/x y.png 2\n\n# end\n")
    (root / "test.txt").write_text("imgs/3.png 1\nimgs/0.png 0\n")


def distinct_image_folder(root: Path, train_per_class=(9, 6, 4), test_per_class: int = 3) -> None:
    """Every image different (random noise PNGs), so a wrong subset cannot look right."""
    rng = np.random.default_rng(7)
    for name, n_train in zip(("apple", "kiwi", "plum"), train_per_class, strict=True):
        for split, n in (("train", n_train), ("test", test_per_class)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
