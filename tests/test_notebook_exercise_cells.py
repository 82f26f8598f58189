"""Every exercise check cell of the notebooks accepts the answer given in notebooks/solutions/.

An exercise is a code cell tagged ``exercise`` that leaves its answer variable at ``None`` (the
TODO), followed by a cell tagged ``exercise-check`` that calls ``check_answer``. Check cells import
what they need, so they run here on their own: left unanswered they say so (and do not fail); with
the assignment from the notebook's solutions file (a fenced ``python`` block assigning that name)
they say "correct".
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import textwrap

import pytest
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))


def _tagged(path, tag):
    cells = json.loads(path.read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])]


def _exercises():
    out = []
    for path in NOTEBOOKS:
        asks = _tagged(path, "exercise")
        for j, check in _tagged(path, "exercise-check"):
            before = [src for i, src in asks if i < j]
            assert before, f"{path.name}: check cell {j} has no exercise cell before it"
            out.append(pytest.param(path, before[-1], check, id=f"{path.stem[:2]}-cell{j}"))
    return out


def _todo_names(source: str) -> list[str]:
    """Names the exercise cell leaves at None."""
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and node.value.value is None for t in node.targets
            if isinstance(t, ast.Name)]


def _solution(path, names: list[str]) -> str:
    text = (REPO / "notebooks" / "solutions" / f"{path.stem[:2]}_solutions.md").read_text()
    blocks = [textwrap.dedent(b) for b in re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", text, flags=re.S | re.M)]
    found = [b for b in blocks if set(names) <= {t.id for n in ast.parse(b).body if isinstance(n, ast.Assign)
                                                 for t in n.targets if isinstance(t, ast.Name)}]
    assert found, f"{path.stem[:2]}_solutions.md has no python block assigning {names}"
    return found[0]


def _run(*sources: str) -> str:
    buf, ns = io.StringIO(), {}
    with contextlib.redirect_stdout(buf):
        for src in sources:
            exec(compile(src, "<cell>", "exec"), ns)
    return buf.getvalue()


def test_notebooks_01_to_03_have_an_exercise_with_a_check():
    for path in NOTEBOOKS:
        if path.name[:2] in ("01", "02", "03"):
            assert _tagged(path, "exercise") and _tagged(path, "exercise-check"), path.name


@pytest.mark.parametrize("path, ask, check", _exercises())
def test_the_solution_passes_the_check_and_no_answer_is_not_a_failure(path, ask, check):
    names = _todo_names(ask)
    assert names, f"{path.name}: the exercise cell leaves no answer at None"
    assert "TODO" in ask
    unanswered = _run(ask, check)
    assert "not answered yet" in unanswered and "correct" not in unanswered
    answered = _run(ask, _solution(path, names), check)
    assert ": correct" in answered, answered
    wrong = _run(ask, "\n".join(f"{n} = -1" for n in names), check)
    assert "not yet" in wrong, wrong
