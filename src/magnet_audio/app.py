"""``magnet app``: a Gradio web app and HTTP API for text-to-music generation.

    magnet app                                   # http://127.0.0.1:7860, default model
    magnet app --model path/to/model --t5-path path/to/t5 --port 8000
    magnet app --listen --auth user:secret        # bind 0.0.0.0: reachable from other machines

The page takes several prompts at once (one per line), the model, the duration, the decoding
steps, CFG, temperature, top-p, the seed and fast mode; it shows live progress, an audio player
(with a download button) and a spectrogram for each result. The same event is the programmatic API
``/generate`` (Gradio's client and its ``/gradio_api/call/generate`` HTTP route), see docs/app.md.

Requests wait in Gradio's queue. Generation itself runs one request at a time on the model's
device (the loaded models share the device and PyTorch's global random generator, which makes a
seed reproducible); ``--concurrency N`` admits N requests at once so that model loading, file
writing and spectrograms of one overlap the generation of another. Each request is limited to
``--max-prompts`` prompts and ``--max-duration`` seconds of audio. Bad input raises ``gr.Error``,
which the page shows as a message; no request can stop the server.

Speed is set by the decoding steps (audiocraft's default 20,10,10,10; fewer steps are faster, e.g.
10,5,5,5) and by fast mode: ``set_generation_params(fast=True)``, the approximate decoding preset of
docs/fast-inference.md (``magnet generate --fast``).

This module holds what runs without gradio (request checks, spectrograms, the models:
:class:`Generator`); :mod:`magnet_audio.app_page` builds the page on it and serves it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .decoding import GenerationParams, default_decoding_steps
from .errors import InputError, MagnetError
from .utils import slugify

log = logging.getLogger("magnet_audio.app")

MAX_STEPS_PER_STAGE = 200
MAX_PROMPT_CHARS = 1000


# --------------------------------------------------------------------------------------------------
# Request validation (pure functions: unit-testable without gradio)
# --------------------------------------------------------------------------------------------------


def parse_prompts(text: str | None, max_prompts: int) -> list[str]:
    """Non-empty lines of ``text``; an :class:`InputError` when there are none, too many or too long."""
    prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not prompts:
        raise InputError("Enter at least one prompt (one per line).")
    if len(prompts) > max_prompts:
        raise InputError(f"Too many prompts: {len(prompts)} given, at most {max_prompts} per request.")
    long = [i + 1 for i, p in enumerate(prompts) if len(p) > MAX_PROMPT_CHARS]
    if long:
        raise InputError(f"Prompt {long[0]} is longer than {MAX_PROMPT_CHARS} characters.")
    return prompts


def steps_text(steps: Sequence[int]) -> str:
    """``"20,10,10,10"``: decoding steps as the form shows them."""
    return ",".join(map(str, steps))


def parse_steps(text: Any, num_codebooks: int) -> list[int]:
    """Decoding steps per codebook stage from ``"20,10,10,10"`` (or a list of ints)."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [x for x in str(text or "").replace(";", ",").replace(" ", ",").split(",") if x.strip()]
    try:
        steps = [int(x) for x in items]
    except (TypeError, ValueError):
        raise InputError(f"Decoding steps must be comma-separated integers, e.g. "
                         f"{steps_text(default_decoding_steps(num_codebooks))}; got {text!r}.") from None
    if len(steps) != num_codebooks:
        raise InputError(f"Decoding steps: this model has {num_codebooks} codebooks, so give {num_codebooks} "
                         f"numbers (e.g. {steps_text(default_decoding_steps(num_codebooks))}); got {len(steps)}.")
    if any(not 1 <= s <= MAX_STEPS_PER_STAGE for s in steps):
        raise InputError(f"Decoding steps must each be between 1 and {MAX_STEPS_PER_STAGE}; got {steps}.")
    return steps


def _number(value: Any, name: str, low: float, high: float) -> float:
    """A form number, checked by :mod:`magnet_audio.validation` (a bool, NaN or inf is refused), in the
    page's wording."""
    from .validation import finite_float

    try:
        number = finite_float(value, name)
    except InputError as exc:
        if "finite" not in str(exc):
            raise InputError(f"{name} must be a number; got {value!r}.") from None
        number = float("nan")
    if not low <= number <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}; got {value!r}.")
    return number


def _flag(value: Any, name: str) -> bool:
    """A checkbox value: a bool (or 0/1, as JSON clients may send); None (omitted) is False."""
    if value is None:
        return False
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise InputError(f"{name} must be true or false; got {value!r}.")


def steps_default(model) -> str:
    """The form's decoding steps for ``model`` (None: not loaded yet): its recommendation, else
    audiocraft's default."""
    if model is None:
        return steps_text(default_decoding_steps())
    rec = getattr(model, "recommended_generation_params", None) or {}
    return steps_text(rec.get("decoding_steps") or default_decoding_steps(model.lm.num_codebooks))


