"""Image-folder trees (``train/<class>/*``, ``test/<class>/*``, in a folder or a .zip): listed, never decoded here."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataNotFound, GLMCError
from .reading import IMAGE_EXTENSIONS, TreeReader, check_member, expand_user, hidden
from .splits import FileSplit

__all__ = ["looks_like_image_folder", "index_image_folder"]


def looks_like_image_folder(path: Path) -> bool:
    """A .zip, or a folder with ``train/`` and ``test/`` (possibly inside its one sub-folder)."""
    if path.suffix.lower() == ".zip" and path.is_file():
        return True
    if not path.is_dir():
        return False
    if (path / "train").is_dir() and (path / "test").is_dir():
        return True
    subs = [p for p in path.iterdir() if p.is_dir() and not hidden(p.name)]
    return len(subs) == 1 and (subs[0] / "train").is_dir() and (subs[0] / "test").is_dir()


def index_image_folder(path) -> tuple[list[str], FileSplit, FileSplit, list[str]]:
    """List an image-folder tree ``train/<class>/*``, ``test/<class>/*`` (possibly under one
    top-level folder, in a folder or a .zip) without decoding anything.

    Returns ``(classes, train, test, notes)``; ``notes`` says what was skipped.
    """
    path = expand_user(path)
    if not path.exists():
        raise DataNotFound(f"data root {path} does not exist", "pass --data-root with a folder or .zip that holds "
                           "train/<class>/ and test/<class>/ image folders")
    if path.is_file() and path.suffix.lower() != ".zip":
        raise GLMCError(f"{path} is a file but not a .zip; give a folder or a .zip of train/ and test/ folders")
    try:
        reader = TreeReader(path)
        if reader.zip is not None:
            for info in reader.zip.infolist():
                q = PurePosixPath(info.filename)
                if q.suffix.lower() in IMAGE_EXTENSIONS and not any(hidden(x) for x in q.parts):
                    check_member(info, str(path))
        names = reader.names()
        reader.close()
    except zipfile.BadZipFile:
        raise GLMCError(f"{path} is not a readable .zip file (truncated or corrupt); copy it again") from None
    # Hidden folders (.git, .ipynb_checkpoints) and macOS's __MACOSX/ are not data; hidden files are skipped below.
    names = [n for n in names if not any(hidden(q) for q in PurePosixPath(n).parts[:-1])]
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
