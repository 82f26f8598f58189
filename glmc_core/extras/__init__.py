"""Beyond the paper: post-hoc logit adjustment, the MaxNorm fine-tuning stage, method comparisons.

* :mod:`~glmc_core.extras.logit_adjustment`: argmax(z − τ·log π) (Menon et al. 2021);
* :mod:`~glmc_core.extras.maxnorm`: weight balancing's second stage (Alshammari et al. 2022);
* :mod:`~glmc_core.extras.compare`: every method on one pipeline, the results table and plot.
"""
