"""The teaching notebooks' explorers: explicit ipywidgets + ``observe``, one class per view.

Every explorer keeps its maths out of the callbacks: ``compute(...)`` (pure, from the package's
functions) returns the data, ``render(...)`` turns it into a figure, ``update()`` reads the
widgets, calls both, and stores the result (``last_figure``, and e.g. ``mixed_image``) so tests
can move a control and check what was redrawn without a browser. The figure is shown as a PNG
inside an :class:`ipywidgets.Output` of fixed height, cleared with ``clear_output(wait=True)`` to
avoid flicker and stacked figures.
"""

from __future__ import annotations

import io
from typing import Sequence

import ipywidgets as W
import numpy as np
import torch
from IPython.display import Image, clear_output, display
from matplotlib.figure import Figure

from ..data import ClassResampler
from ..data.longtail import GROUPS, longtail_counts, shot_groups
from ..losses import ALPHA_SCHEDULES, alpha_schedule
from ..mixing import sample_lambda
from ..plots import GROUP_COLORS
from . import experiments, figures

__all__ = ["Explorer", "ImbalanceExplorer", "MixingExplorer", "LossExplorer", "AlphaExplorer"]


class Explorer:
    """Base: an Output of fixed height redrawn by :meth:`update` whenever a control changes."""

    height = "420px"

    def __init__(self, controls: Sequence[W.Widget]):
        self.output = W.Output(layout=W.Layout(height=self.height, overflow="auto"))
        self.controls = list(controls)
        self.widget = W.VBox([W.HBox(self.controls[:4], layout=W.Layout(flex_flow="row wrap")),
                              W.HBox(self.controls[4:], layout=W.Layout(flex_flow="row wrap")), self.output])
        self.last_figure: Figure | None = None
        self.last_png: bytes | None = None
        self.redraws = 0
        self._paused = False  # set while a callback moves several controls, so they redraw once

    def _watch(self, *controls: W.Widget) -> None:
        for c in controls:
            c.observe(self.redraw, names="value")

    def update(self) -> Figure:  # pragma: no cover - overridden
        raise NotImplementedError

    def redraw(self, *_):
        """Recompute and show the figure (the callback of every control)."""
        if self._paused:
            return self.last_figure
        fig = self.update()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        self.last_figure, self.last_png = fig, buf.getvalue()
        self.redraws += 1
        with self.output:
            clear_output(wait=True)
            display(Image(data=self.last_png))
        return fig

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class ImbalanceExplorer(Explorer):
    """Class counts ``n_i = ⌊n_max·IF^(−i/(C−1))⌋`` and many/medium/few groups as the imbalance factor moves."""

    height = "330px"

    def __init__(self, num_classes: int = 10, n_max: int = 5000, class_names=None, imbalance_factor: float = 100.0,
                 many_threshold: int = 100, few_threshold: int = 20, log: bool = True):
        self.num_classes, self.n_max, self.class_names = num_classes, n_max, class_names
        self.many_threshold, self.few_threshold = many_threshold, few_threshold
        self.if_slider = W.FloatLogSlider(value=imbalance_factor, base=10, min=0, max=np.log10(500), step=0.01,
                                          description="IF", continuous_update=False, readout_format=".0f")
        self.log_box = W.Checkbox(value=log, description="log scale")  # log: the tail classes stay visible
        super().__init__([self.if_slider, self.log_box])
        self._watch(self.if_slider, self.log_box)
        self.redraw()

    def compute(self, imbalance_factor: float) -> dict:
        counts = np.asarray(longtail_counts(self.n_max, self.num_classes, imbalance_factor))
        groups = shot_groups(counts, self.many_threshold, self.few_threshold)
        return {"counts": counts, "groups": groups,
                "classes_per_group": {g: int((groups == g).sum()) for g in GROUPS},
                "images_per_group": {g: int(counts[groups == g].sum()) for g in GROUPS}}

    def render(self, result: dict, log: bool = False) -> Figure:
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        ax_counts, ax_groups = fig.subplots(1, 2, width_ratios=(2.2, 1))
        figures.plot_class_counts(result["counts"], result["groups"], self.class_names, self.many_threshold,
                                  self.few_threshold, log=log, ax=ax_counts)
        total_c, total_n = self.num_classes, max(int(result["counts"].sum()), 1)
        y = np.arange(2)
        left = np.zeros(2)
        for g in GROUPS:
            share = np.array([result["classes_per_group"][g] / total_c, result["images_per_group"][g] / total_n])
            ax_groups.barh(y, share, left=left, color=GROUP_COLORS[g], label=g)
            left += share
        ax_groups.set_yticks(y, ["classes", "images"])
        ax_groups.set_xlim(0, 1)
        ax_groups.set_xlabel("share")
        ax_groups.set_title("who owns the data", fontsize=10)
        return fig

    def update(self) -> Figure:
        self.result = self.compute(self.if_slider.value)
        self.counts = self.result["counts"]
        return self.render(self.result, self.log_box.value)


