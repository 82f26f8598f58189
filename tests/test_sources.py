"""Data sources: CIFAR pickles, image folders (folder and .zip), split lists, digits (glmc_core.data.sources)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmc_core.config import get_preset
from glmc_core.data import prepare_data
from glmc_core.data.formats import (
    load_cifar,
    load_digits,
    load_image_folder,
    load_split_list,
    parse_split_list,
)
from glmc_core.data.index import index_image_folder
from glmc_core.data.longtail import class_counts, longtail_counts
from glmc_core.errors import GLMCError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Decoded-image caches of these small test sets go to the test's own folder.
    monkeypatch.setenv("GLMC_CACHE_DIR", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------ CIFAR pickles
def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def _flat(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CIFAR's (N, 3072) channel-major rows


def write_cifar10(root: Path, per_class_per_batch: int = 3, test_per_class: int = 2) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x = []
    for i in range(1, 6):
        x = _images(10 * per_class_per_batch, i)
        y = np.tile(np.arange(10), per_class_per_batch)
        _dump(folder / f"data_batch_{i}", {b"data": _flat(x), b"labels": y.tolist(), b"batch_label": b"x"})
        train_x.append(x)
    tx = _images(10 * test_per_class, 99)
    _dump(folder / "test_batch", {b"data": _flat(tx), b"labels": np.tile(np.arange(10), test_per_class).tolist()})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return np.concatenate(train_x), tx


def write_cifar100(root: Path, per_class: int = 4) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    x, y = _images(100 * per_class, 1), np.tile(np.arange(100), per_class)
    _dump(folder / "train", {b"data": _flat(x), b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist()})
    tx = _images(100, 2)
    _dump(folder / "test", {b"data": _flat(tx), b"fine_labels": list(range(100)), b"coarse_labels": [0] * 100})
    _dump(folder / "meta", {b"fine_label_names": [f"c{i:02d}".encode() for i in range(100)],
                            b"coarse_label_names": [b"x"] * 20})
    return x, tx


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


class _Planted:
    """What a hostile ``data_batch_1`` holds: unpickling it would call ``marker.touch()`` (any code could run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("where", ["data_batch_1", "batches.meta"])
def test_cifar_pickles_cannot_run_code(tmp_path, where):
    """CIFAR batches are pickles: only dicts, lists, bytes, numbers and numpy arrays are rebuilt."""
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    if where == "data_batch_1":
        _dump(folder / where, {b"data": _Planted(marker), b"labels": [0]})
    else:
        _dump(folder / where, {b"label_names": [_Planted(marker)]})
    with pytest.raises(GLMCError, match="refused for safety") as info:
        load_cifar(tmp_path, 10)
    assert not marker.exists()
    assert "pathlib" in str(info.value) and "\n" not in str(info.value)


def test_cifar_pickles_refuse_object_arrays_and_builtins(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _dump(folder / "data_batch_2", {b"data": np.array([print], dtype=object), b"labels": [0]})
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


# ------------------------------------------------------------------------------ image folders
COLOURS = {"apple": (255, 0, 0), "kiwi": (0, 255, 0), "plum": (0, 0, 255)}


def write_image_folder(root: Path, train_per_class=(5, 3, 2), test_per_class: int = 2) -> None:
    for (name, colour), n_train in zip(COLOURS.items(), train_per_class, strict=True):
        for split, n in (("train", n_train), ("test", test_per_class)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (12, 12), colour).save(d / f"{i:03d}.png")
    (root / "train" / "apple" / "notes.txt").write_text("not an image")


def _zip_folder(folder: Path, archive: Path, top: str) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, f"{top}/{p.relative_to(folder).as_posix()}")


def _check_image_folder_source(src) -> None:
    assert src.classes == ["apple", "kiwi", "plum"]
    assert class_counts(src.train.labels, 3).tolist() == [5, 3, 2]
    assert class_counts(src.test.labels, 3).tolist() == [2, 2, 2]
    assert src.train.images.shape == (10, 8, 8, 3)
    for c, colour in enumerate(COLOURS.values()):  # PNG is lossless: each class keeps its colour
        assert (src.train.images[src.train.labels == c] == np.array(colour, np.uint8)).all()
    assert len(src.notes) == 1 and src.notes[0].startswith("skipped 1 non-image file(s)")
    assert "train/apple/notes.txt" in src.notes[0]


def test_image_folder_from_folder(tmp_path):
    write_image_folder(tmp_path / "fruit")
    _check_image_folder_source(load_image_folder(tmp_path / "fruit", image_size=8, progress=False))


def test_image_folder_from_zip_with_one_top_level_folder(tmp_path):
    write_image_folder(tmp_path / "fruit")
    _zip_folder(tmp_path / "fruit", tmp_path / "fruit.zip", "fruit")
    _check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))
    classes, train, test, _ = index_image_folder(tmp_path / "fruit.zip")
    assert train.archive == str(tmp_path / "fruit.zip") and train.paths[0].startswith("fruit/train/apple/")


