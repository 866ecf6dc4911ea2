"""What the training loop runs on: processes, precision, the learning-rate schedule, EMA, RNG
states, checkpoint files and the metrics log.

Checkpoints (``RUN/checkpoints/checkpoint_00001000.pt``) are written to a temporary file, fsynced
and renamed, so a checkpoint file is either complete or absent; the last ``checkpoint.keep_last``
are kept. They hold the objective, optimizer, scheduler, GradScaler and EMA states, the RNG states
of every rank (torch, CUDA, numpy, Python) and the step; batches are a pure function of the step
(:class:`~magnet_audio.training.data.EpochSampler`), so ``--resume`` continues bit for bit.

Many processes: under ``torchrun`` (``WORLD_SIZE`` > 1) the objective is wrapped in
DistributedDataParallel (gloo on CPU, nccl on GPU), each rank reads its own shard of the data, and
only rank 0 writes files. At every checkpoint the ranks compare a checksum of their weights and stop
with an error if they ever differ. With ``distributed.strategy: fsdp`` the objective is sharded
instead (:mod:`.sharding`) and checkpoints are sharded folders (:mod:`.dcp`, ``checkpoint_*.dcp``),
which :func:`list_checkpoints`, :func:`load_checkpoint` and :func:`find_checkpoint` accept as well.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..checkpoints import safe_load
from ..errors import CheckpointError, InputError
from ..validation import device as check_device
from .dcp import SHARDED_SUFFIX, is_committed, load_full


logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = "checkpoint_{:08d}.pt"
CHECKPOINT_VERSION = 1

# ----------------------------------------------------------------------------------- processes


@dataclass
class DistInfo:
    """This process's place in the run."""

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


def init_distributed(device: str = "auto", backend: str = "auto", timeout_minutes: float = 60.0) -> DistInfo:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) if any.

    ``device`` ``auto`` picks CUDA (``cuda:LOCAL_RANK``) when available, else CPU; ``backend``
    ``auto`` is nccl on CUDA and gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device, "the config's device")  # "banana" or a missing GPU: one line, not a traceback
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(rank, world, local_rank, dev)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


# ----------------------------------------------------------------------------------- precision, schedule, EMA


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto | fp32 | fp16 | bf16) on ``device``; None = float32.

    ``auto``: bf16 on CUDA devices that support it, else fp16 (with a GradScaler) on CUDA; float32
    on CPU and MPS.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise InputError("precision fp16 needs a CUDA device (use bf16 or fp32 here)")
    if precision not in ("fp16", "bf16"):
        raise InputError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``, or nothing when dtype is None."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def lr_factor(step: int, schedule: str, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate before update ``step`` (0-based), as audiocraft's schedulers:
    linear warmup ``step / warmup``, then ``cosine`` to ``min_ratio`` at ``total`` (and flat after),
    ``inverse_sqrt`` ``sqrt(warmup / step)``, or ``constant``."""
    if step < warmup:
        return step / warmup
    if schedule == "cosine":
        if step >= total:
            return min_ratio
        progress = (step - warmup) / max(1, total - warmup)
        return min_ratio + 0.5 * (1 - min_ratio) * (1 + math.cos(math.pi * progress))
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / max(step, 1))
    if schedule == "constant":
        return 1.0
    raise InputError(f"unknown learning-rate schedule {schedule!r}")


class EMA:
    """Exponential moving average of a module's floating-point parameters and persistent buffers,
    in the "unbiased" form audiocraft uses: ``count = count * decay + 1``, ``w = 1 / count``,
    ``ema = (1 - w) * ema + w * value`` (so the first update copies the weights). Kept in float32.
    It is computed as ``ema + w * (value - ema)``, so a tensor that does not change (a frozen encoder)
    keeps its exact value."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.count = 0.0
        self.state = {k: v.detach().float().clone() for k, v in self._tensors(module).items()}

    @staticmethod
    def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in module.state_dict(keep_vars=False).items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.count = self.count * self.decay + 1
        w = 1.0 / self.count
        for key, value in self._tensors(module).items():
            self.state[key].lerp_(value.float(), w)

    def state_dict(self) -> dict:
        return {"count": self.count, "decay": self.decay, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.state) ^ set(state["state"])
        if missing:
            raise CheckpointError(f"EMA state does not match the model (keys {sorted(missing)[:5]} ...)")
        self.count = float(state["count"])
        for key, value in state["state"].items():
            self.state[key].copy_(value)

    @contextlib.contextmanager
    def swapped(self, module: nn.Module):
        """Run the block with the EMA weights loaded in ``module``; the weights are restored after."""
        backup = {k: v.detach().clone() for k, v in self._tensors(module).items()}
        module.load_state_dict({k: v.to(backup[k].dtype) for k, v in self.state.items()}, strict=False)
        try:
            yield module
        finally:
            module.load_state_dict(backup, strict=False)


