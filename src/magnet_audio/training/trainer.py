"""The training loop (generic over objectives) and MAGNeT LM training built on it.

:class:`Trainer` runs any *objective*: an ``nn.Module`` whose ``forward(*batch, generator=None,
rng=None)`` returns ``(loss, metrics)`` (0-d tensors; a ``count`` metric, if present, weights the
averages) and whose ``model`` attribute is the network to EMA, checkpoint and export
(``model_key`` names that attribute inside the objective's state dict). MAGNeT's is
:class:`~magnet_audio.training.objectives.MagnetObjective`; a codec objective (codec +
discriminator returning one summed loss) plugs in the same way.

What the loop does per update: ``optim.grad_accum`` micro-batches (DDP gradient sync only on the
last), autocast where the device supports it (fp16 with a GradScaler, or bf16), gradient clipping,
AdamW, the learning-rate schedule, and every ``ema.every`` updates an EMA of the weights. Every
``valid.every`` updates the validation loss (with the EMA weights), every ``samples.every`` a few
generated samples, every ``checkpoint.every`` a checkpoint.

Checkpoints (``RUN/checkpoints/checkpoint_00001000.pt``) are written to a temporary file, fsynced
and renamed, so a checkpoint file is either complete or absent; the last ``checkpoint.keep_last``
are kept. They hold the objective, optimizer, scheduler, GradScaler and EMA states, the RNG states
of every rank (torch, CUDA, numpy, Python) and the step; batches are a pure function of the step
(:class:`~magnet_audio.training.data.EpochSampler`), so ``--resume`` continues bit for bit.

Many processes: under ``torchrun`` (``WORLD_SIZE`` > 1) the objective is wrapped in
DistributedDataParallel (gloo on CPU, nccl on GPU), each rank reads its own shard of the data, and
only rank 0 writes files. At every checkpoint the ranks compare a checksum of their weights and stop
with an error if they ever differ. Every rank holds the whole model: FSDP (sharding parameters and
optimizer state over ranks) is not implemented; see ``configs/train_magnet.yaml`` for the options.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from ..checkpoints import safe_load
from ..errors import CheckpointError, InputError, TrainingDiverged
from ..lm.loading import load_lm_model
from ..lm.magnet import MagnetLM, MagnetLMConfig
from ..utils import slugify
from ..validation import device as check_device
from .config import TrainConfig
from .data import BatchStream, DescriptionConfig, EpochSampler, split_items, sub_seed
from .objectives import MagnetObjective
from .tokens import CacheMeta, TokenCache, TokenCrops, is_token_cache, tokenize

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
    """(step, path) of the complete checkpoints of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = []
    for path in folder.glob("checkpoint_*.pt"):
        try:
            found.append((int(path.stem.split("_")[1]), path))
        except (IndexError, ValueError):
            continue
    return sorted(found)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (safe loading: tensors and plain containers only)."""
    ckpt = safe_load(path)
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


# ----------------------------------------------------------------------------------- the loop


def _to_device(batch, device: torch.device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch


class _Averager:
    """Count-weighted means of metrics (each over the batches that reported it), reduced over ranks."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        w = float(metrics.get("count", 1.0))
        for k, v in metrics.items():
            if k != "count":
                self.sums[k] = self.sums.get(k, 0.0) + float(v) * w
                self.weights[k] = self.weights.get(k, 0.0) + w

    def reduce(self, info: DistInfo) -> dict[str, float]:
        keys = sorted(self.sums)
        if info.distributed:  # every rank reports the same keys only eventually: reduce a fixed set
            names: list = [None] * info.world_size
            dist.all_gather_object(names, keys)
            keys = sorted(set().union(*names))
            t = torch.tensor([[self.sums.get(k, 0.0), self.weights.get(k, 0.0)] for k in keys], dtype=torch.float64)
            dist.all_reduce(t)
            sums, weights = t[:, 0].tolist(), t[:, 1].tolist()
        else:
            sums, weights = [self.sums[k] for k in keys], [self.weights[k] for k in keys]
        out = {k: s / w for k, s, w in zip(keys, sums, weights) if w > 0}
        if "ce" in out:
            out["ppl"] = math.exp(min(out["ce"], 50.0))
        return out


