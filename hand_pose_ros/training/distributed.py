"""Process-group set-up for DistributedDataParallel, and the few collectives training needs.

`hand-pose train` runs the same code in three ways:
- plain `hand-pose train ...`: one process, world size 1, no process group;
- `torchrun --nproc_per_node N hand-pose train ...`: torchrun sets RANK, WORLD_SIZE,
  LOCAL_RANK, MASTER_ADDR/PORT; we join with NCCL on CUDA (one GPU per local rank) or
  gloo on CPU;
- tests: two CPU processes with gloo.
Only rank 0 logs and writes files; every collective here is a no-op at world size 1.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this rank's GPU when CUDA is available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device_name: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # A long validation on rank 0 must not trip the collective timeout.
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    elif device.type == "cuda":
        torch.cuda.set_device(device)
    return DistContext(rank, world_size, local_rank, device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (in place) and return it."""
    if ctx.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def from_main(value: float, ctx: DistContext) -> float:
    """Rank 0's value on every rank (one clock decides time-based choices for all)."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def gather_objects(obj, ctx: DistContext) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (small picklable objects only)."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()
