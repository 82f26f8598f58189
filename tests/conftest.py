"""Shared fixtures: where the real CIFAR-10 zip is, and a temporary run folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cifar10_zip_path() -> Path | None:
    """``$GLMC_CIFAR10_ZIP``, else ``../shared/data/cifar10-jpeg.zip`` beside the checkout, else None."""
    env = os.environ.get("GLMC_CIFAR10_ZIP")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "cifar10-jpeg.zip")
    for c in candidates:
        if c.is_file():
            return c
    return None


@pytest.fixture(scope="session")
def cifar10_zip() -> Path:
    path = cifar10_zip_path()
    if path is None:
        pytest.skip("the CIFAR-10 zip is not here: set GLMC_CIFAR10_ZIP or put it at ../shared/data/cifar10-jpeg.zip")
    return path


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    # Tests never read a user's data root by accident.
    monkeypatch.delenv("GLMC_DATA_ROOT", raising=False)
