"""One validation layer for values that come from users: CLI flags, API arguments, config files,
manifests and the app.

Every helper checks one value and returns it (converted where that is lossless: an integral float
to ``int``), or raises :class:`~magnet_audio.errors.InputError` with a one-line message that names
the option (``what``) and shows the bad value. The entry points call these helpers instead of
writing their own comparisons, so that NaN, infinity, booleans passed as numbers, strings passed
as numbers and absurdly large values are refused the same way everywhere, before any work is done
or any file is written.

    >>> finite_float(0.5, "top_p", low=0, high=1)
    0.5
    >>> positive_int(True, "batch")
    Traceback (most recent call last):
    magnet_audio.errors.InputError: batch must be a positive integer, got True
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

from .errors import InputError

#: Largest seed ``torch.manual_seed`` accepts (it takes a 64-bit value).
MAX_SEED = 2 ** 64 - 1
#: Longest generation, in seconds, the CLI and API accept (one hour): longer requests would run
#: for days on a CPU and look like a hang.
MAX_DURATION = 3600.0
#: Upper bounds of model architecture numbers read from config files: far above any real model,
#: low enough that a typo (``dim: 1e9``) is refused instead of allocating until the machine swaps.
MAX_MODEL_DIM = 65536
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_CODEBOOKS = 64
MAX_CARD = 1 << 20
MAX_SAMPLE_RATE = 384_000
MAX_GRIFFIN_LIM_ITERS = 10_000


def one_line(text: object) -> str:
    """``text`` with its line breaks and runs of spaces collapsed, for one-line error messages."""
    return " ".join(str(text).split())


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_number(value: Any) -> bool:
    """A real number that is not a bool (``True`` is an int in Python, never a valid count)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite_float(value: Any, what: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (``low_open``/``high_open``: exclusive bounds)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"{what} must be a number, got {_show(value)}") from None
    if not is_number(value):
        raise InputError(f"{what} must be a number, got {_show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, got {number}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise InputError(f"{what} must be in {left}{lo}, {hi}{right}, got {number:g}")
    return number


def int_in_range(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; integral floats (``4.0``) are accepted, bools and
    fractional or non-finite floats are not."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{what} must be an integer, got {_show(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise InputError(f"{what} must be >= {low}, got {value}")
        if low is None:
            raise InputError(f"{what} must be <= {high}, got {value}")
        raise InputError(f"{what} must be in [{low}, {high}], got {value}")
    return value


def positive_int(value: Any, what: str, high: int | None = None) -> int:
    """``value`` as an int >= 1 (and <= ``high``)."""
    try:
        return int_in_range(value, what, 1, high)
    except InputError:
        limit = "" if high is None else f" <= {high}"
        raise InputError(f"{what} must be a positive integer{limit}, got {_show(value)}") from None


def strict_int(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    """Like :func:`int_in_range` but refuses floats too (config files: ``dim: 512.0`` is a typo)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{what} must be an integer, got {_show(value)}")
    return int_in_range(value, what, low, high)


def choice(value: Any, what: str, options) -> Any:
    """``value`` if it is one of ``options``."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{what} must be one of {', '.join(map(str, options))}, got {_show(value)}")
    return value


def boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{what} must be true or false, got {_show(value)}")
    return value


def seed(value: Any, what: str = "seed") -> int:
    """A random seed: an integer in [0, 2**64 - 1] (what ``torch.manual_seed`` takes)."""
    return int_in_range(value, what, 0, MAX_SEED)


def duration(value: Any, what: str = "duration", high: float = MAX_DURATION) -> float:
    """Seconds of audio to generate: finite, > 0 and at most ``high``."""
    return finite_float(value, what, 0, high, low_open=True)


def device(value: Any, what: str = "device") -> Any:
    """A torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``), a ``torch.device`` or None
    (pick the best available); a device this machine lacks is an error here, not a crash later."""
    import torch

    if value is None or isinstance(value, torch.device):
        return value
    if not isinstance(value, str):
        raise InputError(f"{what} must be a device name such as cpu, cuda or mps, got {_show(value)}")
    try:
        parsed = torch.device(value)
    except (RuntimeError, ValueError):
        raise InputError(f"{what} {value!r} is not a device: use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{what} {value!r}: CUDA is not available on this machine (use cpu)")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise InputError(f"{what} {value!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"{what} {value!r}: Apple MPS is not available on this machine (use cpu)")
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"{what} {value!r} is not supported: use cpu, cuda or mps")
    return value


def file_stem(value: Any, what: str = "id") -> str:
    """A name usable as one file name's stem in any folder: a non-empty string of at most 200
    characters, without path separators, control characters or a leading dot (no hidden files, no ``..``)."""
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise InputError(f"{what} must be a non-empty string without surrounding spaces, got {_show(value)}")
    if len(value) > 200 or value.startswith(".") or any(c in "/\\" or ord(c) < 32 for c in value):
        raise InputError(f"{what} must be a plain file name (no '/', '\\', control characters or leading '.', at "
                         f"most 200 characters), got {_show(value)}")
    return value


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(is_number(x) or isinstance(x, str)
                                                                         for x in value)


def edit_regions(regions: Any, batch: int, duration: float, what: str = "regions") -> list[list[tuple[float, float]]]:
    """Regions of an edit, in seconds of a clip of ``duration`` seconds -> one sorted list of
    (start, end) pairs per item of a ``batch``.

    ``regions``: one list of (start, end) pairs for every item, or a list of such lists, one per
    item. Each region is finite, non-empty (start < end), overlaps no other region of its item and
    lies in the clip, or reaches past one of its ends (outpainting: start < 0 or end > duration)
    while touching it (end >= 0, start <= duration).
    """
    if isinstance(regions, (str, bytes)) or not isinstance(regions, (tuple, list)) or not regions:
        raise InputError(f"{what} must be a non-empty list of (start, end) pairs in seconds, got {_show(regions)}")
    if all(_is_pair(r) for r in regions):
        per_item = [list(regions)] * batch
    elif all(isinstance(r, (tuple, list)) and r and all(_is_pair(p) for p in r) for r in regions):
        if len(regions) != batch:
            raise InputError(f"{what}: {len(regions)} lists of regions for {batch} items (give one per item, "
                             "or one list of (start, end) pairs for all)")
        per_item = [list(r) for r in regions]
    else:
        raise InputError(f"{what} must be (start, end) pairs in seconds, or one list of them per item, "
                         f"got {_show(regions)}")
    out = []
    for item, pairs in enumerate(per_item):
        where = f"{what}" if batch == 1 or per_item[0] is per_item[-1] else f"{what} of item {item}"
        checked = sorted((finite_float(a, f"{where}: a start"), finite_float(b, f"{where}: an end"))
                         for a, b in pairs)
        for a, b in checked:
            if not a < b:
                raise InputError(f"{where}: ({a:g}, {b:g}) is empty or reversed (start must be < end)")
            if b < 0 or a > duration:
                raise InputError(f"{where}: ({a:g}, {b:g}) s is outside the clip (0 to {duration:g} s) and does not "
                                 "touch it (outpainting regions must start at or before its end, end at or after "
                                 "its start)")
            if b - a > MAX_DURATION:
                raise InputError(f"{where}: ({a:g}, {b:g}) is longer than {MAX_DURATION:g} s")
        for (a0, b0), (a1, b1) in zip(checked, checked[1:]):
            if a1 < b0:
                raise InputError(f"{where}: ({a0:g}, {b0:g}) and ({a1:g}, {b1:g}) overlap")
        out.append(checked)
    return out


def audio_input(audio: Any, sample_rate: Any, what: str = "audio"):
    """Audio [B, C, T] or [C, T] (a float tensor, finite, non-empty) and its positive integer sample
    rate -> (audio [B, C, T], sample_rate)."""
    import torch

    if not torch.is_tensor(audio) or audio.dim() not in (2, 3) or audio.shape[-1] == 0 or audio.shape[-2] == 0:
        raise InputError(f"{what} must be a non-empty audio tensor [B, C, T] or [C, T]")
    if not audio.is_floating_point():
        raise InputError(f"{what} must hold float samples in [-1, 1], got {audio.dtype}")
    sample_rate = int_in_range(sample_rate, f"the sample rate of the {what}", 1, MAX_SAMPLE_RATE)
    finite_tensor(audio, f"the {what}")
    return (audio[None] if audio.dim() == 2 else audio), sample_rate


def finite_tensor(tensor, what: str) -> None:
    """Refuse audio (or any tensor) holding NaN or infinite values."""
    import torch

    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise InputError(f"{what} contains NaN or infinite samples")


# ----------------------------------------------------------------------------------- records


def manifest_record(entry: Any, where: str) -> str:
    """The ``path`` of a manifest line (a JSON object with a non-empty string ``path``)."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a JSON object with a 'path', got {_show(entry)}")
    if "path" not in entry:
        raise InputError(f"{where}: no 'path' field")
    path = entry["path"]
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise InputError(f"{where}: 'path' must be a non-empty string, got {_show(path)}")
    return path


def lm_architecture(cfg, what: str = "LM config") -> None:
    """Type and range checks of an LM config's architecture numbers (``config.json``'s ``lm``
    section, a training config's ``model``): integers where the network needs integers, positive,
    bounded, and ``dim`` a multiple of ``num_heads``."""
    dim = strict_int(cfg.dim, f"{what}: dim", 1, MAX_MODEL_DIM)
    heads = strict_int(cfg.num_heads, f"{what}: num_heads", 1, MAX_HEADS)
    strict_int(cfg.num_layers, f"{what}: num_layers", 1, MAX_LAYERS)
    strict_int(cfg.hidden_scale, f"{what}: hidden_scale", 1, 64)
    strict_int(cfg.n_q, f"{what}: n_q", 1, MAX_CODEBOOKS)
    strict_int(cfg.card, f"{what}: card", 2, MAX_CARD)
    if dim % heads:
        raise InputError(f"{what}: dim ({dim}) must be a multiple of num_heads ({heads})")
    finite_float(cfg.segment_duration, f"{what}: segment_duration", 0, MAX_DURATION, low_open=True)
    finite_float(cfg.frame_rate, f"{what}: frame_rate", 0, MAX_SAMPLE_RATE, low_open=True)
    finite_float(cfg.cfg_dropout, f"{what}: cfg_dropout", 0, 1)
    cond = getattr(cfg, "conditioner", None)
    if cond is not None:
        strict_int(cond.text_dim, f"{what}: conditioner.text_dim", 1, MAX_MODEL_DIM)
        strict_int(cond.n_bins, f"{what}: conditioner.n_bins", 1, MAX_CARD)
        finite_float(cond.word_dropout, f"{what}: conditioner.word_dropout", 0, 1)
        for name in ("model", "name", "path"):
            if getattr(cond, name) is not None and not isinstance(getattr(cond, name), str):
                raise InputError(f"{what}: conditioner.{name} must be a string, got {_show(getattr(cond, name))}")


# ----------------------------------------------------------------------------------- the CLI

#: (command, attribute) -> what the attribute names: "dir" an output folder, "file" an output file.
CLI_OUTPUTS = {("generate", "output"): ("dir", "output directory"), ("eval", "out"): ("dir", "--out folder"),
               ("export", "out_dir"): ("dir", "export folder"), ("tokenize", "out"): ("dir", "--out cache folder"),
               ("bench generate", "out"): ("dir", "--out folder"), ("bench train", "out"): ("file", "--out file")}


def writable_target(path: str | os.PathLike, what: str, kind: str = "dir") -> Path:
    """Check, without creating anything, that ``path`` can become (or is) a writable folder
    (``kind="dir"``) or file (``kind="file"``): it must not be the other kind, and it or its nearest
    existing ancestor must be a folder this process may write into."""
    path = Path(path).expanduser()
    if kind == "dir" and path.exists() and not path.is_dir():
        raise InputError(f"cannot write to {what} {path}: it is a file, not a folder")
    if kind == "file" and path.is_dir():
        raise InputError(f"cannot write to {what} {path}: it is a folder, not a file")
    probe = path if kind == "dir" else path.parent
    probe = Path(os.path.abspath(probe))
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot write to {what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK) or _read_only_mount(probe):
        raise InputError(f"cannot write to {what} {path}: {probe} is not writable")
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"cannot write to {what} {path}: permission denied")
    return path


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def cli_args(args) -> None:
    """The checks every ``magnet`` subcommand shares, run on the parsed arguments before the command:
    devices, seeds, durations and sampling numbers in range and finite, outputs writable and of the
    right kind (a folder where a folder is written). Attributes a command lacks are skipped."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    command = " ".join(c for c in (get("command"), get("bench_command")) if c)
    for name in ("device", "eval_device"):
        if isinstance(get(name), str) and get(name) != "auto":
            device(get(name), "--" + name.replace("_", "-"))
    if get("seed") is not None:
        seed(get("seed"), "--seed")
    if get("duration") is not None:
        duration(get("duration"), "--duration")
    flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    for name, low, high in (("temperature", 0, 1e4), ("top_p", 0, 1), ("beat_lock", 0, MAX_DURATION),
                            ("rescore_weight", 0, 1), ("cfg_skip_threshold", 0, 1e4),
                            ("choice_temperature", 0, 1e4)):  # set_generation_params'
        if is_number(get(name)):
            finite_float(get(name), f"{name} ({flag(name)})", low, high)
    for name, high in (("hybrid_prefix_seconds", MAX_DURATION), ("chunk_seconds", MAX_DURATION),
                       ("min_duration", MAX_DURATION), ("clip_seconds", MAX_DURATION), ("hours", 1e5),
                       ("heldout", 1), ("corpus_fraction", 1)):
        if is_number(get(name)):
            finite_float(get(name), flag(name), 0, high)
    for name, high in (("clips", 100_000_000), ("workers", 1024), ("sample_rate", MAX_SAMPLE_RATE)):
        if isinstance(get(name), int):
            positive_int(get(name), flag(name), high)
    if get("top_k") is not None:
        int_in_range(get("top_k"), "top_k (--top-k)", 0, MAX_CARD)
    if isinstance(get("cfg"), (tuple, list)):
        for value in get("cfg"):
            finite_float(value, "max_cfg_coef,min_cfg_coef (--cfg)", 0, 1e4)
    for name in ("batch", "kv_cache_refresh", "cfg_null_refresh", "runs"):
        if isinstance(get(name), int):
            positive_int(get(name), "--" + name.replace("_", "-"), 1_000_000)
    for (cmd, name), (kind, label) in CLI_OUTPUTS.items():
        if cmd == command and get(name) is not None:
            writable_target(get(name), label, kind)


# ----------------------------------------------------------------------------------- editing


def parse_region(value: Any, what: str = "--region") -> tuple[float, float]:
    """One edit region in seconds, from ``"START:END"`` (``"3.0:5.5"``) or a ``(start, end)`` pair:
    finite, ``start < end``, within an hour of the clip. A negative start or an end past the clip
    is allowed (outpainting)."""
    if isinstance(value, str):
        start, sep, end = value.strip().partition(":")
        if not sep or not start.strip() or not end.strip():
            raise InputError(f"{what} must be START:END in seconds (e.g. 3.0:5.5), got {_show(value)}")
        try:
            pair = (float(start), float(end))
        except ValueError:
            raise InputError(f"{what} must be START:END in seconds (e.g. 3.0:5.5), got {_show(value)}") from None
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = value
    else:
        raise InputError(f"{what} must be START:END in seconds or a (start, end) pair, got {_show(value)}")
    start = finite_float(pair[0], f"{what} start", -MAX_DURATION, MAX_DURATION)
    end = finite_float(pair[1], f"{what} end", -MAX_DURATION, MAX_DURATION)
    if end <= start:
        raise InputError(f"{what} {start:g}:{end:g}: the end must be after the start")
    return start, end


def parse_regions(values: Any, what: str = "--region") -> list[tuple[float, float]]:
    """Edit regions (see :func:`parse_region`), sorted by start; at least one, none overlapping
    (regions that only touch are fine). A string may hold several, separated by commas or spaces:
    ``"1:2, 4:5.5"``."""
    if isinstance(values, str):
        values = [v for v in values.replace(",", " ").split() if v]
    if not isinstance(values, (list, tuple)) or not values:
        raise InputError(f"{what}: give at least one START:END (seconds)")
    regions = sorted(parse_region(v, what) for v in values)
    for (s1, e1), (s2, e2) in zip(regions, regions[1:]):
        if s2 < e1:
            raise InputError(f"{what} {s1:g}:{e1:g} and {s2:g}:{e2:g} overlap: give separate regions")
    return regions


def strength(value: Any, what: str = "strength") -> float:
    """How much of a clip a variation re-generates: a number in [0, 1]."""
    return finite_float(value, what, 0, 1)


def audio_file(path: Any, what: str = "input audio") -> tuple[Path, int, int, float]:
    """An audio file to edit or continue: ``(path, sample_rate, channels, seconds)``. A missing file,
    a folder, a file libsndfile cannot read as audio, or an empty one is an :class:`InputError`."""
    import soundfile

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InputError(f"{what} must be a file path, got {_show(path)}")
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{what} {path}: no such file")
    if not path.is_file():
        raise InputError(f"{what} {path}: not a file")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise InputError(f"{what} {path} is not an audio file libsndfile can read "
                         f"(wav, flac, ogg, mp3): {one_line(exc)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputError(f"{what} {path} holds no audio")
    return path, int(info.samplerate), int(info.channels), info.frames / info.samplerate
