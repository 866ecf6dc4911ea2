"""The high-level MusicGen class: audiocraft's API for the autoregressive baseline.

    from magnet_audio import MusicGen
    model = MusicGen.get_pretrained("facebook/musicgen-small")
    model.set_generation_params(duration=8)          # top_k 250, temperature 1, cfg_coef 3
    wav = model.generate(["happy rock"])             # [B, C, T]

It is also the external model of MAGNeT's rescoring and the autoregressive half of Hybrid-MAGNeT
(``MAGNeT.set_generation_params(rescorer=...)``, ``MAGNeT.generate_hybrid``). Generations longer
than the training segment slide a window: each new window is prompted with the last
``max_duration - extend_stride`` seconds of the previous one, as audiocraft does.
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import torch

from .codec import load_compression_model
from .codec.model import EncodecModel
from .decoding.ar import ARGenerationParams, generate_ar
from . import validation
from .errors import InputError
from .lm.loading import load_musicgen_lm
from .lm.musicgen import MusicGenLM
from .genmodel import BaseGenModel, StepCounter, check_descriptions, codec_source
from .names import MUSICGEN_REPOS
from .utils import resolve_device

DEFAULT_MODEL = "facebook/musicgen-small"
OFFICIAL_MODELS = MUSICGEN_REPOS
_SHORT_NAMES = {"small": "facebook/musicgen-small", "medium": "facebook/musicgen-medium",
                "large": "facebook/musicgen-large", "melody": "facebook/musicgen-melody",
                "style": "facebook/musicgen-style"}


class MusicGen(BaseGenModel):
    """A codec and an autoregressive LM that generate audio of any length from text."""

    def __init__(self, name: str, compression_model: EncodecModel, lm: MusicGenLM,
                 max_duration: float | None = None):
        super().__init__(name, compression_model, lm)
        self.max_duration = float(lm.cfg.segment_duration if max_duration is None else max_duration)
        # audiocraft starts at 15 s; a model with a shorter segment starts at its segment.
        self.set_generation_params(duration=min(15.0, self.max_duration))

    @staticmethod
    def get_pretrained(name: str = DEFAULT_MODEL, device: str | torch.device | None = None,
                       t5_path: str | os.PathLike | None = None) -> "MusicGen":
        """Load a text-to-music MusicGen by hub repo id (``facebook/musicgen-small`` ...) or local directory.

        A directory must hold ``state_dict.bin`` and ``compression_state_dict.bin`` (audiocraft's
        export format). Audio-conditioned checkpoints (``musicgen-melody``, ``musicgen-style``) are
        refused with a :class:`CheckpointError`. ``t5_path``: a local T5 encoder directory.
        """
        name = str(name)
        if name in _SHORT_NAMES and not os.path.exists(name):
            warnings.warn(f"short model names are deprecated in audiocraft: use {_SHORT_NAMES[name]!r}")
            name = _SHORT_NAMES[name]
        device = resolve_device(device)
        # The LM first: its config says whether the checkpoint is supported at all (melody is not).
        lm = load_musicgen_lm(name, device=device, t5_path=t5_path)
        codec = load_compression_model(codec_source(name), device=device)
        lm.cfg.frame_rate = int(round(codec.frame_rate))  # as audiocraft, the codec sets the frame rate
        lm.condition_provider.text.load_text_model()
        return MusicGen(name, codec, lm)

    def set_generation_params(self, use_sampling: bool = True, top_k: int = 250, top_p: float = 0.0,
                              temperature: float = 1.0, duration: float = 30.0, cfg_coef: float = 3.0,
                              two_step_cfg: bool = False, extend_stride: float = 18) -> None:
        """Set the sampling options (audiocraft's names and defaults).

        duration: seconds to generate; beyond the model's ``max_duration`` windows slide by
            ``extend_stride`` seconds, each prompted with the previous window's last
            ``max_duration - extend_stride`` seconds.
        two_step_cfg: accepted for compatibility; the conditional and null rows always run as one
            batch here.
        """
        params = ARGenerationParams(use_sampling=use_sampling, top_k=top_k, top_p=top_p, temperature=temperature,
                                    cfg_coef=cfg_coef).validate()
        duration = validation.duration(duration, "duration (seconds)")
        extend_stride = validation.finite_float(extend_stride, "extend_stride (seconds)")
        if duration > self.max_duration and not 0 < extend_stride < self.max_duration:
            raise InputError(f"extend_stride must be in (0, {self.max_duration}) s (the model's window) to "
                             f"generate {duration} s, got {extend_stride}")
        if two_step_cfg:
            warnings.warn("two_step_cfg is not supported: the conditional and null rows run as one batch")
        self.generation_params = params
        self.duration = float(duration)
        self.extend_stride = float(extend_stride)

    def _windows(self, total_len: int, prompt_len: int, stride: int) -> list[tuple[int, int]]:
        """(frames, prompt frames) of each generation window, as audiocraft's long-form loop makes them."""
        fr = self.frame_rate
        if self.duration <= self.max_duration:
            return [(total_len, prompt_len)]
        windows, offset = [], 0
        while offset + prompt_len < total_len:
            length = int(min(self.duration - offset / fr, self.max_duration) * fr)
            windows.append((length, prompt_len))
            prompt_len, offset = length - stride, offset + stride
        return windows

    def generate_tokens(self, descriptions: Sequence[str | None], prompt: torch.Tensor | None = None,
                        progress: bool = False) -> torch.Tensor:
        """Codes [B, K, duration * frame_rate] (prompt codes [B, K, P] included), without decoding."""
        descriptions = check_descriptions(descriptions)
        with StepCounter(self, None, progress, "MusicGen") as callback:
            return self._generate_tokens(descriptions, prompt, callback)

    def _generate(self, descriptions: list[str | None], prompt: torch.Tensor | None, progress: bool,
                  return_tokens: bool):
        codes = self.generate_tokens(descriptions, prompt, progress)
        wav = self.generate_audio(codes)
        return (wav, codes) if return_tokens else wav

    def _generate_tokens(self, descriptions: list[str | None], prompt: torch.Tensor | None,
                         callback: StepCounter) -> torch.Tensor:
        fr = self.frame_rate
        total_len = int(self.duration * fr)
        max_prompt_len = int(min(self.duration, self.max_duration) * fr)
        if prompt is not None:
            if prompt.shape[0] != len(descriptions):
                raise InputError(f"{len(descriptions)} descriptions for {prompt.shape[0]} prompts")
            if prompt.shape[-1] > max_prompt_len or prompt.shape[-1] >= total_len:
                raise InputError(f"the prompt ({prompt.shape[-1] / fr:.2f} s) must be shorter than the duration "
                                 f"to generate ({min(self.duration, self.max_duration):.2f} s)")
        # Sliding windows (audiocraft's scheme) when the duration exceeds max_duration: each window
        # spans at most max_duration, starts extend_stride later than the previous one, and is
        # prompted with the overlap, i.e. the previous window's frames after the first stride.
        stride = int(fr * self.extend_stride)
        windows = self._windows(total_len, 0 if prompt is None else prompt.shape[-1], stride)
        delays = self.lm.delays
        total = sum(length - prompt_len + max(delays) - min(delays) for length, prompt_len in windows)
        callback.set_total(total)
        with torch.no_grad(), self.inference_autocast():
            memory = self.lm.encode_text(list(descriptions) + [None] * len(descriptions))
            pieces = [] if prompt is None or len(windows) == 1 else [prompt]
            for length, prompt_len in windows:
                codes = generate_ar(self.lm, memory, self.generation_params, length, prompt=prompt,
                                    num_samples=len(descriptions), callback=callback)
                if len(windows) == 1:
                    return codes
                pieces.append(codes[..., prompt_len:])
                prompt = codes[..., stride:]
            return torch.cat(pieces, dim=-1)