# ----------------------------------------------------------------------------------- RNG, checkpoints


def capture_rng() -> dict:
    """This process's RNG states (torch, CUDA, numpy, Python) as plain containers and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints of a run (files, and committed sharded folders),
    oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = []
    for path in [*folder.glob("checkpoint_*.pt"), *folder.glob(f"checkpoint_*{SHARDED_SUFFIX}")]:
        if path.suffix == SHARDED_SUFFIX and not is_committed(path):
            continue  # a killed writer's folder: ignored
        try:
            found.append((int(path.stem.split("_")[1]), path))
        except (IndexError, ValueError):
            continue
    return sorted(found)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (safe loading: tensors and plain containers only); a sharded folder is
    read whole into this process."""
    ckpt = load_full(Path(path)) if Path(path).is_dir() else safe_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "magnet_audio.training":
        raise CheckpointError(f"{path} is not a magnet-audio training checkpoint")
    return ckpt


# ----------------------------------------------------------------------------------- metrics log


class MetricsLog:
    """``metrics.jsonl`` (every row) and ``train.csv`` / ``valid.csv`` in the run folder (rank 0)."""

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.run_dir = run_dir
        if resume_step is not None:  # drop rows of the interrupted interval: they will be redone
            self._truncate(resume_step)

    def _truncate(self, step: int) -> None:
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            rows = [line for line in path.read_text().splitlines() if line.strip()]
            kept = [line for line in rows if _row_step(line) <= step]
            path.write_text("".join(line + "\n" for line in kept))
        for split in ("train", "valid"):
            path = self.run_dir / f"{split}.csv"
            if path.is_file():
                with open(path, newline="") as f:
                    rows = list(csv.reader(f))
                kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerows(kept)

    def write(self, split: str, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **metrics}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"split": split, **row}) + "\n")
        path = self.run_dir / f"{split}.csv"
        rows = []
        if path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        header = list(rows[0]) if rows else []
        if not rows or any(k not in header for k in row):  # (re)write with every column seen so far
            header += [k for k in row if k not in header]
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header, restval="")
                writer.writeheader()
                writer.writerows(rows + [row])
        else:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=header, restval="").writerow(row)


def _row_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return 1 << 62  # a torn line: dropped


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or the last checkpoint of a run folder."""
    path = Path(path).expanduser()
    if is_committed(path):
        return path
    if path.is_dir():
        found = list_checkpoints(path)
        if not found and path.name == "checkpoints":
            found = list_checkpoints(path.parent)
        if not found:
            raise CheckpointError(f"{path} holds no training checkpoint (checkpoints/checkpoint_*.pt or "
                                  f"checkpoint_*{SHARDED_SUFFIX})")
        return found[-1][1]
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    return path


def checkpoint_weights(ckpt: dict, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The exported model's state dict: the EMA weights if kept (and ``use_ema``), else the raw ones."""
    if use_ema and ckpt.get("ema") is not None:
        return dict(ckpt["ema"]["state"])
    prefix = f"{ckpt['model_key']}."
    return {k[len(prefix):]: v for k, v in ckpt["objective"].items() if k.startswith(prefix)}
