"""The comparison runner: a quick run writes its table and plot; finished runs are reused; logit adjustment."""

from __future__ import annotations

import csv

import pytest

from glmc_core.cli import main
from glmc_core.config import METHODS
from glmc_core.errors import GLMCError
from glmc_core.extras.compare import METHOD_SETS, resolve_methods, run_comparison


def test_method_sets_are_known_methods_and_ablation_is_the_papers():
    assert METHOD_SETS["ablation"] == ["ce", "cumulative-only", "glmc-no-cumulative", "glmc"]
    assert all(m in METHODS for names in METHOD_SETS.values() for m in names)
    assert set(METHOD_SETS["all"]) == set(METHODS)
    assert resolve_methods("baselines", "ce, glmc") == ["ce", "glmc"]
    with pytest.raises(GLMCError, match="unknown method"):
        resolve_methods(None, "ce,nope")
    with pytest.raises(GLMCError, match="method set"):
        resolve_methods("nope")


def test_quick_comparison_writes_table_and_plot(tmp_path):
    logs = []
    res = run_comparison("digits-lt", methods="ce,glmc", epochs=1, out=tmp_path, taus=(0.0, 1.0), log=logs.append)
    assert [r["method"] for r in res.rows] == ["ce", "glmc"]
    for name in ("results.md", "results.csv", "results.json", "results.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["method"] for r in rows] == ["ce", "glmc"]
    for r in res.rows:  # τ = 0 is the plain prediction
        assert r["la_tau0_top1"] == pytest.approx(r["top1"])
        assert 0 <= r["la_tau1_top1"] <= 100
    md = (tmp_path / "results.md").read_text()
    assert "| ce |" in md and "LA τ=1 top-1" in md
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    # a second call reuses the finished runs instead of training again
    logs.clear()
    again = run_comparison("digits-lt", methods="ce,glmc", epochs=1, out=tmp_path, taus=(0.0, 1.0), log=logs.append)
    assert sum("reusing" in m for m in logs) == 2
    assert [r["top1"] for r in again.rows] == pytest.approx([r["top1"] for r in res.rows])
    with pytest.raises(GLMCError, match="another configuration"):
        run_comparison("digits-lt", methods="ce", epochs=2, out=tmp_path, log=logs.append)


def test_cli_compare_and_evaluate_logit_adjust(tmp_path, capsys):
    assert main(["compare", "--preset", "digits-lt", "--methods", "ldam-drw", "--epochs", "1", "--out",
                 str(tmp_path), "--tau", "1"]) == 0
    assert "| ldam-drw |" in capsys.readouterr().out
    run = tmp_path / "runs" / "ldam-drw"
    assert main(["evaluate", "--checkpoint", str(run), "--logit-adjust", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[-4:] == lines[2].split()[-4:]  # τ = 0: the same numbers side by side
    assert main(["compare", "--preset", "digits-lt", "--set-name", "nope"]) == 2
