"""Two tiny real runs on the offline digits data (GLMC, 2 epochs; CE, 1 epoch), trained once per session.

Shared by test_analysis, test_plots and test_report: ``from tiny_runs import tiny_runs``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_CACHE: dict[str, tuple[Path, Path]] = {}


def train_tiny(out: Path, method: str, epochs: int, name: str, **overrides) -> Path:
    from glmc_core import get_preset
    from glmc_core.train import fit

    cfg = get_preset("digits-lt", method=method, epochs=epochs, image_size=8, batch_size=64, out=str(out),
                     run_name=name, progress=False, device="cpu", **overrides)
    state = fit(cfg, log=lambda _msg: None)
    return state.run_dir


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> tuple[Path, Path]:
    """``(glmc_run_dir, ce_run_dir)``."""
    if "runs" not in _CACHE:
        out = tmp_path_factory.mktemp("tiny-runs")
        _CACHE["runs"] = (train_tiny(out, "glmc", 2, "glmc"), train_tiny(out, "ce", 1, "ce"))
    return _CACHE["runs"]
