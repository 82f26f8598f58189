"""Show the package's own functions in a notebook, as source a student can read.

``show_source(mixing.global_mix, mixing.local_mix)`` displays each function's source (from
:func:`inspect.getsource`, so it is exactly the code that trains) as a highlighted Python block,
headed by the module it lives in; outside IPython it prints plain text.
"""

from __future__ import annotations

import inspect

__all__ = ["source_text", "show_source"]


def source_text(*objects) -> str:
    """The source of each function (or class), each headed by ``# module.name``, separated by a blank line."""
    if not objects:
        raise ValueError("show_source needs at least one function")
    parts = []
    for obj in objects:
        src = inspect.getsource(obj).rstrip()
        parts.append(f"# {obj.__module__}.{obj.__qualname__}\n{src}")
    return "\n\n\n".join(parts)


def show_source(*objects) -> None:
    """Display :func:`source_text` of ``objects`` as a Python code block (Markdown in IPython), else print it."""
    text = source_text(*objects)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython is a notebook dependency
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(f"```python\n{text}\n```"))
