"""Keep of each FINISHED reference run only what the notebooks need (reference_runs/README.md, "What a run keeps").

    python benchmarks/slim_reference_runs.py reference_runs/cifar10-lt-if100-resnet20/glmc
    python benchmarks/slim_reference_runs.py reference_runs/cifar10-lt-if100-resnet8      # every finished run in a set

For a run folder with ``summary.json``: ``checkpoint.pt`` is rewritten atomically with the final weights, config,
classes, class counts, epoch and history, without the optimiser state and the random generators' states, and
``best.pt`` is deleted (:func:`glmc_core.runs.slim_finished_run`). A run folder without ``summary.json`` is
unfinished and left whole (it must resume exactly): named alone it is an error, inside a set it is skipped and
listed. Running it again on a slimmed run changes nothing. Prints each run's size before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runs from the checkout without glmc installed
    sys.path.insert(0, str(REPO))

from glmc_core.errors import GLMCError  # noqa: E402
from glmc_core.runs import slim_finished_run  # noqa: E402


def _runs(path: Path) -> tuple[list[Path], list[Path]]:
    """(finished run folders, unfinished ones) named by ``path``: a run folder, or a set of them."""
    if (path / "config.json").is_file():
        return [path], []
    if not path.is_dir():
        raise GLMCError(f"{path} is not a run folder or a folder of runs")
    runs = sorted(p for p in path.iterdir() if (p / "config.json").is_file())
    if not runs:
        raise GLMCError(f"{path} holds no run folder (a folder with config.json)")
    return [p for p in runs if (p / "summary.json").is_file()], [p for p in runs if not (p / "summary.json").is_file()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path, help="run folders, or folders of run folders (a reference set)")
    args = p.parse_args(argv)
    total_before = total_after = 0
    try:
        for path in args.paths:
            finished, unfinished = _runs(path)
            for run in finished:
                r = slim_finished_run(run)
                total_before, total_after = total_before + r["before"], total_after + r["after"]
                removed = f"; removed {', '.join(r['removed'])}" if r["removed"] else ""
                print(f"{run}: {r['before'] / 1024:.0f} KiB -> {r['after'] / 1024:.0f} KiB{removed}")
            for run in unfinished:
                print(f"{run}: unfinished (no summary.json), kept whole")
    except GLMCError as exc:
        print(f"slim_reference_runs: error: {exc}", file=sys.stderr)
        return 2
    print(f"in all: {total_before / 2**20:.2f} MiB -> {total_after / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
