"""``magnet bench edit``: the cost of an inpainting edit against generating the whole clip.

Times, with the same model and decoding steps, (1) ``generate`` of a ``clip_seconds`` clip and
(2) ``generate_inpainting`` of an ``edit_seconds`` region in the middle of such a clip (the clip
being generated once first; the content does not change the cost), each the median of ``runs``
timed runs after ``warmup`` untimed ones (latency as in :mod:`.bench`: from the call to the
waveform, text encoding and codec included; the edit also encodes the clip and splices). With
``fast``, both run in fast mode. Writes ``bench_edit.json`` with both rows and their ratio.

An edit decodes only the region's spans, but each step still runs the LM over the whole window
around it (the context), so while the window is the clip the edit costs about as much as the
generation, plus the encoding; the step count is the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch

from ..errors import InputError
from ..models import MAGNeT
from ..utils import resolve_device
from .bench import PROMPTS, BenchRow, _device_name, bench_model, format_table, random_magnet


def run_edit_bench(*, model: str | None = None, random_size: str | None = None, clip_seconds: float = 10.0,
                   edit_seconds: float = 2.0, steps: Sequence[int] | None = None, batches: Sequence[int] = (1,),
                   runs: int = 3, warmup: int = 1, device: str | None = None, t5_path: str | None = None,
                   out_dir: str | Path = "bench", seed: int = 0, fast: bool = False, progress: bool = True) -> dict:
    """Time generating ``clip_seconds`` against inpainting ``edit_seconds`` of it; write
    ``out_dir/bench_edit.json`` and return its content (plus ``table``)."""
    if (model is None) == (random_size is None):
        raise InputError("give exactly one of --model M or --random-size SIZE")
    if not 0 < edit_seconds < clip_seconds:
        raise InputError(f"--edit-seconds must be in (0, --clip-seconds), got {edit_seconds} and {clip_seconds}")
    if runs < 1 or warmup < 0 or not batches or any(b < 1 for b in batches):
        raise InputError(f"need runs >= 1, warmup >= 0 and positive batch sizes, got {runs}, {warmup}, {batches}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    if random_size is not None:
        magnet = random_magnet(random_size, dev, clip_seconds)
        label = f"MAGNeT random-{random_size}"
    else:
        magnet = MAGNeT.get_pretrained(model, device=dev, t5_path=t5_path)
        label = f"MAGNeT {Path(model).name if os.path.isdir(model) else model}"
    magnet.update_generation_params(decoding_steps=list(steps) if steps else None, fast=fast,
                                    duration=clip_seconds)
    schedule = ",".join(map(str, magnet.generation_params.decoding_steps)) + (" fast" if fast else "")
    clip = magnet.generate([PROMPTS[0]])[:1]  # [1, C, T]: the clip to edit
    start = (clip.shape[-1] / magnet.sample_rate - edit_seconds) / 2
    region = (round(start, 3), round(start + edit_seconds, 3))

    def edit(prompts: list[str]) -> torch.Tensor:
        return magnet.generate_inpainting(clip.expand(len(prompts), -1, -1), magnet.sample_rate, prompts,
                                          regions=[region])

    rows: list[BenchRow] = []
    rows += bench_model(f"{label} generate {clip_seconds:g} s", schedule, magnet.generate, magnet.sample_rate,
                        batches, runs, warmup, dev, progress)
    rows += bench_model(f"{label} inpaint {edit_seconds:g} s", schedule, edit, magnet.sample_rate, batches, runs,
                        warmup, dev, progress)
    ratios = []
    for b in batches:
        gen = next((r.latency_s for r in rows if r.batch == b and "generate" in r.model and r.status == "ok"), None)
        ed = next((r.latency_s for r in rows if r.batch == b and "inpaint" in r.model and r.status == "ok"), None)
        ratios.append({"batch": b, "generate_latency_s": gen, "edit_latency_s": ed,
                       "edit_over_generate": None if gen is None or ed is None else ed / gen})
    result = {
        "benchmark": "edit", "device": str(dev), "device_name": _device_name(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "model": magnet.name, "label": label, "schedule": schedule,
        "window_s": magnet.max_duration, "clip_seconds": clip_seconds, "edit_seconds": edit_seconds,
        "region": list(region), "used": [list(r) for r in magnet.last_edit.used[0]] if magnet.last_edit else None,
        "runs": runs, "warmup": warmup, "seed": seed,
        "latency": "median seconds from the call to the waveform (the edit includes encoding and splicing)",
        "rows": [r.__dict__ for r in rows], "ratios": ratios,
    }
    path = out_dir / "bench_edit.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    result["files"] = {"json": str(path)}
    result["table"] = format_table(rows)
    return result


def format_edit_ratios(ratios: Sequence[dict]) -> str:
    """One line per batch size: the edit's latency as a share of the generation's."""
    return "\n".join(f"batch {r['batch']}: edit / generate = "
                     + ("-" if r["edit_over_generate"] is None else f"{r['edit_over_generate']:.2f}")
                     for r in ratios)
