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
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .decoding import GenerationParams, default_decoding_steps
from .errors import InputError, MagnetError
from .names import MAGNET_REPOS, bundled_models, default_model_name
from .utils import slugify

log = logging.getLogger("magnet_audio.app")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_STEPS_PER_STAGE = 200
MAX_PROMPT_CHARS = 1000
EXAMPLE_PROMPTS = [
    "80s pop track with bassy drums and synth",
    "lofi hip hop beat with mellow piano and vinyl crackle",
    "calm solo piano, slow and reflective",
    "energetic drum and bass with a heavy reese bassline",
    "acoustic folk guitar with soft hand percussion",
    "epic orchestral score with brass and timpani",
    "90s rock song with loud guitars and heavy drums",
]


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


def spectrogram_png(wav: np.ndarray, sample_rate: int, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write a log-magnitude spectrogram (dB, 80 dB range) of ``wav`` [C, T] or [T] as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    db = np.clip(db - db.max(), -80.0, 0.0)
    seconds = len(x) / sample_rate

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
                 progress=None) -> list[dict]:
        """Generate one clip per prompt; returns a dict per clip (audio and spectrogram paths, info).

        fast: decode with the fast-mode preset (``set_generation_params(fast=True)``, approximate;
            docs/fast-inference.md) instead of exact decoding.
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
                wav = model.generate(prompts).detach().float().cpu()
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
                "top_p": params["top_p"], "beat_lock": model.generation_params.beat_lock, "fast": params["fast"],
                "generation_s": round(elapsed, 3),
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


# --------------------------------------------------------------------------------------------------
# The Gradio page
# --------------------------------------------------------------------------------------------------

CSS = """
#result-status {min-height: 2.5em}
.result-slot {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px}
footer {display: none !important}
"""


def _import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as exc:
        raise InputError("the web app needs gradio: pip install 'magnet-audio[app]'") from exc
    return gr


def build_app(generator: Generator, concurrency: int = 1, queue_size: int = 32):
    """The Gradio Blocks app for ``generator``; launch it with :func:`launch` (or ``.launch()``)."""
    gr = _import_gradio()
    if concurrency < 1:
        raise InputError(f"--concurrency must be >= 1, got {concurrency}")
    slots = generator.max_prompts
    default = generator.default_model
    loaded = generator.loaded(default)
    window = loaded.max_duration if loaded is not None else (window_guess(default) or 10.0)
    steps_initial = steps_default(loaded)

    cfg_max_default, cfg_min_default, temperature_default, top_p_default = sampling_defaults(loaded)

    def generate(prompts: str, model: str, duration: float, steps: str, cfg_max: float, cfg_min: float,
                 temperature: float, top_p: float, seed: float, fast: bool = False, progress=gr.Progress()):
        """Generate one clip per prompt line (``fast``: approximate, faster decoding). Returns (audio
        files, spectrogram PNGs, details per clip)."""
        try:
            results = generator.generate(prompts, model, duration, steps, cfg_max, cfg_min, temperature, top_p,
                                         seed, fast, progress=progress)
        except MagnetError as exc:
            raise gr.Error(str(exc), title="Cannot generate") from exc
        except Exception as exc:  # a bug or out of memory: report it, keep serving
            log.exception("generation failed")
            raise gr.Error(f"Generation failed: {type(exc).__name__}: {exc}", title="Generation failed") from exc
        details = [{"file": Path(r["audio"]).name,
                    **{k: v for k, v in r.items() if k not in ("audio", "spectrogram")}} for r in results]
        return [r["audio"] for r in results], [r["spectrogram"] for r in results], details

    def show(details: list | None, audio_files: list | None, images: list | None):
        details, audio_files, images = details or [], audio_files or [], images or []
        updates: list = []
        for i in range(slots):
            if i < len(details) and i < len(audio_files) and i < len(images):
                d = details[i]
                label = f"{i + 1}. {d['prompt']}"
                updates += [gr.update(visible=True),
                            gr.update(value=audio_files[i], label=label),
                            gr.update(value=images[i], label=f"spectrogram: {d['prompt']}",
                                      alt_text=f"spectrogram of result {i + 1}: {d['prompt']}")]
            else:
                updates += [gr.update(visible=False), gr.update(value=None), gr.update(value=None)]
        if details:
            d = details[0]
            status = (f"Generated {len(details)} clip(s) of {d['duration_s']:.2f} s at {d['sample_rate']} Hz "
                      f"with `{d['model']}` in {d['generation_s']:.1f} s (seed {d['seed']}"
                      f"{', fast mode' if d['fast'] else ''}).")
        else:
            status = ""
        return [status] + updates

    def on_model_change(name: str):
        model = generator.loaded(name)
        new_window = model.max_duration if model is not None else window_guess(name)
        steps = steps_default(model) if model is not None else gr.update()
        sampling = sampling_defaults(model) if model is not None else [gr.update()] * 4
        return (generator.describe(name),
                gr.update(value=min(new_window, generator.max_duration)) if new_window else gr.update(), steps,
                *sampling)

    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])  # no web fonts: works offline
    with gr.Blocks(title="MAGNeT text-to-music", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# MAGNeT: text-to-music\nMasked audio generation with a single non-autoregressive "
                    f"transformer. One prompt per line, up to {slots} per request.")
        with gr.Row():
            with gr.Column(scale=5):
                prompts = gr.Textbox(label="Prompts (one per line)", lines=4, max_lines=slots + 4,
                                     placeholder=EXAMPLE_PROMPTS[0], elem_id="prompts")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                model = gr.Dropdown(generator.models, value=default, label="Model", elem_id="model")
                model_info = gr.Markdown(generator.describe(default), elem_id="model-info")
                with gr.Accordion("Generation parameters", open=True):
                    duration = gr.Slider(0.5, generator.max_duration, value=min(window, generator.max_duration),
                                         step=0.5, label="Duration (s)", elem_id="duration",
                                         info="the model's window by default; longer slides the window")
                    steps = gr.Textbox(steps_initial, label="Decoding steps per codebook", elem_id="steps",
                                       info="fewer is faster (e.g. 10,5,5,5); audiocraft's default 20,10,10,10")
                    fast = gr.Checkbox(False, label="Fast mode", elem_id="fast",
                                       info="approximate, faster decoding: cached attention, CFG skipped near 1, "
                                            "int8 on CPU or half precision on GPU (not the exact tokens)")
                    with gr.Row():
                        cfg_max = gr.Number(cfg_max_default, label="CFG max", elem_id="cfg-max")
                        cfg_min = gr.Number(cfg_min_default, label="CFG min", elem_id="cfg-min")
                    with gr.Row():
                        temperature = gr.Number(temperature_default, label="Temperature", elem_id="temperature")
                        top_p = gr.Number(top_p_default, label="Top-p", elem_id="top-p")
                        seed = gr.Number(-1, label="Seed (-1: random)", precision=0, elem_id="seed")
                gr.Examples([[p] for p in EXAMPLE_PROMPTS], inputs=[prompts], label="Example prompts")
            with gr.Column(scale=6):
                status = gr.Markdown("", elem_id="result-status")
                slot_parts: list = []
                for i in range(slots):
                    with gr.Group(visible=False, elem_id=f"result-{i}", elem_classes="result-slot") as group:
                        audio = gr.Audio(type="filepath", label=f"result {i + 1}", interactive=False,
                                         buttons=["download"], elem_id=f"audio-{i}")
                        image = gr.Image(type="filepath", label="spectrogram", show_label=False,
                                         interactive=False, format="png", elem_id=f"spectrogram-{i}")
                    slot_parts += [group, audio, image]
                with gr.Accordion("Downloads and details", open=False):
                    audio_files = gr.File(label="Audio files", file_count="multiple", elem_id="audio-files")
                    image_files = gr.File(label="Spectrograms", file_count="multiple", elem_id="spectrogram-files")
                    details = gr.JSON(label="Details", elem_id="details")

        inputs = [prompts, model, duration, steps, cfg_max, cfg_min, temperature, top_p, seed, fast]
        event = dict(fn=generate, inputs=inputs, outputs=[audio_files, image_files, details],
                     api_name="generate", concurrency_limit=concurrency, concurrency_id="generate",
                     show_progress_on=[status])
        run = button.click(**event)
        run.success(show, inputs=[details, audio_files, image_files], outputs=[status] + slot_parts,
                    api_visibility="private", queue=False)
        model.change(on_model_change, inputs=[model], outputs=[model_info, duration, steps, cfg_max, cfg_min,
                                                               temperature, top_p],
                     api_visibility="private", queue=False)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    demo._magnet_theme, demo._magnet_css = theme, CSS
    return demo


#: Largest file Gradio's upload route accepts: the app takes no audio, so uploads are only ever small.
MAX_UPLOAD = "1mb"


def launch(demo, host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth: tuple | None = None,
           block: bool = True, allowed_paths: Sequence[str] = (), max_file_size: str | int | None = MAX_UPLOAD):
    """Serve ``demo``; with ``block=False`` return at once (the server runs in a thread). Uploads
    larger than ``max_file_size`` are refused (HTTP 413)."""
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth, show_error=True,
                       prevent_thread_lock=not block, ssr_mode=False, quiet=False, footer_links=["api"],
                       allowed_paths=list(allowed_paths), theme=getattr(demo, "_magnet_theme", None),
                       css=getattr(demo, "_magnet_css", None), mcp_server=False, max_file_size=max_file_size)


class _StopOnSigterm:
    """While active, SIGTERM (``kill``, a service manager stopping the app) ends the server like Ctrl-C,
    so that the ``finally`` blocks run and the temporary results folder is removed."""

    def __enter__(self):
        import signal

        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    @staticmethod
    def _handle(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


# --------------------------------------------------------------------------------------------------
# The `magnet app` subcommand
# --------------------------------------------------------------------------------------------------


def _auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise InputError("--auth must be USER:PASSWORD")
    return (user, password)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def cmd_app(args: argparse.Namespace) -> None:

    host = args.host
    if args.listen:
        host = "0.0.0.0"
    elif host not in LOOPBACK and not args.expose:
        raise InputError(f"--host {host} would make the app reachable beyond this machine: add --expose "
                         "(or use --listen for 0.0.0.0) to confirm")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {args.port}")
    models = list(args.model or [default_model_name()])
    if not args.only_listed:
        models += [m for m in bundled_models() if m not in models]
    if args.offer_official:  # opt-in: any visitor could make the server download multi-GB checkpoints
        models += [m for m in MAGNET_REPOS if m not in models]
    auth = _auth(args.auth or os.environ.get("MAGNET_APP_AUTH"))
    port = args.port or free_port(host)
    gr = _import_gradio()  # fail before loading a model when gradio is missing
    del gr
    generator = Generator(models, t5_path=args.t5_path, device=args.device, max_prompts=args.max_prompts,
                          max_duration=args.max_duration, max_loaded=args.max_loaded, output_dir=args.output_dir)
    with _StopOnSigterm():  # SIGTERM runs the finally below too: no temporary folder is left behind
        try:
            print(f"loading {generator.default_model} ...", flush=True)
            generator.load(generator.default_model)
            demo = build_app(generator, concurrency=args.concurrency, queue_size=args.queue_size)
            if host not in LOOPBACK or args.share:
                print("warning: the app is reachable from other machines" + ("" if auth else " without --auth"),
                      flush=True)
            try:
                launch(demo, host=host, port=port, share=args.share, auth=auth,
                       allowed_paths=[str(generator.output_dir)], max_file_size=f"{args.max_upload_mb:g}mb")
            except OSError as exc:  # port in use, address not available
                raise InputError(f"cannot serve on {host}:{port}: {exc}") from exc
        finally:
            generator.close()


def add_subcommands(sub) -> None:
    """Add ``magnet app`` to the ``magnet`` command's subparsers."""
    app = sub.add_parser(
        "app", help="web app and HTTP API (Gradio)", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Serve a web page (and Gradio's API, api_name='generate') for text-to-music generation. "
                    "Binds to 127.0.0.1; exposing it needs --listen, --expose or --share. Needs the `app` extra: "
                    "pip install 'magnet-audio[app]'.")
    app.add_argument("--model", "-m", action="append", default=None,
                     help="model to serve (hub repo id or local directory); repeat for several; the first is the "
                          "default and is loaded at start. None: $MAGNET_MODEL or magnet-audio/synth-music")
    app.add_argument("--only-listed", action="store_true",
                     help="offer only the --model models, not also the models that ship with the package")
    app.add_argument("--offer-official", action="store_true",
                     help="also offer the official hub checkpoints (facebook/magnet-*): any visitor can then make "
                          "the server download several GB")
    app.add_argument("--max-upload-mb", type=float, default=1.0,
                     help="largest upload the server accepts, in MB (the app needs none)")
    app.add_argument("--t5-path", default=None, help="local directory of the T5 text encoder (offline use)")
    app.add_argument("--device", default=None, help="cpu, cuda or mps; None picks the best available")
    app.add_argument("--host", default="127.0.0.1", help="address to bind; other than loopback needs --expose")
    app.add_argument("--port", type=int, default=7860, help="port (0: any free port)")
    app.add_argument("--listen", action="store_true", help="bind 0.0.0.0: reachable from other machines")
    app.add_argument("--expose", action="store_true", help="confirm a non-loopback --host")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    app.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                     help="require a login (also $MAGNET_APP_AUTH); advised with --listen/--share")
    app.add_argument("--max-prompts", type=int, default=4, help="most prompts per request")
    app.add_argument("--max-duration", type=float, default=30.0, help="most seconds of audio per clip")
    app.add_argument("--concurrency", type=int, default=1,
                     help="requests admitted at once (generation itself is one at a time per device)")
    app.add_argument("--queue-size", type=int, default=32, help="requests waiting before new ones are refused")
    app.add_argument("--max-loaded", type=int, default=2, help="models kept in memory (least recently used go)")
    app.add_argument("--output-dir", default=None,
                     help="keep every result here; None: a temporary directory, results older than an hour "
                          "and the directory at exit are removed")
    app.set_defaults(func=cmd_app)
