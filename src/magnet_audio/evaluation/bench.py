"""``magnet bench generate``: latency and throughput of text-to-music generation (the paper's Fig. 2).

For each model (MAGNeT with one or more decoding schedules, and the autoregressive MusicGen when
given) and each batch size:

- **latency**: wall-clock seconds from the ``generate`` call to the full decoded waveform of the
  whole batch (text encoding, all decoding steps and the EnCodec decoder included), the *median*
  of ``runs`` timed runs after ``warmup`` untimed runs. On CUDA/MPS the device is synchronised
  before the clock starts and stops.
- **throughput**: seconds of audio produced per second of wall-clock = batch x clip seconds / latency.
- **peak memory**: CUDA: ``torch.cuda.max_memory_allocated`` over the timed runs (reset first),
  i.e. tensors only, not the caching allocator's reserve. MPS: ``torch.mps.driver_allocated_memory``
  sampled. CPU: the process's peak resident set size during the timed runs, sampled every 5 ms from
  ``/proc/self/statm`` by a background thread (also reported: the increase over the RSS before the
  runs). tracemalloc is not used: it does not see PyTorch's allocator. Where ``/proc`` is missing
  (macOS), ``resource.getrusage`` ``ru_maxrss`` is used (the process's lifetime peak).

Writes ``bench_generate.json`` and ``bench_generate.png`` (latency vs throughput, one line per model,
points labelled with the batch size, log-log axes like the paper's figure).

``compare=True`` (``--compare``) times, in one run, MAGNeT's exact mode and fast mode (the
``fast=True`` preset of ``set_generation_params``) on the first schedule, fast mode on each further
schedule (``--steps 20,10,10,10 --steps 20,5,5,5``: fast mode with fewer steps), and the
autoregressive MusicGen of the same size (the random one of ``--random-size`` unless another is
given), and writes the latency ratios per batch size and fast schedule under ``"compare"`` in the
JSON, each against exact mode on the first schedule and against the AR model.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..benchmarking import RANDOM_SIZES, PeakMemory, synchronize
from ..codec import EncodecConfig, EncodecModel
from ..conditioning import ConditionerConfig
from ..decoding import default_decoding_steps
from ..errors import InputError
from ..lm.magnet import MagnetLM, MagnetLMConfig
from ..lm.musicgen import MusicGenLM, MusicGenLMConfig
from ..models import MAGNeT
from ..musicgen import MusicGen
from ..utils import resolve_device

PROMPTS = (
    "80s electronic track with melodic synthesizers, catchy beat and groovy bass",
    "calm piano ballad with soft strings",
    "energetic rock song with distorted guitars and loud drums",
    "lofi hip hop beat with vinyl crackle and mellow keys",
)

@dataclass
class BenchRow:
    model: str
    schedule: str
    batch: int
    status: str = "ok"  # ok | oom | error
    latency_s: float | None = None
    throughput: float | None = None  # audio seconds per second
    audio_seconds: float | None = None  # per clip
    runs_s: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    memory_kind: str | None = None
    rss_increase_bytes: int | None = None
    reason: str | None = None


def time_generation(generate: Callable[[list[str]], torch.Tensor], batch: int, runs: int, warmup: int,
                    device: torch.device, sample_rate: int) -> tuple[list[float], float, PeakMemory]:
    """Run ``warmup`` untimed then ``runs`` timed generations of ``batch`` prompts.
    Returns (seconds per run, clip seconds, memory)."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    for _ in range(warmup):
        generate(prompts)
    synchronize(device)
    times = []
    audio_seconds = 0.0
    with torch.inference_mode(), PeakMemory(device) as mem:
        for _ in range(runs):
            synchronize(device)
            start = time.perf_counter()
            wav = generate(prompts)
            synchronize(device)
            times.append(time.perf_counter() - start)
            audio_seconds = wav.shape[-1] / sample_rate
    return times, audio_seconds, mem


