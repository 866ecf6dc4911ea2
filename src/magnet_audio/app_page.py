"""``magnet app``'s Gradio page and the subcommand that serves it (the models and the request
checks behind it are in :mod:`magnet_audio.app`)."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from .app import Generator, sampling_defaults, steps_default, window_guess
from .app_edit import PAST_TENSE, add_edit_controls, as_gr_error, wire_edit
from .errors import InputError
from .names import MAGNET_REPOS, bundled_models, default_model_name

log = logging.getLogger("magnet_audio.app")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
EXAMPLE_PROMPTS = [
    "80s pop track with bassy drums and synth",
    "lofi hip hop beat with mellow piano and vinyl crackle",
    "calm solo piano, slow and reflective",
    "energetic drum and bass with a heavy reese bassline",
    "acoustic folk guitar with soft hand percussion",
    "epic orchestral score with brass and timpani",
    "90s rock song with loud guitars and heavy drums",
]
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
        return present(as_gr_error(gr, generator.generate, prompts, model, duration, steps, cfg_max, cfg_min,
                                   temperature, top_p, seed, fast, progress=progress))

    def present(results: list[dict]):
        """(audio files, spectrogram PNGs, details per clip) of a request's results."""
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
            status = (f"{PAST_TENSE[d.get('mode', 'generate')]} {len(details)} clip(s) of {d['duration_s']:.2f} s at {d['sample_rate']} Hz "
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
                    f"transformer. One prompt per line, up to {slots} per request; or continue, inpaint or vary "
                    "an audio clip.")
        with gr.Row():
            with gr.Column(scale=5):
                edit_parts = add_edit_controls(gr)
                prompts = gr.Textbox(label="Prompts (one per line)", lines=4, max_lines=slots + 4,
                                     placeholder=EXAMPLE_PROMPTS[0], elem_id="prompts")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                edit_button = gr.Button("Edit", variant="primary", elem_id="edit", visible=False)
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
        edit_run = wire_edit(gr, edit_parts, generator, button, edit_button, inputs, event["outputs"], present,
                             [status], concurrency)
        for each in (run, edit_run):
            each.success(show, inputs=[details, audio_files, image_files], outputs=[status] + slot_parts,
                         api_visibility="private", queue=False)
        model.change(on_model_change, inputs=[model], outputs=[model_info, duration, steps, cfg_max, cfg_min,
                                                               temperature, top_p],
                     api_visibility="private", queue=False)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    demo._magnet_theme, demo._magnet_css = theme, CSS
    return demo


#: Largest file Gradio's upload route accepts: an audio clip to edit (a minute of 48 kHz stereo WAV is 11 MB).
MAX_UPLOAD = "20mb"


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
        description="Serve a web page (and Gradio's API, api_names 'generate' and 'edit') for text-to-music generation "
                    "and audio editing. "
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
    app.add_argument("--max-upload-mb", type=float, default=20.0,
                     help="largest upload the server accepts, in MB (audio clips to edit)")
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