def test_image_folder_is_cached(tmp_path):
    write_image_folder(tmp_path / "fruit")
    load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    again = load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    _check_image_folder_source(again)


def test_corrupt_image_file_is_a_one_line_error(tmp_path):
    write_image_folder(tmp_path / "fruit")
    (tmp_path / "fruit" / "train" / "kiwi" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(GLMCError, match="corrupt or unreadable image file .*broken.jpg") as err:
        load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    assert "\n" not in str(err.value)


def test_image_folder_errors(tmp_path):
    with pytest.raises(GLMCError, match="does not exist"):
        index_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GLMCError, match="no images found"):
        index_image_folder(tmp_path / "empty")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GLMCError, match="not a readable .zip"):
        index_image_folder(tmp_path / "bad.zip")
    write_image_folder(tmp_path / "odd")
    (tmp_path / "odd" / "test" / "plum" / "000.png").unlink()
    (tmp_path / "odd" / "test" / "plum" / "001.png").unlink()
    with pytest.raises(GLMCError, match="class folders differ"):
        index_image_folder(tmp_path / "odd")


# -------------------------------------------------------------------------------- split lists
def write_split_list(root: Path) -> None:
    (root / "imgs" / "sub dir").mkdir(parents=True)
    for i, colour in enumerate([(10, 20, 30), (40, 50, 60), (70, 80, 90), (200, 100, 0)]):
        Image.new("RGB", (6, 6), colour).save(root / "imgs" / f"{i}.png")
    Image.new("RGB", (6, 6), (1, 2, 3)).save(root / "imgs" / "sub dir" / "x y.png")
    (root / "train.txt").write_text("# ImageNet-LT style list\n\nimgs/0.png 0\n  imgs/1.png 1\nimgs/2.png 2\n"
                                    "imgs/sub dir/x y.png 2\n\n# end\n")
    (root / "test.txt").write_text("imgs/3.png 1\nimgs/0.png 0\n")


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


# -------------------------------------------------------------------------------------- digits
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


def _distinct_image_folder(root: Path, train_per_class=(9, 6, 4), test_per_class: int = 3) -> None:
    """Every image different (random noise PNGs), so a wrong subset cannot look right."""
    rng = np.random.default_rng(7)
    for name, n_train in zip(("apple", "kiwi", "plum"), train_per_class, strict=True):
        for split, n in (("train", n_train), ("test", test_per_class)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")


def test_cold_cache_decodes_only_the_long_tailed_subset_and_equals_the_full_decode(tmp_path, monkeypatch):
    """prepare_data with no decoded cache decodes the kept training images, the validation and the test images
    only (a third of CIFAR-10's JPEGs at IF 100), and gives exactly what decoding everything then subsetting does."""
    import glmc_core.data.cache as cache

    _distinct_image_folder(tmp_path / "fruit")
    _zip_folder(tmp_path / "fruit", tmp_path / "fruit.zip", "fruit")
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


# ------------------------------------------------------------------- hostile and odd files (issue 14)
def _png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header declares ``width x height`` RGB pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_declared_pixels_are_capped_before_decoding(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "fruit")
    (tmp_path / "fruit" / "train" / "kiwi" / "bomb.png").write_bytes(_png_declaring(12000, 12000))
    with pytest.raises(GLMCError, match=r"bomb.png declares 12000x12000 pixels, more than the limit of 64000000; "
                                        r"if it is genuine, raise \$GLMC_MAX_IMAGE_PIXELS"):
        load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    monkeypatch.setenv("GLMC_MAX_IMAGE_PIXELS", "100")  # the documented override, here lowered
    (tmp_path / "fruit" / "train" / "kiwi" / "bomb.png").unlink()
    with pytest.raises(GLMCError, match="declares 12x12 pixels, more than the limit of 100"):
        load_image_folder(tmp_path / "fruit", image_size=8, progress=False)


def test_zip_members_are_capped_by_declared_size(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "fruit")
    _zip_folder(tmp_path / "fruit", tmp_path / "fruit.zip", "fruit")
    monkeypatch.setenv("GLMC_MAX_FILE_BYTES", "50")  # every PNG member is larger
    with pytest.raises(GLMCError, match=r"expands to \d+ bytes, more than the limit of 50 .*GLMC_MAX_FILE_BYTES"):
        load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False)
    monkeypatch.setenv("GLMC_MAX_FILE_BYTES", "nonsense")
    with pytest.raises(GLMCError, match=r"\$GLMC_MAX_FILE_BYTES must be a whole number"):
        load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False)
    monkeypatch.delenv("GLMC_MAX_FILE_BYTES")
    _check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))


