"""Data-parallel training over processes or machines with torch.distributed (DDP), launched by torchrun.

One machine, two processes (gloo on CPU, NCCL on GPU)::

    torchrun --nproc-per-node 2 -m rnnkit lm train --train corpus.txt --out runs/lm --batch-size 32

Two machines (run on each; node-rank 0 on the first, 1 on the second; HOST is the first machine)::

    torchrun --nnodes 2 --nproc-per-node 4 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m rnnkit lm train --train corpus.txt --out runs/lm --batch-size 64

``--batch-size`` is the global batch: each of the W processes takes its 1/W share of every batch, and
the gradients are averaged so that the step equals the single-process step on the whole batch. Only rank
0 writes the run folder.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor, nn


def setup() -> tuple[int, int]:
    """Join the process group torchrun describes (if any); return (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank_world()


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes, else ``model``."""
    if rank_world()[1] == 1:
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    if rank_world()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t


def all_gather(t: Tensor) -> list[Tensor]:
    """Every rank's ``t`` (same shape on all ranks), in rank order."""
    if rank_world()[1] == 1:
        return [t]
    parts = [torch.empty_like(t) for _ in range(rank_world()[1])]
    dist.all_gather(parts, t.contiguous())
    return parts


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def teardown() -> None:
    """End the process group, every rank first waiting for the others (a clean finish only: the train verb calls
    it after training returned on every rank). Without the wait a rank that destroyed its group while another was
    still finishing made that one abort at exit (CI, 2026-12-05: "terminate called without an active exception" in
    rank 1 of a two-process music run, after its training had finished)."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
