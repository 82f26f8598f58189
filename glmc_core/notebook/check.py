"""Check a function a student wrote against the package's own, on the same inputs, and say what differs.

:func:`check_function` calls the student's function and the package's on a list of :class:`Case` s (random
inputs from fixed seeds, and the edge cases: λ = 0 and 1, boxes at the border, a class absent, …), compares
what each gives (and, for a loss, the gradient that reaches each input: that is how a missing stop-gradient
shows), and prints one verdict:

* ``✓ Exercise 02.2: my_cutmix_box matches glmc_core.mixing.centred_box on 40 cases``;
* ``✗ Exercise 02.2: my_cutmix_box differs from glmc_core.mixing.centred_box on case 7 of 40`` with the inputs,
  both results and a hint. When the student's function behaves like one of the exercise's known mistakes
  (:class:`Mistake`: a wrong implementation and what to say about it), the hint names that mistake;
* ``not written yet`` while the function still raises ``NotImplementedError`` (the stub the notebook ships).

It never raises at the student: an exception in their function is reported as a verdict with the line of their
code that raised it. It returns True, False or None (not written yet), like
:func:`~glmc_core.notebook.claims.check_answer`.
"""

from __future__ import annotations

import math
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["Case", "Mistake", "check_function", "compare", "describe"]


@dataclass(frozen=True)
class Case:
    """One set of inputs: ``make()`` builds fresh keyword arguments each call (a function may change its
    inputs in place, and a loss's inputs carry gradients); ``note`` says what is special about it."""

    make: Callable[[], dict]
    note: str = ""


@dataclass(frozen=True)
class Mistake:
    """A known wrong implementation and the hint for a student whose function behaves like it."""

    fn: Callable
    hint: str


class NoGradient(Exception):
    """Raised by an ``observe`` function when the result of a loss carries no gradient."""


class _NotWritten(Exception):
    pass


class _Raised(Exception):
    def __init__(self, exc: BaseException, where: str):
        super().__init__(str(exc))
        self.exc, self.where = exc, where


def _default_observe(fn: Callable, kwargs: dict) -> dict[str, Any]:
    return {"the result": fn(*kwargs.values())}


_LIBRARY = ("glmc_core", "site-packages", "/lib/python")


def _own_frames(tb) -> list:
    """The traceback's frames in the student's code (not in this package, the libraries or Python's own)."""
    return [f for f in traceback.extract_tb(tb) if not any(s in f.filename for s in _LIBRARY)]


def _student_line(tb) -> str:
    """' (line N of your cell: the line)' for the last frame of the traceback in the student's code."""
    frames = _own_frames(tb)
    if not frames:
        return ""
    f = frames[-1]
    return f" (line {f.lineno} of your cell: {f.line.strip()})" if f.line else f" (line {f.lineno} of your cell)"


def _run(fn: Callable, observe: Callable, kwargs: dict) -> dict[str, Any]:
    try:
        return observe(fn, kwargs)
    except NoGradient:
        raise
    except Exception as exc:  # the student's bug (or the stub), reported as a verdict
        tb = sys.exc_info()[2]
        last = traceback.extract_tb(tb)[-1]
        if isinstance(exc, NotImplementedError) and not any(s in last.filename for s in _LIBRARY):
            raise _NotWritten() from exc  # raised by the student's own code: the stub
        raise _Raised(exc, _student_line(tb)) from exc


def _as_array(v: Any) -> np.ndarray | None:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().double().numpy()
    if isinstance(v, (bool, np.bool_)):
        return None  # True is not the number 1 here
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a