def _patch_zip(archive: Path, member: str, *, flag: int | None = None, method: int | None = None,
               flip_data: bool = False) -> None:
    """Edit the headers (local and central) of one stored member: flag bits, compression method, or data."""
    import struct

    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    local = info.header_offset
    central = raw.index(b"PK\x01\x02")  # the first central entry; ours is found by its name
    while raw[central + 46: central + 46 + len(member)] != member.encode():
        central = raw.index(b"PK\x01\x02", central + 4)
    if flag is not None:
        struct.pack_into("<H", raw, local + 6, info.flag_bits | flag)
        struct.pack_into("<H", raw, central + 8, info.flag_bits | flag)
    if method is not None:
        struct.pack_into("<H", raw, local + 8, method)
        struct.pack_into("<H", raw, central + 10, method)
    if flip_data:
        name_len, extra_len = struct.unpack_from("<HH", raw, local + 26)
        raw[local + 30 + name_len + extra_len + 20] ^= 0xFF
    archive.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage, message", [
    ({"flag": 0x1}, r"holds encrypted files \(first: fruit/train/kiwi/000.png\)"),
    ({"method": 98}, r"uses a compression method Python cannot read \(method 98"),
    ({"flip_data": True}, "fruit/train/kiwi/000.png in .* fails its CRC check"),
])
def test_encrypted_unsupported_and_crc_failing_zips_are_one_line(tmp_path, damage, message):
    write_image_folder(tmp_path / "fruit")
    with zipfile.ZipFile(tmp_path / "fruit.zip", "w", zipfile.ZIP_STORED) as zf:
        for p in sorted((tmp_path / "fruit").rglob("*")):
            zf.write(p, f"fruit/{p.relative_to(tmp_path / 'fruit').as_posix()}")
    _patch_zip(tmp_path / "fruit.zip", "fruit/train/kiwi/000.png", **damage)
    with pytest.raises(GLMCError, match=message):
        load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False)


def test_16_bit_pngs_keep_their_grey_levels(tmp_path):
    write_image_folder(tmp_path / "fruit")
    grey = np.full((12, 12), 32896, np.uint16)  # 32896 / 65535 * 255 = 128
    for i in range(3):
        Image.fromarray(grey).save(tmp_path / "fruit" / "train" / "kiwi" / f"{i:03d}.png")
    src = load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    kiwi = src.train.images[src.train.labels == 1]
    assert (kiwi == 128).all()  # was 255 everywhere: convert("RGB") clips 16-bit values


def test_macos_and_hidden_folders_are_ignored(tmp_path):
    write_image_folder(tmp_path / "fruit")
    for extra in ("__MACOSX/fruit/train/apple/._000.png", "train/.ipynb_checkpoints/000.png",
                  "train/apple/.hidden/000.png"):
        (tmp_path / "fruit" / extra).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fruit" / extra).write_bytes(b"\0\5\26\7 AppleDouble, not an image")
    _check_image_folder_source(load_image_folder(tmp_path / "fruit", image_size=8, progress=False))
    with zipfile.ZipFile(tmp_path / "fruit.zip", "w") as zf:  # what macOS's "Compress" writes
        for p in sorted((tmp_path / "fruit").rglob("*")):
            rel = p.relative_to(tmp_path / "fruit").as_posix()
            zf.write(p, rel if rel.startswith("__MACOSX") else f"fruit/{rel}")
    _check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))


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


def test_user_home_of_nobody_is_one_line(tmp_path):
    with pytest.raises(GLMCError, match="cannot expand ~no-such-user-glmc/data: no such user"):
        load_image_folder("~no-such-user-glmc/data", image_size=8, progress=False)
    with pytest.raises(GLMCError, match="no such user"):
        parse_split_list("~no-such-user-glmc/train.txt")


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


def test_a_folder_named_like_a_zip_is_a_folder(tmp_path):
    write_image_folder(tmp_path / "fruit.zip")
    _check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))
