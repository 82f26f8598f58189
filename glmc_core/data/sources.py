"""Where images come from: CIFAR-10/100, image-folder trees (folder or .zip), split lists, digits.

Small images (``image_size`` ≤ 64) are decoded once into uint8 arrays ``(N, H, W, 3)``
and cached under ``$GLMC_CACHE_DIR`` (default ``./data/cache``), so later runs load them
in a second instead of decoding every file every epoch. Large images stay files and are
read by a DataLoader.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import GLMCError

__all__ = ["ArraySplit", "FileSplit", "Source", "resolve_data_root", "cache_dir", "load_cifar", "index_image_folder",
           "decode_subsets",
           "load_image_folder", "parse_split_list", "load_split_list", "load_digits", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
_CACHE_VERSION = "2"  # 2: keyed on the listing (names, sizes, times) and the split lists' contents

# Caps on what one image may expand to, checked before decoding (a small file can declare a huge image or
# a zip member a huge size). Raise them with these environment variables (also seen by DataLoader workers).
MAX_IMAGE_PIXELS_ENV, MAX_FILE_BYTES_ENV = "GLMC_MAX_IMAGE_PIXELS", "GLMC_MAX_FILE_BYTES"
_DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; ImageNet, iNaturalist and Places images are far smaller
_DEFAULT_MAX_BYTES = 256 * 2**20  # one image file (or zip member), uncompressed


@dataclass
class ArraySplit:
    """Decoded images ``(N, H, W, 3)`` uint8 and labels ``(N,)`` int64."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "ArraySplit":
        return ArraySplit(self.images[idx], self.labels[idx])


@dataclass
class FileSplit:
    """Image files read on demand: ``opener(path)`` returns the bytes of ``path``."""

    paths: list[str]
    labels: np.ndarray
    root: str = ""
    archive: str | None = None  # a .zip holding the paths, or None for a folder

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "FileSplit":
        return FileSplit([self.paths[i] for i in idx], self.labels[idx], self.root, self.archive)


@dataclass
class Source:
    """A data set as read: class names, a training and a test split, and where it came from."""

    name: str
    classes: list[str]
    train: ArraySplit | FileSplit
    test: ArraySplit | FileSplit
    origin: str
    notes: list[str] = field(default_factory=list)


def expand_user(path: str | os.PathLike) -> Path:
    """``Path(path).expanduser()``, with a one-line error for ``~name`` of a user that does not exist."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory."
        raise GLMCError(f"cannot expand {clip(str(path))}: no such user (or no home folder); give the full path") \
            from None


def clip(text: str, limit: int = 80) -> str:
    """``text`` shortened for a message (file contents and user input can be arbitrarily long)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """``data_root`` if given, else ``$GLMC_DATA_ROOT``, else ``./data``."""
    if data_root:
        return expand_user(data_root)
    env = os.environ.get("GLMC_DATA_ROOT")
    return expand_user(env) if env else Path("data")


def cache_dir() -> Path:
    return expand_user(os.environ.get("GLMC_CACHE_DIR", "data/cache"))


def _limit(env: str, default: int) -> int:
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GLMCError(f"${env} must be a whole number, got {clip(raw)!r}") from None
    if value < 1:
        raise GLMCError(f"${env} must be positive, got {value}")
    return value


def max_image_pixels() -> int:
    """Largest width x height decoded (``$GLMC_MAX_IMAGE_PIXELS``, default 64 million)."""
    return _limit(MAX_IMAGE_PIXELS_ENV, _DEFAULT_MAX_PIXELS)


def max_file_bytes() -> int:
    """Largest image file or uncompressed zip member read (``$GLMC_MAX_FILE_BYTES``, default 256 MiB)."""
    return _limit(MAX_FILE_BYTES_ENV, _DEFAULT_MAX_BYTES)


def _hidden(part: str) -> bool:
    """Entries that are not data: hidden files and folders, and the ``__MACOSX`` folders of macOS zips."""
    return part.startswith(".") or part == "__MACOSX"


# --------------------------------------------------------------------------------- CIFAR
_CIFAR_LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
         "batches.meta", b"label_names"),
    100: ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


class _Refused(pickle.UnpicklingError):
    """A CIFAR pickle asked for something that is not images, labels or names."""


