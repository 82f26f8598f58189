"""What only the notebooks need, on top of the package (import the floors below as you like).

* :mod:`~glmc_core.notebook.setup`: quick or full, which data, which device, in one place, and the
  finished reference runs (:func:`~glmc_core.notebook.setup.reference_runs`);
* :mod:`~glmc_core.notebook.experiments`: the small computations the notebooks show, and
  :func:`~glmc_core.train.train_or_reuse` for runs shared between notebooks;
* :mod:`~glmc_core.notebook.figures`: teaching figures of the method's pieces and of the experiments above
  (results of trained runs are :mod:`glmc_core.plots`' figures, whose palette both use);
* :mod:`~glmc_core.notebook.widgets`: the explorers (needs ipywidgets; import it yourself);
* :mod:`~glmc_core.notebook.live`: live training plots with a Stop button;
* :mod:`~glmc_core.notebook.claims`: sentences that check themselves;
* :mod:`~glmc_core.notebook.exercises`: every notebook's checked exercises (``exercises.check("02.2", my_cutmix_box)``),
  the writing ones compared with the package's own function by :mod:`~glmc_core.notebook.check`;
* :mod:`~glmc_core.notebook.source`: the package's own functions shown as readable source.
"""

from . import experiments, figures
from .claims import ClaimFailed, check_answer, claim, measured
from .live import LivePlot
from .setup import (
    PAPER_SET,
    NotebookSetup,
    ReferenceRuns,
    download_cifar10,
    env_data_root,
    notebook_config,
    notebook_setup,
    quick_mode,
    reference_run,
    reference_runs,
    reference_runs_dir,
    reference_set_dir,
    runs_in_use,
    use_repository_cache,
)
from .source import show_source, source_text

use_repository_cache()  # every notebook imports this package: its decoded images go to the repository's data/cache

__all__ = ["experiments", "figures", "ClaimFailed", "check_answer", "claim", "measured", "LivePlot", "NotebookSetup",
           "download_cifar10", "env_data_root", "notebook_config", "notebook_setup", "quick_mode", "ReferenceRuns",
           "reference_runs", "reference_runs_dir", "reference_set_dir", "PAPER_SET",
           "reference_run", "runs_in_use", "show_source", "source_text"]
