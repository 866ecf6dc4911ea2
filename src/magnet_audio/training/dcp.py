"""Sharded training checkpoints with ``torch.distributed.checkpoint`` (DCP).

Under ``distributed.strategy: fsdp`` a checkpoint is a folder ``RUN/checkpoints/checkpoint_00001000.dcp``
that every rank writes its shards into (``__R_0.distcp`` files and DCP's ``.metadata``). It holds:

* ``objective`` and ``optimizer``: the state dicts of ``torch.distributed.checkpoint.state_dict.
  get_state_dict`` (parameter names of the unsharded model; the optimizer's state keyed by them);
* ``ema``: ``{"state": ...}``, the EMA tensors (each rank its shards);
* ``header``: the rest, one ``torch.save`` blob: step, config, meta, scheduler, scaler, EMA count,
  and the RNG states of every rank (gathered, so any world size can read them).

Commit: the ranks write into ``.checkpoint_00001000.dcp.tmp``; after a barrier rank 0 writes the
marker file ``COMMITTED`` (fsynced) and renames the folder to its final name. A folder without the
marker (a run killed while writing) is never listed, so ``--resume`` ignores it.

Reading: :func:`load_into` fills the caller's (possibly sharded) state dict in place, on any number
of processes (DCP reshards); :func:`load_full` reads everything into whole tensors in one process
(no process group), which export and inspection use; :func:`read_header` reads the header alone.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import CheckpointError

SHARDED_SUFFIX = ".dcp"
MARKER = "COMMITTED"


def is_committed(path: Path) -> bool:
    """Whether ``path`` is a complete sharded checkpoint folder."""
    return path.is_dir() and (path / MARKER).is_file() and (path / ".metadata").is_file()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def header_blob(header: dict) -> io.BytesIO:
    blob = io.BytesIO()
    torch.save(header, blob)
    blob.seek(0)
    return blob


def _read_blob(blob: io.BytesIO) -> dict:
    blob.seek(0)
    return torch.load(blob, map_location="cpu", weights_only=True)


def save_sharded(state: dict, path: Path, is_main: bool, barrier: Callable[[], None]) -> Path:
    """Write ``state`` (``objective``, ``optimizer``, optional ``ema``, and ``header`` from
    :func:`header_blob`) as the sharded checkpoint ``path``; every rank calls it. Returns ``path``."""
    import torch.distributed.checkpoint as dcp

    tmp = path.with_name(f".{path.name}.tmp")
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    dcp.save(state, checkpoint_id=str(tmp))
    barrier()  # every rank's shards are on disk
    if is_main:
        with open(tmp / MARKER, "w") as f:
            f.write("ok\n")
            f.flush()
            os.fsync(f.fileno())
        if path.exists():  # the same step written again (a rerun): replace it
            shutil.rmtree(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    barrier()
    return path


def read_header(path: Path) -> dict:
    """The header of a sharded checkpoint (no tensor of the model is read)."""
    import torch.distributed.checkpoint as dcp

    state = {"header": io.BytesIO()}
    dcp.load(state, checkpoint_id=str(path), no_dist=True)
    return _read_blob(state["header"])


def load_into(state: dict, path: Path) -> dict:
    """Fill ``state`` (tensors and ``DTensor`` shards, loaded in place; resharded to this run's
    layout) from ``path``; returns the header. Every rank calls it."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    state["header"] = io.BytesIO()
    dcp.load(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())
    return _read_blob(state.pop("header"))


def load_full(path: Path) -> dict:
    """The whole checkpoint in this process as whole tensors, laid out as a single-file training
    checkpoint (the optimizer's state keyed by parameter names)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    state: dict = {}  # what format_utils.dcp_to_torch_save reads, without writing it to a file
    _load_state_dict(state, storage_reader=FileSystemReader(str(path)), planner=_EmptyStateDictLoadPlanner(),
                     no_dist=True)
    header = _read_blob(state.pop("header"))
    ema = header.pop("ema", None)
    if ema is not None:
        ema = {**ema, "state": state["ema"]["state"]}
    return {**header, "objective": state["objective"], "optimizer": state["optimizer"], "ema": ema,
            "sharded": str(path)}


def training_state(objective: nn.Module, optimizer: torch.optim.Optimizer, ema) -> dict:
    """What a checkpoint holds besides its header, as DCP state dicts (sharded under FSDP): the
    objective, the optimizer (keyed by parameter names) and the EMA's tensors (``ema``: an
    :class:`~magnet_audio.training.runtime.EMA` or None)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(objective, optimizer)
    state = {"objective": model_state, "optimizer": optim_state}
    if ema is not None:
        state["ema"] = {"state": ema.state}
    return state


def load_training_state(ckpt: dict, objective: nn.Module, optimizer: torch.optim.Optimizer, ema) -> None:
    """Load the tensors of the sharded checkpoint ``ckpt["sharded"]`` (a header from
    :func:`read_header`) into this run's layout, on any number of processes (DCP reshards); the
    EMA's tensors go into ``ckpt["ema"]["state"]`` for ``EMA.load_state_dict``."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    state = training_state(objective, optimizer, ema)
    if ema is not None and ckpt.get("ema") is None:
        del state["ema"]  # the checkpoint has none: the EMA starts from the current weights
    try:
        load_into(state, Path(ckpt["sharded"]))
        set_state_dict(objective, optimizer, model_state_dict=state["objective"], optim_state_dict=state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"the checkpoint does not match this configuration's model: {exc}") from exc
    if "ema" in state:
        ckpt["ema"] = {**ckpt["ema"], "state": state["ema"]["state"]}