class Trainer:
    """Runs ``cfg.optim.steps`` updates of ``objective`` (see the module docstring).

    ``cfg`` may be any config with the sections this reads: ``run_dir``, ``seed``, ``precision``,
    ``optim`` (:class:`~.config.OptimConfig`), ``ema``, ``valid.every``, ``samples.every`` and
    ``samples.seed``, ``checkpoint``, ``log``, ``distributed.find_unused_parameters``,
    ``data.num_workers`` and ``to_dict()`` (stored in checkpoints).

    Args:
        make_batch: position -> batch (a tuple passed as ``objective(*batch)``); position counts
            micro-batches of this rank from the start of training.
        valid_batches: the validation batches of this rank.
        write_samples: optional ``(step, out_dir)`` callback run on rank 0 (with the EMA weights).
        meta: what export needs to rebuild the model (stored in every checkpoint).
    """

    def __init__(self, cfg: TrainConfig, objective: nn.Module, info: DistInfo, make_batch: Callable[[int], tuple],
                 valid_batches: list[tuple], meta: dict,
                 write_samples: Callable[[int, Path], None] | None = None):
        self.cfg, self.info, self.meta = cfg, info, meta
        self.objective = objective.to(info.device)
        self.model = objective.model
        self.make_batch, self.valid_batches, self.write_samples = make_batch, valid_batches, write_samples
        self.run_dir = Path(cfg.run_dir)
        self.step = 0
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.objective.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.schedule, o.warmup, o.steps, o.lr_min_ratio))
        self.autocast_dtype = autocast_dtype(cfg.precision, info.device)
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=self.autocast_dtype == torch.float16)
        self.ema = EMA(self.model, cfg.ema.decay) if cfg.ema.use else None
        self.ddp = None
        if info.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=cfg.distributed.find_unused_parameters)
        self.log: MetricsLog | None = None

    def _autocast(self):
        return autocast(self.info.device, self.autocast_dtype)

    # -------------------------------------------------------------------------------- checkpoints

    def _state(self, rng_states: list[dict]) -> dict:
        return {
            "format": "magnet_audio.training", "version": CHECKPOINT_VERSION, "step": self.step,
            "consumed": self.step * self.cfg.optim.grad_accum, "world_size": self.info.world_size,
            "config": self.cfg.to_dict(), "meta": self.meta, "model_key": self.objective.model_key,
            "objective": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None, "rng": rng_states,
        }

    def _stop_if_diverged(self, finite: torch.Tensor, what: str) -> None:
        """Raise :class:`TrainingDiverged` (on every rank) unless ``finite`` (a bool tensor) holds on all
        ranks; the message names the last checkpoint, which is from before the divergence."""
        if self.info.distributed:
            flag = finite.to(torch.int32)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag.bool()
        if bool(finite):
            return
        found = list_checkpoints(self.run_dir)
        last = (f"the last good checkpoint is {found[-1][1]} (step {found[-1][0]}): lower optim.lr (or raise "
                f"optim.warmup) and continue from it with --resume {found[-1][1]}" if found
                else "no checkpoint was written before it: lower optim.lr (or raise optim.warmup) and start again")
        raise TrainingDiverged(f"training diverged at step {self.step + (what == 'loss')}: the {what} became NaN or "
                               f"infinite, so training stopped without saving it; {last}")

    def _weights_finite(self) -> torch.Tensor:
        tensors = [p.detach() for p in self.objective.parameters() if p.is_floating_point()]
        if self.ema is not None:
            tensors += list(self.ema.state.values())
        finite = torch.ones((), dtype=torch.bool, device=self.info.device)
        for t in tensors:
            finite &= torch.isfinite(t).all().to(finite.device)
        return finite

    def save_checkpoint(self) -> Path | None:
        """Every rank takes part (RNG states are gathered); rank 0 writes. Returns the path on rank 0.
        Weights that became NaN or infinite stop training here (:class:`TrainingDiverged`) instead of
        being saved, so ``keep_last`` never rotates away the last good checkpoint."""
        self._stop_if_diverged(self._weights_finite(), "weights")
        rng = capture_rng()
        if self.info.distributed:
            states: list = [None] * self.info.world_size
            dist.all_gather_object(states, rng)
            self._check_ranks_in_sync()
        else:
            states = [rng]
        path = None
        if self.info.is_main:
            folder = self.run_dir / CHECKPOINT_DIR
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / CHECKPOINT_FORMAT.format(self.step)
            save_atomic(self._state(states), path)
            for _, old in list_checkpoints(self.run_dir)[:-self.cfg.checkpoint.keep_last]:
                old.unlink()
        barrier(self.info)
        return path

    def _check_ranks_in_sync(self) -> None:
        """Raise if the ranks' weights differ (they must be identical under DDP)."""
        with torch.no_grad():
            checksum = torch.stack([p.detach().double().sum() for p in self.objective.parameters()]).sum()
        sums: list = [None] * self.info.world_size
        dist.all_gather_object(sums, float(checksum))
        if max(sums) != min(sums):
            raise RuntimeError(f"ranks out of sync at step {self.step}: weight checksums {sums}")

    def load(self, ckpt: dict) -> None:
        if ckpt.get("model_key") != self.objective.model_key:
            raise CheckpointError(f"the checkpoint trains {ckpt.get('model_key')!r}, not {self.objective.model_key!r}")
        try:
            self.objective.load_state_dict(ckpt["objective"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint does not match this configuration's model: {exc}") from exc
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self._apply_optim_config(ckpt.get("config") or {})
        if ckpt["scaler"] and self.scaler.is_enabled():  # empty when the run did not use fp16
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt["ema"] is not None:
                self.ema.load_state_dict(ckpt["ema"])
            else:
                logger.warning("the checkpoint has no EMA; starting it from the current weights")
        self.step = int(ckpt["step"])
        states = ckpt["rng"]
        if len(states) == self.info.world_size:
            restore_rng(states[self.info.rank])
        else:
            logger.warning("the checkpoint was written by %d processes, this run has %d: RNG streams are "
                           "reseeded, so the run is not a bit-for-bit continuation", len(states), self.info.world_size)
            seed_all(sub_seed(self.cfg.seed, self.info.rank, self.step))

    def _apply_optim_config(self, saved: dict) -> None:
        """On resume, the optimizer's hyper-parameters of *this* config apply (``optim.lr``, ``betas``,
        ``eps``, ``weight_decay``; the schedule's shape always follows the config), not those saved in
        the checkpoint's optimizer state; each changed value is logged."""
        o = self.cfg.optim
        before = (saved.get("optim") or {}) if isinstance(saved, dict) else {}
        for key in ("lr", "betas", "eps", "weight_decay", "schedule", "warmup", "steps", "lr_min_ratio"):
            if key in before and before[key] != getattr(o, key):
                logger.warning("resuming with optim.%s changed from %s to %s: the new value applies", key,
                               before[key], getattr(o, key))
        for group in self.optimizer.param_groups:
            group.update(betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, initial_lr=o.lr)
        self.scheduler.base_lrs = [o.lr] * len(self.optimizer.param_groups)
        for group, factor in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas):
            group["lr"] = o.lr * factor(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # -------------------------------------------------------------------------------- steps

    def _batches(self) -> Iterator[tuple]:
        start = self.step * self.cfg.optim.grad_accum
        return iter(BatchStream(self.make_batch, start, self.cfg.data.num_workers))

    def _train_step(self, batches: Iterator[tuple], averager: _Averager) -> tuple[float, int]:
        """One update; returns the gradient norm (before clipping) and the number of tokens (elements
        of the first batch tensor: B x K x T codes for the LM) this rank processed."""
        accum = self.cfg.optim.grad_accum
        module = self.ddp if self.ddp is not None else self.objective
        self.optimizer.zero_grad(set_to_none=True)
        tokens = 0
        finite = torch.ones((), dtype=torch.bool, device=self.info.device)
        for micro in range(accum):
            batch = _to_device(next(batches), self.info.device)
            tokens += int(batch[0].numel())
            sync = self.ddp is None or micro == accum - 1
            with (contextlib.nullcontext() if sync else self.ddp.no_sync()):
                with self._autocast():
                    loss, metrics = module(*batch)
                finite &= torch.isfinite(loss.detach())
                self.scaler.scale(loss / accum).backward()
            averager.add(metrics)
        self._stop_if_diverged(finite, "loss")  # before the update: the weights stay those of the last step
        self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.optim.max_norm if self.cfg.optim.max_norm > 0 else math.inf  # 0: no clipping
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.objective.parameters(), max_norm))
        if math.isfinite(grad_norm) or self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # a GradScaler skips non-finite steps itself
        else:
            logger.warning("step %d: non-finite gradient norm, update skipped", self.step)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        if self.ema is not None and self.step % self.cfg.ema.every == 0:
            self.ema.update(self.model)
        return grad_norm, tokens

    def _out_of_time(self, started: float, budget_minutes: float) -> bool:
        """Whether the wall-clock budget is spent; under DDP the ranks agree (any rank out of time
        stops them all at the same update)."""
        over = time.monotonic() - started >= 60.0 * budget_minutes
        if self.info.distributed:
            flag = torch.tensor([float(over)], device=self.info.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = bool(flag.item())
        return over

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss on the validation batches with the EMA weights (if any); the same masks every time."""
        averager = _Averager()
        was_training = self.objective.training
        self.objective.eval()
        ctx = self.ema.swapped(self.model) if self.ema is not None else contextlib.nullcontext()
        with ctx:
            for i, batch in enumerate(self.valid_batches):
                seed = sub_seed(self.cfg.seed, 3, i, self.info.rank)
                generator = torch.Generator(self.info.device).manual_seed(seed)
                with self._autocast():
                    _, metrics = self.objective(*_to_device(batch, self.info.device), generator=generator,
                                                rng=random.Random(seed))
                averager.add(metrics)
        self.objective.train(was_training)
        return averager.reduce(self.info)

    def _samples(self) -> None:
        out = self.run_dir / "samples" / f"step_{self.step:08d}"
        was_training = self.objective.training
        ctx = self.ema.swapped(self.model) if self.ema is not None else contextlib.nullcontext()
        devices = [self.info.device] if self.info.device.type == "cuda" else []
        with ctx, torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.samples.seed)
            self.write_samples(self.step, out)
        self.objective.train(was_training)

    def run(self, resume: dict | None = None) -> dict[str, float]:
        """Train to ``cfg.optim.steps``, or until ``cfg.optim.max_minutes`` are spent (from ``resume``,
        a loaded checkpoint, if given); returns the last validation metrics."""
        cfg, info = self.cfg, self.info
        started = time.monotonic()  # optim.max_minutes counts from here (each invocation has its own budget)
        if resume is not None:
            self.load(resume)
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.log = MetricsLog(self.run_dir, self.step if resume is not None else None)
        self.objective.train()
        batches = self._batches()
        bar = tqdm(total=cfg.optim.steps, initial=self.step, desc="train", unit="step",
                   disable=not (info.is_main and cfg.log.progress))
        averager, last_valid = _Averager(), {}
        if self.valid_batches and self.step == 0:  # the starting point, for comparison
            last_valid = self.validate()
            if info.is_main:
                self.log.write("valid", 0, last_valid)
                logger.info("step 0 valid %s", _fmt(last_valid))
        tokens, seconds = 0, 0.0  # of the training steps alone (no validation, samples, checkpoints)
        budget = getattr(cfg.optim, "max_minutes", None)
        try:
            while self.step < cfg.optim.steps:
                lr = self.optimizer.param_groups[0]["lr"]
                start = time.perf_counter()
                grad_norm, step_tokens = self._train_step(batches, averager)
                tokens, seconds = tokens + step_tokens, seconds + time.perf_counter() - start
                bar.update(1)
                last = self.step == cfg.optim.steps
                if budget is not None and not last and self._out_of_time(started, budget):
                    last = True
                    if info.is_main:
                        logger.info("optim.max_minutes (%g) spent at step %d of %d: stopping with a final "
                                    "checkpoint (--resume continues the run)", budget, self.step, cfg.optim.steps)
                if self.step % cfg.log.every == 0 or last:
                    metrics = averager.reduce(info)
                    metrics.update(lr=lr, grad_norm=grad_norm, tokens_per_s=tokens * info.world_size / seconds)
                    if info.is_main:
                        self.log.write("train", self.step, metrics)
                        key = self.objective.progress_metric
                        bar.set_postfix({key: f"{metrics.get(key, float('nan')):.3f}", "lr": f"{lr:.2e}"})
                        if not cfg.log.progress:
                            logger.info("step %d %s", self.step, _fmt(metrics))
                    averager, tokens, seconds = _Averager(), 0, 0.0
                if self.valid_batches and (last or (cfg.valid.every and self.step % cfg.valid.every == 0)):
                    last_valid = self.validate()
                    if info.is_main:
                        self.log.write("valid", self.step, last_valid)
                        logger.info("step %d valid %s", self.step, _fmt(last_valid))
                if (self.write_samples is not None and info.is_main and cfg.samples.every
                        and (self.step % cfg.samples.every == 0 or last)):
                    self._samples()
                if self.step % cfg.checkpoint.every == 0 or last:
                    path = self.save_checkpoint()
                    if path is not None:
                        logger.info("checkpoint %s", path)
                if last:
                    break
        finally:
            bar.close()
        return last_valid


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


# ----------------------------------------------------------------------------------- MAGNeT LM training


def init_lm_weights(lm: MagnetLM) -> None:
    """audiocraft's initialisation for training from scratch (``weight_init gaussian``,
    ``depthwise_init current``): truncated normals (at ±3 std) with std 1/sqrt(fan_in) for the
    embeddings, the heads and every Linear of each layer, divided by sqrt(2 i) in layer i (from 1);
    the packed attention projections keep PyTorch's default Linear initialisation."""
    def normal_(weight: torch.Tensor, std: float) -> None:
        nn.init.trunc_normal_(weight, std=std, a=-3 * std, b=3 * std)

    dim = lm.cfg.dim
    for emb in lm.emb:
        normal_(emb.weight, 1 / math.sqrt(dim))
    for depth, layer in enumerate(lm.transformer.layers, 1):
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                normal_(module.weight, 1 / math.sqrt(module.in_features) / math.sqrt(2 * depth))
        for attn in (layer.self_attn, layer.cross_attention):
            if attn is not None:
                nn.init.kaiming_uniform_(attn.in_proj_weight, a=math.sqrt(5))
    for head in lm.linears:
        normal_(head.weight, 1 / math.sqrt(dim))


