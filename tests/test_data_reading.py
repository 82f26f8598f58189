"""Reading untrusted files (glmc_core.data.reading): capped pixels and zip members, damaged zips, odd PNGs, paths."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_files import (
    check_image_folder_source,
    write_image_folder,
    zip_folder,
)
from PIL import Image

from glmc_core.data.formats import load_image_folder, parse_split_list
from glmc_core.errors import GLMCError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Decoded-image caches of these small test sets go to the test's own folder.
    monkeypatch.setenv("GLMC_CACHE_DIR", str(tmp_path / "cache"))


def test_corrupt_image_file_is_a_one_line_error(tmp_path):
    write_image_folder(tmp_path / "fruit")
    (tmp_path / "fruit" / "train" / "kiwi" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(GLMCError, match="corrupt or unreadable image file .*broken.jpg") as err:
        load_image_folder(tmp_path / "fruit", image_size=8, progress=False)
    assert "\n" not in str(err.value)


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
    zip_folder(tmp_path / "fruit", tmp_path / "fruit.zip", "fruit")
    monkeypatch.setenv("GLMC_MAX_FILE_BYTES", "50")  # every PNG member is larger
    with pytest.raises(GLMCError, match=r"expands to \d+ bytes, more than the limit of 50 .*GLMC_MAX_FILE_BYTES"):
        load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False)
    monkeypatch.setenv("GLMC_MAX_FILE_BYTES", "nonsense")
    with pytest.raises(GLMCError, match=r"\$GLMC_MAX_FILE_BYTES must be a whole number"):
        load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False)
    monkeypatch.delenv("GLMC_MAX_FILE_BYTES")
    check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))


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


def test_user_home_of_nobody_is_one_line(tmp_path):
    with pytest.raises(GLMCError, match="cannot expand ~no-such-user-glmc/data: no such user"):
        load_image_folder("~no-such-user-glmc/data", image_size=8, progress=False)
    with pytest.raises(GLMCError, match="no such user"):
        parse_split_list("~no-such-user-glmc/train.txt")
