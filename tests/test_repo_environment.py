"""environment.yml mirrors pyproject.toml (core dependencies, the notebooks and dev extras) and uses conda-forge
alone: the `pytorch` channel stopped publishing PyTorch after 2.5 and mixes badly with conda-forge under strict
channel priority (issue 24)."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name, where they differ


def _environment() -> tuple[list[str], list[str], list[str]]:
    """(channels, conda dependencies, pip dependencies) of environment.yml, read line by line (no YAML library)."""
    section, channels, conda, pip = None, [], [], []
    for raw in (REPO / "environment.yml").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw.startswith(" "):
            section = line.split(":", 1)[0]
            continue
        item = line.strip().removeprefix("- ").strip()
        if section == "channels":
            channels.append(item)
        elif section == "dependencies":
            if item == "pip:":
                section = "pip"
            else:
                conda.append(item)
        elif section == "pip":
            pip.append(item)
    return channels, conda, pip


def test_environment_yml_uses_conda_forge_alone_and_mirrors_pyproject():
    tomllib = pytest.importorskip("tomllib", reason="tomllib comes with Python 3.11")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("notebooks", "dev"):
        wanted += project["optional-dependencies"][extra]
    channels, conda, pip = _environment()
    assert channels == ["conda-forge"]
    assert f"python>={project['requires-python'].removeprefix('>=')}" in conda
    assert "-e ." in pip
    have = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0]: d for d in conda + pip}
    for dep in wanted:
        name = re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0]
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in have, f"{dep} (pyproject.toml) is missing from environment.yml as {conda_name}"
        assert have[conda_name] == conda_name + dep[len(name):].replace(" ", ""), (dep, have[conda_name])
    listed = set(have) - {"python", "pip", "-e"}
    assert listed == {CONDA_NAMES.get(n, n) for n in (re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] for d in wanted)}
