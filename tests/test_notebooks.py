"""Execute every teaching notebook (notebooks/[0-9]*.ipynb) from a clean kernel, in quick mode.

Each notebook runs in its own kernel with the notebooks folder as working directory, driven
by nbclient in a fresh process (tests/run_notebook.py): an event loop left behind by another
test in this process once stalled nbclient forever, with the kernel idle. Run
folders go to one temporary folder for the whole session, so a later notebook may reuse the
runs of an earlier one (06 reuses 05's). With the CIFAR-10 zip present (see conftest), the
notebooks train on a small CIFAR-10-LT subset; without it they fall back to the offline digits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cifar10_zip_path

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="session")
def notebook_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook-runs")


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean_in_quick_mode(path: Path, notebook_runs: Path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel is a child process: it inherits this environment.
    monkeypatch.setenv("GLMC_QUICK", "1")
    monkeypatch.setenv("GLMC_RUNS", str(notebook_runs))
    monkeypatch.setenv("GLMC_CACHE_DIR", os.environ.get("GLMC_CACHE_DIR", str(REPO / "data" / "cache")))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    zip_path = cifar10_zip_path()
    if zip_path is not None:
        monkeypatch.setenv("GLMC_DATA_ROOT", str(zip_path))
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} is committed with outputs; strip them"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{path.name} has no parameters cell"
    # A fresh process per notebook, with a hard limit: a stalled kernel fails the test instead of hanging CI.
    try:
        res = subprocess.run([sys.executable, str(Path(__file__).with_name("run_notebook.py")), str(path)],
                             capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} did not finish within 20 minutes")
    assert res.returncode == 0, f"{path.name} failed:\n{res.stderr[-4000:]}"
