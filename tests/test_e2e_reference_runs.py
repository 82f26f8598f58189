"""The reference runs shipped in reference_runs/: every folder is documented, every finished run ships the test-set
outputs its figures need (test_outputs.npz: no data set needed to show it), and, with the real CIFAR-10 at hand,
every finished run's last checkpoint reproduces the final line its summary.json records and the outputs it ships."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO

from glmc_core import analysis
from glmc_core.notebook import setup

SETS = sorted(p for p in (REPO / "reference_runs").iterdir() if p.is_dir())
RUNS = [d for s in SETS for d in sorted(s.iterdir()) if (d / "config.json").is_file()]
FINISHED = [d for d in RUNS if (d / "summary.json").is_file()]
OUTPUT_BUDGET = 10_000_000  # bytes: every run's test_outputs.npz together


def test_every_shipped_run_folder_is_listed_in_the_readme():
    readme = (REPO / "reference_runs" / "README.md").read_text()
    assert RUNS, "no reference run is shipped"
    for d in RUNS:
        assert f"`{d.parent.name}/`" in readme, f"{d.parent.name} has no section in reference_runs/README.md"
        assert f"`{d.name}`" in readme, f"{d.parent.name}/{d.name} is not listed in reference_runs/README.md"


def _final(d):
    return json.loads((d / "summary.json").read_text())["final"]


@pytest.mark.parametrize("d", FINISHED, ids=[f"{d.parent.name}/{d.name}" for d in FINISHED])
def test_every_finished_run_ships_its_test_outputs(d):
    """Labels and predicted classes (features for the runs a UMAP shows), of its final epoch, plain arrays
    (``allow_pickle=False``), nothing image-sized; they reproduce the final line of summary.json with no data."""
    path = d / analysis.TEST_OUTPUTS
    assert path.is_file(), (f"{d} ships no {analysis.TEST_OUTPUTS}: write it with the command in "
                            f"reference_runs/README.md")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    final = _final(d)
    assert int(arrays["epoch"]) == final["epoch"]
    n = len(arrays["labels"])
    for key, a in arrays.items():  # a test image would be (N, 32, 32, 3) of uint8: nothing here has 3 dimensions
        assert a.ndim <= 2 and a.dtype != object, key
    if "features" in arrays:
        assert arrays["features"].dtype == np.float16 and arrays["features"].shape[0] == n
    assert ("features" in arrays) == (d.name in setup.FEATURE_RUNS.get(d.parent.name, ()))
    ev = analysis.shipped_evaluation(analysis.load_run(d))
    assert ev is not None and ev.source == "shipped" and ev.epoch == final["epoch"]
    # the final line was computed during training from the same checkpoint (in other batches: as the test below,
    # allow one flipped prediction, 0.01 points of top-1 and 0.03 of a 3-class group)
    assert 100 * ev.top1 == pytest.approx(final["top1"], abs=0.021)
    for group in ("many", "medium", "few"):
        assert 100 * ev.group_acc[group] == pytest.approx(final[group], abs=0.07), group


def test_the_shipped_outputs_stay_small():
    sizes = {f"{p.parent.parent.name}/{p.parent.name}": p.stat().st_size
             for p in (REPO / "reference_runs").glob(f"*/*/{analysis.TEST_OUTPUTS}")}
    assert sum(sizes.values()) <= OUTPUT_BUDGET, sizes


@pytest.mark.slow
@pytest.mark.parametrize("run_set", SETS, ids=[s.name for s in SETS])
def test_finished_runs_reproduce_their_final_line_and_their_shipped_outputs(run_set, cifar10_zip):
    finished = [d.name for d in sorted(run_set.iterdir()) if (d / "summary.json").is_file()]
    if not finished:
        pytest.skip(f"no finished run in {run_set.name}")
    refs = setup.reference_runs(str(cifar10_zip), root=run_set)
    assert sorted(refs.runs) == finished and refs.data is not None, refs.message
    for name in finished:
        final = _final(run_set / name)
        ev = analysis.evaluate_run(refs[name], data=refs.data, which="last", device="cpu")
        assert ev.epoch == final["epoch"]
        # 10,000 test images: one flipped prediction moves top-1 by 0.01 and a 3-class group by 0.03 points
        assert 100 * ev.top1 == pytest.approx(final["top1"], abs=0.021), name
        for group in ("many", "medium", "few"):
            assert 100 * ev.group_acc[group] == pytest.approx(final[group], abs=0.07), (name, group)
        # the shipped outputs are this checkpoint's on this test set: the same classes, the same predictions
        shipped = analysis.shipped_evaluation(refs[name])
        assert shipped is not None and shipped.epoch == ev.epoch, name
        assert np.array_equal(shipped.targets, ev.targets), name
        assert np.array_equal(shipped.preds, ev.preds), name
        assert set(shipped.head_preds) == set(ev.head_preds), name
        for head, preds in ev.head_preds.items():
            assert np.array_equal(shipped.head_preds[head], preds), (name, head)
        assert shipped.classes == list(refs.data.classes) and np.array_equal(shipped.counts, refs.data.counts)
        f16 = ev.features.astype(np.float16).astype(np.float32)
        if shipped.features is not None:  # equal to float16 precision: within one unit in the last place of fp16
            # (another thread count may change a float32 feature in its last bits and so round it the other way)
            assert np.all(np.abs(shipped.features - ev.features) <= 2.0 ** -10 * np.abs(ev.features) + 1e-7), name
        assert shipped.knn == pytest.approx(analysis.knn_accuracy(f16, ev.targets, k=10), abs=3e-4), name
