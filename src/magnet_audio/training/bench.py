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

Not a test: numbers depend on the machine; record them to compare later work on the same one.
"""

from __future__ import annotations

import json
import platform
import random
import time
from pathlib import Path

import torch

from ..benchmarking import RANDOM_SIZES, PeakMemory, synchronize
from ..conditioning import ConditionerConfig
from ..errors import InputError
from ..lm.magnet import MagnetLM, MagnetLMConfig
from ..utils import resolve_device
from .objectives import MagnetObjective
from .runtime import autocast, autocast_dtype
from .trainer import init_lm_weights

WORDS = ("calm", "piano", "energetic", "rock", "drums", "lofi", "beat", "ambient", "pads", "synth", "bass", "jazz")


def run_train_bench(size: str = "small", dim: int | None = None, heads: int | None = None,
                    layers: int | None = None, batch: int = 4, duration: float = 10.0, steps: int = 5,
                    warmup: int = 2, device: str | None = None, precision: str = "auto", n_q: int = 4,
                    card: int = 2048, seed: int = 0) -> dict:
    """Time ``steps`` training updates (after ``warmup``); returns the measurements as a dict."""
    if size not in RANDOM_SIZES:
        raise InputError(f"--size must be one of {', '.join(RANDOM_SIZES)}, got {size!r}")
    base_dim, base_heads, base_layers = RANDOM_SIZES[size]
    dim, heads, layers = dim or base_dim, heads or base_heads, layers or base_layers
    if batch < 1 or steps < 1 or warmup < 0 or duration <= 0:
        raise InputError("need --batch >= 1, --steps >= 1, --warmup >= 0 and --duration > 0")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    random.seed(seed)
    cfg = MagnetLMConfig(dim=dim, num_heads=heads, num_layers=layers, n_q=n_q, card=card, segment_duration=duration,
                         frame_rate=50, conditioner=ConditionerConfig(model="lut", n_bins=4096,
                                                                      text_dim=min(dim, 768), word_dropout=0.3))
    lm = MagnetLM(cfg)
    init_lm_weights(lm)
    objective = MagnetObjective(lm, cfg_dropout=0.3).to(dev).train()
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    dtype = autocast_dtype(precision, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
    T = cfg.max_len
    codes = torch.randint(0, card, (batch, n_q, T), device=dev)
    texts = [" ".join(random.choices(WORDS, k=6)) for _ in range(batch)]

    def update():
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, dtype):
            loss, _ = objective(codes, texts)
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
    return {
        "size": size, "dim": dim, "heads": heads, "layers": layers,
        "params": sum(p.numel() for p in lm.parameters()), "batch": batch, "duration_s": duration, "frames": T,
        "n_q": n_q, "card": card, "steps": steps, "precision": str(dtype).replace("torch.", "") if dtype else "float32",
        "device": dev.type if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "threads": torch.get_num_threads(), "step_s": elapsed / steps,
        "tokens_per_s": batch * n_q * T * steps / elapsed, "frames_per_s": batch * T * steps / elapsed,
        "peak_memory": memory.peak, "peak_memory_kind": memory.kind,
        "torch": torch.__version__, "platform": platform.platform(),
    }


def format_result(r: dict) -> str:
    mem = f"{r['peak_memory'] / 2 ** 30:.2f} GiB" if r["peak_memory"] else "n/a"
    return (f"{r['size']} (dim {r['dim']}, {r['layers']} layers, {r['params'] / 1e6:.1f}M params), batch {r['batch']} "
            f"x {r['duration_s']:g} s ({r['frames']} frames x {r['n_q']} codebooks), {r['precision']} on "
            f"{r['device']}: {r['tokens_per_s']:.0f} tokens/s ({r['frames_per_s']:.0f} frames/s), "
            f"{r['step_s']:.3f} s/update, peak memory {mem} ({r['peak_memory_kind']})")


def write_result(result: dict, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
