"""Resume exactly: a run stopped at any moment, then resumed, ends with the weights and metrics
of an uninterrupted one (CPU, deterministic). In-process stops (the ``stop`` callable, Ctrl-C in a
notebook) and real processes killed with SIGKILL or interrupted with SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from glmc_core.checkpoint import load_checkpoint
from glmc_core.config import get_preset
from glmc_core.errors import GLMCError
from glmc_core.train import fit

REPO = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "train_seconds")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tiny models run fastest on one thread, and far faster than on two when the CPUs are shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**overrides):
    # About 150 8x8 images in batches of 16: ten steps an epoch.
    base = dict(image_size=8, test_per_class=5, n_max=40, batch_size=16, epochs=3, device="cpu", progress=False,
                deterministic=True)
    return get_preset("digits-lt", **{**base, **overrides})


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights (every tensor), optimiser state and metrics (timing aside)."""
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"]
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert metrics(a) == metrics(b)
    assert len(metrics(a)) == ca["epoch"]


class StopAt:
    """A notebook's stop button pressed after ``step`` steps of (1-based) ``epoch``."""

    def __init__(self, epoch: int, step: int):
        self.epoch, self.step, self.done, self.polls = epoch, step, 0, 0

    def callback(self, event, payload):
        if event == "epoch_end":
            self.done, self.polls = self.done + 1, 0

    def __call__(self) -> bool:  # polled before every step
        self.polls += 1
        return self.done == self.epoch - 1 and self.polls > self.step


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run per loader."""
    out = tmp_path_factory.mktemp("reference")
    runs = {}
    for loader in ("tensor", "dataloader"):
        fit(tiny_config(out=str(out), run_name=loader), loader=loader, log=lambda m: None)
        runs[loader] = out / loader
    return runs


@pytest.mark.parametrize("loader, epoch", [("tensor", 1), ("tensor", 2), ("dataloader", 2)])
def test_stop_then_resume_matches_uninterrupted(tmp_path, reference, loader, epoch):
    stop = StopAt(epoch, 5)
    state = fit(tiny_config(out=str(tmp_path), run_name="r"), loader=loader, stop=stop, callbacks=[stop.callback],
                log=lambda m: None)
    assert state.epoch == epoch - 1  # stopped mid-epoch: that epoch is lost, the ones before are kept
    assert load_checkpoint(tmp_path / "r")["epoch"] == epoch - 1
    assert not (tmp_path / "r" / "summary.json").exists()
    fit(resume=tmp_path / "r", log=lambda m: None)  # the loader comes from the checkpoint
    assert_same_run(tmp_path / "r", reference[loader])
    assert (tmp_path / "r" / "summary.json").exists()


def test_ctrl_c_in_a_notebook_says_how_to_resume(tmp_path, reference):
    press = StopAt(2, 5)

    def interrupt() -> bool:  # Ctrl-C / "interrupt kernel" in the middle of epoch 2
        if press():
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt) as exc:
        fit(tiny_config(out=str(tmp_path), run_name="r"), loader="tensor", stop=interrupt, callbacks=[press.callback],
            log=lambda m: None)
    assert exc.value.run_dir == tmp_path / "r" and exc.value.epoch == 1
    assert any("--resume" in note for note in exc.value.__notes__)
    fit(resume=str(tmp_path / "r" / "checkpoint.pt"), log=lambda m: None)  # the file works as well as the folder
    assert_same_run(tmp_path / "r", reference["tensor"])


def test_folder_without_checkpoint_starts_again_from_its_config(tmp_path, reference):
    """Killed before even the epoch-0 checkpoint was written: --resume starts the run again."""
    stop = StopAt(1, 5)
    fit(tiny_config(out=str(tmp_path), run_name="r"), stop=stop, callbacks=[stop.callback], log=lambda m: None)
    (tmp_path / "r" / "checkpoint.pt").unlink()
    messages = []
    fit(resume=tmp_path / "r", log=messages.append)
    assert "starting it again from its config.json" in messages[0]
    assert_same_run(tmp_path / "r", reference["tensor"])


def test_half_written_metrics_line_is_repaired(tmp_path, reference):
    """A kill between the checkpoint and the metrics line (or mid-line) leaves a partial file."""
    stop = StopAt(2, 5)
    fit(tiny_config(out=str(tmp_path), run_name="r"), stop=stop, callbacks=[stop.callback], log=lambda m: None)
    with open(tmp_path / "r" / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "top1": 1')
    fit(resume=tmp_path / "r", log=lambda m: None)
    assert_same_run(tmp_path / "r", reference["tensor"])


def test_resume_keeps_the_run_settings(tmp_path):
    stop = StopAt(1, 5)
    fit(tiny_config(out=str(tmp_path), run_name="r"), stop=stop, callbacks=[stop.callback], log=lambda m: None)
    with pytest.raises(GLMCError, match="lr cannot change"):
        fit(resume=tmp_path / "r", overrides={"lr": 0.5}, log=lambda m: None)
    with pytest.raises(GLMCError, match="nothing to resume"):
        fit(resume=tmp_path / "missing")


def test_finished_run_resumes_to_itself(tmp_path, reference):
    messages = []
    state = fit(resume=reference["tensor"], log=messages.append, save=False)
    assert state.epoch == 3 and "already finished" in messages[0]


# ----------------------------------------------------------------------------- real processes
def glmc(*args: str) -> list[str]:
    return [sys.executable, "-m", "glmc_core", *args]


def train_args(out: Path, name: str, epochs: int = 2) -> list[str]:
    # 8x8 digits in batches of 8: about 50 steps an epoch, so a kill just after a metrics line lands mid-epoch.
    return ["train", "--preset", "digits-lt", "--epochs", str(epochs), "--out", str(out), "--run-name", name,
            "--deterministic", "--no-progress", "--device", "cpu", "--batch-size", "8",
            "--set", "image_size=8", "--set", "test_per_class=5"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}  # as fast as it gets for this tiny model; same for every run compared


def run_until(args: list[str], ready, sig: int, timeout: float = 90) -> subprocess.CompletedProcess:
    """Start ``glmc``, wait (bounded) until ``ready()`` holds, send ``sig``; returns the finished process."""
    proc = subprocess.Popen(glmc(*args), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"glmc finished before it could be stopped: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("glmc did not reach the point to stop it in time")
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    done = subprocess.run(glmc(*train_args(out, "ref")), env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out / "ref"


@pytest.mark.slow
@pytest.mark.parametrize("after_lines", [0, 1], ids=["first-epoch", "second-epoch"])
def test_sigkill_mid_epoch_then_resume_matches(tmp_path, cli_reference, after_lines):
    run = tmp_path / "r"
    if after_lines == 0:  # killed in its first epoch, once the epoch-0 checkpoint exists
        ready = lambda: (run / "checkpoint.pt").exists()  # noqa: E731
    else:
        ready = lambda: lines(run / "metrics.jsonl") >= after_lines  # noqa: E731
    killed = run_until(train_args(tmp_path, "r"), ready, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(run)["epoch"] == after_lines  # the epoch in progress is all that was lost
    done = subprocess.run(glmc("train", "--resume", str(run), "--no-progress"), env=env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} after epoch {after_lines} of 2" in done.stderr
    assert_same_run(run, cli_reference)


@pytest.mark.slow
def test_sigint_exits_130_with_a_resume_hint(tmp_path, cli_reference):
    run = tmp_path / "r"
    stopped = run_until(train_args(tmp_path, "r"), lambda: lines(run / "metrics.jsonl") >= 1, signal.SIGINT)
    assert stopped.returncode == 130
    last = stopped.stderr.strip().splitlines()[-1]
    assert last == f"glmc: interrupted; {run} keeps epoch 1: continue with 'glmc train --resume {run}'"
    assert "Traceback" not in stopped.stderr
    done = subprocess.run(glmc("train", "--resume", str(run)), env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_run(run, cli_reference)


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """SIGTERM (kill, schedulers, notebook kernels): the checkpoint is finished, the resume line printed, 143."""
    run = tmp_path / "r"
    stopped = run_until(train_args(tmp_path, "r"), lambda: lines(run / "metrics.jsonl") >= 1, signal.SIGTERM)
    assert stopped.returncode == 143, stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    held = load_checkpoint(run)["epoch"]
    assert held >= 1
    assert last == f"glmc: terminated; {run} keeps epoch {held}: continue with 'glmc train --resume {run}'"
    assert "Traceback" not in stopped.stderr


# ------------------------------------------------------------------------------ determinism
def test_deterministic_runs_repeat_bit_for_bit_and_the_switch_turns_off():
    a = fit(tiny_config(epochs=2), save=False, log=lambda m: None)
    assert torch.are_deterministic_algorithms_enabled()
    b = fit(tiny_config(epochs=2), save=False, log=lambda m: None)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in a.history] == \
        [{k: v for k, v in r.items() if k not in TIMING} for r in b.history]
    fit(tiny_config(epochs=1, deterministic=False), save=False, log=lambda m: None)
    assert not torch.are_deterministic_algorithms_enabled()  # a later run in the same notebook is not forced


def test_resume_on_another_kind_of_device_says_it_is_not_exact(tmp_path):
    stop = StopAt(2, 5)
    fit(tiny_config(out=str(tmp_path), run_name="r"), stop=stop, callbacks=[stop.callback], log=lambda m: None)
    ck = load_checkpoint(tmp_path / "r")
    ck["rng"]["aug"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator's state
    torch.save(ck, tmp_path / "r" / "checkpoint.pt")
    messages = []
    state = fit(resume=tmp_path / "r", log=messages.append)
    assert state.epoch == 3 and any("not bit-identical" in m for m in messages)


def test_checkpoint_every_n_epochs_loses_at_most_those_epochs_and_resumes_exactly(tmp_path, reference):
    """checkpoint_every=2: a stop in epoch 2 finds the epoch-0 checkpoint (epoch 1 was never saved), and the
    resumed run still ends with the uninterrupted run's weights, metrics and best.pt."""
    notes = []
    stop = StopAt(2, 5)
    state = fit(tiny_config(out=str(tmp_path), run_name="r", checkpoint_every=2), loader="tensor", stop=stop,
                callbacks=[stop.callback], log=notes.append)
    assert (state.epoch, state.saved_epoch) == (1, 0)
    assert load_checkpoint(tmp_path / "r")["epoch"] == 0 and not (tmp_path / "r" / "best.pt").exists()
    assert notes[-1] == "stopped during epoch 2; the last checkpoint holds epoch 0"
    resumed = fit(resume=tmp_path / "r", log=lambda m: None)
    assert resumed.saved_epoch == 3  # the last epoch is always saved
    assert_same_run(tmp_path / "r", reference["tensor"])
    best, ref_best = load_checkpoint(tmp_path / "r" / "best.pt"), load_checkpoint(reference["tensor"] / "best.pt")
    assert best["epoch"] == ref_best["epoch"] and best["best"] == ref_best["best"]
    for k in ref_best["model"]:
        assert torch.equal(best["model"][k], ref_best["model"][k]), k
