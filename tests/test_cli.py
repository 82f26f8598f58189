"""The ``glmc`` command, run as ``python -m glmc_core`` in subprocesses (glmc_core.cli)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from glmc_core import cli
from glmc_core.cli import _evaluation_checkpoint
from glmc_core.config import PRESETS, get_preset
from glmc_core.data import prepare_data
from glmc_core.errors import GLMCError

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {"epoch", "top1", "many", "medium", "few", "loss_c", "loss_cb", "loss_sim", "total", "alpha", "seconds"}


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["GLMC_CACHE_DIR"] = str(tmp / "cache")
    env.pop("GLMC_DATA_ROOT", None)
    return env


def _start(args, tmp: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "glmc_core", *map(str, args)], cwd=tmp, env=_env(tmp),
                            stdout=kw.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, text=True, **kw)


def glmc(args, tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = _start(args, tmp)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _table_row(text: str, label: str) -> list[str]:
    """The top-1/many/medium/few cells of the table row that starts with ``label``."""
    for line in text.splitlines():
        if line.startswith(label):
            return line[18:].split()
    raise AssertionError(f"no row {label!r} in:\n{text}")


# --------------------------------------------------------------------------------- bad inputs
def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Each case: argv and a fragment of the expected error message. Writes the files the cases need."""
    (tmp / "empty").mkdir()
    fruit = tmp / "fruit"
    for split in ("train", "test"):
        for name, colour in (("apple", (255, 0, 0)), ("kiwi", (0, 255, 0))):
            (fruit / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), colour).save(fruit / split / name / f"{i}.png")
    (fruit / "train" / "kiwi" / "3.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    lists = tmp / "lists"
    lists.mkdir()
    Image.new("RGB", (8, 8)).save(lists / "a.png")
    (lists / "train.txt").write_text("# comment\na.png 0\na.png\n")
    (lists / "test.txt").write_text("a.png 0\n")
    digits = ["train", "--preset", "digits-lt", "--out", str(tmp / "runs"), "--no-progress"]
    return {
        "missing data root": (["data", "--preset", "cifar10-lt-if100", "--data-root", tmp / "no-such-folder"],
                              "not found"),
        "empty data root": (["data", "--preset", "cifar10-lt-if100", "--data-root", tmp / "empty"], "not found"),
        "empty image-folder root": (digits + ["--set", "dataset=imagefolder", "--data-root", tmp / "empty"],
                                    "no images found"),
        "unknown preset": (["train", "--preset", "cifar1000-lt"], "unknown preset"),
        "unknown model": (digits + ["--model", "resnet1000"], "unknown model"),
        "unknown method": (digits + ["--method", "magic"], "unknown method"),
        "imbalance below 1": (digits + ["--imbalance-factor", "0.5"], "imbalance factor must be at least 1"),
        "more images than a class has": (digits + ["--set", "n_max=100000"], "has only"),
        "corrupt image": (digits + ["--set", "dataset=imagefolder", "--imbalance-factor", "1", "--data-root", fruit],
                          "corrupt or unreadable image file"),
        "bad split-list line": (digits + ["--set", "dataset=splitlist", "--set", "train_list=train.txt", "--set",
                                          "test_list=test.txt", "--data-root", lists], "train.txt:3"),
        "unknown config field": (digits + ["--set", "gama=2"], "unknown configuration field"),
        "bad flag value": (digits + ["--epochs", "two"], "invalid int value"),
    }


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory):
    """Run the bad-input cases a few at a time (each only imports torch and fails), then collect the results."""
    tmp = tmp_path_factory.mktemp("bad")
    cases = _bad_inputs(tmp)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(cases, pool.map(lambda args: glmc(args, tmp), [a for a, _ in cases.values()]), strict=True))
    return {name: (res.returncode, res.stdout, res.stderr) for name, res in done.items()}