def sampling_defaults(model) -> list[float]:
    """The form's CFG max, CFG min, temperature and top-p for ``model`` (None: not loaded yet): what
    its config recommends (``recommended_generation_params``), else audiocraft's defaults."""
    rec = getattr(model, "recommended_generation_params", None) or {}
    default = GenerationParams()
    return [rec.get(name, getattr(default, name)) for name in ("max_cfg_coef", "min_cfg_coef", "temperature", "top_p")]


def check_params(duration: Any, cfg_max: Any, cfg_min: Any, temperature: Any, top_p: Any, seed: Any,
                 max_duration: float, fast: Any = False) -> dict:
    """Validated generation parameters (an :class:`InputError` names the first bad one)."""
    params = {
        "duration": _number(duration, "Duration (s)", 0.0, max_duration),
        "max_cfg_coef": _number(cfg_max, "CFG max", 0.0, 100.0),
        "min_cfg_coef": _number(cfg_min, "CFG min", 0.0, 100.0),
        "temperature": _number(temperature, "Temperature", 0.0, 100.0),
        "top_p": _number(top_p, "Top-p", 0.0, 1.0),
    }
    if params["duration"] <= 0:
        raise InputError(f"Duration (s) must be greater than 0 and at most {max_duration:g}; got {duration!r}.")
    if seed is None or seed == "":
        seed = -1
    seed = _number(seed, "Seed", -1, 2**31 - 1)
    if seed != int(seed):
        raise InputError(f"Seed must be an integer (-1 for random); got {seed!r}.")
    params["seed"] = int(seed)
    params["fast"] = _flag(fast, "Fast mode")
    return params


def window_guess(name: str) -> float | None:
    """The window of an official checkpoint from its name (``...-30secs`` -> 30), before loading it."""
    base = os.path.basename(str(name).rstrip("/"))
    if "30secs" in base:
        return 30.0
    if base.startswith(("magnet-", "audio-magnet-")):
        return 10.0
    return None


# --------------------------------------------------------------------------------------------------
# Spectrogram
# --------------------------------------------------------------------------------------------------


