"""Several GPUs (or CPU processes) with ``torchrun``: DDP, a sharded sampler, gathered metrics.

``torchrun --nproc_per_node=N -m glmc_core train ...`` starts N processes; each reads
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` from the environment (as torchvision's reference
scripts do), joins the process group (NCCL on GPUs, gloo on the CPU) and trains one replica
of the model inside :class:`~torch.nn.parallel.DistributedDataParallel`.

Conventions, chosen so that N processes train the same method as one:

* ``batch_size`` is the *global* batch: each step, every process draws the same uniform and
  class-resampled index batches (same seed) and keeps its own slice ``[rank::N]``; the
  slices are disjoint and together are exactly the single-process batch. Steps per epoch,
  the learning rate and the α schedule are unchanged.
* λ and the CutMix box are shared by all processes (same numpy seed), as in one process.
* Crop and flip draws differ per process: the augmentation generator is reseeded each epoch
  from the (shared) data generator plus the rank, so a resumed run repeats them.
* Batch-norm statistics are per process during the step (plain DDP) and rank 0's running
  statistics are broadcast before evaluation; evaluation is sharded and the predictions
  gathered, so every process computes the same metrics. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from .config import METHOD_SPECS
from .data.samplers import uniform_batches
from .data.streams import TensorStream
from .errors import GLMCError
from .metrics import predict, summarize

__all__ = ["DistEnv", "from_environ", "setup", "shard", "ShardedTensorStream", "attach", "cleanup"]


@dataclass
class DistEnv:
    """This process's place in the job (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the processes (every process gets the same result)."""
        if not self.active or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def gather_predictions(self, targets: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every process's ``(targets, preds)`` concatenated, on every process."""
        if not self.active:
            return targets, preds
        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, (targets, preds))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def evaluate(self, model, split, cfg, data, device) -> dict:
        """:func:`~glmc_core.metrics.evaluate` sharded: each process predicts its slice ``[rank::N]`` of
        ``split``; the predictions are gathered, so every process gets the same metrics."""
        idx = np.arange(self.rank, len(split), self.world_size)
        t, p = predict(model, split.subset(idx), cfg, data, device) if len(idx) else \
            (np.zeros(0, np.int64), np.zeros(0, np.int64))
        t, p = self.gather_predictions(t, p)
        return summarize(t, p, data.num_classes, data.groups)

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Broadcast rank 0's buffers (batch-norm running statistics) to every process."""
        if self.active:
            for buf in model.buffers():
                dist.broadcast(buf.data, src=0)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_environ() -> DistEnv:
    """The job as torchrun describes it in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (else one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return DistEnv(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise GLMCError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (set by torchrun)") from None


def setup(cfg, env: DistEnv):
    """Join the process group and pick this process's device; returns the config to train with."""
    if not env.active:
        return cfg
    if cfg.batch_size % env.world_size:
        raise GLMCError(f"batch size {cfg.batch_size} (global) must be divisible by the {env.world_size} processes")
    use_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if torch.cuda.device_count() <= env.local_rank:
            raise GLMCError(f"process {env.rank} wants GPU {env.local_rank} but only "
                            f"{torch.cuda.device_count()} are visible; use --nproc_per_node <= the GPU count")
        torch.cuda.set_device(env.local_rank)
        cfg = cfg.replace(device=f"cuda:{env.local_rank}")
    else:
        cfg = cfg.replace(device="cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return cfg


def cleanup(wait_for_peers: bool = True) -> None:
    """Leave the process group (if this process joined one).

    wait_for_peers: meet every process at a barrier first (after a run that ended normally). A gloo process
    that tears its connections down while a peer still talks to it can abort at exit ("terminate called
    without an active exception"). After an error, leave at once: a peer that has failed never reaches it.
    """
    if dist.is_available() and dist.is_initialized():
        try:
            if wait_for_peers:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def shard(indices: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This process's slice of a global index batch: disjoint across ranks, union = the batch."""
    return indices[env.rank :: env.world_size]


class ShardedTensorStream(TensorStream):
    """A :class:`TensorStream` that yields this process's shard of each global batch."""

    def __init__(self, base: TensorStream, env: DistEnv):
        self.__dict__.update(base.__dict__)
        self.env = env

    def global_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(idx_u, idx_r)`` global batches, identical on every process."""
        for idx_u in uniform_batches(len(self.labels), self.batch_size, self.data_gen):
            yield idx_u, self.resampler.sample(len(idx_u), self.data_gen)

    def __iter__(self) -> Iterator[dict]:
        # The epoch's augmentation seed comes from the shared, checkpointed data generator.
        seed = int(torch.randint(0, 2**62, (1,), generator=self.data_gen))
        self.aug_gen.manual_seed(seed + self.env.rank)
        for idx_u, idx_r in self.global_batches():
            if len(idx_u) < self.env.world_size:  # a last batch too small to give every process one image
                continue
            yield self.batch(shard(idx_u, self.env), shard(idx_r, self.env))


def _has_unused_parameters(cfg) -> bool:
    """Methods whose loss leaves heads out (DDP must then look for unused parameters)."""
    return not (METHOD_SPECS[cfg.method].every_head and cfg.gamma != 0)


def attach(state, env: DistEnv) -> None:
    """Turn a one-process :class:`~glmc_core.train.TrainState` into this process's replica."""
    state.dist = env
    if not env.active:
        return
    if type(state.stream) is not TensorStream:
        raise GLMCError("several processes need the training images in memory (the tensor loader); "
                        "file-based data sets train on one GPU for now")
    state.stream = ShardedTensorStream(state.stream, env)
    dev = state.device
    state.ddp = torch.nn.parallel.DistributedDataParallel(
        state.model, device_ids=[dev.index] if dev.type == "cuda" else None,
        find_unused_parameters=_has_unused_parameters(state.cfg))
