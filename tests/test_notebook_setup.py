"""The notebooks' settings in one place: quick or full, data, device (glmc_core.notebook.setup)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glmc_core.errors import GLMCError
from glmc_core.notebook import setup


def test_notebook_config_offline_digits_by_default(monkeypatch):
    monkeypatch.delenv("GLMC_QUICK", raising=False)
    cfg, note = setup.notebook_config(quick=True)
    assert cfg.dataset == "digits" and cfg.model == "resnet8" and cfg.epochs == 8 and cfg.device == "cpu"
    assert "offline digits" in note and "QUICK" in note
    assert setup.notebook_config(quick=True, quick_epochs=3)[0].epochs == 3


def test_notebook_config_reads_the_environment(monkeypatch):
    monkeypatch.setenv("GLMC_DATA_ROOT", "/some/cifar10.zip")
    monkeypatch.setenv("GLMC_QUICK", "1")
    cfg, note = setup.notebook_config(quick=False, epochs=2)
    assert cfg.dataset == "cifar10" and cfg.data_root == "/some/cifar10.zip"
    assert cfg.model == "resnet8" and cfg.n_max == 300 and cfg.test_per_class == 100 and cfg.epochs == 2
    assert "CIFAR-10-LT" in note
    monkeypatch.setenv("GLMC_QUICK", "0")
    cfg, note = setup.notebook_config(quick=True)
    assert cfg.model == "resnet32-wide" and cfg.epochs == 200 and "FULL" in note and cfg.device == "auto"
    monkeypatch.setenv("GLMC_QUICK", "maybe")
    with pytest.raises(GLMCError, match="GLMC_QUICK"):
        setup.notebook_config()


@pytest.mark.parametrize("raw,expected", [("", True), ("1", True), ("yes", True), ("0", False), ("off", False),
                                          ("FALSE", False)])
def test_quick_mode_is_the_one_reading_of_glmc_quick(monkeypatch, raw, expected):
    monkeypatch.setenv("GLMC_QUICK", raw)
    assert setup.quick_mode() is expected
    cfg, _ = setup.notebook_config(quick=not expected if raw else expected, epochs=1)  # a set variable wins
    assert (cfg.device == "cpu") is expected  # quick mode runs on the CPU, full mode on the best device


def test_env_data_root(monkeypatch):
    monkeypatch.delenv("GLMC_DATA_ROOT", raising=False)
    assert setup.env_data_root() is None and setup.env_data_root("../data") == "../data"
    monkeypatch.setenv("GLMC_DATA_ROOT", "/x/cifar10.zip")
    assert setup.env_data_root("../data") == "/x/cifar10.zip"


def test_notebook_setup_falls_back_to_digits_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMC_DATA_ROOT", str(tmp_path / "nothing-here"))
    nb = setup.notebook_setup(quick=True, runs=str(tmp_path), progress=False)
    assert nb.cfg.dataset == "digits" and nb.tag == "quick-digits"
    assert nb.message.startswith("NOTE: no CIFAR-10") and "digits" in nb.message
    ce = nb.config("ce")
    assert ce.method == "ce" and ce.run_name == "nb-quick-digits-ce" and ce.out == str(tmp_path)


def test_notebook_setup_uses_cifar_when_present(cifar10_zip, tmp_path):
    nb = setup.notebook_setup(quick=True, data_root=str(cifar10_zip), runs=str(tmp_path), progress=False)
    assert nb.cfg.dataset == "cifar10" and nb.tag == "quick-cifar10" and nb.cfg.model == "resnet8"
    assert list(nb.data.counts)[0] == 300 and len(nb.data.test) == 1000 and "CIFAR-10-LT" in nb.message


def test_importing_the_notebook_package_from_notebooks_caches_in_the_repository(tmp_path):
    """A notebook that loads data through any function (not only notebook_config) must not leave decoded
    images in notebooks/data, where `git add notebooks` would pick them up."""
    import subprocess
    import sys

    nb_dir = tmp_path / "repo" / "notebooks"
    nb_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "GLMC_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", "import os, glmc_core.notebook; print(os.environ['GLMC_CACHE_DIR'])"],
                         cwd=nb_dir, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == tmp_path / "repo" / "data" / "cache"
