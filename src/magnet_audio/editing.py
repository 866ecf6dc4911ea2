"""Masked editing of audio with MAGNeT: inpainting, outpainting and variations (docs/editing.md).

Every edit is decoding with frozen tokens (:func:`~magnet_audio.decoding.magnet.generate_codes`
with ``codes`` + ``frozen``): the input is encoded, the tokens outside the edited regions are
frozen, the LM fills the rest in windows planned by :func:`~magnet_audio.decoding.editing.plan_windows`,
and the decoded regions are spliced back into the input with short equal-power crossfades inside
the regions, so the audio outside them is the input's, bit for bit (after its conversion to the
model's sample rate and channels). :class:`MAGNeT`'s ``generate_inpainting`` and
``generate_variations`` are thin wrappers of :func:`inpaint` and :func:`variations`; each sets the
model's ``last_edit`` to an :class:`EditInfo`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from . import validation
from .audio import convert_audio
from .decoding.editing import Frames, Window, frames_to_seconds, plan_windows, round_up, seconds_to_frames, used_regions
from .decoding.magnet import first_step, generate_codes
from .decoding.rescoring import ARRescorer
from .errors import InputError
from .genmodel import BaseGenModel, StepCounter, check_descriptions
from .lm.variants import half_dtype

#: the functions take a ``MAGNeT`` (models.py imports this module, so it is typed by its base class)
Model = BaseGenModel

Seconds = tuple[float, float]
#: length of the crossfades at the inner edges of a spliced region (cut to half the region if shorter)
CROSSFADE_S = 0.02


@dataclass(frozen=True)
class EditInfo:
    """What an edit did, per item of the batch (``model.last_edit``; the CLI writes it as JSON).

    kind: ``inpainting`` (with outpainting) or ``variations``.
    sample_rate: of the returned audio (the model's).
    requested: the regions asked for, in seconds of the input, per item.
    used: the regions generated, after widening to the span grid of their decoding window, in
        seconds of the input (negative before it), per item; output time = input time + ``prepended_s``.
    spliced: whether the decoded regions were spliced into the input (else the pure decode).
    prepended_s / appended_s: seconds added before / after the input (outpainting).
    strength: the variations' strength (None for inpainting).
    converted: the input was resampled or its channels mixed to the model's.
    """

    kind: str
    sample_rate: int
    requested: tuple[tuple[Seconds, ...], ...]
    used: tuple[tuple[Seconds, ...], ...]
    spliced: bool
    prepended_s: float = 0.0
    appended_s: float = 0.0
    strength: float | None = None
    converted: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-ready values (regions as lists of [start, end])."""
        return asdict(self)


def inpaint(model: Model, audio: torch.Tensor, sample_rate: int, descriptions: Sequence[str | None] | None,
            regions, progress: bool = False, return_tokens: bool = False, splice: bool = True):
    """Regenerate ``regions`` of ``audio`` [B, C, T] (or [C, T]) at ``sample_rate``: see
    :meth:`MAGNeT.generate_inpainting`. Returns audio [B, C, T'] at the model's rate (and codes)."""
    wav, converted = model_audio(model, audio, sample_rate)
    descriptions = _descriptions(descriptions, wav.shape[0])
    splice = validation.boolean(splice, "splice")
    B, N, sr, fr = wav.shape[0], wav.shape[-1], model.sample_rate, model.frame_rate
    hop = round(sr / fr)
    requested = validation.edit_regions(regions, B, N / sr)
    before = {max(0.0, -r[0][0]) for r in requested}
    after = {max(0.0, r[-1][1] - N / sr) for r in requested}
    if len(before) > 1 or len(after) > 1:
        raise InputError("outpainting must extend every item of the batch by the same amount "
                         "(give the same regions before and after the clip to all items)")
    codes, scale = _encode(model, wav)
    F = codes.shape[-1]
    P = math.ceil(before.pop() * fr - 1e-6)  # frames prepended
    end_frame = max(F, seconds_to_frames(0.0, N / sr + after.pop(), fr)[1])  # frames of the input + appended
    out_len = P * hop + (N if end_frame == F else end_frame * hop)
    frames = [[seconds_to_frames(a, b, fr, P) for a, b in item] for item in requested]
    ext, windows = _extend_and_plan(model, codes, P, P + end_frame, frames)
    ext = _run_windows(model, descriptions, ext, windows, 1.0, progress)[..., :P + end_frame]
    decoded = _decode(model, ext, scale)[..., :out_len]
    used = [_clip([r for r in used_regions(w)], 0, P + end_frame) for w in windows]
    if splice:
        base = torch.zeros(B, wav.shape[1], out_len, dtype=decoded.dtype, device=decoded.device)
        base[..., P * hop:P * hop + N] = wav.to(base)
        out = splice_regions(base, decoded, [[(a * hop, min(b * hop, out_len)) for a, b in u] for u in used],
                             round(CROSSFADE_S * sr))
    else:
        out = decoded
    model.last_edit = EditInfo(
        "inpainting", sr, _freeze(requested),
        _freeze([[_seconds(r, fr, P, out_len / sr - P * hop / sr) for r in u] for u in used]), splice,
        prepended_s=P * hop / sr, appended_s=(out_len - P * hop - N) / sr, converted=converted)
    return (out, ext) if return_tokens else out


def variations(model: Model, audio: torch.Tensor, sample_rate: int, descriptions: Sequence[str | None] | None,
               strength: float, progress: bool = False, return_tokens: bool = False):
    """Re-decode a share ``strength`` of ``audio``: see :meth:`MAGNeT.generate_variations`."""
    wav, converted = model_audio(model, audio, sample_rate)
    descriptions = _descriptions(descriptions, wav.shape[0])
    strength = validation.finite_float(strength, "strength", 0, 1)
    B, N, sr, fr = wav.shape[0], wav.shape[-1], model.sample_rate, model.frame_rate
    codes, scale = _encode(model, wav)
    F = codes.shape[-1]
    whole = [[(0.0, N / sr)]] * B
    if strength == 0:  # nothing re-masked: the input's tokens, the input's audio
        out, used = wav.to(model.device), whole
    else:
        ext, windows = _extend_and_plan(model, codes, 0, F, [[(0, F)]] * B)
        codes = _run_windows(model, descriptions, ext, windows, strength, progress)[..., :F]
        out, used = _decode(model, codes, scale)[..., :N], whole
    model.last_edit = EditInfo("variations", sr, _freeze(whole), _freeze(used), False, strength=strength,
                               converted=converted)
    return (out, codes) if return_tokens else out


def model_audio(model: Model, audio: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, bool]:
    """Checked audio [B, C, T] converted to the model's sample rate and channels (with a one-line
    warning when it has to be), and whether it was."""
    wav, sample_rate = validation.audio_input(audio, sample_rate)
    if sample_rate == model.sample_rate and wav.shape[1] == model.audio_channels:
        return wav.float(), False
    warnings.warn(f"the audio ({sample_rate} Hz, {wav.shape[1]} channel(s)) is converted to the model's "
                  f"{model.sample_rate} Hz, {model.audio_channels} channel(s): the output is at that rate", stacklevel=4)
    return convert_audio(wav.float(), sample_rate, model.sample_rate, model.audio_channels), True


def splice_regions(base: torch.Tensor, decoded: torch.Tensor, ranges: list[list[tuple[int, int]]],
                   fade: int) -> torch.Tensor:
    """``base`` [B, C, T] with ``decoded`` [B, C, >= T] in each item's sample ranges [a, b); the first
    and last ``fade`` samples of a range (fewer if it is short) crossfade from ``base`` with equal
    power (cos/sin), except at the ends of the clip. Samples outside the ranges are ``base``'s."""
    out = base.clone()
    for b, item in enumerate(ranges):
        for a, e in item:
            if e <= a:
                continue
            n = min(fade, (e - a) // 2)
            seg = decoded[b, :, a:e].to(out.dtype).clone()
            theta = (torch.arange(n, device=out.device, dtype=torch.float64) + 0.5) / n * (math.pi / 2) if n else None
            if n and a > 0:  # fade in: base -> decoded
                seg[:, :n] = (base[b, :, a:a + n] * torch.cos(theta) + seg[:, :n] * torch.sin(theta)).to(out.dtype)
            if n and e < out.shape[-1]:  # fade out: decoded -> base
                seg[:, -n:] = (base[b, :, e - n:e] * torch.sin(theta) + seg[:, -n:] * torch.cos(theta)).to(out.dtype)
            out[b, :, a:e] = seg
    return out


def _descriptions(descriptions, batch: int) -> list[str | None]:
    descriptions = check_descriptions([None] * batch if descriptions is None else descriptions)
    if len(descriptions) != batch:
        raise InputError(f"{len(descriptions)} descriptions for {batch} audio clips")
    return descriptions


def _encode(model: Model, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    with torch.no_grad():
        return model.compression_model.encode(wav.to(model.device))


def _decode(model: Model, codes: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    with torch.no_grad():
        return model.compression_model.decode(codes, scale)


def _unit(model: Model) -> int:
    """Frames per re-masked unit: span_len on the ``nonoverlap`` grid, else 1."""
    L = model.lm.cfg.span_len
    return L if L > 1 and model.generation_params.span_arrangement == "nonoverlap" else 1


def _extend_and_plan(model: Model, codes: torch.Tensor, prepend: int, length: int,
                     frames: list[list[Frames]]) -> tuple[torch.Tensor, list[list[Window]]]:
    """codes [B, K, F] placed at frame ``prepend`` of masks [B, K, T] (T = ``length`` rounded up to
    the unit; the frames past ``length`` are padding, generated only with a region that reaches
    ``length``), and each item's decoding windows for its regions (frames of the extended clip)."""
    unit = _unit(model)
    total = round_up(length, unit)
    ext = torch.full((codes.shape[0], codes.shape[1], total), model.lm.mask_id, dtype=torch.long, device=codes.device)
    ext[..., prepend:prepend + codes.shape[-1]] = codes
    window = round_up(int(model.max_duration * model.frame_rate), unit)  # positions are computed: any length works
    context = (window - int(model.extend_stride * model.frame_rate)) // unit * unit
    context = min(max(context, unit), window - unit) if window > unit else 0
    windows = []
    for item in frames:
        item = [(max(a, 0), total if b >= length else b) for a, b in item]
        if window <= unit and any(b - a > window for a, b in item):
            raise InputError("the model's window is a single span: edits must fit in it")
        windows.append(plan_windows(item, total, window, unit, max(context, 1)))
    return ext, windows


def _run_windows(model: Model, descriptions: list[str | None], ext: torch.Tensor, windows: list[list[Window]],
                 strength: float, progress: bool) -> torch.Tensor:
    """Decode each item's windows of ext [B, K, T] in passes (pass j decodes every item's j-th
    window as one batch; items with fewer windows get a fully frozen one) and return ext filled."""
    B, params = ext.shape[0], model.generation_params
    passes = max(len(w) for w in windows)
    length = windows[0][0].length
    per_pass = sum(n - first_step(n, strength) for n in params.decoding_steps)
    ext = ext.clone()
    with StepCounter(model, per_pass * passes, progress, "MAGNeT edit") as callback:
        with torch.no_grad(), model.inference_autocast():
            memory = model.lm.encode_text(list(descriptions) + [None] * B)
            if params.fast.half:
                memory = memory.to(half_dtype(model.device))
            rescorer = ARRescorer(model.rescorer, descriptions) if model.rescorer is not None else None
            tempo = model.decoding_tempo(descriptions, edit=True)
            for j in range(passes):
                plan = [w[j] if j < len(w) else Window(0, length, ()) for w in windows]
                codes = torch.stack([ext[b, :, w.start:w.start + length] for b, w in enumerate(plan)])
                frozen = torch.ones_like(codes, dtype=torch.bool)
                for b, w in enumerate(plan):
                    for a, e in w.free:
                        frozen[b, :, a - w.start:e - w.start] = False
                out = generate_codes(model.decoding_lm, memory, params, length, callback=callback,
                                     rescorer=rescorer, codes=codes, frozen=frozen, strength=strength, tempo=tempo)
                for b, w in enumerate(plan):
                    ext[b, :, w.start:w.start + length] = out[b]
    return ext


def _clip(ranges: list[Frames], low: int, high: int) -> list[Frames]:
    return [(max(a, low), min(b, high)) for a, b in ranges if min(b, high) > max(a, low)]


def _seconds(frames: Frames, frame_rate: float, prepend: int, end_s: float) -> Seconds:
    a, b = frames_to_seconds(frames, frame_rate, prepend)
    return (round(a, 6), round(min(b, end_s), 6))


def _freeze(per_item) -> tuple[tuple[Seconds, ...], ...]:
    return tuple(tuple((float(a), float(b)) for a, b in item) for item in per_item)
