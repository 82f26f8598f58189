"""glmc_core.console: where progress messages go, and the epoch line."""

from glmc_core import console


def test_progress_messages_go_to_stdout_in_a_notebook_and_stderr_elsewhere(capsys, monkeypatch):
    console.default_log("in a terminal")
    out = capsys.readouterr()
    assert "in a terminal" in out.err and not out.out
    monkeypatch.setattr(console, "in_jupyter_kernel", lambda: True)
    console.default_log("in a notebook")
    out = capsys.readouterr()
    assert "in a notebook" in out.out and not out.err


def test_epoch_line_prints_missing_groups_as_n_a_and_keeps_columns():
    r = {"epoch": 3, "top1": 45.123, "many": 80.0, "medium": float("nan"), "few": None, "total": 1.2345, "alpha": 0.99,
         "seconds": 88.04}
    line = console.epoch_line(r, 200)
    assert line == "epoch   3/200  top1 45.12  many  80.0  medium   n/a  few   n/a  loss 1.234  alpha 0.99  88.0s"
