"""The high-level MAGNeT class: audiocraft's API, so users switch by changing an import.

    from magnet_audio import MAGNeT, audio_write
    model = MAGNeT.get_pretrained("facebook/magnet-small-10secs")
    model.set_generation_params(decoding_steps=[20, 10, 10, 10])
    wav = model.generate(["80s pop track with bassy drums and synth"])  # [B, C, T]
    audio_write("out", wav[0].cpu(), model.sample_rate, strategy="loudness", loudness_compressor=True)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import torch

from .codec import load_compression_model
from .codec.model import EncodecModel
from .decoding import FastOptions, GenerationParams, default_decoding_steps, generate_codes
from .decoding.ar import ARGenerationParams
from .conditioning.tempo import prompt_tempi, tempo_from_tokens
from .decoding.beats import beat_spans
from .decoding.hybrid import check_pair, generate_hybrid_codes
from .decoding.rescoring import ARRescorer
from . import editing
from .editing import EditInfo
from .genmodel import BaseGenModel, StepCounter, check_descriptions, codec_source
from .checkpoints import read_our_config
from . import validation
from .errors import CheckpointError, InputError
from .lm.magnet import MagnetLM, tempo_from_frame
from .lm.transformer import REFERENCE_BPM
from .lm.musicgen import MusicGenLM
from .lm.loading import load_lm_model
from .lm.variants import half_dtype, inference_variant
from .names import MAGNET_REPOS, resolve_default_model
from .utils import resolve_device

OFFICIAL_MODELS = MAGNET_REPOS


class MAGNeT(BaseGenModel):
    """A codec and a MAGNeT LM that generate audio of the LM's segment length from text."""

    def __init__(self, name: str, compression_model: EncodecModel, lm: MagnetLM):
        super().__init__(name, compression_model, lm)
        self.max_duration = float(lm.cfg.segment_duration)  # one window of the LM
        self.duration = self.max_duration
        self.extend_stride = self.max_duration / 2
        self.generation_params = GenerationParams(decoding_steps=default_decoding_steps(lm.num_codebooks))
        self.rescorer: MusicGenLM | None = None
        # set_generation_params options the model's config recommends (see update_generation_params)
        self.recommended_generation_params: dict = {}
        self._decoding_lm: MagnetLM = lm
        self._variants: dict[tuple[bool, ...], MagnetLM] = {}  # (int8, half, compile) -> transformed copy of lm
        self.last_edit: EditInfo | None = None  # what the last generate_inpainting / generate_variations did

    @staticmethod
    def get_pretrained(name: str | None = None, device: str | torch.device | None = None,
                       t5_path: str | os.PathLike | None = None) -> "MAGNeT":
        """Load a model by name: a hub repo id (``facebook/magnet-small-10secs`` ...), a local
        directory, or a model that ships with the package (``magnet-audio/synth-music``).

        No name: ``$MAGNET_MODEL``, else ``facebook/magnet-small-10secs`` as in audiocraft when it
        is cached locally or the hub answers, else the bundled ``magnet-audio/synth-music`` with a
        one-line note on stderr saying why (:func:`~magnet_audio.names.resolve_default_model`).

        A directory holds ``state_dict.bin`` and ``compression_state_dict.bin`` (audiocraft's export
        format) or ``model.safetensors`` and ``config.json`` (ours, from ``magnet export``).
        ``device=None`` picks CUDA, then Apple MPS, then CPU. ``t5_path`` is a local directory with
        the T5 encoder, for machines that cannot reach the hub. A model in our format may recommend
        decoding options (``config.json``'s ``generation``): they become its defaults.
        """
        if name is None:
            name = resolve_default_model(t5_path)
        device = resolve_device(device)
        codec = load_compression_model(codec_source(name), device=device)
        lm = load_lm_model(name, device=device, t5_path=t5_path, frame_rate=int(round(codec.frame_rate)))
        lm.condition_provider.text.load_text_model()
        model = MAGNeT(str(name), codec, lm)
        recommended = (read_our_config(name, probe_hub=str(name) not in MAGNET_REPOS) or {}).get("generation")
        if recommended:
            model.recommended_generation_params = dict(recommended)
            try:
                model.update_generation_params()
            except (TypeError, InputError) as exc:
                raise CheckpointError(f"{name}: config.json has invalid generation options: {exc}") from exc
        return model

    @property
    def decoding_lm(self) -> MagnetLM:
        """The LM that decoding runs: :attr:`lm`, or the int8 / half-precision / compiled copy of it
        that the generation params ask for (made once per set of transforms, from the weights at
        the time of the first :meth:`set_generation_params` call that asks for it)."""
        return self._decoding_lm

    def decoding_tempo(self, descriptions: list[str | None], prompt: torch.Tensor | None = None,
                       edit: bool = False) -> torch.Tensor | None:
        """The tempo [B] (bpm, NaN where none is known: 120) a ``tempo_rope`` LM decodes these
        prompts at; None for other LMs: the one the text asks for ("96 bpm", "fast"); where it names
        none and audio is continued (``prompt`` codes [B, K, P]), the tempo the prompt's
        first-codebook tokens repeat at (:func:`~magnet_audio.conditioning.tempo.tempo_from_tokens`;
        on 3 s of the held-out renders within 8 % for 44 % of clips, the text's words for 62 %).

        A ``beat_phase`` LM gets [B, 2]: (bpm, the beat at frame 0): 0 when generating from nothing
        (the clip starts on a downbeat; 120 bpm where the text names no tempo), NaN (unknown) when
        audio is continued (``prompt``) or edited (``edit``)."""
        if not getattr(self.lm.cfg, "tempo_rope", False):
            return None
        tempo = prompt_tempi(descriptions)
        if prompt is not None and bool(tempo.isnan().any()):
            tempo = torch.where(tempo.isnan(), tempo_from_tokens(prompt[:, 0].cpu(), self.frame_rate), tempo)
        if not getattr(self.lm.cfg, "beat_phase", False):
            return tempo
        if prompt is not None or edit:
            return torch.stack([tempo, torch.full_like(tempo, float("nan"))], dim=1)
        return torch.stack([torch.nan_to_num(tempo, nan=REFERENCE_BPM), torch.zeros_like(tempo)], dim=1)

    def update_generation_params(self, **overrides) -> None:
        """Set the decoding options to the model's recommendation (its config.json's ``generation``:
        :attr:`recommended_generation_params`), updated by ``overrides`` (:meth:`set_generation_params`
        keywords; None values are left out, so unset command-line flags keep the recommendation).
        Options in neither take :meth:`set_generation_params`' defaults."""
        given = {k: v for k, v in overrides.items() if v is not None}
        self.set_generation_params(**{**self.recommended_generation_params, **given})

    def set_generation_params(self, use_sampling: bool = True, top_k: int = 0, top_p: float = 0.9,
                              temperature: float = 3.0, max_cfg_coef: float = 10.0, min_cfg_coef: float = 1.0,
                              decoding_steps: Sequence[int] | None = None,
                              span_arrangement: str = "nonoverlap", anneal_temp: bool = True,
                              span_scoring: str = "max", choice_temperature: float = 0.0,
                              rescorer=None, rescore_weight: float = 0.5,
                              beat_lock: float = 0.0, beat_guidance: bool = True,
                              duration: float | None = None, extend_stride: float | None = None,
                              fast: bool = False, kv_cache_refresh: int | None = None,
                              cfg_skip_threshold: float | None = None, cfg_null_refresh: int | None = None,
                              int8: bool | None = None, half: bool | None = None,
                              compile: bool | None = None) -> None:
        """Set the decoding options (see :class:`GenerationParams`); defaults are audiocraft's.

        decoding_steps: steps per codebook; None: audiocraft's [20, 10, 10, 10]
            (:func:`~magnet_audio.decoding.default_decoding_steps`).
        choice_temperature: 0 (audiocraft's): each decoding step keeps the surest spans; > 0: which
            spans are kept is sampled (MaskGIT's Gumbel noise on their log confidences, annealed
            over each codebook's steps; see :class:`GenerationParams`).
        rescorer: an autoregressive model (a :class:`~magnet_audio.MusicGen` or its LM) sharing this
            model's codec, whose probabilities of the sampled tokens are mixed with MAGNeT's,
            ``(1 - rescore_weight) * p_MAGNeT + rescore_weight * p_rescorer``, to choose the spans
            to re-mask (the paper's rescoring). None: plain MAGNeT.
        beat_lock: seconds (rounded to whole spans of the LM, at least one) at the start of every
            beat of the tempo a prompt names ("120 bpm", "tempo 96", "slow", "uptempo":
            :func:`~magnet_audio.conditioning.tempo.tempo_from_text`) that share their tokens, chosen
            by the LM (:mod:`~magnet_audio.decoding.beats`), so that the clip keeps that tempo; the
            beats start at the beginning of the piece (of the prompt audio in continuations). 0: off;
            prompts that name no tempo decode as usual.
        beat_guidance: for an LM that is told where the beat falls (``beat_phase``), the null rows
            of classifier-free guidance decode without the beat, so guidance strengthens the LM's
            own sense of what comes on the beat as it does the text's (tokens are still sampled
            from the LM). Generation from nothing only; no effect on other LMs.
        duration: seconds to generate (default: the model's window, ``max_duration``). Longer
            durations slide the window by ``extend_stride`` seconds (default half the window): each
            new window is prompted with the last ``max_duration - extend_stride`` seconds generated.
        fast: start from the fast-mode preset (:meth:`~magnet_audio.decoding.FastOptions.preset`:
            approximate self-attention cache refreshed every 5 steps, CFG skipped where its
            coefficient is within 0.1 of 1, the null-condition pass every 5 steps, int8 on CPU, half
            precision on GPU) instead of exact decoding. ``kv_cache_refresh``, ``cfg_skip_threshold``,
            ``cfg_null_refresh``, ``int8``, ``half``, ``compile`` (see
            :class:`~magnet_audio.decoding.FastOptions`) override single options of either. See
            docs/fast-inference.md for the trade-offs. The int8 / half / compile copy of the LM
            is made here (:attr:`decoding_lm`).
        """
        fast_options = FastOptions.preset(self.device) if fast else FastOptions()
        overrides = {"kv_cache_refresh": kv_cache_refresh, "cfg_skip_threshold": cfg_skip_threshold,
                     "cfg_null_refresh": cfg_null_refresh, "int8": int8, "half": half, "compile": compile}
        fast_options = dataclasses.replace(fast_options, **{k: v for k, v in overrides.items() if v is not None})
        if decoding_steps is None:
            decoding_steps = default_decoding_steps(self.lm.num_codebooks)
        params = GenerationParams(
            use_sampling=use_sampling, top_k=top_k, top_p=top_p, temperature=temperature,
            max_cfg_coef=max_cfg_coef, min_cfg_coef=min_cfg_coef, decoding_steps=list(decoding_steps),
            span_arrangement=span_arrangement, anneal_temp=anneal_temp, span_scoring=span_scoring,
            choice_temperature=choice_temperature, rescore_weight=rescore_weight, beat_lock=beat_lock,
            beat_guidance=beat_guidance, fast=fast_options,
        ).validate(self.lm.num_codebooks, card=self.lm.cfg.card)
        if params.fast.int8 and self.device.type != "cpu":
            raise InputError(f"int8 decoding runs on CPU only (the model is on {self.device.type})")
        duration = self.max_duration if duration is None else validation.duration(duration, "duration (seconds)")
        extend_stride = (self.max_duration / 2 if extend_stride is None
                         else validation.finite_float(extend_stride, "extend_stride (seconds)"))
        if duration > self.max_duration and not 0 < extend_stride < self.max_duration:
            raise InputError(f"extend_stride must be in (0, {self.max_duration}) s (the model's window), "
                             f"got {extend_stride}")
        if rescorer is not None:
            rescorer = _ar_lm(rescorer, "rescorer")
            check_pair(rescorer, self.lm)
        self.generation_params, self.rescorer = params, rescorer
        self.duration, self.extend_stride = float(duration), float(extend_stride)
        self._decoding_lm = self._transformed_lm(params.fast)

    def _transformed_lm(self, fast: FastOptions) -> MagnetLM:
        """:attr:`lm` with the model transforms of ``fast`` (int8 / half / compile), each set made once."""
        key = tuple(fast.transforms.values())
        if not any(key):
            return self.lm
        if key not in self._variants:
            self._variants[key] = inference_variant(self.lm, **fast.transforms)
        return self._variants[key]

    def generate_hybrid(self, descriptions: Sequence[str | None], ar_model=None, prefix_seconds: float = 3.0,
                        progress: bool = False, return_tokens: bool = False):
        """Hybrid-MAGNeT: an autoregressive model generates the first ``prefix_seconds``, then MAGNeT
        decodes the rest of the window conditioned on that prefix, which is kept as is.

        ar_model: a :class:`~magnet_audio.MusicGen` sharing this model's codec (with its own
            generation params), or None for this model's own causal view
            (:meth:`~magnet_audio.lm.magnet.MagnetLM.ar_view`), which needs a model trained with
            ``model.hybrid: true``. The own view samples with MusicGen's defaults (top-k 250,
            temperature 1, CFG 3), greedily when this model's ``use_sampling`` is False.
        """
        descriptions = check_descriptions(descriptions)
        if ar_model is None:
            if not self.lm.cfg.hybrid:
                raise InputError(f"{self.name} is not a hybrid model (trained with model.hybrid: true), so it has no "
                                 "autoregressive role of its own: pass ar_model, a MusicGen sharing its codec")
            ar_lm = self.lm.ar_view()
            params = ARGenerationParams(use_sampling=self.generation_params.use_sampling)
        else:
            ar_lm = _ar_lm(ar_model, "ar_model")
            check_pair(ar_lm, self.lm)
            params = getattr(ar_model, "generation_params", None)
            if not isinstance(params, ARGenerationParams):  # a bare LM: audiocraft's MusicGen defaults
                params = ARGenerationParams()
        prefix_len = int(prefix_seconds * self.frame_rate)
        window = int(self.max_duration * self.frame_rate)
        if not 0 < prefix_len < window:
            raise InputError(f"prefix_seconds must be in (0, {self.max_duration}) s (the model's window), "
                             f"got {prefix_seconds}")
        return self._generate(descriptions, None, progress, return_tokens, hybrid=(ar_lm, params, prefix_len))

    def generate_inpainting(self, audio: torch.Tensor, sample_rate: int, descriptions: Sequence[str | None] | None,
                            regions=None, progress: bool = False, return_tokens: bool = False, splice: bool = True):
        """Regenerate ``regions`` of ``audio`` [B, C, T] (or [C, T]) at ``sample_rate``, guided by
        ``descriptions`` (one per clip; None: unconditional); the rest of the audio is kept.

        regions: (start_s, end_s) pairs in seconds of the input, one list for every clip or a list
            of such lists, one per clip. A region reaching past the start (start < 0) or the end
            (end > the clip's duration) outpaints: the output is longer by that much (the same for
            every clip). Regions are widened to the span grid of their decoding window
            (``model.last_edit.used`` says to what); clips longer than the model's window are
            edited in windows around each region.
        splice: True: the decoded regions are spliced into the input with short equal-power
            crossfades inside them, so the audio outside them is the input's, bit for bit (after
            its conversion to the model's sample rate and channels, with a warning when needed).
            False: the pure decode of the edited tokens.
        Returns audio [B, C, T'] at :attr:`sample_rate` (and codes [B, K, T''] with
        ``return_tokens``); sets :attr:`last_edit` (:class:`~magnet_audio.editing.EditInfo`).
        See docs/editing.md.
        """
        return editing.inpaint(self, audio, sample_rate, descriptions, regions, progress, return_tokens, splice)

    def generate_variations(self, audio: torch.Tensor, sample_rate: int, descriptions: Sequence[str | None] | None,
                            strength: float = 0.5, progress: bool = False, return_tokens: bool = False):
        """Variations of ``audio`` [B, C, T] (or [C, T]): in each codebook a share ``strength`` (0 to
        1) of the spans is re-masked at random and decoded again from the step of the schedule
        whose mask rate is nearest ``strength``. 0 returns the input (its tokens and audio), 1 a
        fresh sample that does not depend on the input (only its length). Returns audio [B, C, T]
        at :attr:`sample_rate` (and codes [B, K, T'] with ``return_tokens``); sets :attr:`last_edit`.
        """
        return editing.variations(self, audio, sample_rate, descriptions, strength, progress, return_tokens)

    def _generate(self, descriptions: list[str | None], prompt: torch.Tensor | None, progress: bool,
                  return_tokens: bool, hybrid: tuple | None = None):
        """One window (the default), or sliding windows up to ``self.duration``. ``hybrid``:
        (AR LM, its params, prefix frames) generating the start of the first window."""
        max_len = int(self.max_duration * self.frame_rate)
        if prompt is not None and prompt.shape[-1] >= max_len:
            raise InputError(f"the prompt ({prompt.shape[-1] / self.frame_rate:.2f} s) must be shorter than "
                             f"the model's duration ({self.max_duration:.2f} s)")
        params, B = self.generation_params, len(descriptions)
        total_len = int(self.duration * self.frame_rate)
        span = self.lm.cfg.span_len if self.lm.cfg.span_len > 1 and params.span_arrangement == "nonoverlap" else 1
        window = max_len // span * span  # what one call of generate_codes returns
        context = (window - int(self.extend_stride * self.frame_rate)) // span * span
        later = _later_windows(window, total_len, context, span) if self.duration > self.max_duration else []
        total = sum(params.decoding_steps) * (1 + len(later))
        if hybrid is not None:
            ar_lm, _, prefix_len = hybrid
            total += prefix_len + max(ar_lm.delays) - min(ar_lm.delays)
        with StepCounter(self, total, progress, "MAGNeT") as callback:
            with torch.no_grad(), self.inference_autocast():
                memory = self.lm.encode_text(list(descriptions) + [None] * B)
                lm, magnet_memory = self.decoding_lm, memory  # the LM with the transforms params.fast asks for
                if params.fast.half:
                    magnet_memory = memory.to(half_dtype(self.device))
                rescorer = ARRescorer(self.rescorer, descriptions) if self.rescorer is not None else None
                bpm = prompt_tempi(descriptions) if params.beat_lock > 0 else None
                tempo = self.decoding_tempo(descriptions, prompt)  # tempo_rope LMs' positions
                span_len = max(self.lm.cfg.span_len, 1)  # token-wise masking (span_len -1 or 1): frames
                spans = max(1, round(params.beat_lock * self.frame_rate / span_len))

                def tied(length: int, first_frame: int = 0) -> torch.Tensor | None:
                    return None if bpm is None else beat_spans(bpm, length, self.frame_rate, span_len, first_frame,
                                                               spans).to(self.device)

                if hybrid is None:
                    codes = generate_codes(lm, magnet_memory, params, max_len, prompt=prompt, num_samples=B,
                                           callback=callback, rescorer=rescorer, tied=tied(max_len), tempo=tempo)
                else:
                    ar_lm, ar_params, prefix_len = hybrid
                    ar_memory = (memory if ar_lm.condition_provider is self.lm.condition_provider  # own view
                                 else ar_lm.encode_text(list(descriptions) + [None] * B))
                    codes = generate_hybrid_codes(ar_lm, ar_memory, ar_params, lm, magnet_memory, params, prefix_len,
                                                  max_len, prompt=prompt, num_samples=B, callback=callback,
                                                  rescorer=rescorer, tied=tied(max_len), tempo=tempo)
                for gen_len in later:  # long-form: the last `context` frames prompt the next window
                    new = generate_codes(lm, magnet_memory, params, gen_len, prompt=codes[..., -context:],
                                         num_samples=B, callback=callback, rescorer=rescorer,
                                         tied=tied(gen_len, codes.shape[-1] - context),
                                         tempo=tempo_from_frame(tempo, codes.shape[-1] - context, self.frame_rate))
                    codes = torch.cat([codes, new[..., context:]], dim=-1)
                if self.duration < self.max_duration or later:
                    codes = codes[..., :total_len]
        wav = self.generate_audio(codes)
        return (wav, codes) if return_tokens else wav


def _later_windows(window: int, total_len: int, context: int, span: int) -> list[int]:
    """Lengths of the windows after the first (which gives ``window`` frames), each prompted with
    the last ``context`` frames so far, until ``total_len`` frames exist; lengths are multiples
    of ``span`` so that chunked decoding uses all of them."""
    if not 0 < context < window:
        raise InputError(f"the long-form overlap ({context} frames) must be within the window ({window} frames): "
                         "use a smaller extend_stride")
    lengths, have = [], window
    while have < total_len:
        gen_len = min(window, -(-(context + total_len - have) // span) * span)
        lengths.append(gen_len)
        have += gen_len - context
    return lengths


def _ar_lm(model, what: str) -> MusicGenLM:
    """The autoregressive LM of a MusicGen (or the LM itself)."""
    lm = model if isinstance(model, MusicGenLM) else getattr(model, "lm", None)
    if not isinstance(lm, MusicGenLM):
        raise InputError(f"{what} must be a MusicGen model (magnet_audio.MusicGen) or its LM, "
                         f"got {type(model).__name__}")
    return lm



