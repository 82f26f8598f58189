"""The notebooks' live-training callback, without a browser: events, redraws, the stop button, stop and resume."""

from __future__ import annotations

import pytest

from glmc_core import analysis as A
from glmc_core.notebook.live import LivePlot


def _record(epoch):
    return {"epoch": epoch, "top1": 10.0 * epoch, "many": 50.0, "medium": 20.0, "few": None, "loss_c": 1.0,
            "loss_cb": 0.5, "loss_sim": -0.2, "total": 1.3, "alpha": 0.5, "lr": 0.01}


def test_epoch_events_are_recorded_and_redrawn():
    lp = LivePlot(progress=False)
    lp("step", {"epoch": 1, "step": 10, "steps": 20, "total": 1.5, "loss_c": 1.0})
    assert lp.redraws == 0 and "step 10/20" in lp.status.value
    lp("epoch_end", _record(1))
    lp("epoch_end", _record(2))
    assert [r["epoch"] for r in lp.history] == [1, 2] and lp.redraws == 2
    assert "epoch 2" in lp.status.value and "few n/a" in lp.status.value
    assert len(lp.output.outputs) == 1  # clear_output(wait=True): one figure, not a stack
    lp("end", {"final": {}})
    assert lp.button.disabled and lp.summary == {"final": {}} and "finished" in lp.status.value
    assert len(lp.figure().axes[0].lines) == 4


def test_stop_button_sets_the_flag_fit_polls():
    lp = LivePlot(progress=False)
    assert lp.stop() is False
    lp.button.click()  # fires the on_click handler, as a browser click does
    assert lp.stop() is True and lp.button.disabled and "stop requested" in lp.status.value


def test_stop_after_requests_a_stop_once_enough_epochs_are_done():
    lp = LivePlot(history=[_record(1)], stop_after=3, progress=False)
    lp("epoch_end", _record(2))
    assert not lp.stop()
    lp("epoch_end", _record(3))
    assert lp.stop()


@pytest.mark.slow
def test_fit_stops_on_request_and_resumes_to_the_end(tmp_path):
    from glmc_core.train import fit

    lp = LivePlot(stop_after=1, progress=False)
    from glmc_core import get_preset

    cfg = get_preset("digits-lt", epochs=2, image_size=8, batch_size=64, out=str(tmp_path), run_name="stop",
                     progress=False, device="cpu")
    state = fit(cfg, callbacks=[lp], stop=lp.stop, log=lambda _m: None)
    assert state.epoch == 1 and len(lp.history) == 1 and lp.summary is None
    run_dir = tmp_path / "stop"
    if lp.button is not None:  # the view says the run stopped and how to continue it
        assert lp.button.description == "stopped" and f"fit(resume={str(run_dir)!r})" in lp.status.value
    assert not A.load_run(run_dir).finished
    lp2 = LivePlot(history=A.load_history(run_dir), progress=False)
    state = fit(resume=run_dir, callbacks=[lp2], stop=lp2.stop, log=lambda _m: None)
    assert state.epoch == 2 and [r["epoch"] for r in lp2.history] == [1, 2] and lp2.summary is not None
    assert A.load_run(run_dir).finished


def test_no_kernel_in_tests_so_redraws_set_the_outputs_directly():
    from glmc_core import console

    assert not console.ipython_kernel_running() and not console.in_jupyter_kernel()
    lp = LivePlot(progress=False)
    lp("epoch_end", _record(1))
    if lp.output is not None:
        assert lp.redraws == 1 and "image/png" in lp.output.outputs[0]["data"]
