"""glmc_core: Global and Local Mixture Consistency cumulative learning (Du et al., CVPR 2023).

Read the package bottom-up: ``mixing``, ``losses``, ``augment``, ``models``, ``config``
(pure functions and dataclasses), then ``data`` (long-tailed sources, samplers and batch
streams), ``checkpoint``, ``metrics``, ``methods`` and ``train``, then the ``cli``.
"""

from .config import METHODS, PRESETS, Config, get_preset
from .errors import GLMCError
from .losses import alpha_schedule, consistency_loss, glmc_loss, soft_cross_entropy
from .mixing import (
                     class_weights,
                     global_mix,
                     local_mix,
                     mix_labels,
                     one_hot,
                     reweight_labels,
                     sample_box,
                     sample_lambda,
)
from .models import MODELS, GLMCNet, build_model

__version__ = "0.1.0"

__all__ = ["Config", "PRESETS", "METHODS", "get_preset", "GLMCError", "alpha_schedule", "consistency_loss",
           "glmc_loss", "soft_cross_entropy", "class_weights", "global_mix", "local_mix", "mix_labels", "one_hot",
           "reweight_labels", "sample_box", "sample_lambda", "MODELS", "GLMCNet", "build_model", "__version__"]
