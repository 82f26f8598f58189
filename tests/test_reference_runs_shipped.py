"""The reference runs shipped in reference_runs/: every folder is documented, and every finished run's last
checkpoint reproduces, on the real CIFAR-10 test set, the final line its summary.json records."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from glmc_core import analysis
from glmc_core.notebook import setup

SETS = sorted(p for p in (REPO / "reference_runs").iterdir() if p.is_dir())
RUNS = [d for s in SETS for d in sorted(s.iterdir()) if (d / "config.json").is_file()]


def test_every_shipped_run_folder_is_listed_in_the_readme():
    readme = (REPO / "reference_runs" / "README.md").read_text()
    assert RUNS, "no reference run is shipped"
    for d in RUNS:
        assert f"`{d.parent.name}/`" in readme, f"{d.parent.name} has no section in reference_runs/README.md"
        assert f"`{d.name}`" in readme, f"{d.parent.name}/{d.name} is not listed in reference_runs/README.md"


@pytest.mark.slow
@pytest.mark.parametrize("run_set", SETS, ids=[s.name for s in SETS])
def test_finished_runs_reproduce_their_final_line(run_set, cifar10_zip):
    finished = [d.name for d in sorted(run_set.iterdir()) if (d / "summary.json").is_file()]
    if not finished:
        pytest.skip(f"no finished run in {run_set.name}")
    refs = setup.reference_runs(str(cifar10_zip), root=run_set)
    assert sorted(refs.runs) == finished, refs.message
    for name in finished:
        final = json.loads((run_set / name / "summary.json").read_text())["final"]
        ev = analysis.evaluate_run(refs[name], data=refs.data, which="last", device="cpu")
        assert ev.epoch == final["epoch"]
        # 10,000 test images: one flipped prediction moves top-1 by 0.01 and a 3-class group by 0.03 points
        assert 100 * ev.top1 == pytest.approx(final["top1"], abs=0.021), name
        for group in ("many", "medium", "few"):
            assert 100 * ev.group_acc[group] == pytest.approx(final[group], abs=0.07), (name, group)
