"""Listing image-folder trees (glmc_core.data.index): what counts as data, what is refused."""

from __future__ import annotations

import zipfile

import pytest
from data_files import (
    check_image_folder_source,
    write_image_folder,
)

from glmc_core.data.formats import load_image_folder
from glmc_core.data.index import index_image_folder
from glmc_core.errors import GLMCError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Decoded-image caches of these small test sets go to the test's own folder.
    monkeypatch.setenv("GLMC_CACHE_DIR", str(tmp_path / "cache"))


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


def test_macos_and_hidden_folders_are_ignored(tmp_path):
    write_image_folder(tmp_path / "fruit")
    for extra in ("__MACOSX/fruit/train/apple/._000.png", "train/.ipynb_checkpoints/000.png",
                  "train/apple/.hidden/000.png"):
        (tmp_path / "fruit" / extra).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fruit" / extra).write_bytes(b"\0\5\26\7 AppleDouble, not an image")
    check_image_folder_source(load_image_folder(tmp_path / "fruit", image_size=8, progress=False))
    with zipfile.ZipFile(tmp_path / "fruit.zip", "w") as zf:  # what macOS's "Compress" writes
        for p in sorted((tmp_path / "fruit").rglob("*")):
            rel = p.relative_to(tmp_path / "fruit").as_posix()
            zf.write(p, rel if rel.startswith("__MACOSX") else f"fruit/{rel}")
    check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))


def test_a_folder_named_like_a_zip_is_a_folder(tmp_path):
    write_image_folder(tmp_path / "fruit.zip")
    check_image_folder_source(load_image_folder(tmp_path / "fruit.zip", image_size=8, progress=False))
