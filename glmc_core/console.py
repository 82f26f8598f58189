"""Where one-line progress messages go, and the one epoch line every trainer prints."""

from __future__ import annotations

import sys

from .metrics import format_number

__all__ = ["in_jupyter_kernel", "default_log", "silent", "epoch_line"]


def in_jupyter_kernel() -> bool:
    """True when standard output is an ipykernel stream (a notebook), not a terminal or a file."""
    return type(sys.stdout).__module__.startswith("ipykernel")


def default_log(msg: str) -> None:
    """Progress messages: standard output in a notebook (a student reads them; stderr looks like an error),
    stderr elsewhere (the CLI keeps stdout for results)."""
    print(msg, file=sys.stdout if in_jupyter_kernel() else sys.stderr, flush=True)


def silent(_msg: str) -> None:
    pass


def epoch_line(r: dict, epochs: int) -> str:
    """``epoch  12/200  top1 45.10  many ...  loss 1.234  alpha 0.99  88.0s``: one finished epoch's record."""
    many, medium, few = (format_number(r[g], "5.1f") for g in ("many", "medium", "few"))
    return (f"epoch {r['epoch']:>3}/{epochs}  top1 {r['top1']:5.2f}  many {many}  medium {medium}  few {few}  "
            f"loss {r['total']:.3f}  alpha {r['alpha']:.2f}  {r['seconds']:.1f}s")