def default_decoding_steps(n_q: int) -> list[int]:
    """audiocraft's [20, 10, 10, 10] for any number of codebooks."""
    return [20] + [10] * (n_q - 1)


def _absolute_if_local(source: str) -> str:
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def codec_source_for(cfg: TrainConfig, cache_codec: str | None = None) -> str | None:
    """The codec of a run: ``model.codec``, else the one shipped with ``model.init_from``, else the
    one the token cache was made with."""
    if cfg.model.codec:
        return _absolute_if_local(cfg.model.codec)
    if cfg.model.init_from:
        from ..genmodel import codec_source
        return _absolute_if_local(codec_source(cfg.model.init_from))
    return cache_codec


class _CropBatches:
    """position -> (codes [B, K, T], descriptions) for one rank (picklable for DataLoader workers)."""

    def __init__(self, crops: TokenCrops, sampler: EpochSampler, seed: int):
        self.crops, self.sampler, self.seed = crops, sampler, seed

    def __call__(self, position: int) -> tuple[torch.Tensor, list[str | None]]:
        epoch, indices = self.sampler.batch(position)
        seeds = [sub_seed(self.seed, 1, epoch, position, self.sampler.rank, j) for j in range(len(indices))]
        return self.crops.batch(indices, seeds)


def _valid_batches(crops: TokenCrops | None, cfg: TrainConfig, info: DistInfo) -> list[tuple]:
    """Fixed validation crops: ``valid.batches`` global batches (default: one crop per item),
    spread over the ranks."""
    if crops is None:
        return []
    B = cfg.data.batch_size
    total = cfg.valid.batches * B * info.world_size if cfg.valid.batches else len(crops)
    mine = list(range(info.rank, total, info.world_size))
    batches = []
    for start in range(0, len(mine), B):
        chunk = mine[start:start + B]
        batches.append(crops.batch([i % len(crops) for i in chunk], [sub_seed(cfg.seed, 2, i) for i in chunk]))
    return batches


