"""glmc_core: Global and Local Mixture Consistency cumulative learning (Du et al., CVPR 2023).

Read the package bottom-up: ``mixing``, ``losses``, ``augment``, ``models``, ``config``
(pure functions and dataclasses), then ``data`` (long-tailed sources, samplers and batch
streams), ``checkpoint`` and ``metrics``, ``methods`` (one step's loss), ``train`` (with
``fast`` and ``distributed``), ``analysis`` and ``plots``, then the sub-packages ``extras``
(beyond the paper) and ``notebook`` (what only the notebooks need), and the ``cli``.
"""

from .checkpoint import load_model
from .config import METHODS, PRESETS, Config, get_preset
from .errors import GLMCError
from .losses import alpha_schedule, consistency_loss, glmc_loss, soft_cross_entropy
from .metrics import format_number
from .mixing import (
    Box,
    class_weights,
    glmc_targets,
    global_mix,
    local_mix,
    mix_labels,
    one_hot,
    reweight_labels,
    sample_box,
    sample_lambda,
)
from .models import MODELS, GLMCNet, build_model
from .train import fit, train_or_reuse

__version__ = "0.1.0"

__all__ = ["Config", "PRESETS", "METHODS", "get_preset", "GLMCError", "alpha_schedule", "consistency_loss",
           "glmc_loss", "soft_cross_entropy", "Box", "class_weights", "glmc_targets", "global_mix", "local_mix",
           "mix_labels", "one_hot", "reweight_labels", "sample_box", "sample_lambda", "MODELS", "GLMCNet",
           "build_model", "load_model", "format_number", "fit", "train_or_reuse", "__version__"]
