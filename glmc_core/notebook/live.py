"""Training from a notebook: a live-plot callback with a stop button.

:class:`LivePlot` is a :data:`glmc_core.train.Callback`: give it to ``fit(callbacks=[live],
stop=live.stop)``. After every epoch it redraws the loss terms, α, the learning rate and
accuracy by group inside an ``ipywidgets.Output`` (``clear_output(wait=True)``, a fixed
height, so the figure does not flicker or stack); its Stop button makes ``fit`` end after
the last full epoch, whose checkpoint ``fit(resume=run_dir)`` continues from. Outside a
notebook (or without ipywidgets) it records the same history and draws nothing live.
"""

from __future__ import annotations

from ..console import ipython_kernel_running

__all__ = ["LivePlot"]


class LivePlot:
    """Live curves for :func:`glmc_core.train.fit`: ``fit(cfg, callbacks=[live], stop=live.stop)``.

    Args:
        history: epochs already trained (e.g. ``analysis.load_history(run_dir)`` when resuming),
            drawn before the new ones.
        stop_after: request a stop once this many epochs are done, as if Stop were pressed
            (lets a notebook show stop-and-resume when nobody clicks).
        height: fixed height of the plot area, so redraws don't make the page jump.
        epochs: total epochs, for the epoch progress bar (taken from the first event otherwise).
    """

    def __init__(self, history: list[dict] | None = None, stop_after: int | None = None, height: str = "340px",
                 epochs: int | None = None, progress: bool = True):
        self.history: list[dict] = list(history or [])
        self.last_step: dict | None = None
        self.summary: dict | None = None
        self.stop_requested = False
        self.stop_after = stop_after
        self.epochs = epochs
        self.redraws = 0
        self._progress = progress
        self._bar = None
        self.widget = self._build_widgets(height)

    # -- widgets -----------------------------------------------------------------------------
    def _build_widgets(self, height: str):
        try:
            import ipywidgets as w
        except ImportError:  # a plain Python session: record, don't draw
            self.output = self.button = self.status = None
            return None
        self.output = w.Output(layout=w.Layout(height=height, overflow="hidden"))
        self.button = w.Button(description="Stop after this epoch", button_style="danger", icon="stop",
                               layout=w.Layout(width="220px"))
        self.button.on_click(self._on_click)
        self.status = w.HTML(value="waiting for the first epoch …")
        return w.VBox([w.HBox([self.button, self.status]), self.output])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget if self.widget is not None else "LivePlot (ipywidgets is not installed)")

    def _on_click(self, _button=None) -> None:
        self.request_stop()

    # -- what fit calls ----------------------------------------------------------------------
    def stop(self) -> bool:
        """Polled by ``fit`` between steps: True once Stop was pressed."""
        return self.stop_requested

    def request_stop(self) -> None:
        self.stop_requested = True
        if self.button is not None:
            self.button.disabled = True
            self.button.description = "stopping …"
        self._set_status("stop requested: the run ends before the next step; its last full epoch is saved")

    def __call__(self, event: str, payload: dict) -> None:
        if event == "step":
            self.last_step = payload
            terms = ", ".join(f"{k} {payload[k]:.3f}" for k in ("total", "loss_c", "loss_cb", "loss_sim")
                              if k in payload)
            self._set_status(f"epoch {payload['epoch']}, step {payload['step']}/{payload['steps']}: {terms}")
        elif event == "epoch_end":
            self.history.append(payload)
            self._advance_bar()
            if self.stop_after is not None and len(self.history) >= self.stop_after and not self.stop_requested:
                self.request_stop()
            else:
                self._set_status(self._epoch_text(payload))
            self.redraw()
        elif event == "stopped":
            if self._bar is not None:
                self._bar.close()
            if self.button is not None:
                self.button.description = "stopped"
            where = f"fit(resume={payload['run_dir']!r})" if payload.get("run_dir") else "fit(resume=RUN_DIR)"
            self._set_status(f"stopped: epoch {payload['epoch']} is saved; continue with {where}")
        elif event == "end":
            self.summary = payload
            if self._bar is not None:
                self._bar.close()
            if self.button is not None:
                self.button.disabled = True
                self.button.description = "finished"
            self._set_status(f"finished: {self._epoch_text(self.history[-1])}" if self.history else "finished")

    # -- drawing -----------------------------------------------------------------------------
    def figure(self):
        """A static figure of everything so far (also what the live view shows)."""
        from ..plots import plot_learning_curves

        return plot_learning_curves(self.history)

    def redraw(self) -> None:
        self.redraws += 1
        if self.output is None:
            return
        fig = self.figure()
        if ipython_kernel_running():
            from IPython.display import clear_output, display

            with self.output:
                clear_output(wait=True)  # the old figure goes only when the new one arrives: no flicker
                display(fig)
        else:  # no kernel routes output into the widget: set its outputs directly (tests, plain Python)
            import base64
            import io

            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=72)
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"image/png": base64.b64encode(buf.getvalue()).decode(),
                                             "text/plain": repr(fig)}},)

    def _set_status(self, text: str) -> None:
        if self.status is not None:
            self.status.value = f"<code>{text}</code>"

    @staticmethod
    def _epoch_text(r: dict) -> str:
        from ..metrics import format_number as f

        return (f"epoch {r['epoch']}: top-1 {r['top1']:.1f} %, many {f(r.get('many'))}, medium {f(r.get('medium'))}, "
                f"few {f(r.get('few'))}, α {r.get('alpha', float('nan')):.2f}")

    def _advance_bar(self) -> None:
        if not self._progress:
            return
        if self._bar is None:
            import sys

            from tqdm.auto import tqdm

            total = self.epochs or (self.history[-1].get("epochs") if self.history else None)
            self._bar = tqdm(total=total, initial=len(self.history) - 1, desc="epochs", unit="epoch",
                             file=sys.stdout)  # a student's progress, not an error: stdout (stderr shows red)
        self._bar.update(1)
        self._bar.refresh()  # show the epoch now, not at the next redraw

