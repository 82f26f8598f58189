"""The data set the GPU check carries to the GPU machine: only what it reads, small enough to travel.

    python benchmarks/device_data.py prepare ../shared/data/cifar10-jpeg.zip   # what 'gpu_check.sh prepare' runs
    python benchmarks/device_data.py size ../shared/data/cifar10-jpeg.zip      # bytes the subset zip will have

The device tool carries the working tree and ``device_data/`` together, at most 64 MiB (CARRY_LIMIT). The whole
CIFAR-10 zip (60 MiB) no longer fits beside the shipped reference runs, so ``prepare`` builds
``device_data/cifar10-lt-if100-jpeg.zip`` from it: the CIFAR-10-LT IF100 training subset (12,406 images) and
the whole test set (10,000), as the same JPEG files in the same layout (``cifar10/{train,test}/<class>/<n>.jpg``),
deflated (a 32x32 JPEG's tables compress: about 18 % smaller), with the full zip's names and dates, so the same
input always gives the same bytes. About 20 MiB.

The training images are exactly the ones glmc picks from the full zip for ``cifar10-lt-if100`` with
``n_max=5000`` (N_MAX), the smallest full class there and so what ``n_max`` unset means on the full zip: each
class shuffled with ``subset_seed`` 0 and its first n_i kept (5000 2997 1796 1077 645 387 232 139 83 50). In the
subset zip every class holds exactly its n_i images, so glmc keeps all of them in the same order whatever its
shuffle, PROVIDED ``n_max=5000`` is given: unset, it would mean the subset zip's smallest class (50 images).
``gpu_check.sh`` passes it to every step (``--set n_max=5000``, ``bench_speed.py --n-max 5000``);
tests/test_repo_gpu_check.py checks that the images and labels glmc loads from both zips are identical.

The budget (BUDGET, 56 MiB) keeps 8 MiB of the 64 to spare for the reference runs still to come;
tests/test_repo_gpu_check.py fails when the tracked tree and this zip together exceed it. ``prepare`` reports
what would travel now (tracked and untracked files that git does not ignore, and ``device_data/``) and fails
when it reaches the 64 MiB.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runs from the checkout without glmc installed
    sys.path.insert(0, str(REPO))

from glmc_core import get_preset  # noqa: E402
from glmc_core.data import class_counts, longtail_counts, longtail_indices  # noqa: E402
from glmc_core.data.index import index_image_folder  # noqa: E402
from glmc_core.errors import GLMCError  # noqa: E402

PRESET = "cifar10-lt-if100"
N_MAX = 5000  # images in the largest class: pass it wherever the subset zip is read (see above)
NAME = "cifar10-lt-if100-jpeg.zip"
DEVICE_DATA = REPO / "device_data"
CARRY_LIMIT = 64 * 2**20  # what the device tool carries, working tree and device_data/ together
BUDGET = 56 * 2**20  # what they may take: 8 MiB of headroom for the runs still to come
SHARED_ZIP = REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"


def subset_members(full_zip: str | os.PathLike) -> tuple[list[str], list[int]]:
    """The zip members the GPU check reads (the long-tailed training subset as glmc picks it, then the whole test
    set) and the training subset's class counts."""
    cfg = get_preset(PRESET, n_max=N_MAX)
    classes, train, test, _ = index_image_folder(full_zip)
    full = class_counts(train.labels, len(classes))
    if int(full.min()) != N_MAX:
        raise GLMCError(f"{full_zip} is not the whole CIFAR-10 (its smallest class has {int(full.min())} training "
                        f"images, not {N_MAX}): give cifar10-jpeg.zip")
    counts = longtail_counts(N_MAX, len(classes), cfg.imbalance_factor)
    idx = longtail_indices(train.labels, counts, cfg.subset_seed, classes)
    return [train.paths[i] for i in idx] + list(test.paths), counts


