"""What a notebook trains with, chosen in one place: quick or full, which data, which device.

* :func:`quick_mode` is the one reading of ``$GLMC_QUICK`` (1/0, true/false, yes/no, on/off);
* :func:`env_data_root` the one reading of ``$GLMC_DATA_ROOT``;
* :func:`notebook_config` turns them into a :class:`~glmc_core.config.Config` and one line
  saying what it is (quick: a small ResNet-8 on a small subset, on the CPU; full: the preset,
  on the best device);
* :func:`notebook_setup` also loads the data once for the training notebooks (05–07), and
  falls back to scikit-learn's digits, saying so, when no CIFAR-10 copy is found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Config, get_preset
from ..data import LongTailData, prepare_data
from ..errors import GLMCError

__all__ = ["env_flag", "quick_mode", "env_data_root", "notebook_config", "NotebookSetup", "notebook_setup"]

# Quick CIFAR-10-LT for a 2-core CPU: a small ResNet on a few hundred images (n_max 300 at IF 100: 740 images).
_QUICK_CIFAR = dict(model="resnet8", n_max=300, test_per_class=100, batch_size=64, lr=0.05, weight_decay=5e-4)


def env_flag(name: str, default: bool) -> bool:
    """``$name`` read as a boolean (1/0, true/false, yes/no, on/off); ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return bool(default)
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise GLMCError(f"environment variable {name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def quick_mode(default: bool = True) -> bool:
    """Quick (minutes on a CPU) or full (the paper's recipe, a GPU job): ``$GLMC_QUICK`` overrides ``default``."""
    return env_flag("GLMC_QUICK", default)


def env_data_root(default: str | None = None) -> str | None:
    """Where CIFAR-10 is (a folder or ``.zip``): ``$GLMC_DATA_ROOT``, else ``default`` (None: the offline digits)."""
    return os.environ.get("GLMC_DATA_ROOT") or default


def notebook_config(quick: bool = True, epochs: int | None = None, data_root: str | None = None,
                    quick_epochs: int | None = None, offline: bool = False, **overrides) -> tuple[Config, str]:
    """The configuration a teaching notebook trains with, and one line saying what it is.

    ``$GLMC_QUICK`` overrides ``quick``; ``data_root`` (else ``$GLMC_DATA_ROOT``) selects the real
    CIFAR-10-LT (IF 100), otherwise the offline ``digits-lt`` preset is used.

    * quick: a small ResNet-8 on a small subset for a few epochs, on the CPU (minutes on a laptop);
    * full: the preset itself (for CIFAR-10-LT the paper's recipe, a GPU job) unless ``epochs`` is given.

    Run from a ``notebooks/`` folder with ``$GLMC_CACHE_DIR`` unset, it points that variable at
    ``../data/cache`` so decoded images land in the repository's git-ignored cache.
    ``epochs`` applies in both modes; ``quick_epochs`` only in quick mode (default 8 on digits, 3 on CIFAR).
    ``offline`` selects the digits whatever the data root says (the fallback when CIFAR-10 is missing).
    """
    quick = quick_mode(quick)
    if not os.environ.get("GLMC_CACHE_DIR") and os.path.basename(os.getcwd()) == "notebooks":
        # Run from notebooks/: cache decoded images in the repository's git-ignored data/cache, not notebooks/data.
        os.environ["GLMC_CACHE_DIR"] = os.path.join(os.path.dirname(os.getcwd()), "data", "cache")
    root = None if offline else (data_root or env_data_root())
    settings: dict = {"progress": False, "device": "cpu" if quick else "auto"}
    if root:
        name = "cifar10-lt-if100"
        settings.update(data_root=root)
        if quick:
            settings.update(_QUICK_CIFAR, epochs=quick_epochs or 3)
    else:
        name = "digits-lt"
        if quick:
            settings.update(epochs=quick_epochs or 8)
    if epochs is not None:
        settings["epochs"] = epochs
    settings.update(overrides)
    cfg = get_preset(name, **settings)
    where = (f"real CIFAR-10-LT from {root}" if root else
             "the offline digits preset (scikit-learn's 8x8 digits, long-tailed; set GLMC_DATA_ROOT to use CIFAR-10)")
    mode = "QUICK mode (small model and subset, few epochs)" if quick else "FULL mode"
    note = f"Data: {where}. {mode}: model {cfg.model}, {cfg.epochs} epochs, imbalance factor {cfg.imbalance_factor:g}."
    return cfg, note


@dataclass
class NotebookSetup:
    """The data and base configuration a training notebook uses, and a sentence saying which."""

    cfg: Config  # GLMC; ``config("ce")`` gives the baseline on the same data
    data: LongTailData  # shared by every run of the notebook (loaded once)
    message: str
    tag: str  # "quick-cifar10", "quick-digits" or "full-cifar10": part of the run folder names

    def config(self, method: str = "glmc", **overrides) -> Config:
        return self.cfg.replace(method=method, run_name=f"nb-{self.tag}-{method}", **overrides)


def notebook_setup(quick: bool = True, data_root: str | None = None, runs: str = "runs", epochs: int | None = None,
                   seed: int = 0, progress: bool = True) -> NotebookSetup:
    """Data and settings for the training notebooks: :func:`notebook_config` (ResNet-8, 300 images in the
    largest class, IF 100: 300 … 3, 100 test images per class in quick mode), with the data loaded once,
    and the offline digits, said on screen, when no CIFAR-10 copy is found in quick mode."""
    common = dict(out=runs, seed=seed, progress=progress)
    cfg, _ = notebook_config(quick, epochs, data_root, quick_epochs=6, **common)
    quick = quick_mode(quick)
    try:
        data = prepare_data(cfg, progress=progress)
        if cfg.dataset != "digits":
            msg = (f"CIFAR-10-LT (imbalance factor {cfg.imbalance_factor:g}) from {data.origin}: {len(data.train)} "
                   f"training images, {len(data.test)} test images, model {cfg.model}, {cfg.epochs} epochs on "
                   f"{cfg.device}.")
            return NotebookSetup(cfg, data, msg, f"{'quick' if quick else 'full'}-cifar10")
        reason = "no data root given"
    except GLMCError as exc:
        if not quick:
            raise
        reason = str(exc).split(";")[0]
    cfg, _ = notebook_config(quick, epochs, quick_epochs=8, offline=True, **common)
    data = prepare_data(cfg, progress=progress)
    msg = (f"NOTE: no CIFAR-10 copy was found ({reason}). Using the offline stand-in instead: scikit-learn's "
           f"8x8 handwritten digits, long-tailed (imbalance factor {cfg.imbalance_factor:g}), {len(data.train)} "
           f"training images. Set DATA_ROOT (or $GLMC_DATA_ROOT) to a CIFAR-10 folder or zip for the real thing.")
    return NotebookSetup(cfg, data, msg, "quick-digits")
