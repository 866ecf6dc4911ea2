"""``magnet app``'s audio editing: continue, inpaint (and outpaint) or vary an uploaded or recorded
clip, on the page and as the ``/edit`` API.

The request checks (:func:`check_edit`) and the edit itself (:func:`edit_runner`, run by
:meth:`magnet_audio.app.Generator.generate` under its lock, seed and progress) need no gradio;
:func:`add_edit_controls` and :func:`wire_edit` add the controls to :mod:`magnet_audio.app_page`'s
page. The model calls are :class:`~magnet_audio.MAGNeT`'s ``generate_continuation``,
``generate_inpainting`` and ``generate_variations``, as in ``magnet generate --continue`` and
``magnet edit`` (:mod:`magnet_audio.edit_cli`, whose file reading and continuation prompt this reuses).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

from .edit_cli import Continuation, edit_record, prompt_seconds, read_input
from .errors import InputError, MagnetError
from .validation import audio_file, choice, parse_regions, strength

log = logging.getLogger("magnet_audio.app")

#: The page's modes: "generate" is plain text-to-music (no audio), the others edit the audio input.
MODES = ("generate", "continue", "inpaint", "vary")
BUTTON_LABELS = {"continue": "Continue", "inpaint": "Inpaint", "vary": "Vary"}
PAST_TENSE = {"generate": "Generated", "continue": "Continued", "inpaint": "Inpainted", "outpaint": "Outpainted",
              "vary": "Varied"}


@dataclasses.dataclass
class EditRequest:
    """A checked edit: the mode, the audio file and the mode's settings (None where unused)."""

    mode: str
    audio: Path | None = None
    regions: list[tuple[float, float]] | None = None
    prompt_seconds: float | None = None
    strength: float | None = None
    splice: bool = True


def check_edit(mode: Any, audio: Any, regions: Any, prompt_s: Any, strength_value: Any, splice: Any,
               max_seconds: float) -> EditRequest:
    """The edit the form (or an API call) asks for; an :class:`InputError` names the first bad field.
    ``audio`` is a file path (what Gradio passes); ``regions`` is ``"3:5.5, 7:8"`` or a list of pairs;
    ``prompt_s`` 0 or empty means the default (the whole clip, at most half the model's window)."""
    mode = choice(mode, "Mode", MODES)
    if mode == "generate":
        return EditRequest(mode)
    if audio is None or audio == "":
        raise InputError(f"{mode.capitalize()}: upload or record an audio clip first.")
    path, _, _, seconds = audio_file(audio, "Input audio")
    if seconds > max_seconds:
        raise InputError(f"Input audio is {seconds:.1f} s long; at most {max_seconds:g} s.")
    if mode == "inpaint":
        return EditRequest(mode, path, regions=parse_regions(regions, "Region"), splice=bool(splice))
    if mode == "vary":
        return EditRequest(mode, path, strength=strength(strength_value, "Strength"))
    given = None if prompt_s in (None, "", 0) else prompt_s
    return EditRequest(mode, path, prompt_seconds=given)


def edit_runner(request: EditRequest) -> Callable | None:
    """``(model, prompts) -> (audio [B, C, T], details)`` for :meth:`Generator.generate`'s ``edit``;
    None for plain generation. Each prompt edits the same clip."""
    if request.mode == "generate":
        return None

    def run(model, prompts: list[str]):
        source = read_input(request.audio, model, quiet=True, what="Input audio")
        wav = source.wav[None].expand(len(prompts), -1, -1)
        described = source.describe()  # a "path" key would make gradio_client download it as a file
        details: dict = {"mode": request.mode, "input": {"name": Path(described.pop("path")).name, **described}}
        if request.mode == "continue":
            seconds = prompt_seconds(source, request.prompt_seconds, model, "Prompt seconds")
            out = Continuation(source, seconds, seed=0).generate(model, prompts, progress=False)
            details["prompt_seconds"] = round(seconds, 4)
        elif request.mode == "vary":
            out = model.generate_variations(wav, source.sample_rate, prompts, strength=request.strength)
            details["strength"] = request.strength
        else:
            if any(s < 0 or e > source.seconds for s, e in request.regions):
                details["mode"] = "outpaint"
            out = model.generate_inpainting(wav, source.sample_rate, prompts, regions=request.regions,
                                            splice=request.splice)
            details.update(regions=[list(r) for r in request.regions], splice=request.splice)
        if request.mode != "continue":
            details["edit"] = edit_record(model)
        return out, details

    return run


