"""Reading files safely: paths, size caps, CIFAR's pickles without running code, capped zip members, RGB images.

Everything here reads untrusted bytes (a downloaded pickle, a zip from a colleague, a folder of images) and turns
every way they can be wrong into one :class:`~glmc_core.errors.GLMCError` line naming the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import GLMCError

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS_ENV", "MAX_FILE_BYTES_ENV", "expand_user", "clip",
           "resolve_data_root", "max_image_pixels", "max_file_bytes", "hidden", "Refused", "load_safe_pickle",
           "TreeReader", "check_member", "read_member", "read_file", "open_rgb"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

# Caps on what one image may expand to, checked before decoding (a small file can declare a huge image or
# a zip member a huge size). Raise them with these environment variables (also seen by DataLoader workers).
MAX_IMAGE_PIXELS_ENV, MAX_FILE_BYTES_ENV = "GLMC_MAX_IMAGE_PIXELS", "GLMC_MAX_FILE_BYTES"
_DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; ImageNet, iNaturalist and Places images are far smaller
_DEFAULT_MAX_BYTES = 256 * 2**20  # one image file (or zip member), uncompressed


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


# --------------------------------------------------------------------- limits
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


def hidden(part: str) -> bool:
    """Entries that are not data: hidden files and folders, and the ``__MACOSX`` folders of macOS zips."""
    return part.startswith(".") or part == "__MACOSX"


# ------------------------------------------------------------- CIFAR's pickles, safely
class Refused(pickle.UnpicklingError):
    """A CIFAR pickle asked for something that is not images, labels or names."""


def _reconstruct(cls, shape, dtype_code):
    """numpy's array unpickling entry point (``numpy.core.multiarray._reconstruct``), for ``numpy.ndarray`` only."""
    try:
        from numpy._core.multiarray import _reconstruct as reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct as reconstruct

    if cls is not np.ndarray:
        raise Refused("only numpy.ndarray may be rebuilt")
    return reconstruct(cls, shape, dtype_code)


def _dtype(spec, align=False, copy=False):
    """``numpy.dtype`` for plain numbers only: an object dtype would let the pickle build arbitrary objects."""
    dt = np.dtype(spec, align, copy)
    if dt.hasobject or dt.kind not in "biuf":
        raise Refused(f"dtype {dt} is not a plain numeric type")
    return dt


def _latin1(text, encoding="latin1"):
    """``_codecs.encode``, which Python 3 pickles use for bytes (protocol 2): text to bytes only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode is allowed only for latin1 text")
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
            raise Refused(f"refused {clip(module, 60)}.{clip(name, 60)}") from None


def load_safe_pickle(path: Path):
    """A CIFAR python batch or meta file, rebuilt by :class:`_CifarUnpickler` (refusing anything else)."""
    with open(path, "rb") as fh:
        return _CifarUnpickler(fh, encoding="bytes").load()


# ------------------------------------------------------------------------ folders and zips
class TreeReader:
    """Read files from a folder or a .zip with one interface (each member capped and CRC-checked)."""

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


def check_member(info: zipfile.ZipInfo, where: str) -> None:
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
    """One member of an image zip, checked (:func:`check_member`) and with its CRC verified, or one line."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise GLMCError(f"cannot read image file {clip(name)} in {where}: it is not in the archive") from None
    check_member(info, where)
    try:
        return zf.read(info)
    except zipfile.BadZipFile as exc:
        # third-party wording: zipfile raises BadZipFile for a bad CRC and other damage alike, with no subtype
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
