"""Claims that check themselves, and exercise checks, for the teaching notebooks.

A sentence in a notebook that states a result ("GLMC's few-shot accuracy is higher than CE's",
"the ratio is below 1.2") is backed by a :func:`claim` in the cell that shows the result: the
notebook computes the condition from what it just drew, prints a tick beside the sentence when
it holds, and stops with :class:`ClaimFailed` when it does not, so the test that executes every
notebook fails the day a change makes the text untrue.

Exercises end with a check cell: :func:`check_answer` compares the student's value with the
expected one and says "correct" or gives a hint. An unanswered exercise (its value left at
``None``) prints a reminder and never fails, so the notebooks still run from top to bottom.
"""

from __future__ import annotations

import math
from typing import Any, Callable

__all__ = ["ClaimFailed", "claim", "check_answer", "measured"]


class ClaimFailed(AssertionError):
    """A sentence of the notebook no longer matches what the notebook computed."""


def claim(text: str, holds: bool, detail: str = "", strict: bool = True) -> None:
    """Print ``✓ text`` when ``holds``; raise :class:`ClaimFailed` naming the sentence otherwise.

    ``text`` is a fixed sentence, written before the numbers are known (never built from them: a sentence
    that follows the numbers cannot fail, and ``tests/test_notebook_claims.py`` refuses such claims).
    ``detail`` is the evidence (numbers) printed with the claim. ``strict=False`` is for a sentence written
    about the project's reference runs while a cell shows other runs (a student's live runs: another data set,
    fewer epochs): it is said, with its tick, only when those runs bear it out, and otherwise left out without
    stopping the notebook (the cell prints the runs' numbers anyway), so that no sentence the student reads
    contradicts what the cell drew. Returns None, so a claim that ends a cell adds no ``True`` to its output.
    """
    if not bool(holds):
        if not strict:
            return
        suffix = f" ({detail})" if detail else ""
        raise ClaimFailed(f"the notebook says: {text!r}, but its own output no longer shows it{suffix}")
    print(f"✓ {text}" + (f" ({detail})" if detail else ""))


def measured(text: str, detail: str = "") -> None:
    """Print ``• text``: a measurement the notebook reports without claiming anything about it (for
    example how two short live runs came out, which moves with the seed). Never fails."""
    print(f"• {text}" + (f" ({detail})" if detail else ""))


def check_answer(name: str, answer: Any, expected: Any = None, *, test: Callable[[Any], bool] | None = None,
                 tol: float = 1e-6, hint: str = "") -> bool | None:
    """Say whether an exercise's ``answer`` is right; ``None`` means not answered yet.

    Numbers (and sequences of numbers) are compared with the relative and absolute tolerance ``tol``;
    ``test`` replaces the comparison by any predicate of the answer.
    """
    if answer is None:
        print(f"{name}: not answered yet (replace the None in the exercise cell, then run this cell again)")
        return None
    try:
        ok = test(answer) if test is not None else _close(answer, expected, tol)
    except Exception:  # an answer the test cannot even use (a string for a number, an IF below 1) is not right
        ok = False
    print(f"{name}: {'correct' if ok else 'not yet'}" + ("" if ok or not hint else f". Hint: {hint}"))
    return bool(ok)


def _close(a: Any, b: Any, tol: float) -> bool:
    try:
        if hasattr(a, "tolist"):
            a = a.tolist()
        if hasattr(b, "tolist"):
            b = b.tolist()
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=False))
        if isinstance(a, bool) or isinstance(b, bool):  # True is not the number 1 here
            return isinstance(a, bool) and isinstance(b, bool) and a == b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
        return a == b
    except (TypeError, ValueError):
        return False
