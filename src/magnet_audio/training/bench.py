"""``magnet bench train``: training throughput (tokens/s) and peak memory of the MAGNeT LM.

A random-weight LM of the given size (audiocraft's ``tiny``/``small``/``medium`` scales, or custom
``dim``/``heads``/``layers``) with a LUT text conditioner runs full training updates of the MAGNeT
objective — span masking, forward, cross-entropy, backward, clipping, AdamW — on random codes of
``duration`` seconds (50 frames/s, 4 codebooks of 2048) in the precision the trainer would use.
After ``warmup`` untimed updates, ``steps`` timed updates give:

- ``tokens_per_s``: B x K x T codes per second (``frames_per_s`` = B x T per second);
- ``step_s``: seconds per update;
- ``peak_memory``: CUDA ``max_memory_allocated``, or the CPU process's peak resident set size (see
  :class:`magnet_audio.benchmarking.PeakMemory`).

Several processes (``strategy`` ``ddp`` or ``fsdp``, ``nproc`` of them, gloo on CPU and nccl on
CUDA): each rank runs ``batch`` samples per update, wrapped in DistributedDataParallel or sharded
with FSDP2 (:mod:`.sharding`); ``tokens_per_s`` counts every rank's codes, and each rank reports its
own peak memory and ``state_bytes``: the bytes of the parameters, gradients and AdamW states it
holds (its shards under FSDP), counted from the tensors. ``magnet bench train --strategy fsdp``
runs DDP with the same settings too, for comparison.

Not a test: numbers depend on the machine; record them to compare later work on the same one.
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..benchmarking import RANDOM_SIZES, PeakMemory, synchronize
from ..conditioning import ConditionerConfig
from ..errors import InputError
from ..lm.magnet import MagnetLM, MagnetLMConfig
from ..utils import resolve_device
from .objectives import MagnetObjective
from .runtime import autocast, autocast_dtype
from .sharding import local, shard
from .trainer import init_lm_weights

WORDS = ("calm", "piano", "energetic", "rock", "drums", "lofi", "beat", "ambient", "pads", "synth", "bass", "jazz")


def run_train_bench(size: str = "small", dim: int | None = None, heads: int | None = None,
                    layers: int | None = None, batch: int = 4, duration: float = 10.0, steps: int = 5,
                    warmup: int = 2, device: str | None = None, precision: str = "auto", n_q: int = 4,
                    card: int = 2048, seed: int = 0, strategy: str = "single", nproc: int = 2) -> dict:
    """Time ``steps`` training updates (after ``warmup``); returns the measurements as a dict.
    ``strategy`` ``single`` (this process), ``ddp`` or ``fsdp`` (``nproc`` processes)."""
    if size not in RANDOM_SIZES:
        raise InputError(f"--size must be one of {', '.join(RANDOM_SIZES)}, got {size!r}")
    base_dim, base_heads, base_layers = RANDOM_SIZES[size]
    dim, heads, layers = dim or base_dim, heads or base_heads, layers or base_layers
    if batch < 1 or steps < 1 or warmup < 0 or duration <= 0:
        raise InputError("need --batch >= 1, --steps >= 1, --warmup >= 0 and --duration > 0")
    if strategy not in ("single", "ddp", "fsdp") or nproc < 1:
        raise InputError(f"--strategy must be single, ddp or fsdp and --nproc >= 1, got {strategy!r}, {nproc}")
    if strategy != "single" and not dist.is_initialized():
        return _spawn(strategy, nproc, dict(size=size, dim=dim, heads=heads, layers=layers, batch=batch,
                                            duration=duration, steps=steps, warmup=warmup, device=device,
                                            precision=precision, n_q=n_q, card=card, seed=seed))
    dev = resolve_device(device)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if dev.type == "cuda" and dist.is_initialized():
        dev = torch.device("cuda", rank)
    torch.manual_seed(seed)
    random.seed(seed)
    cfg = MagnetLMConfig(dim=dim, num_heads=heads, num_layers=layers, n_q=n_q, card=card, segment_duration=duration,
                         frame_rate=50, conditioner=ConditionerConfig(model="lut", n_bins=4096,
                                                                      text_dim=min(dim, 768), word_dropout=0.3))
    lm = MagnetLM(cfg)
    init_lm_weights(lm)
    objective = MagnetObjective(lm, cfg_dropout=0.3).to(dev).train()
    dtype = autocast_dtype(precision, dev)
    module, world = objective, dist.get_world_size() if dist.is_initialized() else 1
    if dist.is_initialized() and strategy == "fsdp":
        module = shard(objective, dev, dtype)
    elif dist.is_initialized() and strategy == "ddp":
        module = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[dev.index] if dev.type == "cuda"
                                                           else None)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
    T = cfg.max_len
    torch.manual_seed(seed + rank)  # each rank its own batch and masks
    codes = torch.randint(0, card, (batch, n_q, T), device=dev)
    texts = [" ".join(random.choices(WORDS, k=6)) for _ in range(batch)]

    def update():
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, dtype):
            loss, _ = module(codes, texts)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(objective.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        update()
    synchronize(dev)
    with PeakMemory(dev) as memory:
        start = time.perf_counter()
        for _ in range(steps):
            update()
        synchronize(dev)
        elapsed = time.perf_counter() - start
    state = [local(p) for p in objective.parameters()] + [local(p.grad) for p in objective.parameters()
                                                          if p.grad is not None]
    state += [local(v) for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    return {
        "size": size, "dim": dim, "heads": heads, "layers": layers,
        "params": sum(p.numel() for p in lm.parameters()), "batch": batch, "duration_s": duration, "frames": T,
        "n_q": n_q, "card": card, "steps": steps, "precision": str(dtype).replace("torch.", "") if dtype else "float32",
        "device": dev.type if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "threads": torch.get_num_threads(), "step_s": elapsed / steps,
        "tokens_per_s": world * batch * n_q * T * steps / elapsed, "frames_per_s": world * batch * T * steps / elapsed,
        "peak_memory": memory.peak, "peak_memory_kind": memory.kind,
        "state_bytes": sum(t.numel() * t.element_size() for t in state),
        "torch": torch.__version__, "platform": platform.platform(),
    }


def _worker(rank: int, strategy: str, nproc: int, port: int, kwargs: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = (kwargs["device"] or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=nproc)
    try:
        result = run_train_bench(**kwargs, strategy=strategy, nproc=nproc)
        Path(out, f"{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _spawn(strategy: str, nproc: int, kwargs: dict) -> dict:
    """Run the benchmark in ``nproc`` processes; rank 0's result with every rank's memory and the
    slowest rank's time."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(strategy, nproc, port, kwargs, out), nprocs=nproc, join=True)
        ranks = [json.loads(Path(out, f"{r}.json").read_text()) for r in range(nproc)]
    slowest = max(ranks, key=lambda r: r["step_s"])
    return {**ranks[0], "strategy": strategy, "nproc": nproc, "step_s": slowest["step_s"],
            "tokens_per_s": slowest["tokens_per_s"], "frames_per_s": slowest["frames_per_s"],
            "peak_memory_per_rank": [r["peak_memory"] for r in ranks],
            "state_bytes_per_rank": [r["state_bytes"] for r in ranks]}


def format_result(r: dict) -> str:
    mem = f"{r['peak_memory'] / 2 ** 30:.2f} GiB" if r["peak_memory"] else "n/a"
    if "nproc" in r:
        gib = lambda values: ", ".join(f"{v / 2 ** 30:.2f}" if v else "n/a" for v in values)  # noqa: E731
        mem = (f"{gib(r['peak_memory_per_rank'])} GiB per rank; parameters + gradients + AdamW states "
               f"{gib(r['state_bytes_per_rank'])} GiB per rank")
    where = f"{r['strategy']} x {r['nproc']} processes, " if "nproc" in r else ""
    return (f"{where}{r['size']} (dim {r['dim']}, {r['layers']} layers, {r['params'] / 1e6:.1f}M params), batch {r['batch']} "
            f"x {r['duration_s']:g} s ({r['frames']} frames x {r['n_q']} codebooks), {r['precision']} on "
            f"{r['device']}: {r['tokens_per_s']:.0f} tokens/s ({r['frames_per_s']:.0f} frames/s), "
            f"{r['step_s']:.3f} s/update, peak memory {mem} ({r['peak_memory_kind']})")


def write_result(result: dict | list[dict], out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