def bench_model(label: str, schedule: str, generate: Callable[[list[str]], torch.Tensor], sample_rate: int,
                batches: Sequence[int], runs: int, warmup: int, device: torch.device,
                progress: bool = True) -> list[BenchRow]:
    rows = []
    for b in batches:
        row = BenchRow(label, schedule, b)
        try:
            times, seconds, mem = time_generation(generate, b, runs, warmup, device, sample_rate)
        except torch.cuda.OutOfMemoryError as exc:
            row.status, row.reason = "oom", str(exc).splitlines()[0]
            torch.cuda.empty_cache()
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                row.status, row.reason = "oom", str(exc).splitlines()[0]
            else:
                row.status, row.reason = "error", f"{type(exc).__name__}: {exc}"
        else:
            row.runs_s = [round(t, 6) for t in times]
            row.latency_s = statistics.median(times)
            row.audio_seconds = seconds
            row.throughput = b * seconds / row.latency_s
            row.peak_memory_bytes, row.memory_kind = mem.peak, mem.kind
            if mem.kind == "cpu_peak_rss" and mem.peak is not None and mem.baseline is not None:
                row.rss_increase_bytes = max(0, mem.peak - mem.baseline)
        rows.append(row)
        if progress:
            print(_row_line(row), file=sys.stderr)
    return rows


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------

def random_magnet(size: str, device: str | torch.device | None = None, duration: float = 10.0):
    """A random-weight MAGNeT of audiocraft's ``size`` scale with a LUT text conditioner and a random
    32 kHz EnCodec with MAGNeT's settings: latency does not depend on the weights."""
    if size not in RANDOM_SIZES:
        raise InputError(f"--random-size must be one of {', '.join(RANDOM_SIZES)}, got {size!r}")
    dim, heads, layers = RANDOM_SIZES[size]
    device = resolve_device(device)
    cfg = MagnetLMConfig(dim=dim, num_heads=heads, num_layers=layers, n_q=4, card=2048,
                         segment_duration=duration, frame_rate=50,
                         conditioner=ConditionerConfig(model="lut", n_bins=4096, text_dim=min(dim, 768)))
    lm = MagnetLM(cfg)
    codec = EncodecModel(random_codec_config(EncodecConfig))
    return MAGNeT(f"random-{size}", codec.to(device), lm.to(device))


def random_codec_config(EncodecConfig):
    return EncodecConfig(sample_rate=32000, channels=1, dimension=128, n_filters=64, n_residual_layers=1,
                         ratios=[8, 5, 4, 4], norm="weight_norm", lstm=2, n_q=4, bins=2048)


def random_musicgen(size: str, device: str | torch.device | None = None, duration: float = 10.0):
    """A random-weight MusicGen of ``size`` (same LUT conditioner and codec as :func:`random_magnet`)."""
    dim, heads, layers = RANDOM_SIZES[size]
    device = resolve_device(device)
    cfg = MusicGenLMConfig(dim=dim, num_heads=heads, num_layers=layers, n_q=4, card=2048,
                           segment_duration=max(duration, 30.0), frame_rate=50,
                           conditioner=ConditionerConfig(model="lut", n_bins=4096, text_dim=min(dim, 768)))
    codec = EncodecModel(random_codec_config(EncodecConfig))
    return MusicGen(f"random-musicgen-{size}", codec.to(device), MusicGenLM(cfg).to(device))


def load_ar_model(name: str | None, random_size: str | None, device, t5_path, duration: float):
    """The MusicGen to compare with, or raise ``ImportError``/``MagnetError`` with the reason."""
    if random_size:
        return random_musicgen(random_size, device, duration)
    return MusicGen.get_pretrained(name, device=device, t5_path=t5_path)


# --------------------------------------------------------------------------------------------------
# Driver, output
# --------------------------------------------------------------------------------------------------

def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _row_line(r: BenchRow) -> str:
    if r.status != "ok":
        return f"{r.model:<28} {r.schedule:<14} batch {r.batch:>3}  {r.status.upper()}: {r.reason}"
    return (f"{r.model:<28} {r.schedule:<14} batch {r.batch:>3}  latency {r.latency_s:8.3f} s  "
            f"throughput {r.throughput:8.3f} audio-s/s  peak mem {_fmt_bytes(r.peak_memory_bytes)}")