BAD_CASES = ["missing data root", "empty data root", "empty image-folder root", "unknown preset", "unknown model",
             "unknown method", "imbalance below 1", "more images than a class has", "corrupt image",
             "bad split-list line", "unknown config field", "bad flag value"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_error_with_status_2(case, bad_input_results, tmp_path):
    cases = _bad_inputs(tmp_path)
    assert list(cases) == BAD_CASES
    expected = cases[case][1]
    status, out, err = bad_input_results[case]
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("glmc: error: "), err
    assert expected in lines[0], err
    assert status == 2, err


# ---------------------------------------------------------------------------------- the parser
@pytest.mark.parametrize("argv,func", [
    (["train"], "_cmd_train"), (["evaluate", "--checkpoint", "x"], "_cmd_evaluate"), (["presets"], "_cmd_presets"),
    (["data", "--preset", "x"], "_cmd_data"), (["analyze", "x"], "_cmd_analyze"),
    (["compare", "--preset", "x"], "_cmd_compare"), (["finetune-maxnorm", "x"], "_cmd_finetune_maxnorm")])
def test_each_sub_command_names_the_function_that_runs_it(argv, func):
    args = cli.build_parser().parse_args(argv)
    assert args.command == argv[0] and args.func is getattr(cli, func)


def test_resume_allows_where_the_run_goes_on_and_says_so_in_its_help(capsys, monkeypatch):
    from glmc_core.train import RESUME_OVERRIDES

    parse = cli.build_parser().parse_args
    allowed = ["--device", "cpu", "--data-root", "d", "--no-progress", "--no-fast", "--loader", "auto"]  # auto: default
    assert cli._resume_overrides(parse(["train", "--resume", "r", *allowed])) == {"device": "cpu", "data_root": "d",
                                                                                 "progress": False}
    assert cli._resume_overrides(parse(["train", "--resume", "r"])) == {}
    for flags in (["--epochs", "3"], ["--set", "gamma=2"], ["--loader", "tensor"], ["--reference"]):
        with pytest.raises(GLMCError, match=f"drop {flags[0]} "):
            cli._resume_overrides(parse(["train", "--resume", "r", *flags]))
    monkeypatch.setenv("COLUMNS", "1000")  # the --resume help on one line
    with pytest.raises(SystemExit):
        parse(["train", "--help"])
    assert "(only --device, --data-root, --no-progress, --no-fast may be given with it)" in capsys.readouterr().out
    assert {cli._FLAG_FIELDS[f] for f in cli._resume_flags() if f != "no_fast"} <= set(RESUME_OVERRIDES)


# ------------------------------------------------------------------------------ presets, data
def test_presets_lists_every_preset(tmp_path):
    res = glmc(["presets"], tmp_path)
    assert res.returncode == 0, res.stderr
    names = [line for line in res.stdout.splitlines() if line and not line.startswith(" ")]
    assert names == list(PRESETS)


def test_presets_into_a_closed_pipe_is_quiet(tmp_path):
    """``glmc presets | head``: the reader goes away; no BrokenPipeError traceback."""
    proc = _start(["presets"], tmp_path)
    proc.stdout.close()  # the reader is gone before glmc writes anything
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode in (0, 141)


def test_data_prints_counts(tmp_path):
    res = glmc(["data", "--preset", "digits-lt"], tmp_path)
    assert res.returncode == 0, res.stderr
    data = prepare_data(get_preset("digits-lt"), progress=False)
    rows = [line.split() for line in res.stdout.splitlines() if re.match(r"^\s+\d+ \S+\s+\d+ (many|medium|few)$",
                                                                          line)]
    assert [int(r[2]) for r in rows] == data.counts.tolist()
    assert [r[3] for r in rows] == data.groups.tolist()
    assert "imbalance factor" in res.stdout


# ---------------------------------------------------------------------------- train, evaluate
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    res = glmc(["train", "--preset", "digits-lt", "--epochs", "2", "--out", tmp / "runs", "--device", "cpu",
                "--no-progress"], tmp)
    assert res.returncode == 0, res.stderr
    (run_dir,) = (tmp / "runs").iterdir()
    return tmp, run_dir, res


def test_train_writes_run_folder(trained_run):
    _, run_dir, res = trained_run
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["preset"] == "digits-lt" and cfg["epochs"] == 2 and run_dir.name.startswith("digits-lt-glmc-")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert METRIC_KEYS <= set(r), METRIC_KEYS - set(r)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["top1"] == records[-1]["top1"]
    assert summary["best"]["top1"] == max(r["top1"] for r in records)
    header = res.stdout.splitlines()[1].split()
    assert header == ["top-1", "many", "medium", "few"]
    assert f"run folder: {run_dir}" in res.stdout


def test_evaluate_best_checkpoint_reproduces_best_top1(trained_run):
    tmp, run_dir, train_res = trained_run
    best = json.loads((run_dir / "summary.json").read_text())["best"]
    res = glmc(["evaluate", "--checkpoint", run_dir / "best.pt", "--device", "cpu"], tmp)
    assert res.returncode == 0, res.stderr
    row = _table_row(res.stdout, f"epoch {best['epoch']}")
    assert row == _table_row(train_res.stdout, f"best (epoch {best['epoch']})")
    assert float(row[0]) == pytest.approx(best["top1"], abs=0.006)


def test_evaluate_run_folder_uses_best_pt(trained_run):
    tmp, run_dir, _ = trained_run
    assert _evaluation_checkpoint(str(run_dir)) == str(run_dir / "best.pt")
    best = json.loads((run_dir / "summary.json").read_text())["best"]
    res = glmc(["evaluate", "--checkpoint", run_dir, "--device", "cpu", "--json"], tmp)
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)
    assert metrics["top1"] == pytest.approx(best["top1"], abs=1e-9)
    assert metrics["many"] == pytest.approx(best["many"], abs=1e-9)


def test_evaluation_checkpoint_falls_back_to_checkpoint_pt(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert _evaluation_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint.pt")
    (tmp_path / "best.pt").write_bytes(b"")
    assert _evaluation_checkpoint(str(tmp_path) + os.sep) == str(tmp_path / "best.pt")
    assert _evaluation_checkpoint(str(tmp_path / "checkpoint.pt")) == str(tmp_path / "checkpoint.pt")


def test_evaluate_missing_checkpoint(tmp_path):
    res = glmc(["evaluate", "--checkpoint", tmp_path / "nothing-here"], tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("glmc: error: ") and "Traceback" not in res.stderr
