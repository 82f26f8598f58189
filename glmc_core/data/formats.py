"""The formats a data set comes in, each read into a :class:`~glmc_core.data.splits.Source`: CIFAR-10/100
(torchvision's pickles, or an image-folder copy such as ``cifar10-jpeg.zip``), image-folder trees (folder or
.zip), split lists (ImageNet-LT, iNaturalist 2018, Places-LT) and scikit-learn's digits.

Which data set uses which format, with its classes and channel statistics: :mod:`glmc_core.data.datasets`.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataNotFound, DownloadFailed, GLMCError
from .cache import cache_file, cached_decode, decoded_in_memory
from .index import index_image_folder, looks_like_image_folder
from .reading import Refused, clip, expand_user, load_safe_pickle, resolve_data_root
from .splits import ArraySplit, FileSplit, Source

__all__ = ["load_cifar", "load_image_folder", "parse_split_list", "load_split_list", "load_digits"]


# --------------------------------------------------------------------------------- CIFAR
_CIFAR_LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
         "batches.meta", b"label_names"),
    100: ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


def _read_cifar_pickles(folder: Path, num_classes: int) -> Source:
    _, train_files, test_files, label_key, meta_file, names_key = _CIFAR_LAYOUT[num_classes]

    def read(files):
        xs, ys = [], []
        for name in files:
            path = folder / name
            if not path.is_file():
                raise DataNotFound(f"CIFAR-{num_classes} file {path} is missing", f"the folder {folder} is incomplete")
            try:
                entry = load_safe_pickle(path)
                data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                labels = np.asarray(entry[label_key], dtype=np.int64)
                if labels.shape != (len(data),) or labels.min() < 0 or labels.max() >= num_classes:
                    raise ValueError("labels do not match the images")
            except GLMCError:
                raise
            except Refused as exc:
                raise GLMCError(f"CIFAR-{num_classes} file {path} holds something other than images and labels "
                                f"({exc}); it is refused for safety: delete it and download again") from None
            except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
                raise GLMCError(f"cannot read CIFAR-{num_classes} file {path}: {exc.__class__.__name__}; "
                                f"delete it and download again") from None
            xs.append(data.transpose(0, 2, 3, 1))
            ys.append(labels)
        return ArraySplit(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys))

    train, test = read(train_files), read(test_files)
    classes = [str(i) for i in range(num_classes)]
    meta = folder / meta_file
    if meta.is_file():
        try:
            names = load_safe_pickle(meta)[names_key]
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        except Refused as exc:
            raise GLMCError(f"CIFAR-{num_classes} file {meta} holds something other than class names ({exc}); "
                            f"it is refused for safety: delete it and download again") from None
        except Exception:  # noqa: BLE001 - names are cosmetic
            pass
    return Source(f"cifar{num_classes}", classes, train, test, str(folder))



def load_cifar(data_root, num_classes: int = 10, download: bool = False, image_size: int = 32,
               progress: bool = True, lazy: bool = False) -> Source:
    """CIFAR-10 or CIFAR-100 from ``data_root``.

    Looks, in order, for: ``data_root`` being an image-folder tree or a .zip of one (such as
    ``cifar10-jpeg.zip``); torchvision's python-pickle folder (``cifar-10-batches-py`` or
    ``cifar-100-python``) inside ``data_root`` or ``data_root`` itself being that folder;
    and, if ``download`` is true, torchvision's download into ``data_root``. ``lazy``: see
    :func:`load_image_folder`.
    """
    if num_classes not in _CIFAR_LAYOUT:
        raise GLMCError(f"CIFAR has 10 or 100 classes, not {num_classes}")
    root = resolve_data_root(data_root)
    folder_name = _CIFAR_LAYOUT[num_classes][0]
    if looks_like_image_folder(root):
        src = load_image_folder(root, image_size=image_size, progress=progress, lazy=lazy)
        if len(src.classes) != num_classes:
            raise GLMCError(f"{root} holds {len(src.classes)} classes, but CIFAR-{num_classes} has {num_classes}")
        src.name = f"cifar{num_classes}"
        return src
    for candidate in (root / folder_name, root):
        if candidate.name == folder_name and candidate.is_dir():
            return _read_cifar_pickles(candidate, num_classes)
    if download:
        try:
            import torchvision

            cls = torchvision.datasets.CIFAR10 if num_classes == 10 else torchvision.datasets.CIFAR100
            root.mkdir(parents=True, exist_ok=True)
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)
        except Exception as exc:  # noqa: BLE001
            cause = f"{exc.__class__.__name__}: {exc}"
            raise DownloadFailed(f"downloading CIFAR-{num_classes} into {root} failed ({cause}); download it by hand "
                                 f"or point --data-root at a copy", cause) from None
        return _read_cifar_pickles(root / folder_name, num_classes)
    raise DataNotFound(f"CIFAR-{num_classes} not found under {root.resolve()}: looked for {folder_name}/ "
                       f"(torchvision's format) and for an image-folder tree with train/ and test/ (or a .zip of one)",
                       "pass --data-root PATH, set GLMC_DATA_ROOT, or add --download when online")


# --------------------------------------------------------------------------- image folders
def load_image_folder(path, image_size: int = 32, decode: bool = True, progress: bool = True,
                      lazy: bool = False) -> Source:
    """An image-folder tree (folder or .zip); decoded and cached when ``decode`` is true.

    ``lazy``: when the whole tree's decoded cache does not exist yet, return the files undecoded, for
    :func:`~glmc_core.data.cache.decode_subsets` to decode only the images a run uses (the long-tailed subset: 12,406 of
    CIFAR-10's 50,000 training images at IF 100).
    """
    path = expand_user(path)
    classes, train, test, notes = index_image_folder(path)
    if decode and lazy and not cache_file(path, "imagefolder", {"train": train, "test": test}, image_size).is_file():
        return Source("imagefolder", classes, train, test, str(path), notes)
    if decode:
        arrays = cached_decode(path, "imagefolder", {"train": train, "test": test}, image_size, progress)
        return Source("imagefolder", classes, arrays["train"], arrays["test"], str(path), notes)
    return Source("imagefolder", classes, train, test, str(path), notes)


# ------------------------------------------------------------------------------ split lists
_LABEL = re.compile(r"-?[0-9]+", re.ASCII)
_MAX_CLASSES = 1_000_000  # labels are class indices; iNaturalist 2018 has 8,142 classes


def _inside_root(rel: str) -> bool:
    """A split-list path names a file under the data root: relative, no ``..``, no drive or ``~``."""
    p = PurePosixPath(rel.replace("\\", "/"))
    return not (p.is_absolute() or ".." in p.parts or rel.startswith("~") or re.match(r"[A-Za-z]:", rel)
                or "\0" in rel)


def parse_split_list(list_path, num_classes: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read a split list: one ``relative/path label`` per line (ImageNet-LT, iNat 2018, Places-LT).

    Blank lines and lines starting with ``#`` are skipped; anything else that does not parse
    is reported with its file and line number.
    """
    list_path = expand_user(list_path)
    if list_path.is_dir():
        raise GLMCError(f"split list {list_path} is a folder; give the file of 'relative/path label' lines")
    if not list_path.is_file():
        raise DataNotFound(f"split list {list_path} not found", "give the file of 'relative/path label' lines")
    paths, labels = [], []
    try:
        text = list_path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of the first path
    except UnicodeDecodeError:
        raise GLMCError(f"split list {list_path} is not UTF-8 text") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.rsplit(None, 1)
        if len(parts) != 2:
            raise GLMCError(f"{list_path}:{lineno}: expected 'relative/path label', got {stripped[:80]!r}")
        rel, lab = parts
        if not _LABEL.fullmatch(lab):  # int() would also take "1_000", "+1" or non-ASCII digits
            raise GLMCError(f"{list_path}:{lineno}: label {clip(lab, 40)!r} is not a whole number")
        if len(lab.lstrip("-").lstrip("0")) > 9:  # int() of 10 MB of digits is slow and then refused anyway
            raise GLMCError(f"{list_path}:{lineno}: label {clip(lab, 40)} is too large (at most {_MAX_CLASSES - 1})")
        label = int(lab)
        if not _inside_root(rel):
            raise GLMCError(f"{list_path}:{lineno}: path {clip(rel)!r} leaves the data root (absolute, '..' or "
                            f"'~'); split-list paths are relative to the data root and stay inside it")
        if label >= _MAX_CLASSES:
            raise GLMCError(f"{list_path}:{lineno}: label {label} is too large (at most {_MAX_CLASSES - 1})")
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise GLMCError(f"{list_path}:{lineno}: label {label} is out of range"
                            + (f" 0..{num_classes - 1}" if num_classes else " (must be >= 0)"))
        paths.append(rel)
        labels.append(label)
    if not paths:
        raise GLMCError(f"split list {list_path} has no entries")
    return paths, np.asarray(labels, dtype=np.int64)


def load_split_list(data_root, train_list, test_list, image_size: int = 224, decode: bool | None = None,
                    check_files: bool = True, progress: bool = True) -> Source:
    """A split-list data set: image paths relative to ``data_root``, lists relative to it or absolute."""
    root = resolve_data_root(data_root)
    if not root.exists():
        raise DataNotFound(f"data root {root} does not exist",
                           "pass --data-root with the folder the split lists refer to")
    if not train_list or not test_list:
        raise GLMCError("a split-list data set needs both train_list and test_list")

    def find(name):
        p = expand_user(name)
        return p if p.is_absolute() or p.exists() else root / name

    train_paths, train_labels = parse_split_list(find(train_list))
    num_classes = int(train_labels.max()) + 1
    test_paths, test_labels = parse_split_list(find(test_list), num_classes)
    archive = str(root) if root.suffix.lower() == ".zip" and not root.is_dir() else None
    train = FileSplit(train_paths, train_labels, str(root), archive)
    test = FileSplit(test_paths, test_labels, str(root), archive)
    if check_files and archive is None:
        for split in (train, test):
            missing = [p for p in split.paths if not (root / p).is_file()]
            if missing:
                raise DataNotFound(f"{len(missing)} image file(s) of the split list are missing under {root}, "
                                f"first: {missing[0]}")
    classes = [str(c) for c in range(num_classes)]
    if decode is None:
        decode = decoded_in_memory(image_size)
    if decode:
        arrays = cached_decode(find(train_list), f"splitlist|{root.resolve()}|{test_list}",
                                {"train": train, "test": test}, image_size, progress)
        return Source("splitlist", classes, arrays["train"], arrays["test"], str(root))
    return Source("splitlist", classes, train, test, str(root))


# ------------------------------------------------------------------------------------ digits
def load_digits(image_size: int = 16, test_fraction: float = 0.3, seed: int = 0) -> Source:
    """scikit-learn's handwritten digits (1,797 8×8 images, 10 classes), offline.

    Upscaled to ``image_size`` and replicated to 3 channels so the CIFAR pipeline applies;
    a fixed stratified split keeps ``test_fraction`` of every class for testing.
    """
    from PIL import Image
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    images = (bunch.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)  # (N, 8, 8)
    if image_size != 8:
        images = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.BILINEAR))
                           for im in images])
    images = np.repeat(images[..., None], 3, axis=3)
    labels = bunch.target.astype(np.int64)
    rng = np.random.RandomState(seed)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test_mask[idx[: int(round(test_fraction * len(idx)))]] = True
    return Source("digits", [str(c) for c in range(10)], ArraySplit(images[~test_mask], labels[~test_mask]),
                  ArraySplit(images[test_mask], labels[test_mask]), "sklearn.datasets.load_digits")

