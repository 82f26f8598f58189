"""Claims that check themselves and exercise checks (glmc_core.notebook.claims)."""

import numpy as np
import pytest

from glmc_core.notebook.claims import ClaimFailed, check_answer, claim


def test_claim_prints_a_tick_when_it_holds(capsys):
    assert claim("GLMC beats CE on few", 40.0 > 10.0, "40.0 vs 10.0") is None  # no "True" under the cell
    assert "✓ GLMC beats CE on few (40.0 vs 10.0)" in capsys.readouterr().out


def test_claim_that_no_longer_holds_fails_the_notebook():
    with pytest.raises(ClaimFailed, match="GLMC beats CE on few"):
        claim("GLMC beats CE on few", 10.0 > 40.0)
    with pytest.raises(AssertionError):  # a plain assertion to any test runner
        claim("x", np.bool_(False))


def test_unanswered_exercise_never_fails(capsys):
    assert check_answer("Exercise 1", None, 3) is None
    assert "not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("answer, expected, ok", [
    (3, 3.0, True), (2.9, 3.0, False), ([1, 2], np.array([1.0, 2.0]), True), ([1, 2], [1, 2, 3], False),
    ("fc_cb", "fc_cb", True), ("fc", "fc_cb", False), (True, 1.0, False),
])
def test_answers_are_compared_by_value(answer, expected, ok):
    assert check_answer("e", answer, expected) is ok


def test_a_predicate_and_a_hint(capsys):
    assert check_answer("e", 0.45, test=lambda a: 0.4 < a < 0.5) is True
    assert check_answer("e", 0.9, test=lambda a: 0.4 < a < 0.5, hint="solve 1 - (T/200)^2 = 0.5") is False
    assert "Hint: solve" in capsys.readouterr().out


def test_a_claim_about_reference_runs_shown_beside_other_runs_is_said_only_when_they_bear_it_out(capsys):
    claim("GLMC beats CE on few", False, "1 vs 2", strict=False)  # neither raises nor says the sentence
    assert capsys.readouterr().out == ""
    claim("GLMC beats CE on few", True, "2 vs 1", strict=False)
    assert capsys.readouterr().out == "✓ GLMC beats CE on few (2 vs 1)\n"
    with pytest.raises(ClaimFailed):
        claim("GLMC beats CE on few", False, strict=True)


def test_a_measurement_is_reported_without_a_tick(capsys):
    from glmc_core.notebook import measured

    measured("live runs, top-1: GLMC 40.0 %, CE 30.0 %")
    out = capsys.readouterr().out
    assert out.startswith("• live runs") and "✓" not in out


# ----------------------------------------------------------------------------- claims that can fail
def _claim_calls(source: str):
    import ast

    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "claim":
            yield node


def _cannot_fail(call) -> str | None:
    """Why a claim() call cannot fail, or None: its condition is a constant, or its sentence is built with
    direction() (the sentence follows the numbers, so it is always 'true')."""
    import ast

    if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant):
        return f"its condition is the constant {call.args[1].value!r}"
    text = call.args[0] if call.args else None
    for n in ast.walk(text) if text is not None else ():
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "direction":
            return "its sentence is built from the numbers with direction()"
        if isinstance(n, ast.IfExp):
            return "its sentence picks its words from the numbers (x if ... else y)"
    return None


def test_the_checker_finds_claims_that_cannot_fail():
    bad = ('claim(f"GLMC is {direction(a, b)} CE", a != b)\nclaim("x", True, "d")\n'
           'claim("norms " + ("grow" if g else "do not grow"), g == g)')
    good = 'claim("GLMC is above CE on few", g > c, f"{g} vs {c}")'
    assert [_cannot_fail(c) for c in _claim_calls(bad)] == [
        "its sentence is built from the numbers with direction()", "its condition is the constant True",
        "its sentence picks its words from the numbers (x if ... else y)"]
    assert [_cannot_fail(c) for c in _claim_calls(good)] == [None]


def test_no_notebook_claim_is_true_by_construction():
    """Every sentence a notebook ticks must be one that could have come out false."""
    import json
    from pathlib import Path

    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                for call in _claim_calls("".join(cell["source"])):
                    why = _cannot_fail(call)
                    if why:
                        found.append(f"{path.name} cell {i}: {why}")
    assert not found, "claims that cannot fail:\n" + "\n".join(found)
