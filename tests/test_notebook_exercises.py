"""The checked exercises of notebooks 04–07: each solution in notebooks/solutions/ passes its check cell.

A solution's checked exercise is the first ```python block after the words "(checked exercise)" in
``notebooks/solutions/0N_solutions.md``; it is run here in a small stand-in of the notebook's namespace
and its answer is given to :func:`glmc_core.notebook.exercises.check`, as the notebook's check cell does.
"""

from __future__ import annotations

import re
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO

from glmc_core.notebook import exercises


def _solution_code(notebook: str) -> str:
    text = (REPO / "notebooks" / "solutions" / f"{notebook}_solutions.md").read_text()
    start = text.index("(checked exercise)")
    return textwrap.dedent(re.search(r"```python\n(.*?)```", text[start:], re.S).group(1))


def _glmc_eval():
    return SimpleNamespace(norms={"fc": np.array([3.0, 2.0, 1.0]), "fc_cb": np.array([1.0, 1.5, 2.0])},
                           counts=np.array([50, 500, 5]), run=SimpleNamespace(method="glmc"))


CONTEXTS = {
    "04.1": lambda: ({"np": np}, {}),
    "05.1": lambda: ({"done": [{"epoch": 1}, {"epoch": 2}]}, {"done": 2}),
    "06.1": lambda: ({"glmc": (g := _glmc_eval()), "evals": [g]}, {"evals": [g]}),
    "07.1": lambda: ({"np": np}, {}),
}


@pytest.mark.parametrize("key", sorted(exercises.EXERCISES))
def test_the_solution_passes_the_check(key, capsys):
    namespace, context = CONTEXTS[key]()
    exec(_solution_code(key.split(".")[0].zfill(2)), namespace)
    answer = namespace[f"answer_{key.split('.')[1]}"]
    assert exercises.check(key, answer, **context) is True
    assert "correct" in capsys.readouterr().out


def test_unanswered_and_wrong_answers():
    assert exercises.check("04.1", None) is None
    assert exercises.check("04.1", 141) is False
    assert exercises.check("07.1", [1.0, 1.0, 1.0]) is False