def spectrogram_db(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Log-magnitude spectrogram [freq, time] of ``wav`` [C, T] or [T] (channels averaged), in dB
    below its peak, clipped at -80; and the clip's length in seconds."""
    x = np.asarray(wav, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x.reshape(-1)
    x = x - x.mean()  # a DC offset would swamp the colour scale
    n_fft = 2048 if sample_rate >= 32000 else 1024
    hop = n_fft // 8
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    magnitude = np.abs(np.fft.rfft(frames, axis=-1)).T  # [freq, time]
    db = 20.0 * np.log10(np.maximum(magnitude, 1e-10))
    return np.clip(db - db.max(), -80.0, 0.0), len(x) / sample_rate


def spectrogram_png(wav: np.ndarray, sample_rate: int, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write a log-magnitude spectrogram (dB, 80 dB range, :func:`spectrogram_db`) of ``wav`` [C, T]
    or [T] as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    db, seconds = spectrogram_db(wav, sample_rate)
    fig = Figure(figsize=(6.4, 2.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                      extent=(0.0, seconds, 0.0, sample_rate / 2000.0), interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    if title:
        ax.set_title(title if len(title) <= 70 else title[:67] + "...", fontsize=9)
    fig.colorbar(image, ax=ax, pad=0.01).set_label("dB")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


# --------------------------------------------------------------------------------------------------
# Models and generation (no gradio here either)
# --------------------------------------------------------------------------------------------------


class Generator:
    """Loads models on demand (an LRU cache of ``max_loaded``) and generates one request at a time."""

    def __init__(self, models: Sequence[str], t5_path: str | None = None, device: str | None = None,
                 max_prompts: int = 4, max_duration: float = 30.0, max_loaded: int = 2,
                 output_dir: str | os.PathLike | None = None):
        if not models:
            raise InputError("give at least one model")
        if max_prompts < 1:
            raise InputError(f"--max-prompts must be >= 1, got {max_prompts}")
        if max_duration <= 0:
            raise InputError(f"--max-duration must be > 0, got {max_duration}")
        if max_loaded < 1:
            raise InputError(f"--max-loaded must be >= 1, got {max_loaded}")
        self.models = list(dict.fromkeys(str(m) for m in models))
        self.t5_path, self.device = t5_path, device
        self.max_prompts, self.max_duration, self.max_loaded = max_prompts, float(max_duration), max_loaded
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()  # one generation (or load) at a time: shared device and RNG
        self._own_dir = output_dir is None
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="magnet-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def default_model(self) -> str:
        return self.models[0]

    def loaded(self, name: str):
        return self._loaded.get(name)

    def get_model(self, name: str):
        """The model ``name``, loaded now if needed; call with ``self._lock`` held."""
        if name not in self.models:
            raise InputError(f"Unknown model {name!r}; choose one of: {', '.join(self.models)}.")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        from .models import MAGNeT

        while len(self._loaded) >= self.max_loaded:
            evicted, _ = self._loaded.popitem(last=False)
            log.info("unloading %s", evicted)
            _free_device_memory()
        log.info("loading %s", name)
        try:
            model = MAGNeT.get_pretrained(name, device=self.device, t5_path=self.t5_path)
        except MagnetError as exc:
            raise InputError(f"Could not load model {name!r}: {exc}") from exc
        except Exception as exc:  # hub unreachable, out of memory...
            log.exception("loading %s failed", name)
            raise InputError(f"Could not load model {name!r}: {type(exc).__name__}: {exc}") from exc
        self._loaded[name] = model
        return model

    def load(self, name: str):
        with self._lock:
            return self.get_model(name)

    def describe(self, name: str) -> str:
        model = self._loaded.get(name)
        if model is None:
            guess = window_guess(name)
            window = f"{guess:g} s window" if guess else "window known once loaded"
            return f"**{name}**: not loaded yet ({window}); it loads on the first request."
        return (f"**{name}**: {model.max_duration:g} s window, {model.sample_rate} Hz, "
                f"{model.audio_channels} channel(s), {model.lm.num_codebooks} codebooks. "
                f"Shorter durations are cut; longer ones (up to {self.max_duration:g} s) slide the window.")

    def generate(self, prompts_text: str, model_name: str, duration: Any, steps: Any, cfg_max: Any,
                 cfg_min: Any, temperature: Any, top_p: Any, seed: Any, fast: Any = False,
                 progress=None, edit: Callable | None = None) -> list[dict]:
        """Generate one clip per prompt; returns a dict per clip (audio and spectrogram paths, info).

        fast: decode with the fast-mode preset (``set_generation_params(fast=True)``, approximate;
            docs/fast-inference.md) instead of exact decoding.
        edit: instead of ``model.generate(prompts)``, ``edit(model, prompts)`` returns the audio
            [B, C, T] and details added to each clip's (an edit of an audio file: :mod:`.app_edit`).
        """
        import torch

        from .audio import audio_write

        prompts = parse_prompts(prompts_text, self.max_prompts)
        params = check_params(duration, cfg_max, cfg_min, temperature, top_p, seed, self.max_duration, fast)
        if params["seed"] < 0:
            params["seed"] = secrets.randbelow(2**31)
        if progress is not None:
            progress(0.0, desc="waiting for the model")
        with self._lock:
            if progress is not None and model_name not in self._loaded:
                progress(0.0, desc=f"loading {model_name}")
            model = self.get_model(model_name)
            decoding_steps = parse_steps(steps, model.lm.num_codebooks)
            model.update_generation_params(  # the model's recommendation, then the form's values
                top_p=params["top_p"], temperature=params["temperature"], max_cfg_coef=params["max_cfg_coef"],
                min_cfg_coef=params["min_cfg_coef"], decoding_steps=decoding_steps, duration=params["duration"],
                fast=params["fast"])

            def on_step(step: int, total: int) -> None:
                if progress is not None:
                    progress((step, total), desc="decoding", unit="steps")

            model.set_custom_progress_callback(on_step)
            torch.manual_seed(params["seed"])
            start = time.perf_counter()
            try:
                wav, extra = edit(model, prompts) if edit is not None else (model.generate(prompts), {})
                wav = wav.detach().float().cpu()
            finally:
                model.set_custom_progress_callback(None)
            elapsed = time.perf_counter() - start
            sample_rate = model.sample_rate
        if not torch.isfinite(wav).all():
            raise MagnetError("the model produced non-finite audio (NaN or inf)")

        if progress is not None:
            progress(1.0, desc="writing audio and spectrograms")
        if self._own_dir:
            self._sweep()
        request_dir = Path(tempfile.mkdtemp(prefix="req-", dir=self.output_dir))
        results = []
        for i, (prompt, one) in enumerate(zip(prompts, wav)):
            stem = request_dir / f"{i:02d}_{slugify(prompt)}"
            audio_path = audio_write(stem, one, sample_rate, strategy="loudness", loudness_compressor=True,
                                     log_clipping=False)
            image_path = spectrogram_png(one.numpy(), sample_rate, stem.with_suffix(".png"), title=prompt)
            results.append({
                "prompt": prompt, "audio": str(audio_path), "spectrogram": str(image_path),
                "sample_rate": sample_rate, "channels": int(one.shape[0]),
                "duration_s": round(one.shape[-1] / sample_rate, 4), "model": model_name, "seed": params["seed"],
                "decoding_steps": decoding_steps, "max_cfg_coef": params["max_cfg_coef"],
                "min_cfg_coef": params["min_cfg_coef"], "temperature": params["temperature"],
                "top_p": params["top_p"], "beat_lock": model.generation_params.beat_lock,
                "choice_temperature": model.generation_params.choice_temperature, "fast": params["fast"],
                "generation_s": round(elapsed, 3), **extra,
            })
        return results

    def _sweep(self, max_age_s: float = 3600.0) -> None:
        """Remove result folders older than ``max_age_s`` (Gradio serves its own copies, which its
        cache cleaner removes after an hour too)."""
        cutoff = time.time() - max_age_s
        for folder in self.output_dir.glob("req-*"):
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.output_dir, ignore_errors=True)


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