def run_edit(generator, audio, mode, regions, prompt_s, strength_value, splice, prompts, model, duration, steps,
             cfg_max, cfg_min, temperature, top_p, seed, fast=False, progress=None) -> list[dict]:
    """Check the edit, then run it through ``generator`` (its checks of the other fields, its lock)."""
    request = check_edit(mode, audio, regions, prompt_s, strength_value, splice, generator.max_duration)
    return generator.generate(prompts, model, duration, steps, cfg_max, cfg_min, temperature, top_p, seed, fast,
                              progress=progress, edit=edit_runner(request))


# --------------------------------------------------------------------------------------------------
# The page's controls (gradio)
# --------------------------------------------------------------------------------------------------


def add_edit_controls(gr) -> dict:
    """The mode switch, the audio input and each mode's settings, in the current Blocks context."""
    parts = {"mode": gr.Radio(list(MODES), value="generate", label="Mode", elem_id="mode",
                              info="generate from text, or continue / inpaint / vary an audio clip")}
    with gr.Group(visible=False, elem_id="edit-controls") as group:
        parts["audio"] = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Input audio",
                                  elem_id="edit-audio")
        parts["regions"] = gr.Textbox("", label="Regions to re-generate (seconds, START:END, comma-separated)",
                                      placeholder="3.0:5.5, 7:8  (before 0 or past the end: outpainting)",
                                      elem_id="regions", visible=False)
        parts["splice"] = gr.Checkbox(True, label="Splice: keep the original samples outside the regions",
                                      elem_id="splice", visible=False)
        parts["prompt_seconds"] = gr.Number(0, label="Prompt seconds (0: the whole clip, at most half the window)",
                                            elem_id="prompt-seconds", visible=True)
        parts["strength"] = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Variation strength",
                                      elem_id="strength", visible=False)
    parts["group"] = group
    return parts


def wire_edit(gr, parts: dict, generator, generate_button, edit_button, common_inputs: list, outputs: list,
              present: Callable, progress_on: list, concurrency: int):
    """Show the controls of the chosen mode, and make ``edit_button`` run the edit as the ``/edit`` API
    (inputs: audio, mode, regions, prompt_seconds, strength, splice, then ``common_inputs``: the
    ``/generate`` inputs); ``present`` turns the results into ``outputs``. Returns the edit event."""

    def on_mode(mode: str):
        editing = mode != "generate"
        return (gr.update(visible=editing), gr.update(visible=not editing),
                gr.update(visible=editing, value=BUTTON_LABELS.get(mode, "Edit")),
                gr.update(visible=mode == "inpaint"), gr.update(visible=mode == "inpaint"),
                gr.update(visible=mode == "continue"), gr.update(visible=mode == "vary"))

    def edit(audio: str | None, mode: str, regions: str, prompt_seconds: float, strength: float, splice: bool,
             prompts: str, model: str, duration: float, steps: str, cfg_max: float, cfg_min: float,
             temperature: float, top_p: float, seed: float, fast: bool = False, progress=gr.Progress()):
        """Continue, inpaint (regions START:END, comma-separated; before 0 or past the end outpaints) or
        vary (strength 0..1) the audio clip, once per prompt line; mode "generate" ignores the audio.
        Returns (audio files, spectrogram PNGs, details per clip)."""
        return present(as_gr_error(gr, run_edit, generator, audio, mode, regions, prompt_seconds, strength, splice,
                                   prompts, model, duration, steps, cfg_max, cfg_min, temperature, top_p, seed,
                                   fast, progress=progress))

    parts["mode"].change(on_mode, inputs=[parts["mode"]],
                         outputs=[parts["group"], generate_button, edit_button, parts["regions"], parts["splice"],
                                  parts["prompt_seconds"], parts["strength"]],
                         api_visibility="private", queue=False, show_progress="hidden")
    inputs = [parts[k] for k in ("audio", "mode", "regions", "prompt_seconds", "strength", "splice")] + common_inputs
    return edit_button.click(edit, inputs=inputs, outputs=outputs, api_name="edit", concurrency_limit=concurrency,
                             concurrency_id="generate", show_progress_on=progress_on)


def as_gr_error(gr, action: Callable, *args, **kwargs):
    """``action(*args)``, its :class:`MagnetError` shown as the page's message (and an API error);
    any other failure logged and reported, never stopping the server."""
    try:
        return action(*args, **kwargs)
    except MagnetError as exc:
        raise gr.Error(str(exc), title="Cannot generate") from exc
    except Exception as exc:
        log.exception("generation failed")
        raise gr.Error(f"Generation failed: {type(exc).__name__}: {exc}", title="Generation failed") from exc