def write_subset(full_zip: str | os.PathLike, out) -> int:
    """Write the subset zip into ``out`` (a path or a binary file); returns its size in bytes."""
    names, _ = subset_members(full_zip)
    with zipfile.ZipFile(full_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for name in names:
            info = src.getinfo(name)
            data = src.read(info)  # CRC checked
            member = zipfile.ZipInfo(name, info.date_time)
            member.compress_type, member.external_attr = zipfile.ZIP_DEFLATED, info.external_attr
            dst.writestr(member, data, compresslevel=9)
    return out.tell() if hasattr(out, "tell") else Path(out).stat().st_size


def subset_size(full_zip: str | os.PathLike) -> int:
    """Bytes of the subset zip ``prepare`` builds from ``full_zip`` (built in memory, nothing written)."""
    return write_subset(full_zip, io.BytesIO())


def build(full_zip: str | os.PathLike, dest: str | os.PathLike) -> bool:
    """Build the subset zip at ``dest`` (atomically); an identical file already there is kept (its date too, so a
    decoded-image cache keyed on it stays valid). True when it was written."""
    dest = Path(dest)
    buf = io.BytesIO()
    write_subset(full_zip, buf)
    if dest.is_file() and dest.stat().st_size == buf.tell() and dest.read_bytes() == buf.getvalue():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, dest)
    return True


def _git_files(*flags: str) -> list[Path]:
    res = subprocess.run(["git", "ls-files", "-z", *flags], cwd=REPO, capture_output=True)
    if res.returncode != 0:
        raise GLMCError(f"{REPO} is not a git checkout: {res.stderr.decode(errors='replace').strip()[:200]}")
    return [REPO / os.fsdecode(n) for n in res.stdout.split(b"\0") if n]


def tree_bytes(untracked: bool = False) -> int:
    """Bytes of the tracked files (``untracked``: and of the untracked ones git does not ignore: what the device
    tool carries besides ``device_data/``)."""
    files = _git_files("-co", "--exclude-standard") if untracked else _git_files()
    return sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _show(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def prepare(full_zip: str | os.PathLike) -> int:
    """``gpu_check.sh prepare``: build ``device_data/`` and check that it travels; 0 when it does."""
    full_zip = Path(full_zip)
    if not full_zip.is_file():
        print(f"gpu_check: no CIFAR-10 zip at {full_zip}", file=sys.stderr)
        return 2
    old = DEVICE_DATA / "cifar10-jpeg.zip"
    if old.is_file():  # what prepare copied before: the whole zip no longer travels
        old.unlink()
        print(f"removed {_show(old)} (the whole CIFAR-10 zip): only the subset travels now")
    dest = DEVICE_DATA / NAME
    wrote = build(full_zip, dest)
    names, counts = subset_members(full_zip)
    print(f"{_show(dest)}: {'written' if wrote else 'unchanged'}, {len(names) - sum(counts):,} test and "
          f"{sum(counts):,} training images ({' '.join(map(str, counts))}); read it with n_max={N_MAX}")
    others = sorted(_show(p) for p in DEVICE_DATA.rglob("*") if p.is_file() and p != dest)
    if others:
        print(f"note: device_data/ also holds {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}: "
              f"it travels too; delete what the GPU check does not need")
    data, tree = folder_bytes(DEVICE_DATA), tree_bytes(untracked=True)
    total = data + tree
    print(f"{_show(DEVICE_DATA)}/: {mib(data)}; the working tree: {mib(tree)} (tracked alone: {mib(tree_bytes())}); "
          f"in all {mib(total)} of the {mib(CARRY_LIMIT)} the device tool carries: {mib(CARRY_LIMIT - total)} to spare")
    if total >= CARRY_LIMIT:
        print("gpu_check: too much to carry", file=sys.stderr)
        return 2
    if total > BUDGET:
        print(f"gpu_check: warning: less than {mib(CARRY_LIMIT - BUDGET)} to spare (the budget is {mib(BUDGET)}; "
              f"tests/test_repo_gpu_check.py fails): slim the finished reference runs (reference_runs/README.md)",
              file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("prepare", "size"))
    p.add_argument("zip", nargs="?", default=str(SHARED_ZIP), help="the whole CIFAR-10 zip (cifar10-jpeg.zip)")
    args = p.parse_args(argv)
    try:
        if args.action == "size":
            print(subset_size(args.zip))
            return 0
        return prepare(args.zip)
    except GLMCError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