def format_table(rows: Sequence[BenchRow]) -> str:
    header = ("model", "schedule", "batch", "latency s", "throughput", "peak memory")
    lines = [header]
    for r in rows:
        if r.status == "ok":
            lines.append((r.model, r.schedule, str(r.batch), f"{r.latency_s:.3f}", f"{r.throughput:.3f}",
                          _fmt_bytes(r.peak_memory_bytes)))
        else:
            lines.append((r.model, r.schedule, str(r.batch), r.status.upper(), "-", r.reason or ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(rows: Sequence[BenchRow], path: Path, title: str) -> Path | None:
    """Latency (x) vs throughput (y), one line per model/schedule, like the paper's Figure 2."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[BenchRow]] = {}
    for r in rows:
        if r.status == "ok":
            series.setdefault((r.model, r.schedule), []).append(r)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    markers = "osD^v<>p*"
    for k, ((model, schedule), pts) in enumerate(series.items()):
        pts = sorted(pts, key=lambda r: r.batch)
        xs, ys = [p.latency_s for p in pts], [p.throughput for p in pts]
        label = model if schedule == "-" else f"{model} [{schedule}]"
        ax.plot(xs, ys, marker=markers[k % len(markers)], label=label)
        for p in pts:
            ax.annotate(f"{p.batch}", (p.latency_s, p.throughput), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
    if series:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(0.15)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
    else:
        ax.text(0.5, 0.5, "no successful runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("latency: seconds to the full clip (log)")
    ax.set_ylabel("throughput: audio seconds per second (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8, title="labels = batch size", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_generate_bench(*, model: str | None = None, random_size: str | None = None, batches: Sequence[int] = (1,),
                       duration: float | None = None, steps: Sequence[Sequence[int]] | None = None,
                       ar_model: str | None = None, ar_random_size: str | None = None, runs: int = 3,
                       warmup: int = 1, device: str | None = None, t5_path: str | None = None,
                       out_dir: str | Path = "bench", seed: int = 0, progress: bool = True,
                       compare: bool = False) -> dict:
    """Benchmark MAGNeT (and MusicGen when given); write JSON + PNG into ``out_dir``; return the JSON.

    compare: exact vs fast mode vs the AR model of the same size (see the module doc)."""
    if not batches or any(b < 1 for b in batches):
        raise InputError(f"batch sizes must be positive integers, got {list(batches)}")
    if runs < 1 or warmup < 0:
        raise InputError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    if (model is None) == (random_size is None):
        raise InputError("give exactly one of --model M or --random-size SIZE")
    if duration is not None and duration <= 0:
        raise InputError(f"--duration must be > 0, got {duration}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(seed)

    if random_size is not None:
        magnet = random_magnet(random_size, dev, duration or 10.0)
        label = f"MAGNeT random-{random_size}"
    else:
        magnet = MAGNeT.get_pretrained(model, device=dev, t5_path=t5_path)
        label = f"MAGNeT {Path(model).name if os.path.isdir(model) else model}"
    if duration is not None:
        magnet.duration = float(duration)  # the decoding length; positions are sinusoidal
    n_q = magnet.lm.num_codebooks
    schedules = [list(s) for s in (steps or [default_decoding_steps(n_q)])]
    rows: list[BenchRow] = []
    params_info = []
    fast_params: dict = {}
    for i, sched in enumerate(schedules):
        params_info.append(sched)
        for mode in (("exact", "fast") if i == 0 else ("fast",)) if compare else ("exact",):
            magnet.update_generation_params(decoding_steps=sched, fast=mode == "fast")
            if mode == "fast" and i == 0:
                fast_params = asdict(magnet.generation_params.fast)
            name = ",".join(map(str, sched)) + (f" {mode}" if compare else "")
            rows += bench_model(label, name, magnet.generate, magnet.sample_rate, batches, runs, warmup, dev,
                                progress)
    magnet_info = {"name": magnet.name, "label": label, "segment_duration": float(magnet.lm.cfg.segment_duration),
                   "duration": magnet.duration, "parameters": sum(p.numel() for p in magnet.lm.parameters()),
                   "schedules": params_info, "random_weights": random_size is not None}
    magnet = None  # free it before loading the AR model
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    if compare and random_size is not None and not (ar_model or ar_random_size):
        ar_random_size = random_size  # the AR model of the same size
    ar_info: dict = {"status": "not requested"}
    if ar_model or ar_random_size:
        try:
            ar = load_ar_model(ar_model, ar_random_size, dev, t5_path, duration or 10.0)
        except ImportError as exc:
            ar_info = {"status": "unavailable", "reason": f"the autoregressive model is not in this build "
                                                          f"(magnet_audio.musicgen: {exc})"}
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            ar_info = {"status": "unavailable", "reason": f"{type(exc).__name__}: {exc}"}
        else:
            ar_duration = float(duration if duration is not None else magnet_info["duration"])
            ar.set_generation_params(duration=ar_duration)
            ar_label = f"MusicGen {ar_model and (Path(ar_model).name if os.path.isdir(ar_model) else ar_model) or ''}" \
                if not ar_random_size else f"MusicGen random-{ar_random_size}"
            rows += bench_model(ar_label.strip(), "-", ar.generate, ar.sample_rate, batches, runs,
                                warmup, dev, progress)
            ar_info = {"status": "ok", "name": ar.name, "label": ar_label.strip(), "duration": ar_duration,
                       "parameters": sum(p.numel() for p in ar.lm.parameters()),
                       "random_weights": ar_random_size is not None}
            ar = None
        if ar_info["status"] != "ok" and progress:
            print(f"MusicGen: UNAVAILABLE: {ar_info['reason']}", file=sys.stderr)

    result = {
        "benchmark": "generate",
        "device": str(dev), "device_name": _device_name(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "platform": platform.platform(),
        "runs": runs, "warmup": warmup, "batches": list(batches), "seed": seed,
        "latency": "median seconds from generate() to the decoded waveform of the whole batch",
        "throughput": "batch x clip seconds / latency (audio seconds per second)",
        "memory": "cuda: max_memory_allocated; cpu: peak RSS sampled during the timed runs",
        "magnet": magnet_info, "ar_model": ar_info,
        "rows": [r.__dict__ for r in rows],
    }
    if compare:
        result["compare"] = {"schedule": schedules[0], "fast_options": fast_params,
                             "ratios": compare_ratios(rows, [",".join(map(str, s)) for s in schedules], batches)}
    json_path = out_dir / "bench_generate.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    png = plot(rows, out_dir / "bench_generate.png",
               f"Latency vs throughput ({_device_name(dev)}, {magnet_info['duration']:.2f} s clips, "
               f"median of {runs})")
    result["files"] = {"json": str(json_path), "png": str(png)}
    result["table"] = format_table(rows)
    return result


def compare_ratios(rows: Sequence[BenchRow], schedules: Sequence[str], batches: Sequence[int]) -> list[dict]:
    """Per batch size and fast schedule: the latencies of exact mode (on ``schedules[0]``), fast mode
    (on that schedule) and the AR model (None where a run failed or is missing) and the speed-ups
    (latency ratios, > 1 = the first one is faster)."""
    def latency(batch: int, pick: Callable[[BenchRow], bool]) -> float | None:
        found = [r.latency_s for r in rows if r.batch == batch and r.status == "ok" and pick(r)]
        return found[0] if found else None

    def ratio(slow: float | None, fast: float | None) -> float | None:
        return None if slow is None or fast is None else slow / fast

    out = []
    for schedule in schedules:
        for b in batches:
            exact = latency(b, lambda r: r.schedule == f"{schedules[0]} exact")
            fast = latency(b, lambda r: r.schedule == f"{schedule} fast")
            ar = latency(b, lambda r: not r.model.startswith("MAGNeT"))
            out.append({"batch": b, "schedule": schedule, "exact_schedule": schedules[0], "exact_latency_s": exact,
                        "fast_latency_s": fast, "ar_latency_s": ar, "fast_speedup_vs_exact": ratio(exact, fast),
                        "exact_speedup_vs_ar": ratio(ar, exact), "fast_speedup_vs_ar": ratio(ar, fast)})
    return out


def format_ratios(ratios: Sequence[dict]) -> str:
    """One line per batch size: fast vs exact, exact vs AR, fast vs AR (x = times faster)."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    def line(r: dict) -> str:
        steps = "" if r["schedule"] == r["exact_schedule"] else f" (fast with steps {r['schedule']})"
        return (f"batch {r['batch']}{steps}: fast vs exact {fmt(r['fast_speedup_vs_exact'])}, "
                f"exact vs AR {fmt(r['exact_speedup_vs_ar'])}, fast vs AR {fmt(r['fast_speedup_vs_ar'])}")

    return "\n".join(line(r) for r in ratios)


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "cpu":
        return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return dev.type
