"""The run folder's one owner (glmc_core.runs): its layout, when it writes what, and that a folder's files
belong together; the one loader of a run's model with its data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from glmc_core import analysis, cli
from glmc_core.checkpoint import load_checkpoint
from glmc_core.config import get_preset
from glmc_core.errors import GLMCError
from glmc_core.runs import (
    RESUME_OVERRIDES,
    RunFolder,
    checkpoint_file,
    checkpoint_interval,
    load_run_model,
)
from glmc_core.train import ReferenceStep, build_state, fit, train_one_epoch


def tiny_config(tmp_path, **overrides):
    base = dict(image_size=8, test_per_class=5, n_max=40, batch_size=16, epochs=2, device="cpu", progress=False,
                deterministic=True, out=str(tmp_path), run_name="r")
    return get_preset("digits-lt", **{**base, **overrides})


@pytest.fixture(scope="module")
def glmc_run(tmp_path_factory) -> Path:
    """A finished 2-epoch GLMC run (config.json, metrics.jsonl, checkpoint.pt, best.pt, summary.json)."""
    return fit(tiny_config(tmp_path_factory.mktemp("runs"), method="glmc"), log=lambda m: None).run_dir


@pytest.fixture
def mismatched(glmc_run, tmp_path) -> Path:
    """A copy of the GLMC run whose config.json says ldam-drw: its files do not belong together."""
    run = Path(shutil.copytree(glmc_run, tmp_path / "mixed"))
    cfg = json.loads((run / "config.json").read_text())
    cfg["method"] = "ldam-drw"
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def run_cli(capsys, argv) -> tuple[int, list[str]]:
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


# ------------------------------------------------------------------------------ the layout and the writes
def test_a_run_folder_holds_its_files_and_the_epoch_its_checkpoint_holds(glmc_run):
    assert sorted(p.name for p in glmc_run.iterdir()) == ["best.pt", "checkpoint.pt", "config.json",
                                                          "metrics.jsonl", "summary.json"]
    folder, ck, cfg = RunFolder.resume(glmc_run, log=lambda m: None)
    assert folder.saved_epoch == ck["epoch"] == cfg.epochs == 2
    assert folder.checkpoint("best") == glmc_run / "best.pt" and folder.checkpoint("last") == glmc_run / "checkpoint.pt"
    assert checkpoint_file(glmc_run) == glmc_run / "best.pt" and checkpoint_file(glmc_run / "x.pt") == glmc_run / "x.pt"
    with pytest.raises(GLMCError, match="checkpoint must be 'best' or 'last', got 'final'"):
        folder.checkpoint("final")
    with pytest.raises(GLMCError, match="holds no checkpoint"):
        RunFolder(glmc_run / "nowhere").checkpoint("last")


def test_metrics_rows_are_rewritten_or_appended_in_one_place(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_metrics([{"epoch": 1, "top1": 1.0}])
    folder.write_metrics([{"epoch": 2, "top1": 2.0}], append=True)
    assert [r["epoch"] for r in analysis.load_history(tmp_path)] == [1, 2]
    folder.write_metrics([{"epoch": 1, "top1": 1.0}])  # a resumed run: the checkpoint's history, whole
    assert [r["epoch"] for r in analysis.load_history(tmp_path)] == [1]
    RunFolder(tmp_path / "none", writes=False).write_metrics([{"epoch": 1}])
    assert not (tmp_path / "none").exists()


def test_best_waits_for_the_next_due_checkpoint(tmp_path):
    """checkpoint_every=2: best.pt and checkpoint.pt are written together at epochs 2 and 3 (the last), from the
    best weights of their time; the folder's saved epoch follows the checkpoint, not the run."""
    cfg = tiny_config(tmp_path, epochs=3, checkpoint_every=2)
    assert checkpoint_interval(cfg, fast=False) == 2 and checkpoint_interval(cfg.replace(checkpoint_every=None),
                                                                            fast=True) == 25
    seen = []
    state = fit(cfg, log=lambda m: None,
                callbacks=[lambda ev, p: seen.append((p["epoch"], load_checkpoint(tmp_path / "r")["epoch"]))
                           if ev == "epoch_end" else None])
    assert seen == [(1, 0), (2, 2), (3, 3)] and state.saved_epoch == state.epoch == 3
    best = load_checkpoint(tmp_path / "r" / "best.pt")
    assert best["epoch"] == state.best["epoch"] and "optimizer" not in best


