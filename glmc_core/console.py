"""Where one-line progress messages go, the one epoch line every trainer prints, and how to tell a notebook."""

from __future__ import annotations

import sys

from .metrics import format_number

__all__ = ["in_jupyter_kernel", "ipython_kernel_running", "default_log", "silent", "epoch_line"]


def in_jupyter_kernel() -> bool:
    """True when standard output is an ipykernel stream (a notebook), not a terminal or a file."""
    return type(sys.stdout).__module__.startswith("ipykernel")


def ipython_kernel_running() -> bool:
    """True when an IPython kernel is running in this process, whatever stdout is: then ``display`` inside an
    ``ipywidgets.Output`` reaches the front end (tests and plain Python have no kernel to route it)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


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
