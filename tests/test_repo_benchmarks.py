"""The speed benchmark runs end to end on the CPU with tiny settings and writes its result file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from glmc_core.errors import GLMCError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_speed", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_speed_tiny_on_cpu(tmp_path, capsys):
    bench = _load()
    rc = bench.main(["--preset", "digits-lt", "--epochs", "1", "--subset", "16", "--workers", "0", "--device", "cpu",
                     "--out", str(tmp_path), "--paths", "reference,fast,fast-fused,fast-fused-grouped"])
    assert rc == 0
    files = list(tmp_path.glob("speed-cpu-*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    meta, res = result["meta"], result["results"]
    assert meta["device"].startswith("cpu") and meta["train_images"] > 0 and meta["complete"]
    assert meta["torch"] and Path(meta["glmc_core"]) == BENCH.parents[1] / "glmc_core"
    assert res["reference"]["fast_step"] is False and all(res[n]["fast_step"] for n in res if n != "reference")
    for r in res.values():
        assert r["epochs"] == 1 and r["train_seconds_per_epoch"] > 0 and r["images_per_second"] > 0
        assert r["ms_per_step"] == pytest.approx(1000 * r["train_seconds_per_epoch"] / r["steps_per_epoch"])
        assert r["peak_gpu_memory_gib"] is None  # no GPU figures are made up on the CPU
        assert r["capture_held"] is False and {"top1_last", "many_last", "medium_last", "few_last"} <= set(r)
    assert res["fast"]["step"] == "fast step, eager (no capture on this device)"
    assert res["fast-fused-grouped"]["overrides"] == {"fuse_views": True, "view_norm": "grouped"}
    for name in ("fast", "fast-fused"):
        assert meta["ratios"][name]["train"] == pytest.approx(
            res["reference"]["train_seconds_per_epoch"] / res[name]["train_seconds_per_epoch"])
        assert meta["ratios"][name]["capture_held"] is False
    assert meta["ratio"] == meta["ratios"]["fast"]
    assert meta["fastest"] in res and meta["fastest_flags"] == bench.variant_flags(meta["fastest"])
    out = capsys.readouterr().out
    assert "the reference per training epoch" in out and str(files[0]) in out
    assert "[NOT the captured fast path: capture did not hold]" in out


def test_bench_speed_never_reports_a_failed_capture_as_the_captured_path(tmp_path, capsys, monkeypatch):
    """A capture that fails falls back to the eager fast step; the result says so (capture_held false, the
    error, 'EAGER' in the step), and the report flags its ratio."""
    import glmc_core.train as train_mod

    plain = train_mod.maybe_fast_runner

    def failing_runner(state, force=None):
        runner = plain(state, force)
        if runner is not None:
            runner.graph.requested = True  # as on a GPU whose capture breaks
        return runner

    monkeypatch.setattr(train_mod, "maybe_fast_runner", failing_runner)
    assert _load().main(["--preset", "digits-lt", "--epochs", "1", "--subset", "16", "--workers", "0", "--device",
                         "cpu", "--out", str(tmp_path), "--paths", "reference,fast"]) == 0
    (result,) = [json.loads(f.read_text()) for f in tmp_path.glob("speed-*.json")]
    fast = result["results"]["fast"]
    assert fast["capture_requested"] and not fast["capture_held"] and fast["capture_error"]
    assert fast["step"].startswith("fast step, EAGER after a failed capture (")
    assert result["meta"]["ratios"]["fast"]["capture_held"] is False
    assert result["meta"]["fastest_capture_held"] is False
    assert "fast: " in capsys.readouterr().out


def test_bench_speed_keeps_the_paths_measured_before_an_interrupt(tmp_path, monkeypatch):
    """A time limit's SIGINT in the middle: the JSON (rewritten after every path) keeps what was measured."""
    bench = _load()
    plain = bench.time_path

    def time_path(path, *a, **k):
        if path == "fast":
            raise KeyboardInterrupt
        return plain(path, *a, **k)

    monkeypatch.setattr(bench, "time_path", time_path)
    rc = bench.main(["--preset", "digits-lt", "--epochs", "1", "--subset", "16", "--workers", "0", "--device", "cpu",
                     "--out", str(tmp_path), "--paths", "reference,fast"])
    assert rc == 130
    (result,) = [json.loads(f.read_text()) for f in tmp_path.glob("speed-*.json")]
    assert list(result["results"]) == ["reference"] and result["meta"]["interrupted_during"] == "fast"
    assert result["meta"]["complete"] is False


def test_bench_speed_refuses_unknown_paths():
    with pytest.raises(GLMCError, match="--paths"):
        _load().main(["--paths", "turbo"])


def _clean_python(tmp_path: Path) -> Path:
    """A python3 that does NOT have glmc installed, as on the GPU machine: the same interpreter and packages,
    but without site processing, so the editable install's .pth hook is not run (PYTHONPATH still counts)."""
    import os
    import site
    import subprocess
    import sys

    packages = ":".join(p for p in site.getsitepackages() if Path(p).is_dir())
    wrapper = tmp_path / "python3-clean"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{packages}" '
                       f'exec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(wrapper), "-c", "import glmc_core"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert "No module named 'glmc_core'" in res.stderr  # really no glmc for this python
    return wrapper


