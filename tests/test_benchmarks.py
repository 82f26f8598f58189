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
                     "--out", str(tmp_path), "--paths", "reference,fast,fast-fused"])
    assert rc == 0
    files = list(tmp_path.glob("speed-cpu-*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    meta, res = result["meta"], result["results"]
    assert meta["device"].startswith("cpu") and meta["train_images"] > 0
    assert res["reference"]["fast_step"] is False and res["fast"]["fast_step"] is res["fast-fused"]["fast_step"] is True
    for r in res.values():
        assert r["epochs"] == 1 and r["train_seconds_per_epoch"] > 0 and r["images_per_second"] > 0
        assert r["peak_gpu_memory_gib"] is None  # no GPU figures are made up on the CPU
    for name in ("fast", "fast-fused"):
        assert meta["ratios"][name]["train"] == pytest.approx(
            res["reference"]["train_seconds_per_epoch"] / res[name]["train_seconds_per_epoch"])
    assert meta["ratio"] == meta["ratios"]["fast"]
    out = capsys.readouterr().out
    assert "faster per training epoch" in out and str(files[0]) in out


def test_bench_speed_refuses_unknown_paths():
    with pytest.raises(GLMCError, match="--paths"):
        _load().main(["--paths", "turbo"])


@pytest.mark.slow
def test_gpu_session_script_runs_both_calls_at_toy_size(tmp_path, cifar10_zip):
    """benchmarks/gpu_session.sh, the prepared GPU checks, runs through on the CPU (GLMC_SMOKE=1) and leaves
    in $OUT what the device tool would bring back: each call's log and a tarball of its results."""
    import os
    import subprocess
    import sys
    import tarfile

    script = BENCH.parent / "gpu_session.sh"
    env = {**os.environ, "OUT": str(tmp_path), "GLMC_SMOKE": "1", "GLMC_CIFAR10": str(cifar10_zip),
           "PYTHON": sys.executable, "GLMC_RESULTS": str(tmp_path / "results"), "GLMC_RUNS": str(tmp_path / "runs")}
    for call in ("check", "full"):
        res = subprocess.run(["bash", str(script), call], env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        log = (tmp_path / f"{call}.log").read_text()
        steps = [line for line in log.splitlines() if line.startswith("=== ") and ": exit " in line]
        assert steps and all(line.split(": exit ")[1].startswith("0 ") for line in steps), steps
        with tarfile.open(tmp_path / f"results-{call}.tgz") as tar:
            names = tar.getnames()
        assert any(n.endswith("summary.json") for n in names), names
    assert len(steps) == 1  # full: the one long reproduction
    assert any(n.split("/")[-1].startswith("speed-cpu-") for n in names)  # results accumulate over the calls
    assert "decoding images" not in (tmp_path / "check.log").read_text()  # no progress bars in the logs


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
