"""Joining the process group ``torchrun`` describes, for training and for sharded generation.

Under ``torchrun`` every process has ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its
environment; :func:`init_distributed` joins the group (nccl on CUDA, gloo otherwise) and says where
this process runs. Without torchrun it is a no-op that returns rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .validation import device as check_device


@dataclass
class DistInfo:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this call created the process group (its caller destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", backend: str = "auto", timeout_minutes: float = 60.0,
                     what: str = "the device") -> DistInfo:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) if any,
    or the one already joined.

    ``device`` ``auto`` picks CUDA (``cuda:LOCAL_RANK``) when available, else CPU; ``cuda`` without
    an index is ``cuda:LOCAL_RANK``; ``backend`` ``auto`` is nccl on CUDA and gloo otherwise. ``what``
    names the device in the error for an unknown one.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device, what)  # "banana" or a missing GPU: one line, not a traceback
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world == 1:
        return DistInfo(rank, world, local_rank, dev)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(rank, world, local_rank, dev, owns_group=True)


def barrier(info: DistInfo) -> None:
    """Wait for every process (on nccl, on this process's GPU); nothing in one process."""
    if info.distributed:
        dist.barrier(device_ids=[info.device.index] if info.device.type == "cuda" else None)
