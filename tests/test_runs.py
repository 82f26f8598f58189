"""The run folder's one owner (glmc_core.runs): its layout, when it writes what, and that a folder's files
belong together; the one loader of a run's model with its data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from glmc_core import analysis, cli, runs
from glmc_core import checkpoint as ckpt
from glmc_core.checkpoint import load_checkpoint, require_training_state, save_checkpoint
from glmc_core.config import get_preset
from glmc_core.errors import GLMCError
from glmc_core.runs import (
    RESUME_OVERRIDES,
    RunFolder,
    checkpoint_file,
    checkpoint_interval,
    load_run_model,
    open_run,
    remove_stale_temporaries,
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


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


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


def test_stale_temporaries_are_removed(tmp_path):
    save_checkpoint({"epoch": 1}, tmp_path / "checkpoint.pt")
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".best.pt.xyz.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


# ---------------------------------------------------------------------------- a finished run kept slim
@pytest.fixture(scope="module")
def finished_tiny_run(tmp_path_factory):
    from tiny_runs import train_tiny

    return train_tiny(tmp_path_factory.mktemp("finished"), "glmc", 2, "glmc")


@pytest.fixture
def slim_run(finished_tiny_run, tmp_path):
    import shutil

    run = tmp_path / "glmc"
    shutil.copytree(finished_tiny_run, run)
    return run


def test_slim_finished_run_keeps_the_final_weights_and_drops_the_training_state(slim_run):
    """reference_runs/README.md: a finished run keeps checkpoint.pt with its final weights, config, classes, class
    counts, epoch and history, without the optimiser and the generators' states, and no best.pt."""
    full = load_checkpoint(slim_run)
    mode = (slim_run / "checkpoint.pt").stat().st_mode
    r = runs.slim_finished_run(slim_run)
    assert r["removed"] == ["best.pt"] and r["after"] < r["before"]
    assert sorted(p.name for p in slim_run.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl",
                                                         "summary.json"]
    slim = load_checkpoint(slim_run)
    assert not set(ckpt.TRAINING_STATE) & set(slim) and slim["slim"] is True and ckpt.is_slim_finished(slim)
    assert {k: v for k, v in slim.items() if k not in ("model", "slim")} == {
        k: v for k, v in full.items() if k not in ("model", *ckpt.TRAINING_STATE)}
    assert slim.keys() >= {"config", "classes", "class_counts", "epoch", "history", "model"}
    for name, w in full["model"].items():
        assert torch.equal(slim["model"][name], w), name
    assert (slim_run / "checkpoint.pt").stat().st_mode == mode
    again = runs.slim_finished_run(slim_run)  # a second time changes nothing
    assert again["removed"] == [] and again["before"] == again["after"] == r["after"]
    assert load_checkpoint(slim_run)["epoch"] == full["epoch"]


def test_slim_finished_run_refuses_an_unfinished_run(slim_run):
    (slim_run / "summary.json").unlink()
    before = sorted((p.name, p.stat().st_size) for p in slim_run.iterdir())
    with pytest.raises(GLMCError, match="no summary.json: an unfinished run keeps its whole checkpoint"):
        runs.slim_finished_run(slim_run)
    assert sorted((p.name, p.stat().st_size) for p in slim_run.iterdir()) == before
    (slim_run / "summary.json").write_text('{"final": {"epoch": 1}}')
    with pytest.raises(GLMCError, match="not a finished run's last checkpoint"):
        runs.slim_finished_run(slim_run)
    assert "optimizer" in load_checkpoint(slim_run)


def test_a_slimmed_run_is_evaluated_reused_and_not_resumed(slim_run, capsys):
    """glmc evaluate and load_model read the final weights; open_run and train_or_reuse take the run as finished;
    fit cannot continue it and says so in one line; 'glmc train --resume' says it is finished and exits 0."""
    from glmc_core import cli
    from glmc_core.analysis import evaluate_run, load_run
    from glmc_core.train import fit, train_or_reuse

    run = load_run(slim_run)
    final = run.history[-1]
    runs.slim_finished_run(slim_run)
    ev = evaluate_run(slim_run, which="best", device="cpu")  # no best.pt: the final checkpoint
    assert ev.epoch == final["epoch"] and 100 * ev.top1 == pytest.approx(final["top1"], abs=1e-6)
    logs = []
    ck, cfg, run_dir = open_run(slim_run, log=logs.append)
    assert run_dir == slim_run and cfg == run.config and "already finished its 2 epochs" in logs[0]
    with pytest.raises(GLMCError) as exc:
        require_training_state(ck, "checkpoint.pt")
    assert "a finished run (2 of 2 epochs) kept without its training state" in one_line(exc)
    assert train_or_reuse(run.config.replace(out=str(slim_run.parent)), log=logs.append) == slim_run
    assert "already trained: reusing it" in logs[-1]
    with pytest.raises(GLMCError, match="nothing to resume"):
        fit(resume=slim_run, log=logs.append)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(slim_run)]) == 0
    out, err = capsys.readouterr()
    assert "already finished its 2 epochs" in err and "nothing to resume" in err
    assert f"final (epoch {final['epoch']})" in out and f"{final['top1']:6.2f}" in out
    assert runs.finished_run_checkpoint(slim_run / "nothing") is None
    assert sorted(p.name for p in slim_run.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl",
                                                         "summary.json"]


def test_slim_reference_runs_script(slim_run, tmp_path, capsys):
    import importlib.util
    import shutil

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("slim_reference_runs", REPO / "benchmarks" / "slim_reference_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(slim_run, unfinished)
    (unfinished / "summary.json").unlink()
    assert mod.main([str(tmp_path)]) == 0  # a set: the finished run slimmed, the unfinished one kept whole
    out = capsys.readouterr().out
    assert f"{slim_run}: " in out and "removed best.pt" in out and f"{unfinished}: unfinished" in out
    assert not (slim_run / "best.pt").exists() and (unfinished / "best.pt").is_file()
    assert "optimizer" in load_checkpoint(unfinished)
    assert mod.main([str(unfinished)]) == 2  # named alone: refused
    assert "no summary.json" in capsys.readouterr().err