def test_bench_speed_runs_as_a_plain_script_without_glmc_installed(tmp_path):
    """python benchmarks/bench_speed.py, from another folder, with a python that has no glmc: the script finds
    the checkout's glmc_core itself (issue 15: the speed ratio would otherwise be lost on the GPU machine)."""
    import os
    import subprocess

    py = _clean_python(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(py), str(BENCH), "--preset", "digits-lt", "--epochs", "1", "--subset", "16",
                          "--workers", "0", "--device", "cpu", "--paths", "fast", "--out", str(tmp_path / "r")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (result,) = [json.loads(f.read_text()) for f in (tmp_path / "r").glob("speed-*.json")]
    assert Path(result["meta"]["glmc_core"]) == BENCH.parents[1] / "glmc_core"


@pytest.mark.slow
def test_gpu_check_runs_every_step_at_toy_size_without_glmc_installed(tmp_path, cifar10_zip):
    """benchmarks/gpu_check.sh, the one prepared GPU call, runs through on the CPU (GLMC_SMOKE=1) with a python
    that does not have glmc installed, and leaves in $OUT what the device tool would bring back: the log, the
    status of every step and one tarball of all result JSONs, logs, metrics and the test outputs."""
    import os
    import subprocess
    import tarfile

    out = tmp_path / "out"
    out.mkdir()
    py = _clean_python(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "OUT": str(out), "GLMC_SMOKE": "1",
           "GLMC_CIFAR10": str(cifar10_zip), "PYTHON": str(py), "GLMC_WORK": str(tmp_path / "work"),
           "GLMC_CAPTURE_CHECK": "python",
           "GLMC_BUDGET": "1500"}  # a loaded 2-core CPU needs minutes for what a GPU machine does in seconds
    env.pop("GLMC_CACHE_DIR", None)
    res = subprocess.run(["bash", str(BENCH.parent / "gpu_check.sh")], env=env, capture_output=True, text=True,
                         timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_check.log", "results.tgz", "status.tsv"]  # the device tool brings back at most 8 files
    rows = [line.split("\t") for line in (out / "status.tsv").read_text().splitlines()[1:]]
    assert [r[0].split(":")[0] for r in rows] == ["a", "b", "c", "q", "d"], rows
    assert all(r[1] == "0" for r in rows), rows
    log = (out / "gpu_check.log").read_text()
    assert f'"glmc_core": "{BENCH.parents[1] / "glmc_core"}"' in log  # imported from the checkout
    assert "decoding images" not in log  # no progress bars in the logs
    with tarfile.open(out / "results.tgz") as tar:
        names = [n.split("/")[-1] for n in tar.getnames()]
        runs = {n: json.load(tar.extractfile(m)) for m in tar.getmembers()
                for n in [m.name.split("/")[-1]] if n.startswith("run-") and n.endswith(".json")}
    for prefix in ("speed-cpu-", "capture-check-cpu-", "run-e2-cpu-", "run-e2-quirks-cpu-", "run-e3-cpu-"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    assert "test-outputs-e3.npz" in names and "gpu_check.log" in names
    # d's run laid out as a shipped reference run (no checkpoint), ready to be copied into reference_runs/
    from glmc_core import analysis

    shipped = "reference_runs/cifar10-lt-if100-resnet8-3ep-cpu"
    outputs = "test_outputs.npz" if hasattr(analysis, "write_test_outputs") else "test-outputs-gpu_run.npz"
    with tarfile.open(out / "results.tgz") as tar:
        members = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
        log_text = tar.extractfile(f"./{shipped}/glmc.log").read().decode()
    assert {f"{shipped}/glmc/{n}" for n in ("config.json", "metrics.jsonl", "summary.json", outputs)} == {
        m for m in members if m.startswith(f"{shipped}/glmc/")}, members
    assert "epoch   3/3" in log_text and "final (epoch 3)" in log_text
    for name, r in runs.items():
        assert r["status"] == "finished" and r["meta"]["torch"] and r["meta"]["device"].startswith("cpu"), name
        for key in ("capture_held", "ms_per_step", "seconds_per_epoch", "ratio", "peak_gpu_memory_gib", "top1",
                    "many", "medium", "few", "checkpoint_every"):
            assert key in r, (name, key)
    assert not any(n.endswith(".pt") for n in names)  # never a checkpoint
def test_same_method_script_writes_both_paths(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("same_method", BENCH.parent / "same_method.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--epochs", "1", "--seeds", "0", "--device", "cpu", "--out", str(tmp_path)]) == 0
    (result,) = [json.loads(f.read_text()) for f in tmp_path.glob("same-method-digits-lt-cpu-*.json")]
    runs = {r["path"]: r for r in result["runs"]}
    assert runs["reference"]["fast_step"] is False and runs["fast"]["fast_step"] is True
    assert result["summary"]["fast"]["top1_mean"] == runs["fast"]["top1"]
    assert "results:" in capsys.readouterr().out


def test_gpu_check_skips_what_no_longer_fits_and_still_packs(tmp_path):
    """A step whose time the budget no longer has is skipped with a reason, and $OUT still gets the log, the
    status and the tarball (here with no python at all: only the script's own plumbing runs)."""
    import os
    import subprocess
    import tarfile

    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": "false", "GLMC_WORK": str(tmp_path / "work"),
           "GLMC_STEPS": "c d", "GLMC_BUDGET": "30", "GLMC_SMOKE": "1"}
    res = subprocess.run(["bash", str(BENCH.parent / "gpu_check.sh")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [line.split("\t") for line in (out / "status.tsv").read_text().splitlines()[1:]]
    assert rows[0][0].startswith("c: ") and rows[0][4].startswith("skipped: only "), rows
    assert rows[1][0].startswith("d: ") and "run it alone: GLMC_STEPS=d" in rows[1][4], rows
    assert "gpu_check: done after" in (out / "gpu_check.log").read_text()
    with tarfile.open(out / "results.tgz") as tar:
        assert {n.split("/")[-1] for n in tar.getnames()} >= {"gpu_check.log", "status.tsv"}
