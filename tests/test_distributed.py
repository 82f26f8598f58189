"""Several processes: sharded sampling, DDP training with gloo on the CPU, rank-0-only saving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glmc_core import get_preset
from glmc_core.distributed import DistEnv, ShardedTensorStream, from_environ, shard
from glmc_core.errors import GLMCError
from glmc_core.train import build_state

REPO = Path(__file__).resolve().parents[1]


def _tiny(**kw):
    base = dict(epochs=1, batch_size=16, n_max=24, test_per_class=5, progress=False, device="cpu")
    base.update(kw)
    return get_preset("digits-lt", **base)


def test_shards_are_disjoint_and_make_up_the_global_batch():
    envs = [DistEnv(r, 2, r) for r in range(2)]
    streams = [ShardedTensorStream(build_state(_tiny()).stream, env) for env in envs]
    per_rank = [list(s.global_batches()) for s in streams]
    assert len(per_rank[0]) == len(per_rank[1]) > 1
    for (u0, r0), (u1, r1) in zip(*per_rank, strict=True):
        assert torch.equal(u0, u1) and torch.equal(r0, r1)  # same seed: the same global batches everywhere
        a, b = shard(u0, envs[0]), shard(u0, envs[1])
        assert not set(a.tolist()) & set(b.tolist())  # the uniform part: disjoint shards
        assert sorted(a.tolist() + b.tolist()) == sorted(u0.tolist())
        assert sorted(shard(r0, envs[0]).tolist() + shard(r0, envs[1]).tolist()) == sorted(r0.tolist())


def test_sharded_stream_yields_this_ranks_half_with_its_own_augmentation():
    envs = [DistEnv(r, 2, r) for r in range(2)]
    first = [next(iter(ShardedTensorStream(build_state(_tiny()).stream, env))) for env in envs]
    assert all(b["y_u"].shape[0] == 8 and b["x_r1"].shape[0] == 8 for b in first)  # global batch 16 over 2
    x0, x1 = first[0]["x_u1"], first[1]["x_u1"]
    assert not torch.equal(x0, x1)


def test_single_process_environment_is_inactive(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = from_environ()
    assert not env.active and env.is_main
    assert env.mean({"a": 2.0}) == {"a": 2.0}
    t, p = np.arange(3), np.arange(3)
    assert env.gather_predictions(t, p) == (t, p)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(GLMCError):
        from_environ()


_WORKER = """
import json, os, sys
import torch
from glmc_core import get_preset
from glmc_core.cli import main
from glmc_core.train import fit

out = sys.argv[1]
cfg = get_preset("digits-lt", epochs=2, batch_size=16, n_max=24, test_per_class=5, progress=False, device="cpu",
                 out=out, run_name="lib")
st = fit(cfg, log=lambda m: None)
rank = int(os.environ["RANK"])
flat = torch.cat([p.detach().flatten() for p in st.model.state_dict().values() if p.is_floating_point()])
with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
    json.dump({"history": st.history, "world": st.dist.world_size, "ddp": st.ddp is not None,
               "run_dir": None if st.run_dir is None else str(st.run_dir), "params": flat.double().sum().item(),
               "fast": bool(st.fast)}, fh)
sys.exit(main(["train", "--preset", "digits-lt", "--epochs", "1", "--batch-size", "16", "--set", "n_max=24",
               "--set", "test_per_class=5", "--device", "cpu", "--no-progress", "--out", out, "--run-name", "cli"]))
"""


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "runs")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "runs" / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 and r["ddp"] and not r["fast"] for r in ranks)
    assert ranks[0]["run_dir"] is not None and ranks[1]["run_dir"] is None  # rank 0 alone saves
    strip = lambda h: [{k: v for k, v in rec.items() if "seconds" not in k} for rec in h]  # noqa: E731
    assert strip(ranks[0]["history"]) == strip(ranks[1]["history"])  # metrics gathered: the same everywhere
    assert ranks[0]["params"] == pytest.approx(ranks[1]["params"], rel=1e-6)  # replicas stayed in step
    lib = tmp_path / "runs" / "lib"
    assert len((lib / "metrics.jsonl").read_text().splitlines()) == 2  # one line per epoch, not per process
    assert {"checkpoint.pt", "best.pt", "summary.json", "config.json"} <= {p.name for p in lib.iterdir()}
    cli = tmp_path / "runs" / "cli"
    assert (cli / "summary.json").is_file()
    assert proc.stdout.count("run folder:") == 1  # the CLI prints on rank 0 only