def compare(mine: Any, theirs: Any, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None when ``mine`` equals ``theirs`` (numbers, tuples, arrays and tensors compared by value, with the
    tolerances); otherwise a short phrase saying how they differ."""
    if mine is None and theirs is not None:
        return "yours returned None (is there a `return` at the end of your function?)"
    a, b = _as_array(mine), _as_array(theirs)
    if b is None or isinstance(mine, str):
        same = type(mine) is type(theirs) and mine == theirs
        return None if same else "the values differ"
    if a is None:
        return f"yours is a {type(mine).__name__}, not numbers"
    if a.shape != b.shape:
        if a.size == b.size and a.squeeze().shape == b.squeeze().shape:
            a, b = a.squeeze(), b.squeeze()
        else:
            return f"yours has shape {tuple(a.shape)}, the package's {tuple(b.shape)}"
    if a.size == 0:
        return None
    if np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        return None
    if not np.isfinite(a).all() and np.isfinite(b).all():
        return "yours has NaN or infinite values where the package's are finite"
    if a.ndim == 0 or a.size <= 12:
        return "the values differ"
    diff = np.abs(a - b)
    diff[np.isnan(diff)] = np.inf
    where = np.unravel_index(int(np.argmax(diff)), a.shape)
    return f"the values differ (most at index {tuple(int(i) for i in where)}: {a[where]:.4g} vs {b[where]:.4g})"


def _fmt_number(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e12:
        return str(int(x))
    return f"{x:.4g}"


def describe(v: Any, limit: int = 12) -> str:
    """A short readable form of an input or a result."""
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {describe(x, limit)}" for k, x in v.items()) + "}"
    if isinstance(v, tuple) and hasattr(v, "_fields"):  # a Box or another named tuple
        return f"{type(v).__name__}(" + ", ".join(f"{f}={describe(x)}" for f, x in zip(v._fields, v, strict=True)) + ")"
    if isinstance(v, (torch.Tensor, np.ndarray)) or (isinstance(v, (list, tuple)) and v
                                                   and all(isinstance(x, (int, float, np.number)) for x in v)):
        a = _as_array(v)
        kind = "tensor" if isinstance(v, torch.Tensor) else "array" if isinstance(v, np.ndarray) else type(v).__name__
        if a is None:
            return repr(v)
        if a.ndim == 0:
            return _fmt_number(float(a))
        if a.size <= limit:
            body = np.array2string(a, separator=", ", max_line_width=10**6,
                                   formatter={"float_kind": lambda x: _fmt_number(float(x))}).replace("\n", "")
            body = " ".join(body.split())
            return body if kind in ("list", "tuple") else f"{kind}({body})"
        return f"{kind}({'×'.join(str(n) for n in a.shape)})"
    if isinstance(v, (float, np.floating)):
        return _fmt_number(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, str):
        return v
    return repr(v)


def _summary(v: Any, limit: int = 12) -> str:
    """:func:`describe`, and for an array too large to print its size: all zeros, or its norm and largest entry."""
    a = _as_array(v) if not isinstance(v, str) else None
    if a is None or a.size <= limit:
        return describe(v, limit)
    if not np.isfinite(a).all():
        return f"{describe(v, limit)} with NaN or infinite entries"
    if not a.any():
        return f"{describe(v, limit)}, all zeros"
    norm, top = _fmt_number(float(np.linalg.norm(a))), _fmt_number(float(np.abs(a).max()))
    return f"{describe(v, limit)}, norm {norm}, largest entry {top}"


def _differs(mine: dict, theirs: dict, atol: float, rtol: float) -> tuple[str, str] | None:
    """(what, how) for the first observation that differs, or None."""
    for what, ref in theirs.items():
        if what not in mine:
            return what, "missing"
        how = compare(mine[what], ref, atol, rtol)
        if how is not None:
            return what, how
    return None


# ------------------------------------------------------------------------------------------------ the check
def check_function(student: Callable | None, reference: Callable, cases: Sequence[Case], *, label: str,
                   name: str | None = None, ref_name: str, observe: Callable = _default_observe,
                   mistakes: Sequence[Mistake] = (), hint: str = "", cases_hint: str = "", inputs_call: str = "",
                   atol: float = 1e-5, rtol: float = 1e-4) -> bool | None:
    """Compare ``student`` with ``reference`` on every case and print one verdict (see the module's docstring).

    ``observe(fn, kwargs)`` calls ``fn`` and returns what to compare, by name (default: its result); a loss's
    observes its value and the gradient reaching each input. ``mistakes`` give the hints for known wrong
    implementations; ``hint`` is the general one. ``cases_hint`` says which edge cases there are; ``inputs_call``
    (with ``{case}`` for the case's number) how to get a case's inputs to debug with. Returns True (matches),
    False (differs) or None (not written yet).
    """
    name = name or getattr(student, "__name__", "your function")
    if student is None or not callable(student):
        if student is None:
            print(f"{label}: not written yet (write the function in the cell above, run it, then run this cell)")
            return None
        print(f"✗ {label}: expected a function, got {describe(student)}")
        return False
    theirs: list[dict] = []
    for case in cases:
        theirs.append(observe(reference, case.make()))
    mine: list[dict | None] = []
    failure: tuple[int, str] | None = None  # (case index, the message)
    for i, case in enumerate(cases):
        kwargs = case.make()
        try:
            got = _run(student, observe, kwargs)
        except _NotWritten:
            print(f"{label}: {name} is not written yet (replace `raise NotImplementedError` with your code, "
                  "run that cell, then run this one again)")
            return None
        except NoGradient as exc:
            mine.append(None)
            failure = failure or (i, str(exc))
            continue
        except _Raised as exc:
            mine.append(None)
            failure = failure or (i, f"yours raised {type(exc.exc).__name__}: {exc.exc}{exc.where}")
            continue
        mine.append(got)
        if failure is None:
            try:
                diff = _differs(got, theirs[i], atol, rtol)
            except Exception as exc:  # a result this check cannot even compare is not right
                diff = ("the result", f"yours cannot be compared with the package's ({type(exc).__name__}: {exc})")
            if diff is not None:
                what, how = diff
                shown = "" if how.startswith("yours has shape") else (
                    f"\n    yours:          {_summary(got.get(what))}\n    the package's:  {_summary(theirs[i][what])}")
                failure = (i, f"{what}: {how}{shown}")
    if failure is None:
        print(f"✓ {label}: {name} matches {ref_name} on {len(cases)} cases"
              + (f" ({cases_hint})" if cases_hint else ""))
        return True
    i, message = failure
    note = f" ({cases[i].note})" if cases[i].note else ""
    inputs = ", ".join(f"{k}={describe(v)}" for k, v in cases[i].make().items())
    found = _diagnose(mistakes, cases, mine, i, observe, atol, rtol)
    print(f"✗ {label}: {name} differs from {ref_name} on case {i} of {len(cases)}{note}\n"
          f"    inputs: {inputs}" + (f"  [{inputs_call.format(case=i)}]" if inputs_call else "") + f"\n    {message}\n"
          f"  Hint: {found or hint}")
    return False


def _diagnose(mistakes: Sequence[Mistake], cases: Sequence[Case], mine: list[dict | None], failed: int,
              observe: Callable, atol: float, rtol: float) -> str | None:
    """The hint of the known mistake the student's function behaves like: one that gives what theirs gives on
    every case theirs ran (else on the case that failed), or None."""
    if mine[failed] is None:
        return None
    on_failed = None
    for m in mistakes:
        try:
            same = [_differs(got, observe(m.fn, case.make()), atol, rtol) is None
                    for case, got in zip(cases, mine, strict=True) if got is not None]
            same_failed = _differs(mine[failed], observe(m.fn, cases[failed].make()), atol, rtol) is None
        except Exception:  # a mistake that cannot run on some case says nothing about this student
            continue
        if all(same):
            return m.hint
        if same_failed and on_failed is None:
            on_failed = m.hint
    return on_failed
