"""The expected answers of the notebooks' checked exercises, in one place.

Each notebook's check cell calls ``exercises.check("06.1", answer, evals=evals)``; the expected
value is computed here from what the notebook holds, so a solution in ``notebooks/solutions/``
can be tested against the same check (``tests/test_notebook_exercises.py`` runs each solution's
code block through :func:`check`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .claims import check_answer

__all__ = ["EXERCISES", "check", "expected"]


def _alpha_half(total_epochs: int = 200, **_) -> int:
    from ..losses import alpha_schedule

    return next(t for t in range(total_epochs) if alpha_schedule(t, total_epochs, "paper") <= 0.5)


def _resume_epoch(done: int, **_) -> int:
    return int(done) + 1


def _fc_cb_ratio(evals, **_) -> float:
    from ..analysis import weight_norm_ratio

    ev = next(e for e in evals if "fc_cb" in e.norms and e.run.method == "glmc")
    return weight_norm_ratio(ev.norms["fc_cb"], ev.counts)


def _cb_weights(counts=(100, 10, 1), beta: float = 0.999, **_) -> list[float]:
    from ..longtail_losses import cb_weights_effective_number

    return cb_weights_effective_number(list(counts), beta).tolist()


# key -> (what is asked, the expected value from the notebook's context, tolerance)
EXERCISES: dict[str, tuple[str, Callable[..., Any], float]] = {
    "04.1": ("first epoch T (counting from 0) at which the paper's α is ≤ 0.5 for T_max = 200", _alpha_half, 0),
    "05.1": ("the epoch a resumed run starts with", _resume_epoch, 0),
    "06.1": ("‖W‖ of the largest class / ‖W‖ of the smallest for GLMC's fc_cb", _fc_cb_ratio, 1e-3),
    "07.1": ("class-balanced weights for counts (100, 10, 1) and β = 0.999, summing to 3", _cb_weights, 1e-3),
}


def expected(key: str, **context) -> Any:
    """The right answer of exercise ``key`` given the notebook's ``context`` (e.g. ``evals=evals``)."""
    return EXERCISES[key][1](**context)


def check(key: str, answer: Any, **context) -> bool | None:
    """:func:`~glmc_core.notebook.claims.check_answer` for exercise ``key``: None while unanswered."""
    what, _, tol = EXERCISES[key]
    if answer is None:
        return check_answer(f"Exercise {key}", None)
    want = expected(key, **context)
    tol = tol or 1e-9
    if isinstance(want, (list, tuple, np.ndarray)):
        return check_answer(f"Exercise {key}", list(np.ravel(answer)) if hasattr(answer, "__len__") else answer,
                            list(want), tol=tol, hint=f"the answer is {what}")
    return check_answer(f"Exercise {key}", answer, want, tol=tol, hint=f"the answer is {what}")
