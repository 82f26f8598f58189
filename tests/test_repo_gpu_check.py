"""What the GPU check carries (issue 24): the tracked tree and the data ``gpu_check.sh prepare`` builds stay within
the budget, and the subset zip gives glmc exactly the images and labels of the whole CIFAR-10 zip.

The device tool carries the working tree and ``device_data/`` together, at most 64 MiB; the budget is 56 MiB, so
that 8 MiB stay free for the reference runs still to come (reference_runs/README.md says what a finished run
keeps). The smoke run of gpu_check.sh itself is in test_repo_benchmarks.py.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from conftest import REPO, cifar10_zip_path

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _device_data():
    spec = importlib.util.spec_from_file_location("device_data", REPO / "benchmarks" / "device_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tracked_tree_and_the_gpu_checks_data_stay_within_the_budget():
    """Fails when the tracked files and the subset zip 'prepare' would build exceed 56 MiB (64 MiB carried, 8 to
    spare). Where it fails: slim the finished reference runs (benchmarks/slim_reference_runs.py) or ship less."""
    dd = _device_data()
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("not a git checkout: the tracked tree cannot be measured")
    full = cifar10_zip_path()
    if full is None:
        pytest.skip("the CIFAR-10 zip is not here (GLMC_CIFAR10_ZIP or ../shared/data/cifar10-jpeg.zip): the size of "
                    "the data prepare builds from it cannot be computed")
    tree, data = dd.tree_bytes(), dd.subset_size(full)
    biggest = sorted(((p.stat().st_size, str(p.relative_to(REPO))) for p in dd._git_files() if p.is_file()),
                     reverse=True)[:5]
    assert tree + data <= dd.BUDGET == 56 * 2**20, (
        f"the tracked tree ({dd.mib(tree)}) and device_data/ ({dd.mib(data)}) take {dd.mib(tree + data)}, over the "
        f"{dd.mib(dd.BUDGET)} budget (the device tool carries {dd.mib(dd.CARRY_LIMIT)}); biggest files: {biggest}")
    assert data < 24 * 2**20  # the subset (12,406 + 10,000 JPEGs), not the whole zip (60 MiB)


def test_every_step_reads_the_subset_zip_with_its_n_max():
    """In the subset zip every class holds exactly its n_i images, so glmc picks them all, in order, only when
    n_max is given: unset it would mean the subset's smallest class (50)."""
    dd = _device_data()
    text = SCRIPT.read_text()
    assert re.search(rf"^N_MAX={dd.N_MAX}\b", text, re.M) and dd.N_MAX == 5000
    assert 'DATA="${GLMC_CIFAR10:-device_data/' + dd.NAME + '}"' in text
    assert 'BENCH+=(--n-max "$N_MAX")' in text and 'DATA_SETS=(--set "n_max=$N_MAX")' in text
    assert '"${DATA_SETS[@]}"' in text  # every training run (c, q, d)
    assert "benchmarks/device_data.py prepare" in text


@pytest.mark.slow
def test_the_subset_zip_gives_glmc_the_same_images_and_labels(tmp_path, monkeypatch, cifar10_zip, capsys):
    """glmc loads, from the subset zip with the GPU check's n_max, the same training images (in the same order),
    labels, class counts and test set as from the whole zip with the reference runs' settings (n_max unset)."""
    from glmc_core import get_preset
    from glmc_core.data import prepare_data
    from glmc_core.errors import GLMCError

    dd = _device_data()
    monkeypatch.setenv("GLMC_CACHE_DIR", str(tmp_path / "cache"))  # no cache shared with the runs or other tests
    monkeypatch.setattr(dd, "DEVICE_DATA", tmp_path / "device_data")
    assert dd.prepare(cifar10_zip) == 0
    out = capsys.readouterr().out
    subset = tmp_path / "device_data" / dd.NAME
    assert "written, 10,000 test and 12,406 training images (5000 2997 1796 1077 645 387 232 139 83 50)" in out
    assert re.search(r"MiB to spare", out)
    assert subset.stat().st_size == dd.subset_size(cifar10_zip)  # what the size test counts
    mtime = subset.stat().st_mtime_ns
    assert dd.build(cifar10_zip, subset) is False and subset.stat().st_mtime_ns == mtime  # same bytes: kept
    with zipfile.ZipFile(subset) as zf, zipfile.ZipFile(cifar10_zip) as full:
        infos = zf.infolist()
        assert len(infos) == 22406 and {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
        assert zf.testzip() is None
        for info in infos[::997]:  # the very same JPEG files
            assert zf.read(info) == full.read(info.filename)

    cfg = get_preset("cifar10-lt-if100", data_root=str(cifar10_zip), progress=False)
    assert cfg.n_max is None and cfg.imbalance_factor == 100 and cfg.subset_seed == 0 and cfg.test_per_class is None
    ref = prepare_data(cfg, progress=False)
    small = prepare_data(cfg.replace(data_root=str(subset), n_max=dd.N_MAX), progress=False)
    assert small.classes == ref.classes
    assert small.counts.tolist() == ref.counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    for a, b in ((small.train, ref.train), (small.test, ref.test)):
        assert np.array_equal(a.labels, b.labels)
        assert a.images.shape == b.images.shape and np.array_equal(a.images, b.images)
    assert len(small.test) == 10000
    # without n_max, 'the smallest full class' is 50 images in the subset zip: at IF 100 glmc refuses it
    with pytest.raises(GLMCError, match="50 images in the largest class leaves the smallest class empty"):
        prepare_data(cfg.replace(data_root=str(subset)), progress=False)

    monkeypatch.setattr(dd, "CARRY_LIMIT", dd.tree_bytes(untracked=True))  # no room left: refused
    assert dd.prepare(cifar10_zip) == 2
    assert "too much to carry" in capsys.readouterr().err