def test_train_one_epoch_advances_the_epoch_and_both_steps_share_one_interface(tmp_path):
    state = build_state(tiny_config(tmp_path))
    terms = train_one_epoch(state)
    assert state.epoch == 1 and {"alpha", "lr", "lambda_mean"} <= set(terms)
    assert train_one_epoch(state, stop=lambda: True) is None and state.epoch == 1  # a stopped epoch is not counted
    out = ReferenceStep().run_epoch(state, alpha=1.0, lr=0.01)
    assert out["steps"] == len(state.stream) and "lambda_sum" in out
    assert state.evaluate(state.data.test) == ReferenceStep().evaluate(state.data.test, state)
    assert state.run_dir is None and state.saved_epoch == 0  # fit(save=False)-like: no folder


def test_resume_overrides_have_one_definition():
    import glmc_core.train as train_mod

    assert train_mod.RESUME_OVERRIDES is RESUME_OVERRIDES and "device" in RESUME_OVERRIDES


# ------------------------------------------------------------------------------ one loader
@pytest.mark.parametrize("which", ["best", "last"])
def test_load_run_model_gives_the_checkpoint_with_its_data(glmc_run, which):
    run = load_run_model(glmc_run, which)
    ck = load_checkpoint(glmc_run / ("best.pt" if which == "best" else "checkpoint.pt"))
    assert run.path.name == ("best.pt" if which == "best" else "checkpoint.pt") and run.epoch == ck["epoch"]
    assert run.config.method == "glmc" and run.data.num_classes == 10 and not run.model.training
    assert all(torch.equal(v, ck["model"][k]) for k, v in run.model.state_dict().items())


# ------------------------------------------------------------------------------ files that belong together
def test_a_checkpoint_of_another_run_than_config_json_is_refused_by_every_reader(mismatched):
    want = "belong to different runs: method is 'glmc' in best.pt and 'ldam-drw' in config.json"
    with pytest.raises(GLMCError, match=want):
        load_run_model(mismatched)
    with pytest.raises(GLMCError, match=want):
        analysis.evaluate_run(mismatched, which="best")
    with pytest.raises(GLMCError, match=want.replace("best.pt", "checkpoint.pt")):
        fit(resume=mismatched, log=lambda m: None)
    with pytest.raises(GLMCError, match=want.replace("best.pt", "checkpoint.pt")):
        RunFolder(mismatched).load("last")


@pytest.mark.parametrize("argv", [["analyze", "{run}", "--no-umap", "--device", "cpu"],
                                  ["evaluate", "--checkpoint", "{run}", "--device", "cpu"],
                                  ["train", "--resume", "{run}", "--device", "cpu"]],
                         ids=["analyze", "evaluate", "resume"])
def test_the_cli_says_so_in_one_line(mismatched, capsys, argv):
    rc, lines = run_cli(capsys, [a.format(run=mismatched) for a in argv])
    assert rc == 2 and [line for line in lines if line.startswith("glmc: error: ")] == lines[-1:], lines
    assert "belong to different runs: method is 'glmc' in" in lines[-1]  # (analyze logs what it evaluates first)


def test_a_resumed_run_may_differ_from_its_config_json_where_it_runs(glmc_run, tmp_path):
    run = Path(shutil.copytree(glmc_run, tmp_path / "moved"))
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(device="cuda", progress=True, run_name="elsewhere", out="/tmp/other")
    (run / "config.json").write_text(json.dumps(cfg))
    assert load_run_model(run, "last").config.method == "glmc"