def _reconstruct(cls, shape, dtype_code):
    """numpy's array unpickling entry point (``numpy.core.multiarray._reconstruct``), for ``numpy.ndarray`` only."""
    try:
        from numpy._core.multiarray import _reconstruct as reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct as reconstruct

    if cls is not np.ndarray:
        raise _Refused("only numpy.ndarray may be rebuilt")
    return reconstruct(cls, shape, dtype_code)


def _dtype(spec, align=False, copy=False):
    """``numpy.dtype`` for plain numbers only: an object dtype would let the pickle build arbitrary objects."""
    dt = np.dtype(spec, align, copy)
    if dt.hasobject or dt.kind not in "biuf":
        raise _Refused(f"dtype {dt} is not a plain numeric type")
    return dt


def _latin1(text, encoding="latin1"):
    """``_codecs.encode``, which Python 3 pickles use for bytes (protocol 2): text to bytes only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode is allowed only for latin1 text")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Rebuild only what CIFAR's python batches hold: dicts, lists, bytes/str, numbers and numpy arrays.

    A real ``data_batch_1`` references exactly ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``
    and ``numpy.dtype``; any other global (``os.system``, ``builtins.eval``, ...) is refused before it is
    looked up, so a planted file cannot run code.
    """

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
                ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
                ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype,
                ("_codecs", "encode"): _latin1}

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"refused {clip(module, 60)}.{clip(name, 60)}") from None


def _load_cifar_pickle(path: Path):
    with open(path, "rb") as fh:
        return _CifarUnpickler(fh, encoding="bytes").load()


def _read_cifar_pickles(folder: Path, num_classes: int) -> Source:
    _, train_files, test_files, label_key, meta_file, names_key = _CIFAR_LAYOUT[num_classes]

    def read(files):
        xs, ys = [], []
        for name in files:
            path = folder / name
            if not path.is_file():
                raise GLMCError(f"CIFAR-{num_classes} file {path} is missing; the folder {folder} is incomplete")
            try:
                entry = _load_cifar_pickle(path)
                data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                labels = np.asarray(entry[label_key], dtype=np.int64)
                if labels.shape != (len(data),) or labels.min() < 0 or labels.max() >= num_classes:
                    raise ValueError("labels do not match the images")
            except GLMCError:
                raise
            except _Refused as exc:
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
            names = _load_cifar_pickle(meta)[names_key]
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        except _Refused as exc:
            raise GLMCError(f"CIFAR-{num_classes} file {meta} holds something other than class names ({exc}); "
                            f"it is refused for safety: delete it and download again") from None
        except Exception:  # noqa: BLE001 - names are cosmetic
            pass
    return Source(f"cifar{num_classes}", classes, train, test, str(folder))


def _looks_like_image_folder(path: Path) -> bool:
    if path.suffix.lower() == ".zip" and path.is_file():
        return True
    if not path.is_dir():
        return False
    if (path / "train").is_dir() and (path / "test").is_dir():
        return True
    subs = [p for p in path.iterdir() if p.is_dir() and not _hidden(p.name)]
    return len(subs) == 1 and (subs[0] / "train").is_dir() and (subs[0] / "test").is_dir()


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
    if _looks_like_image_folder(root):
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
            raise GLMCError(f"downloading CIFAR-{num_classes} into {root} failed ({exc.__class__.__name__}: "
                            f"{exc}); download it by hand or point --data-root at a copy") from None
        return _read_cifar_pickles(root / folder_name, num_classes)
    raise GLMCError(f"CIFAR-{num_classes} not found under {root.resolve()}: looked for {folder_name}/ "
                    f"(torchvision's format) and for an image-folder tree with train/ and test/ (or a .zip of one); "
                    f"pass --data-root PATH, set GLMC_DATA_ROOT, or add --download when online")


