"""Execute one notebook from a clean kernel: ``python tests/run_notebook.py NOTEBOOK [EXECUTED.ipynb]``.

The notebook test runs this in a fresh process for each notebook, so that no event loop,
thread or asyncio state left behind by other tests in the pytest process (Playwright's, say)
can stall nbclient's kernel messages. Exit status 0 when every cell ran without an error output;
otherwise 1, with the failing cell's error on stderr. With a second argument the executed
notebook (with its outputs) is written there, for the test to look at what it showed.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(path: str, cell_timeout: int = 600, save: str | None = None) -> int:
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(Path(path).parent)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # names the cell and shows its traceback
        print(str(exc)[-4000:], file=sys.stderr)
        return 1
    finally:
        if save:
            nbformat.write(nb, save)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    for e in errors:
        print(f"{e.get('ename')}: {e.get('evalue')}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], save=sys.argv[2] if len(sys.argv) > 2 else None))