class MixingExplorer(Explorer):
    """Global (MixUp) and local (CutMix) mixtures of one uniform and one resampled image, with soft labels.

    Controls: the two images (by training index, or drawn by the uniform sampler and the class-resampled
    sampler), ``λ``, ``β`` (moving it draws a new ``λ ~ Beta(β, β)``), the resampling exponent ``q`` and
    its convention, the label exponent ``k``, and the box position. ``mixed_image`` and ``cutmix_image``
    hold the current mixtures (float ``(H, W, 3)`` in [0, 1]).
    """

    height = "520px"

    def __init__(self, data, lam: float = 0.7, beta: float = 0.5, q: float = 0.0, convention: str = "instance",
                 k: float = 1.2, cutmix_label: str = "area", seed: int = 0):
        self.data, self.cutmix_label = data, cutmix_label
        self.images, self.labels = data.train.images, np.asarray(data.train.labels)
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        n = len(self.labels)
        # Start with a head image and a tail image so both labels show.
        head, tail = int(np.argmax(data.counts)), int(np.argmin(data.counts))
        self.u_index = W.BoundedIntText(value=int(np.flatnonzero(self.labels == head)[0]), min=0, max=n - 1,
                                        description="uniform #")
        self.r_index = W.BoundedIntText(value=int(np.flatnonzero(self.labels == tail)[0]), min=0, max=n - 1,
                                        description="partner #")
        self.pick = W.Button(description="let the samplers pick", icon="random")
        self.move_box = W.Button(description="move the box")
        self.lam_slider = W.FloatSlider(value=lam, min=0.0, max=1.0, step=0.01, description="λ",
                                        continuous_update=False)
        self.beta_slider = W.FloatSlider(value=beta, min=0.1, max=4.0, step=0.1, description="β",
                                         continuous_update=False)
        self.q_slider = W.FloatSlider(value=q, min=0.0, max=1.5, step=0.1, description="q", continuous_update=False)
        self.convention = W.ToggleButtons(options=["instance", "class"], value=convention, description="resample")
        self.k_slider = W.FloatSlider(value=k, min=0.0, max=2.0, step=0.1, description="k", continuous_update=False)
        self.box_seed = seed
        super().__init__([self.u_index, self.r_index, self.pick, self.move_box, self.lam_slider, self.beta_slider,
                          self.k_slider, self.q_slider, self.convention])
        self._resampler()
        self._watch(self.u_index, self.r_index, self.lam_slider, self.k_slider, self.q_slider, self.convention)
        self.beta_slider.observe(self.resample_lambda, names="value")
        self.pick.on_click(self.sample_pair)
        self.move_box.on_click(self.new_box)
        self.redraw()

    # --- callbacks that change state, then redraw through the λ / index observers ------------
    def resample_lambda(self, *_) -> float:
        """Draw ``λ ~ Beta(β, β)`` with the package's sampler and move the λ slider to it."""
        lam = round(sample_lambda(self.rng, self.beta_slider.value), 2)
        if lam == self.lam_slider.value:
            self.redraw()
        self.lam_slider.value = lam
        return lam

    def sample_pair(self, *_) -> tuple[int, int]:
        """One uniform draw and one draw of the class-resampled sampler (current q and convention)."""
        i_u = int(torch.randint(len(self.labels), (1,), generator=self.gen))
        i_r = int(self._resampler().sample(1, self.gen)[0])
        self._paused = True
        try:
            self.u_index.value, self.r_index.value = i_u, i_r
        finally:
            self._paused = False
        self.redraw()
        return i_u, i_r

    def new_box(self, *_) -> None:
        self.box_seed += 1
        self.redraw()

    def _resampler(self) -> ClassResampler:
        self.resampler = ClassResampler(self.labels, self.data.num_classes, self.q_slider.value,
                                        self.convention.value)
        return self.resampler

    # --- pure parts ------------------------------------------------------------------------------
    def compute(self, i_u: int, i_r: int, lam: float, k: float, box_seed: int) -> dict:
        return experiments.mix_pair(self.images[i_u], self.images[i_r], int(self.labels[i_u]), int(self.labels[i_r]),
                                 self.data.counts, lam, k, box_seed, self.cutmix_label)

    def render(self, mix: dict, partner_probs=None) -> Figure:
        return figures.plot_mixing(mix, self.data.classes, partner_probs)

    def update(self) -> Figure:
        self.mix = self.compute(self.u_index.value, self.r_index.value, self.lam_slider.value, self.k_slider.value,
                                self.box_seed)
        self.mixed_image, self.cutmix_image = self.mix["x_g"], self.mix["x_l"]
        return self.render(self.mix, self._resampler().class_probs.numpy())


