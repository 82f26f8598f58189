"""benchmarks/bench_cpu.py runs end to end at toy size and writes both loops' figures (timings mean nothing here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_cpu_smoke(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_cpu.py"), "--preset", "digits-lt", "--models", "resnet8",
           "--threads", "1", "--rounds", "1", "--steps", "1", "--variants", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = tmp_path.glob("cpu-speed-*.json")
    result = json.loads(path.read_text())
    (row,) = result["rows"]
    assert row["model"] == "resnet8" and row["threads"] == 1
    assert row["ours_precision"] == ("bf16" if result["native_bf16"] else "fp32")
    assert {"ours", "plain_fp32", "plain_bf16-cl"} <= set(row["s_per_step"])
    assert row["ratio_ours_over_plain_fp32"] > 0 and result["evaluation"][0]["test_images"] > 0
