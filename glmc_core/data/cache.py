"""Decoded small images, cached: decode an image-folder tree or split list (or just the subsets a run keeps)
once into uint8 arrays ``(N, H, W, 3)``, stored as one .npz under ``$GLMC_CACHE_DIR`` (default ``./data/cache``),
so later runs load them in a second instead of decoding every file every epoch.

Only small images are decoded to memory (:func:`decoded_in_memory`); large ones stay files read by a DataLoader.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .reading import TreeReader, expand_user, open_rgb
from .splits import ArraySplit, FileSplit

__all__ = ["IN_MEMORY_MAX_SIZE", "decoded_in_memory", "cache_dir", "cache_file", "decode_split", "cached_decode",
           "decode_subsets"]

IN_MEMORY_MAX_SIZE = 64  # pixels: images up to 64x64 are decoded once and held in memory (on the device when training)
_CACHE_VERSION = "2"  # 2: keyed on the listing (names, sizes, times) and the split lists' contents


def decoded_in_memory(image_size: int) -> bool:
    """Whether images of ``image_size`` are decoded to arrays (CIFAR-sized) rather than read as files per batch."""
    return image_size <= IN_MEMORY_MAX_SIZE


def cache_dir() -> Path:
    """``$GLMC_CACHE_DIR``, else ``./data/cache``."""
    return expand_user(os.environ.get("GLMC_CACHE_DIR", "data/cache"))


def _decode(data: bytes, name: str, image_size: int) -> np.ndarray:
    """One image file's bytes as RGB uint8 ``(image_size, image_size, 3)``, resized bilinearly when needed."""
    from PIL import Image

    img = open_rgb(data, name)
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_split(split: FileSplit, image_size: int, progress: bool = False) -> ArraySplit:
    """Decode every file of ``split`` into an :class:`ArraySplit` (RGB, resized to ``image_size``)."""
    reader = TreeReader(Path(split.archive or split.root))
    out = np.empty((len(split), image_size, image_size, 3), dtype=np.uint8)
    iterator = enumerate(split.paths)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(split), desc="decoding images", leave=False)
    try:
        for i, name in iterator:
            out[i] = _decode(reader.read(name), name, image_size)
    finally:
        reader.close()
    return ArraySplit(out, split.labels.copy())


def cache_file(origin: Path, tag: str, splits: dict[str, FileSplit], image_size: int) -> Path:
    """The cache file of ``splits`` decoded at ``image_size``: one key made of what the arrays are built from,
    the file lists and labels (so an edited split list or an added image rebuilds it), every file's size and
    modification time (its CRC in a zip), and ``origin``'s path, size and time (the zip, folder or train list).

    ``tag`` names what is decoded ("imagefolder", "subset|<digest>", "splitlist|<root>|<test list>"); it is
    part of the key only so that caches written before this function existed keep their names.
    """
    h = hashlib.sha1(tag.encode("utf-8", "surrogateescape"))
    for name, sp in splits.items():
        h.update(f"|{name}|{len(sp)}|".encode())
        h.update("\n".join(sp.paths).encode("utf-8", "surrogateescape"))
        h.update(np.ascontiguousarray(sp.labels, dtype=np.int64).tobytes())
    first = next(iter(splits.values()))
    reader = TreeReader(Path(first.archive or first.root))
    try:
        h.update(reader.listing([q for sp in splits.values() for q in sp.paths]).encode())
    finally:
        reader.close()
    st = origin.stat()
    raw = f"{_CACHE_VERSION}|{origin.resolve()}|{st.st_size}|{int(st.st_mtime)}|{image_size}|{h.hexdigest()}"
    return cache_dir() / f"{origin.stem}-{hashlib.sha1(raw.encode()).hexdigest()[:16]}.npz"


def cached_decode(path: Path, tag: str, splits: dict[str, FileSplit], image_size: int,
                  progress: bool) -> dict[str, ArraySplit]:
    """Decode ``splits`` once; later calls load the cached arrays (atomically written .npz)."""
    target = cache_file(path, tag, splits, image_size)
    if target.is_file():
        try:
            with np.load(target) as z:
                return {s: ArraySplit(z[f"{s}_images"], z[f"{s}_labels"]) for s in splits}
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt
            pass
    arrays = {s: decode_split(sp, image_size, progress) for s, sp in splits.items()}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f"{s}_images": a.images for s, a in arrays.items()},
                     **{f"{s}_labels": a.labels for s, a in arrays.items()})
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only place: run without the cache
    return arrays


def decode_subsets(splits: dict[str, FileSplit], image_size: int, progress: bool = True) -> dict[str, ArraySplit]:
    """Decode the given subsets of one image folder (e.g. a long-tailed training subset and the test set),
    cached under a key made of exactly these files, so a later run with the same subsets decodes nothing."""
    first = next(iter(splits.values()))
    path = Path(first.archive or first.root)
    digest = hashlib.sha1()
    for name, split in splits.items():
        digest.update(f"{name}:{len(split)}\n".encode())
        digest.update("\n".join(f"{p}\t{y}" for p, y in zip(split.paths, split.labels.tolist(), strict=True)).encode())
    return cached_decode(path, f"subset|{digest.hexdigest()}", splits, image_size, progress)