# --------------------------------------------------------------------------- image folders
class _Reader:
    """Read files from a folder or a .zip with one interface."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = zipfile.ZipFile(path) if path.suffix.lower() == ".zip" and not path.is_dir() else None

    def names(self) -> list[str]:
        if self.zip is not None:
            return [n for n in self.zip.namelist() if not n.endswith("/")]
        return [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]

    def listing(self, names: list[str]) -> str:
        """A digest of what ``names`` are now: sizes and modification times (CRCs in a zip)."""
        h = hashlib.sha1()
        for name in names:
            if self.zip is not None:
                try:
                    info = self.zip.getinfo(name)
                    h.update(f"{name}|{info.file_size}|{info.CRC}\n".encode("utf-8", "surrogateescape"))
                except KeyError:
                    h.update(f"{name}|missing\n".encode("utf-8", "surrogateescape"))
            else:
                try:
                    st = (self.path / name).stat()
                    h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
                except OSError:
                    h.update(f"{name}|missing\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return read_member(self.zip, name, str(self.path))
        return read_file(self.path, name)

    def close(self):
        if self.zip is not None:
            self.zip.close()


_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                zipfile.ZIP_LZMA: "lzma"}


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse, before reading, a zip member that is encrypted, compressed in a way Python cannot undo, or
    that declares more bytes than ``$GLMC_MAX_FILE_BYTES``."""
    name = clip(info.filename)
    if info.flag_bits & 0x1:
        raise GLMCError(f"{where} holds encrypted files (first: {name}); glmc reads unencrypted zips only: "
                        f"unzip it with its password and zip it again, or give the folder")
    if info.compress_type not in _ZIP_METHODS:
        raise GLMCError(f"{where} uses a compression method Python cannot read (method {info.compress_type}, "
                        f"first: {name}); zip it again with deflate (the default of zip tools)")
    cap = max_file_bytes()
    if info.file_size > cap:
        raise GLMCError(f"{name} in {where} expands to {info.file_size} bytes, more than the limit of {cap} for "
                        f"one image file; if it is genuine, raise ${MAX_FILE_BYTES_ENV}")