def _prepare_tokens(cfg: TrainConfig, info: DistInfo, codec_source: str | None,
                    load_codec: Callable[[], object]) -> tuple[TokenCache, list[dict], TokenCache | None, list[dict]]:
    """Open (or make, from audio) the train and validation token caches; returns (train cache,
    train entries, valid cache, valid entries)."""
    min_duration = cfg.data.min_duration if cfg.data.min_duration is not None else cfg.data.segment_duration

    def open_cache(source: str, name: str) -> TokenCache:
        if is_token_cache(source):
            return TokenCache(source)
        if codec_source is None:
            raise InputError(f"data.{name} ({source}) is audio: set model.codec to the codec that tokenizes it "
                             f"(or run `magnet tokenize` first and point data.{name} to the cache)")
        out = Path(cfg.run_dir) / "tokens" / name
        if info.is_main:
            logger.info("tokenizing %s into %s with %s", source, out, codec_source)
            tokenize(source, codec_source, out, device=info.device, chunk_seconds=cfg.data.tokenize_chunk_seconds,
                     min_duration=min_duration, progress=cfg.log.progress, codec=load_codec())
        barrier(info)
        return TokenCache(out)

    train_cache = open_cache(cfg.data.train, "train")
    if cfg.data.valid:
        valid_cache = open_cache(cfg.data.valid, "valid")
        m, v = train_cache.meta, valid_cache.meta
        if (m.n_q, m.card, m.frame_rate) != (v.n_q, v.card, v.frame_rate):
            raise InputError(f"the train and valid token caches come from different codecs ({m.codec} vs {v.codec})")
        return train_cache, train_cache.entries, valid_cache, valid_cache.entries
    train_entries, valid_entries = split_items(train_cache.entries, cfg.data.valid_fraction, cfg.seed)
    return train_cache, train_entries, (train_cache if valid_entries else None), valid_entries


