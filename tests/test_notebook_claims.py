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