def read_member(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    """One member of an image zip, checked (:func:`_check_member`) and with its CRC verified, or one line."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise GLMCError(f"cannot read image file {clip(name)} in {where}: it is not in the archive") from None
    _check_member(info, where)
    try:
        return zf.read(info)
    except zipfile.BadZipFile as exc:
        why = "fails its CRC check" if "CRC" in str(exc) else "is damaged"
        raise GLMCError(f"image file {clip(name)} in {where} {why} (the zip is corrupt); copy it again") from None
    except Exception as exc:  # noqa: BLE001 - zlib/lzma/bz2 errors, a vanished file, ...
        raise GLMCError(f"cannot read image file {clip(name)} in {where}: {exc.__class__.__name__}; "
                        f"the zip is damaged: copy it again") from None


def read_file(root: Path, name: str) -> bytes:
    """One image file under ``root``, refused above ``$GLMC_MAX_FILE_BYTES``, or one line."""
    path = Path(root) / name
    try:
        size = path.stat().st_size
        cap = max_file_bytes()
        if size > cap:
            raise GLMCError(f"image file {clip(name)} in {root} has {size} bytes, more than the limit of {cap}; "
                            f"if it is genuine, raise ${MAX_FILE_BYTES_ENV}")
        return path.read_bytes()
    except OSError as exc:
        raise GLMCError(f"cannot read image file {clip(name)} in {root}: {exc.strerror or exc.__class__.__name__}") \
            from None


def _to_rgb(img, name: str):
    """RGB of any PIL image; 16-bit greys are scaled to 8 bits (``convert`` would clip them all to 255)."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):
        a = np.asarray(img).astype(np.uint32)
        if a.size and (a.max() > 65535):
            raise GLMCError(f"image file {clip(name)} has pixel values above 16 bits; save it as 8-bit")
        img = Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif mode in ("I", "F"):
        raise GLMCError(f"image file {clip(name)} has 32-bit {'integer' if mode == 'I' else 'float'} pixels, which "
                        f"glmc does not convert; save it as an 8- or 16-bit image")
    return img.convert("RGB")


def open_rgb(data: bytes, name: str):
    """A PIL RGB image from file bytes; its declared size is checked against ``$GLMC_MAX_IMAGE_PIXELS``
    before any pixel is decoded. Damaged, truncated or oversized images are one line naming the file."""
    from PIL import Image, UnidentifiedImageError

    cap = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and cap > Image.MAX_IMAGE_PIXELS:  # the user raised the cap
        Image.MAX_IMAGE_PIXELS = cap
    try:
        with warnings.catch_warnings():  # PIL warns about large images; the check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
        with img:
            w, h = img.size
            if w * h > cap:
                raise GLMCError(f"image file {clip(name)} declares {w}x{h} pixels, more than the limit of {cap}; "
                                f"if it is genuine, raise ${MAX_IMAGE_PIXELS_ENV}")
            rgb = _to_rgb(img, name)
            rgb.load()
            return rgb
    except Image.DecompressionBombError:
        raise GLMCError(f"image file {clip(name)} declares more pixels than the limit of {cap}; if it is genuine, "
                        f"raise ${MAX_IMAGE_PIXELS_ENV}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, TypeError) as exc:
        raise GLMCError(f"corrupt or unreadable image file {clip(name)}: {exc.__class__.__name__}; "
                        f"remove or replace it") from None


def index_image_folder(path) -> tuple[list[str], FileSplit, FileSplit, list[str]]:
    """List an image-folder tree ``train/<class>/*``, ``test/<class>/*`` (possibly under one
    top-level folder, in a folder or a .zip) without decoding anything.

    Returns ``(classes, train, test, notes)``; ``notes`` says what was skipped.
    """
    path = expand_user(path)
    if not path.exists():
        raise GLMCError(f"data root {path} does not exist; pass --data-root with a folder or .zip that holds "
                        f"train/<class>/ and test/<class>/ image folders")
    if path.is_file() and path.suffix.lower() != ".zip":
        raise GLMCError(f"{path} is a file but not a .zip; give a folder or a .zip of train/ and test/ folders")
    try:
        reader = _Reader(path)
        if reader.zip is not None:
            for info in reader.zip.infolist():
                q = PurePosixPath(info.filename)
                if q.suffix.lower() in IMAGE_EXTENSIONS and not any(_hidden(x) for x in q.parts):
                    _check_member(info, str(path))
        names = reader.names()
        reader.close()
    except zipfile.BadZipFile:
        raise GLMCError(f"{path} is not a readable .zip file (truncated or corrupt); copy it again") from None
    # Hidden folders (.git, .ipynb_checkpoints) and macOS's __MACOSX/ are not data; hidden files are skipped below.
    names = [n for n in names if not any(_hidden(q) for q in PurePosixPath(n).parts[:-1])]
    parts = [PurePosixPath(n).parts for n in names]
    prefixes = {p[0] for p in parts if len(p) > 1}
    prefix: tuple[str, ...] = ()
    if not any(len(p) >= 3 and p[0] in ("train", "test") for p in parts) and len(prefixes) == 1:
        prefix = (next(iter(prefixes)),)
    items: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    skipped: list[str] = []
    for name, p in zip(names, parts, strict=True):
        p = p[len(prefix):] if p[: len(prefix)] == prefix else None
        if not p or len(p) < 3 or p[0] not in items:
            continue
        if p[-1].startswith(".") or PurePosixPath(p[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(name)
            continue
        items[p[0]].setdefault(p[1], []).append(name)
    train_classes, test_classes = sorted(items["train"]), sorted(items["test"])
    if not train_classes:
        raise GLMCError(f"no images found under {path}/{'/'.join(prefix) + '/' if prefix else ''}train/<class>/; "
                        f"an image folder needs train/<class>/*.jpg and test/<class>/*.jpg")
    if not test_classes:
        raise GLMCError(f"no test images found under {path}: add test/<class>/ folders beside train/")
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise GLMCError(f"train/ and test/ class folders differ in {path}: only in train: {only_train or '-'}, "
                        f"only in test: {only_test or '-'}")
    splits = []
    for split in ("train", "test"):
        paths, labels = [], []
        for c, cls in enumerate(train_classes):
            files = sorted(items[split][cls])
            paths += files
            labels += [c] * len(files)
        splits.append(FileSplit(paths, np.asarray(labels, dtype=np.int64), str(path),
                                str(path) if path.suffix.lower() == ".zip" and not path.is_dir() else None))
    notes = [f"skipped {len(skipped)} non-image file(s) (first: {skipped[0]}); images need one of the extensions "
             f"{' '.join(sorted(IMAGE_EXTENSIONS))}"] if skipped else []
    return train_classes, splits[0], splits[1], notes


def _decode(data: bytes, name: str, image_size: int) -> np.ndarray:
    from PIL import Image

    img = open_rgb(data, name)
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_split(split: FileSplit, image_size: int, progress: bool = False) -> ArraySplit:
    """Decode every file of ``split`` into an :class:`ArraySplit` (RGB, resized to ``image_size``)."""
    reader = _Reader(Path(split.archive or split.root))
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


def _cache_key(path: Path, image_size: int, extra: str = "") -> str:
    st = path.stat()
    raw = f"{_CACHE_VERSION}|{path.resolve()}|{st.st_size}|{int(st.st_mtime)}|{image_size}|{extra}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _cache_target(path: Path, key_extra: str, splits: dict[str, FileSplit], image_size: int) -> Path:
    """The cache file of ``splits``, keyed on what the arrays are built from: the file lists and labels
    (so an edited split list or an added image rebuilds it) and every file's size and modification time
    (its CRC in a zip)."""
    h = hashlib.sha1(key_extra.encode("utf-8", "surrogateescape"))
    for name, sp in splits.items():
        h.update(f"|{name}|{len(sp)}|".encode())
        h.update("\n".join(sp.paths).encode("utf-8", "surrogateescape"))
        h.update(np.ascontiguousarray(sp.labels, dtype=np.int64).tobytes())
    first = next(iter(splits.values()))
    reader = _Reader(Path(first.archive or first.root))
    try:
        h.update(reader.listing([q for sp in splits.values() for q in sp.paths]).encode())
    finally:
        reader.close()
    return cache_dir() / f"{path.stem}-{_cache_key(path, image_size, h.hexdigest())}.npz"


def _cached_decode(path: Path, key_extra: str, splits: dict[str, FileSplit], image_size: int,
                   progress: bool) -> dict[str, ArraySplit]:
    """Decode ``splits`` once; later calls load the cached arrays (atomically written .npz)."""
    target = _cache_target(path, key_extra, splits, image_size)
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


def load_image_folder(path, image_size: int = 32, decode: bool = True, progress: bool = True,
                      lazy: bool = False) -> Source:
    """An image-folder tree (folder or .zip); decoded and cached when ``decode`` is true.

    ``lazy``: when the whole tree's decoded cache does not exist yet, return the files undecoded, for
    :func:`decode_subsets` to decode only the images a run uses (the long-tailed subset: 12,406 of
    CIFAR-10's 50,000 training images at IF 100).
    """
    path = expand_user(path)
    classes, train, test, notes = index_image_folder(path)
    if decode and lazy and not _cache_target(path, "imagefolder", {"train": train, "test": test}, image_size).is_file():
        return Source("imagefolder", classes, train, test, str(path), notes)
    if decode:
        arrays = _cached_decode(path, "imagefolder", {"train": train, "test": test}, image_size, progress)
        return Source("imagefolder", classes, arrays["train"], arrays["test"], str(path), notes)
    return Source("imagefolder", classes, train, test, str(path), notes)


def decode_subsets(splits: dict[str, FileSplit], image_size: int, progress: bool = True) -> dict[str, ArraySplit]:
    """Decode the given subsets of one image folder (e.g. a long-tailed training subset and the test set),
    cached under a key made of exactly these files, so a later run with the same subsets decodes nothing."""
    first = next(iter(splits.values()))
    path = Path(first.archive or first.root)
    digest = hashlib.sha1()
    for name, split in splits.items():
        digest.update(f"{name}:{len(split)}\n".encode())
        digest.update("\n".join(f"{p}\t{y}" for p, y in zip(split.paths, split.labels.tolist(), strict=True)).encode())
    return _cached_decode(path, f"subset|{digest.hexdigest()}", splits, image_size, progress)


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
        raise GLMCError(f"split list {list_path} not found; give the file of 'relative/path label' lines")
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
        raise GLMCError(f"data root {root} does not exist; pass --data-root with the folder the split lists refer to")
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
                raise GLMCError(f"{len(missing)} image file(s) of the split list are missing under {root}, "
                                f"first: {missing[0]}")
    classes = [str(c) for c in range(num_classes)]
    if decode is None:
        decode = image_size <= 64
    if decode:
        arrays = _cached_decode(find(train_list), f"splitlist|{root.resolve()}|{test_list}",
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