def build_lm(cfg: TrainConfig, meta: CacheMeta) -> MagnetLM:
    """A new LM sized by ``cfg.model`` (initialised as audiocraft does, seeded by ``cfg.seed``), or
    the pretrained one of ``model.init_from`` with this config's dropouts, segment length and
    ``model.hybrid`` (a plain MAGNeT can be fine-tuned into a hybrid one: the weights are the same)."""
    frame_rate = int(round(meta.frame_rate))
    m = cfg.model
    if m.init_from:
        lm = load_lm_model(m.init_from, device="cpu", t5_path=m.conditioner.path, frame_rate=frame_rate)
        if (lm.cfg.n_q, lm.cfg.card) != (meta.n_q, meta.card):
            raise InputError(f"model.init_from {m.init_from} models {lm.cfg.n_q} codebooks of {lm.cfg.card}, but the "
                             f"tokens have {meta.n_q} of {meta.card}: tokenize with the model's codec")
        lm.cfg.segment_duration = cfg.data.segment_duration
        lm.cfg.cfg_dropout = m.cfg_dropout
        lm.cfg.conditioner.word_dropout = m.conditioner.word_dropout
        lm.condition_provider.text.word_dropout = m.conditioner.word_dropout
        lm.cfg.hybrid = m.hybrid
    else:
        lm_cfg = MagnetLMConfig(dim=m.dim, num_heads=m.num_heads, num_layers=m.num_layers, hidden_scale=m.hidden_scale,
                                n_q=meta.n_q, card=meta.card, segment_duration=cfg.data.segment_duration,
                                frame_rate=frame_rate, cfg_dropout=m.cfg_dropout, subcodes_context=m.subcodes_context,
                                span_len=m.span_len, hybrid=m.hybrid, conditioner=copy.deepcopy(m.conditioner),
                                positional_embedding=m.positional_embedding)
        torch.manual_seed(cfg.seed)
        lm = MagnetLM(lm_cfg)
        init_lm_weights(lm)
    lm.condition_provider.text.load_text_model()
    return lm