class LossExplorer(Explorer):
    """Every GLMC loss term on one fixed batch as λ, k and γ move (``experiments.loss_sweeps``)."""

    height = "330px"

    def __init__(self, model, batch: dict, counts, alpha: float = 0.5, lam: float = 0.5, k: float = 1.2,
                 gamma: float = 1.0, points: int = 11):
        self.model, self.batch, self.counts, self.alpha, self.points = model, batch, counts, alpha, points
        self.lam_slider = W.FloatSlider(value=lam, min=0.0, max=1.0, step=0.05, description="λ",
                                        continuous_update=False)
        self.k_slider = W.FloatSlider(value=k, min=0.0, max=2.0, step=0.1, description="k", continuous_update=False)
        self.gamma_slider = W.FloatSlider(value=gamma, min=0.0, max=4.0, step=0.5, description="γ",
                                          continuous_update=False)
        super().__init__([self.lam_slider, self.k_slider, self.gamma_slider])
        self._watch(self.lam_slider, self.k_slider, self.gamma_slider)
        self.redraw()

    def compute(self, lam: float, k: float, gamma: float) -> dict:
        return experiments.loss_sweeps(self.model, self.batch, self.counts, lam, k, gamma, self.alpha,
                                    lams=np.linspace(0, 1, self.points), ks=np.linspace(0, 2, self.points),
                                    gammas=np.linspace(0, 4, self.points))

    def render(self, sweeps: dict) -> Figure:
        return figures.plot_loss_terms(sweeps)

    def update(self) -> Figure:
        self.sweeps = self.compute(self.lam_slider.value, self.k_slider.value, self.gamma_slider.value)
        self.terms = self.sweeps["at"]
        return self.render(self.sweeps)


class AlphaExplorer(Explorer):
    """The α schedules, and how the weight moves from ``fc`` to ``fc_cb``, at a chosen epoch."""

    height = "330px"

    def __init__(self, total_epochs: int = 200, schedule: str = "paper", constant: float = 0.5):
        self.schedule = W.Dropdown(options=list(ALPHA_SCHEDULES), value=schedule, description="schedule")
        self.epochs_slider = W.IntSlider(value=total_epochs, min=2, max=400, description="T_max",
                                         continuous_update=False)
        self.epoch_slider = W.IntSlider(value=total_epochs // 2, min=0, max=total_epochs, description="epoch T",
                                        continuous_update=False)
        self.constant_slider = W.FloatSlider(value=constant, min=0.0, max=1.0, step=0.05, description="constant α",
                                             continuous_update=False)
        super().__init__([self.schedule, self.epochs_slider, self.epoch_slider, self.constant_slider])
        self.epochs_slider.observe(self._clamp_epoch, names="value")
        self._watch(self.schedule, self.epochs_slider, self.epoch_slider, self.constant_slider)
        self.redraw()

    def _clamp_epoch(self, change) -> None:
        self.epoch_slider.max = change["new"]  # the epoch slider follows T_max (its value is clamped)

    def compute(self, schedule: str, total_epochs: int, epoch: int, constant: float) -> dict:
        alpha = alpha_schedule(epoch, total_epochs, schedule, constant)
        return {"alpha": alpha, "fc_weight": alpha, "fc_cb_weight": 1.0 - alpha}

    def render(self, schedule: str, total_epochs: int, epoch: int, constant: float) -> Figure:
        fig = Figure(figsize=(11, 3.6), layout="constrained")
        ax_a, ax_w = fig.subplots(1, 2)
        figures.plot_alpha_schedules(total_epochs, constant=constant, highlight=schedule, epoch=epoch, ax=ax_a)
        figures.plot_head_weights(total_epochs, schedule, constant, epoch=epoch, ax=ax_w)
        return fig

    def update(self) -> Figure:
        args = (self.schedule.value, self.epochs_slider.value, self.epoch_slider.value, self.constant_slider.value)
        self.result = self.compute(*args)
        self.alpha = self.result["alpha"]
        return self.render(*args)
