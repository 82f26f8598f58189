"""Execute every teaching notebook (notebooks/[0-9]*.ipynb) from a clean kernel, in quick mode.

Each notebook runs in its own kernel with the notebooks folder as working directory, driven
by nbclient in a fresh process (tests/run_notebook.py): an event loop left behind by another
test in this process once stalled nbclient forever, with the kernel idle. Run
folders go to one temporary folder for the whole session, so a later notebook may reuse the
runs of an earlier one (06 reuses 05's). With the CIFAR-10 zip present (see conftest), the
notebooks train on a small CIFAR-10-LT subset; without it they fall back to the offline digits.

The reference runs' tables and figures (04-07) need no data set: they come from the files shipped with
each run (metrics.jsonl, test_outputs.npz). Both executions, with the CIFAR-10 zip and without any data
root, must show every one of them: ``REFERENCE_OUTPUTS`` lists, for each notebook, the cells that draw them
and what each must show, and a notebook that skips one (or tells the student a result is not shown) fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cifar10_zip_path

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))

# notebook -> [(a line of the cell's source, figures it must draw, markdown tables it must show)]
REFERENCE_OUTPUTS = {
    "04_alpha_schedule": [("figures.plot_schedule_runs(runs)", 1, 0)],
    "05_training": [('plots.plot_learning_curves(refs200["glmc"].history', 2, 0),  # section 6: 200 epochs
                    ("rows200 = analysis.results_rows(", 1, 2),  # groups 3/4/3 and the paper's
                    ('PAPER = {"ce"', 0, 1),  # against the paper's table
                    ("rows_heads = analysis.results_rows(", 0, 1),  # GLMC's final checkpoint through each head
                    ('plots.plot_learning_curves(refs["glmc"].history', 2, 0),
                    ('ref_rows = analysis.results_rows([refs["glmc"], refs["ce"]]', 1, 1),
                    ("rows20 = analysis.results_rows(", 1, 1)],
    "06_feature_space": [("umaps = [analysis.run_umap(", 1, 0),  # UMAPs and confusion matrices, GLMC and CE
                         ("plots.plot_per_class_comparison(evals)", 1, 0),
                         ("rows = analysis.results_rows(evals)", 1, 2),  # groups 3/4/3 and the paper's
                         ("plots.plot_weight_norm_comparison(evals)", 1, 0),
                         ("ref_umap, ce_umap = (analysis.run_umap(", 1, 0),  # section 6: the 60-epoch ResNet-8 pair
                         ('short = {"glmc": ref_glmc', 0, 1),
                         ('k1 = refs.evaluate("glmc-k1")', 1, 0),  # section 6: k = 1.0
                         ('trio = {"glmc (k 1.2)"', 0, 1),
                         ("lr05 = {n: refs.evaluate(n)", 1, 0),  # section 7: lr 0.05
                         ("six = {**lr05", 0, 1),
                         ("r20 = {n: refs20.evaluate(n)", 1, 0),  # section 8: ResNet-20
                         ("analysis.results_rows(list(r20.values()))", 0, 1)],
    "07_comparing_methods": [('ablation = ("ce", "cumulative-only"', 1, 1),
                             ('ablation20 = ("ce-lr05", "cumulative-only-k1-lr05"', 1, 1),
                             ('ablation200 = ("ce", "cumulative-only"', 1, 1)],  # section 2c: 200 epochs
}
# what a notebook must not print to a student where a reference result should be
SKIPPED = ("section skipped", "not shown by these runs", "✗", "LIVE quick runs", "not all in this checkout")


@pytest.fixture(scope="session")
def notebook_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook-runs")


def _execute(path: Path, notebook_runs: Path, monkeypatch, data_root: Path | None, save: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel is a child process: it inherits this environment.
    monkeypatch.setenv("GLMC_QUICK", "1")
    monkeypatch.setenv("GLMC_RUNS", str(notebook_runs))
    monkeypatch.setenv("GLMC_CACHE_DIR", os.environ.get("GLMC_CACHE_DIR", str(REPO / "data" / "cache")))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if data_root is not None:
        monkeypatch.setenv("GLMC_DATA_ROOT", str(data_root))
    else:
        monkeypatch.delenv("GLMC_DATA_ROOT", raising=False)
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} is committed with outputs; strip them"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{path.name} has no parameters cell"
    # A fresh process per notebook, with a hard limit: a stalled kernel fails the test instead of hanging CI.
    try:
        res = subprocess.run([sys.executable, str(Path(__file__).with_name("run_notebook.py")), str(path), str(save)],
                             capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} did not finish within 20 minutes")
    assert res.returncode == 0, f"{path.name} failed:\n{res.stderr[-4000:]}"


def missing_reference_outputs(executed: Path) -> list[str]:
    """What an executed notebook failed to show of the reference runs (empty when everything is there)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    missing = []
    for needle, figures, tables in REFERENCE_OUTPUTS.get(executed.stem, []):
        found = [c for c in cells if needle in c.source]
        if len(found) != 1:
            missing.append(f"{len(found)} cells hold {needle!r} (one expected): update REFERENCE_OUTPUTS")
            continue
        outs = [o for o in found[0].outputs if o.get("output_type") in ("display_data", "execute_result")]
        n_fig = sum("image/png" in o.get("data", {}) for o in outs)
        n_tab = sum("|---" in o.get("data", {}).get("text/markdown", "") for o in outs)
        if n_fig < figures or n_tab < tables:
            missing.append(f"the cell with {needle!r} drew {n_fig} figure(s) and {n_tab} table(s), "
                           f"not {figures} and {tables}")
    for i, c in enumerate(cells):
        text = "".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
        missing += [f"code cell {i} prints {s!r}" for s in SKIPPED if s in text]
    return missing


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean_in_quick_mode(path: Path, notebook_runs: Path, monkeypatch, tmp_path):
    """With the CIFAR-10 zip when it is here (else as without data): runs clean, shows every reference result."""
    executed = tmp_path / path.name
    _execute(path, notebook_runs, monkeypatch, cifar10_zip_path(), executed)
    assert not missing_reference_outputs(executed), missing_reference_outputs(executed)


REFERENCE_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem in REFERENCE_OUTPUTS]


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("path", REFERENCE_NOTEBOOKS, ids=[p.stem for p in REFERENCE_NOTEBOOKS])
def test_reference_results_show_without_the_data(path: Path, notebook_runs: Path, monkeypatch, tmp_path):
    """No GLMC_DATA_ROOT at all: every reference table and figure is still there (from the shipped files)."""
    if cifar10_zip_path() is None:
        pytest.skip("no CIFAR-10 zip here: test_notebook_runs_clean_in_quick_mode already ran this without data")
    executed = tmp_path / path.name
    _execute(path, notebook_runs, monkeypatch, None, executed)
    assert not missing_reference_outputs(executed), missing_reference_outputs(executed)
