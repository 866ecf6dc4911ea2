"""The training loop, generic over objectives.

:class:`Trainer` runs any *objective*: an ``nn.Module`` whose ``forward(*batch, generator=None,
rng=None)`` returns ``(loss, metrics)`` (0-d tensors; a ``count`` metric, if present, weights the
averages) and whose ``model`` attribute is the network to EMA, checkpoint and export
(``model_key`` names that attribute inside the objective's state dict). MAGNeT's is
:class:`~magnet_audio.training.objectives.MagnetObjective`; a codec objective (codec +
discriminator returning one summed loss) plugs in the same way.

What the loop does per update: ``optim.grad_accum`` micro-batches (DDP or FSDP gradient sync only
on the last), autocast where the device supports it (fp16 with a GradScaler, or bf16), gradient clipping,
AdamW, the learning-rate schedule, and every ``ema.every`` updates an EMA of the weights. Every
``valid.every`` updates the validation loss (with the EMA weights), every ``samples.every`` a few
generated samples, every ``checkpoint.every`` a checkpoint.

The processes, checkpoint files, EMA and metrics log it uses are in :mod:`.runtime`; sharded
training (``distributed.strategy: fsdp``) in :mod:`.sharding`, its checkpoints in :mod:`.dcp`,
TensorBoard logging in :mod:`.tblog`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from ..errors import CheckpointError, InputError, TrainingDiverged
from .config import TrainConfig
from .data import BatchStream, sub_seed
from .dcp import SHARDED_SUFFIX, header_blob, load_training_state, read_header, save_sharded, training_state
from .runtime import (CHECKPOINT_DIR, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, EMA, DistInfo, MetricsLog, autocast,
                      autocast_dtype, barrier, capture_rng, list_checkpoints, load_checkpoint, lr_factor,
                      restore_rng, save_atomic, seed_all)
from .sharding import full, local, shard
from .tblog import TensorBoardLog


logger = logging.getLogger(__name__)

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
        self.autocast_dtype = autocast_dtype(cfg.precision, info.device)
        self.sharded = cfg.distributed.strategy == "fsdp"  # sharded checkpoints, even in one process
        if self.sharded and self.autocast_dtype == torch.float16:
            raise InputError("distributed.strategy fsdp needs bf16 or fp32 precision (this device would use fp16)")
        if self.sharded and info.distributed:
            shard(self.objective, info.device, self.autocast_dtype, cfg.distributed.activation_checkpointing)
            if write_samples is not None:  # generation would need every rank's shards in lockstep
                logger.warning("samples are not written under distributed.strategy fsdp with several processes")
                write_samples = None
        self.model = objective.model
        self.make_batch, self.valid_batches, self.write_samples = make_batch, valid_batches, write_samples
        self.run_dir = Path(cfg.run_dir)
        self.step = 0
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.objective.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.schedule, o.warmup, o.steps, o.lr_min_ratio))
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=self.autocast_dtype == torch.float16)
        self.ema = EMA(self.model, cfg.ema.decay) if cfg.ema.use else None
        self.ddp = None
        if info.distributed and not self.sharded:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=cfg.distributed.find_unused_parameters)
        self.log: MetricsLog | None = None
        self.tb: TensorBoardLog | None = None

    def _autocast(self):
        return autocast(self.info.device, self.autocast_dtype)

    # -------------------------------------------------------------------------------- checkpoints

    def _header(self, rng_states: list[dict]) -> dict:
        return {
            "format": "magnet_audio.training", "version": CHECKPOINT_VERSION, "step": self.step,
            "consumed": self.step * self.cfg.optim.grad_accum, "world_size": self.info.world_size,
            "config": self.cfg.to_dict(), "meta": self.meta, "model_key": self.objective.model_key,
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_states,
        }

    def _state(self, rng_states: list[dict]) -> dict:
        return {**self._header(rng_states), "objective": self.objective.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

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
        for t in tensors:  # sharded: this rank's part (the ranks agree in _stop_if_diverged)
            finite &= torch.isfinite(local(t)).all().to(finite.device)
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
            if not self.sharded:
                self._check_ranks_in_sync()
        else:
            states = [rng]
        path = None
        if self.sharded:
            return self._save_sharded(states)
        if self.info.is_main:
            folder = self.run_dir / CHECKPOINT_DIR
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / CHECKPOINT_FORMAT.format(self.step)
            save_atomic(self._state(states), path)
            for _, old in list_checkpoints(self.run_dir)[:-self.cfg.checkpoint.keep_last]:
                old.unlink()
        barrier(self.info)
        return path

    def _save_sharded(self, rng_states: list[dict]) -> Path | None:
        """Every rank writes its shards (:mod:`.dcp`); rank 0 commits and prunes. The path on rank 0."""
        header = self._header(rng_states)
        header["ema"] = {"count": self.ema.count, "decay": self.ema.decay} if self.ema is not None else None
        state = {**training_state(self.objective, self.optimizer, self.ema), "header": header_blob(header)}
        path = self.run_dir / CHECKPOINT_DIR / CHECKPOINT_FORMAT.format(self.step).replace(".pt", SHARDED_SUFFIX)
        save_sharded(state, path, self.info.is_main, lambda: barrier(self.info))
        if self.info.is_main:
            for _, old in list_checkpoints(self.run_dir)[:-self.cfg.checkpoint.keep_last]:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        barrier(self.info)
        return path if self.info.is_main else None

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
        if ckpt.get("sharded"):
            load_training_state(ckpt, self.objective, self.optimizer, self.ema)
        elif self.sharded and self.info.distributed:
            raise CheckpointError("a single-file (ddp) checkpoint cannot be resumed with distributed.strategy fsdp on "
                                  "several processes: resume it with strategy ddp")
        else:
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
            sync = micro == accum - 1
            if self.sharded and self.info.distributed:  # FSDP's no_sync: reduce-scatter on the last only
                self.objective.set_requires_gradient_sync(sync)
            with (contextlib.nullcontext() if sync or self.ddp is None else self.ddp.no_sync()):
                with self._autocast():
                    loss, metrics = module(*batch)
                finite &= torch.isfinite(loss.detach())
                self.scaler.scale(loss / accum).backward()
            averager.add(metrics)
        self._stop_if_diverged(finite, "loss")  # before the update: the weights stay those of the last step
        self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.optim.max_norm if self.cfg.optim.max_norm > 0 else math.inf  # 0: no clipping
        grad_norm = float(full(torch.nn.utils.clip_grad_norm_(self.objective.parameters(), max_norm)))
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
        batches = list(self.valid_batches)
        count = len(batches)
        if self.sharded and self.info.distributed:  # every forward is collective: pad to the most batches
            n = torch.tensor([count], device=self.info.device)  # nccl reduces CUDA tensors only
            dist.all_reduce(n, op=dist.ReduceOp.MAX)
            batches += [batches[0] if batches else self.make_batch(0)] * (int(n) - count)  # not counted
        with ctx:
            for i, batch in enumerate(batches):
                seed = sub_seed(self.cfg.seed, 3, i, self.info.rank)
                generator = torch.Generator(self.info.device).manual_seed(seed)
                with self._autocast():
                    _, metrics = self.objective(*_to_device(batch, self.info.device), generator=generator,
                                                rng=random.Random(seed))
                if i < count:
                    averager.add(metrics)
        self.objective.train(was_training)
        return averager.reduce(self.info)

    def _log(self, split: str, step: int, metrics: dict[str, float]) -> None:
        self.log.write(split, step, metrics)
        if self.tb is not None:
            self.tb.write(split, step, metrics)

    def _samples(self) -> None:
        out = self.run_dir / "samples" / f"step_{self.step:08d}"
        was_training = self.objective.training
        ctx = self.ema.swapped(self.model) if self.ema is not None else contextlib.nullcontext()
        devices = [self.info.device] if self.info.device.type == "cuda" else []
        with ctx, torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.samples.seed)
            self.write_samples(self.step, out)
        self.objective.train(was_training)
        if self.tb is not None:
            self.tb.add_samples(self.step, out)

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
            if cfg.log.tensorboard:
                self.tb = TensorBoardLog(self.run_dir, self.step if resume is not None else None)
        self.objective.train()
        batches = self._batches()
        bar = tqdm(total=cfg.optim.steps, initial=self.step, desc="train", unit="step",
                   disable=not (info.is_main and cfg.log.progress))
        averager, last_valid = _Averager(), {}
        has_valid = bool(self.valid_batches)
        if info.distributed:  # a rank with no validation batch still takes part (the reduction is collective)
            flag = torch.tensor([float(has_valid)], device=info.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            has_valid = bool(flag.item())
        if has_valid and self.step == 0:  # the starting point, for comparison
            last_valid = self.validate()
            if info.is_main:
                self._log("valid", 0, last_valid)
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
                        self._log("train", self.step, metrics)
                        key = self.objective.progress_metric
                        bar.set_postfix({key: f"{metrics.get(key, float('nan')):.3f}", "lr": f"{lr:.2e}"})
                        if not cfg.log.progress:
                            logger.info("step %d %s", self.step, _fmt(metrics))
                    averager, tokens, seconds = _Averager(), 0, 0.0
                if has_valid and (last or (cfg.valid.every and self.step % cfg.valid.every == 0)):
                    last_valid = self.validate()
                    if info.is_main:
                        self._log("valid", self.step, last_valid)
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
            if self.tb is not None:
                self.tb.close()
        return last_valid


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


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
            # a sharded folder: its header only; each rank reads its shards in Trainer.load
            ckpt = {**read_header(path), "sharded": str(path)} if path.is_dir() else load_checkpoint(path)
            logger.info("resuming from %s (step %d)", path, ckpt["step"])
    elif existing:
        raise InputError(f"{run_dir} already holds checkpoints (the last at step {existing[-1][0]}): pass --resume "
                         "to continue that run, or set run_dir to a new folder")
    if info.is_main:
        (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (run_dir / CHECKPOINT_DIR).glob(".checkpoint_*.tmp-*"):
            stale.unlink()  # left by a process killed while writing
        for stale in (run_dir / CHECKPOINT_DIR).glob(f".checkpoint_*{SHARDED_SUFFIX}.tmp"):
            shutil.rmtree(stale)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return ckpt
