"""The notebooks' loader of the shipped reference runs (glmc_core.notebook.setup.reference_runs)."""

from __future__ import annotations

import json
from pathlib import Path

from glmc_core.config import get_preset
from glmc_core.notebook import setup


def _run_folder(root: Path, name: str, method: str, epochs: int = 3, finished: bool = True, **overrides) -> Path:
    cfg = get_preset("digits-lt", method=method, epochs=epochs, run_name=name, **overrides)
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(cfg.to_dict()))
    done = epochs if finished else epochs - 1
    (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "top1": 10.0 * e, "seconds": 1800.0}) + "\n"
                                             for e in range(1, done + 1)))
    if finished:
        (d / "summary.json").write_text(json.dumps({"final": {"epoch": epochs}}))
    return d


def test_only_finished_runs_are_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMC_DATA_ROOT", str(tmp_path))  # exists; the digits need no files
    _run_folder(tmp_path / "runs", "glmc", "glmc")
    _run_folder(tmp_path / "runs", "ce", "ce", finished=False)
    (tmp_path / "runs" / "not-a-run").mkdir()
    refs = setup.reference_runs(root=tmp_path / "runs")
    assert refs and list(refs.runs) == ["glmc"] and refs.unfinished == ["ce"]
    assert refs.has("glmc") and not refs.has("glmc", "ce") and "ce" not in refs
    assert refs.data is not None and refs.data.name == "digits"
    assert "glmc" in refs.message and "not used yet: ce" in refs.message
    text = refs.describe("glmc")
    assert "3 of 3 epochs" in text and "1.5 h" in text and "final top-1 30.0 %" in text
    assert setup.reference_run("glmc", root=tmp_path / "runs").method == "glmc"
    assert setup.reference_run("ce", root=tmp_path / "runs") is None
    assert setup.reference_run("missing", root=tmp_path / "runs") is None


def test_runs_for_other_data_are_left_out(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMC_DATA_ROOT", str(tmp_path))
    _run_folder(tmp_path / "runs", "a", "glmc")
    _run_folder(tmp_path / "runs", "b", "ce", imbalance_factor=10.0)
    refs = setup.reference_runs(root=tmp_path / "runs")
    assert list(refs.runs) == ["a"] and "b" in refs.unfinished


def test_without_the_data_the_runs_are_still_returned(tmp_path, monkeypatch):
    """Their curves and shipped test outputs need no data set: only ``.data`` is missing."""
    monkeypatch.delenv("GLMC_DATA_ROOT", raising=False)
    _run_folder(tmp_path / "runs", "glmc", "glmc")
    refs = setup.reference_runs(root=tmp_path / "runs")
    assert refs and refs.has("glmc") and refs.data is None and "no data set is needed" in refs.message
    assert "? training images" in refs.describe("glmc")  # neither the data nor shipped outputs say how many
    monkeypatch.setenv("GLMC_DATA_ROOT", str(tmp_path / "missing.zip"))
    refs = setup.reference_runs(root=tmp_path / "runs")
    assert refs.has("glmc") and refs.data is None
    assert setup.reference_runs(root=tmp_path / "runs", load_data=False).data is None


def test_evaluate_without_outputs_or_data_says_what_to_do(tmp_path, monkeypatch):
    import pytest

    from glmc_core.errors import GLMCError

    monkeypatch.delenv("GLMC_DATA_ROOT", raising=False)
    _run_folder(tmp_path / "runs", "glmc", "glmc")
    refs = setup.reference_runs(root=tmp_path / "runs")
    with pytest.raises(GLMCError, match="ships no test outputs"):
        refs.evaluate("glmc")


def test_missing_or_empty_folder(tmp_path):
    assert not setup.reference_runs(root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    refs = setup.reference_runs(root=tmp_path / "empty")
    assert not refs and "no finished reference run" in refs.message


def test_default_folder_is_found_from_the_package(monkeypatch):
    monkeypatch.delenv("GLMC_REFERENCE_RUNS", raising=False)
    repo = Path(setup.__file__).resolve().parents[2]
    assert setup.reference_runs_dir() == repo / "reference_runs" / setup.REFERENCE_SET
    monkeypatch.setenv("GLMC_REFERENCE_RUNS", "/x/y")
    assert setup.reference_runs_dir() == Path("/x/y")


def test_the_other_sets_are_siblings_of_the_default_one(monkeypatch):
    monkeypatch.delenv("GLMC_REFERENCE_RUNS", raising=False)
    repo = Path(setup.__file__).resolve().parents[2]
    assert setup.reference_set_dir(setup.PAPER_SET) == repo / "reference_runs" / "cifar10-lt-if100-resnet32-200ep"
    monkeypatch.setenv("GLMC_REFERENCE_RUNS", "/x/y")
    assert setup.reference_set_dir("z") == Path("/x/z")


def test_runs_in_use_reads_the_set_it_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("GLMC_DATA_ROOT", raising=False)
    for name in ("glmc", "ce"):
        _run_folder(tmp_path / "long", name, name, epochs=4)
    used = setup.runs_in_use(("glmc", "ce"), root=tmp_path / "long")
    assert used.is_reference and used.data is None and set(used.runs) == {"glmc", "ce"}
    assert all(len(run.history) == 4 for run in used.runs.values()) and str(tmp_path / "long") in used.message


def test_download_cell_says_offline_in_one_line(tmp_path, monkeypatch, capsys):
    from glmc_core.data import formats
    from glmc_core.errors import GLMCError

    def offline(root, *a, **k):
        print("Downloading https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")  # torchvision's own chatter
        raise GLMCError(f"downloading CIFAR-10 into {root} failed (URLError: no network); download it by hand")

    monkeypatch.setattr(formats, "load_cifar", offline)
    assert setup.download_cifar10(tmp_path, download=False) is None and capsys.readouterr().out == ""
    assert setup.download_cifar10(tmp_path) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not downloaded" in out and "URLError: no network" in out
    monkeypatch.setattr(formats, "load_cifar", lambda *a, **k: None)
    assert setup.download_cifar10(tmp_path) == str(tmp_path) and "done" in capsys.readouterr().out
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert setup.download_cifar10(tmp_path) == str(tmp_path) and "already" in capsys.readouterr().out