def _sample_writer(cfg: TrainConfig, lm: MagnetLM, codec, prompts: list[str | None]) -> Callable[[int, Path], None]:
    def write(step: int, out: Path) -> None:
        from ..audio import audio_write
        from ..models import MAGNeT

        model = MAGNeT("training", codec, lm)
        model.set_generation_params(decoding_steps=cfg.samples.decoding_steps or default_decoding_steps(lm.cfg.n_q))
        wav = model.generate(prompts)
        out.mkdir(parents=True, exist_ok=True)
        for i, (prompt, audio) in enumerate(zip(prompts, wav)):
            audio_write(out / f"{i:02d}_{slugify(prompt or 'unconditional')}", audio.float().cpu(), model.sample_rate,
                        strategy="loudness", loudness_compressor=True)
        logger.info("step %d: wrote %d samples to %s", step, len(prompts), out)
    return write


def train(cfg: TrainConfig, resume: bool | str = False) -> dict[str, float]:
    """Train (or fine-tune) a MAGNeT LM as ``cfg`` says; returns the last validation metrics.

    ``resume``: True continues from the run folder's last checkpoint (from scratch if there is
    none), a path from that checkpoint. Without it, a run folder that already has checkpoints is
    refused. Works alone or under torchrun (see the module docstring).
    """
    info = init_distributed(cfg.device, cfg.distributed.backend, cfg.distributed.timeout_minutes)
    owns_group = info.distributed
    try:
        return _train(cfg, resume, info)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def open_run(cfg, resume: bool | str, info: DistInfo) -> dict | None:
    """Prepare ``cfg.run_dir`` and return the checkpoint to resume from (None: a fresh start).

    ``resume``: True takes the run folder's last checkpoint (a fresh start if there is none), a
    path that checkpoint. Without it, a run folder that already holds checkpoints is refused. Rank 0
    removes temporary files left by a killed writer and writes the resolved ``config.yaml``.
    """
    run_dir = Path(cfg.run_dir)
    existing = list_checkpoints(run_dir)
    ckpt = None
    if resume:
        path = Path(resume) if isinstance(resume, (str, os.PathLike)) else (existing[-1][1] if existing else None)
        if path is None:
            logger.info("no checkpoint in %s: starting from scratch", run_dir)
        else:
            ckpt = load_checkpoint(path)
            logger.info("resuming from %s (step %d)", path, ckpt["step"])
    elif existing:
        raise InputError(f"{run_dir} already holds checkpoints (the last at step {existing[-1][0]}): pass --resume "
                         "to continue that run, or set run_dir to a new folder")
    if info.is_main:
        (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (run_dir / CHECKPOINT_DIR).glob(".checkpoint_*.tmp-*"):
            stale.unlink()  # left by a process killed while writing
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return ckpt


def _train(cfg: TrainConfig, resume: bool | str, info: DistInfo) -> dict[str, float]:
    ckpt = open_run(cfg, resume, info)
    if ckpt is not None and (ckpt.get("meta") or {}).get("kind") != "magnet":
        raise CheckpointError("the checkpoint to resume is not a MAGNeT LM training checkpoint")
    source = codec_source_for(cfg)

    @functools.cache
    def load_codec():  # only when tokenizing audio or writing samples
        from ..codec import load_compression_model
        return load_compression_model(source, device=info.device)

    train_cache, train_entries, valid_cache, valid_entries = _prepare_tokens(cfg, info, source, load_codec)
    source = source or train_cache.meta.codec
    meta = train_cache.meta
    lm = build_lm(cfg, meta)
    segment_frames = lm.cfg.max_len
    descriptions = DescriptionConfig(cfg.data.merge_text_p, cfg.data.drop_desc_p, cfg.data.drop_other_p)
    train_crops = TokenCrops(train_cache, train_entries, segment_frames, descriptions)
    valid_crops = TokenCrops(valid_cache, valid_entries, segment_frames) if valid_entries else None
    if valid_crops is None:
        logger.warning("no validation data (data.valid is unset and data.valid_fraction gives no item)")
    sampler = EpochSampler(len(train_crops), cfg.data.batch_size, cfg.seed, info.rank, info.world_size)
    if cfg.model.stage_weights is not None and len(cfg.model.stage_weights) != lm.cfg.n_q:
        raise InputError(f"model.stage_weights has {len(cfg.model.stage_weights)} values; the codec has "
                         f"{lm.cfg.n_q} codebooks (one weight each)")
    objective = MagnetObjective(lm, cfg.model.cfg_dropout, ar_weight=cfg.model.hybrid_ar_weight,
                                max_prefix=cfg.model.hybrid_max_prefix, stage_weights=cfg.model.stage_weights)
    write_samples = None
    if cfg.samples.every and info.is_main:
        prompts = list(cfg.samples.prompts)[:cfg.samples.num]
        if not prompts:
            prompts = [valid_crops.crop(i % len(valid_crops), sub_seed(cfg.seed, 4, i))[1] if valid_crops else None
                       for i in range(cfg.samples.num)]
        write_samples = _sample_writer(cfg, lm, load_codec(), prompts)
    export_meta = {"kind": "magnet", "lm_config": lm.cfg.to_dict(), "codec": source}
    seed_all(sub_seed(cfg.seed, 5, info.rank))  # per-rank streams: stages, masks, dropouts
    trainer = Trainer(cfg, objective, info, _CropBatches(train_crops, sampler, cfg.seed),
                      _valid_batches(valid_crops, cfg, info), export_meta, write_samples)
    logger.info("training %.1fM parameters on %d train / %d valid items, %d process(es), device %s",
                sum(p.numel() for p in lm.parameters()) / 1e6, len(train_crops),
                len(valid_crops) if valid_crops else 0, info.world_size, info.device)
    return trainer.run(ckpt)
