"""The browser-test helpers without a browser: bounded waits, notebook preparation, server start-up failures."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from browserlab import NeverReady, missing_requirement, prepare_notebook, start_lab, wait_for

FIXTURES = Path(__file__).parent / "browser_fixtures"


def test_wait_for_returns_the_first_truthy_value():
    calls = iter([0, None, "ready"])
    assert wait_for(lambda: next(calls), 5, "x", interval=0.01) == "ready"


def test_wait_for_fails_with_what_never_happened_instead_of_hanging():
    t0 = time.monotonic()
    with pytest.raises(NeverReady, match=r"the widget appearing never happened within 0 s; page blank"):
        wait_for(lambda: False, 0.2, "the widget appearing", interval=0.05, on_fail=lambda: "page blank")
    assert time.monotonic() - t0 < 2


def test_prepare_notebook_forces_quick_mode_after_the_parameters_cell(tmp_path):
    n = prepare_notebook(FIXTURES / "training_standin.ipynb", tmp_path / "sub" / "t.ipynb")
    nb = json.loads((tmp_path / "sub" / "t.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    i = tags.index(["parameters"])
    assert tags[i + 1] == ["injected-parameters"] and "QUICK = True" in "".join(nb["cells"][i + 1]["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert n == sum(c["cell_type"] == "code" for c in nb["cells"]) == 4


def test_prepare_notebook_adds_parameter_overrides_after_quick(tmp_path):
    prepare_notebook(FIXTURES / "training_standin.ipynb", tmp_path / "t.ipynb", "STEPS = 3; LR = 0.1")
    cells = json.loads((tmp_path / "t.ipynb").read_text())["cells"]
    injected = next(c for c in cells if c["id"] == "injected-parameters")
    assert injected["source"].splitlines()[1:] == ["STEPS = 3", "LR = 0.1"]


def test_prepare_notebook_without_parameters_cell_adds_nothing(tmp_path):
    n = prepare_notebook(FIXTURES / "broken_standin.ipynb", tmp_path / "b.ipynb")
    nb = json.loads((tmp_path / "b.ipynb").read_text())
    assert n == 4 and all("injected" not in c["id"] for c in nb["cells"])


@pytest.mark.slow
def test_lab_that_cannot_start_fails_fast_with_its_log(tmp_path, monkeypatch):
    try:
        __import__("jupyterlab")
    except ImportError:
        pytest.skip("jupyterlab is not installed")
    with socket.socket() as busy:  # the port JupyterLab is told to use is taken, and it may not retry
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setattr("browserlab.free_port", lambda: busy.getsockname()[1])
        t0 = time.monotonic()
        with pytest.raises(NeverReady, match=r"JupyterLab exited with code \d+ before answering; its log ends"):
            start_lab(tmp_path / "root", tmp_path / "state", timeout=60)
        assert time.monotonic() - t0 < 55


def test_missing_chromium_is_a_clear_skip_reason(monkeypatch):
    monkeypatch.setattr("browserlab.CHROMIUM", Path("/nonexistent/chromium"))
    assert "install Debian's `chromium` package" in missing_requirement()
