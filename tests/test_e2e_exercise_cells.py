"""The exercise cells of the notebooks: one mechanism for all of them.

An exercise is a code cell tagged ``exercise`` that leaves a value at ``None`` (with a TODO) or defines a function
that raises ``NotImplementedError`` (the student writes it), followed by a cell tagged ``exercise-check`` that calls
``exercises.check("KEY", NAME, ...)`` for an exercise of the registry (glmc_core.notebook.exercises). Check cells import
what they need, so the pair runs here on its own: left as shipped it says "not answered yet" / "not written yet" (and
does not fail); with the solution from notebooks/solutions/ it says "correct" / "✓"; with a wrong answer it says so.

Notebooks 04–07 still call ``exercises.check`` from untagged cells until their exercise cells are tagged; their
checks are run against the solutions in tests/test_notebook_exercises.py.
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

from glmc_core.notebook import exercises

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
# every exercise of these notebooks is a tagged pair calling exercises.check
MOVED = ("01", "02", "03", "04", "05", "06", "07")


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _tagged(path, tag):
    return [(i, "".join(c["source"])) for i, c in enumerate(_cells(path))
            if tag in c.get("metadata", {}).get("tags", [])]


def _check_call(source: str) -> tuple[str, str, list[str]]:
    """(key, name, context keywords) of the one ``exercises.check(...)`` call of a check cell."""
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "check"
             and getattr(n.func.value, "id", None) == "exercises"]
    assert len(calls) == 1, f"a check cell calls exercises.check once, not {len(calls)} times:\n{source}"
    call = calls[0]
    key, name = call.args[0], call.args[1]
    assert isinstance(key, ast.Constant) and isinstance(name, ast.Name), source
    return key.value, name.id, [k.arg for k in call.keywords]


def _pairs():
    out = []
    for path in NOTEBOOKS:
        asks = _tagged(path, "exercise")
        for j, check in _tagged(path, "exercise-check"):
            before = [src for i, src in asks if i < j]
            assert before, f"{path.name}: check cell {j} has no exercise cell before it"
            out.append(pytest.param(path, before[-1], check, id=f"{path.stem[:2]}-cell{j}"))
    return out


def _defines(source: str) -> dict[str, str]:
    """What an exercise cell leaves to the student: {name: "value"} for ``NAME = None``, {name: "function"} for a
    function whose body raises NotImplementedError."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is None:
            out.update({t.id: "value" for t in node.targets if isinstance(t, ast.Name)})
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(node)):
            assert ast.get_docstring(node), f"{node.name}: the stub states the maths in its docstring"
            out[node.name] = "function"
    return out


def _solution(key: str) -> str:
    text = (REPO / "notebooks" / "solutions" / f"{key[:2]}_solutions.md").read_text()
    start = re.search(rf"exercise {re.escape(key)}\b", text).end()
    return textwrap.dedent(re.search(r"```python\n(.*?)```", text[start:], re.S).group(1))


def _run(*sources: str) -> str:
    buf, ns = io.StringIO(), {}
    with contextlib.redirect_stdout(buf):
        for src in sources:
            exec(compile(src, "<cell>", "exec"), ns)
    return buf.getvalue()


@pytest.mark.parametrize("nb", MOVED)
def test_every_exercise_of_the_notebook_is_a_tagged_pair_and_one_has_the_student_write_the_method(nb):
    path = next(p for p in NOTEBOOKS if p.name.startswith(nb))
    checks = [_check_call(src) for _, src in _tagged(path, "exercise-check")]
    keys = [k for k, _, _ in checks]
    assert len(set(keys)) == len(keys), f"{path.name} checks an exercise twice: {keys}"
    assert sorted(keys) == [e.key for e in exercises.notebook_exercises(nb)], f"{path.name} checks {keys}"
    assert any(exercises.EXERCISES[k].kind == "function" for k in keys)
    text = "".join("".join(c["source"]) for c in _cells(path))
    assert "check_answer(" not in text, f"{path.name} checks its exercises with exercises.check only"


def test_the_notebooks_not_yet_moved_check_only_registered_exercises():
    for path in NOTEBOOKS:
        for src in ("".join(c["source"]) for c in _cells(path)):
            for key in re.findall(r'exercises\.check\("([0-9.]+)"', src):
                assert key in exercises.EXERCISES and key.startswith(path.name[:2]), (path.name, key)


@pytest.mark.parametrize("path, ask, check", _pairs())
def test_the_solution_passes_the_check_and_no_answer_is_not_a_failure(path, ask, check):
    key, name, context = _check_call(check)
    ex = exercises.EXERCISES[key]
    assert key.startswith(path.name[:2]) and name == ex.name
    defined = _defines(ask)
    assert defined.get(name) == ex.kind, f"{path.name}: the exercise cell should leave {name} as a {ex.kind}"
    if ex.kind == "value":
        assert "TODO" in ask
    if context:  # the check needs the notebook's state: tests/test_notebook_exercises.py runs it with stand-ins
        pytest.skip(f"{key} needs {context} from the notebook")
    unanswered = _run(ask, check)
    assert ("not answered yet" if ex.kind == "value" else "not written yet") in unanswered
    assert "correct" not in unanswered and "✓" not in unanswered and "✗" not in unanswered
    answered = _run(ask, _solution(key), check)
    assert (": correct" if ex.kind == "value" else f"✓ Exercise {key}") in answered, answered
    wrong = f"{name} = -1" if ex.kind == "value" else f"def {name}(*args):\n    return -1\n"
    out = _run(ask, wrong, check)
    assert ("not yet" if ex.kind == "value" else f"✗ Exercise {key}") in out, out
