"""The high-level MAGNeT class: audiocraft's API, so users switch by changing an import.

    from magnet_audio import MAGNeT, audio_write
    model = MAGNeT.get_pretrained("facebook/magnet-small-10secs")
    model.set_generation_params(decoding_steps=[20, 10, 10, 10])
    wav = model.generate(["80s pop track with bassy drums and synth"])  # [B, C, T]
    audio_write("out", wav[0].cpu(), model.sample_rate, strategy="loudness", loudness_compressor=True)
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from .audio import convert_audio
from .codec import load_compression_model
from .codec.model import EncodecModel
from .decoding import GenerationParams, generate_codes
from .errors import CheckpointError, InputError
from .lm.magnet import MagnetLM
from .loaders import CODEC_FILENAME, load_lm_model
from .utils import resolve_device

DEFAULT_MODEL = "facebook/magnet-small-10secs"
OFFICIAL_MODELS = (
    "facebook/magnet-small-10secs", "facebook/magnet-medium-10secs",
    "facebook/magnet-small-30secs", "facebook/magnet-medium-30secs",
    "facebook/audio-magnet-small", "facebook/audio-magnet-medium",
)


class MAGNeT:
    """A codec and a MAGNeT LM that generate audio of the LM's segment length from text."""

    def __init__(self, name: str, compression_model: EncodecModel, lm: MagnetLM):
        if lm.cfg.n_q != compression_model.num_codebooks:
            raise CheckpointError(f"LM models {lm.cfg.n_q} codebooks but the codec has "
                                  f"{compression_model.num_codebooks}")
        if lm.cfg.card != compression_model.cardinality:
            raise CheckpointError(f"LM vocabulary {lm.cfg.card} != codec codebook size {compression_model.cardinality}")
        if abs(lm.cfg.frame_rate - compression_model.frame_rate) > 1e-6:
            raise CheckpointError(f"LM frame rate {lm.cfg.frame_rate} != codec frame rate {compression_model.frame_rate}")
        self.name = name
        self.compression_model = compression_model.eval()
        self.lm = lm.eval()
        self.duration = float(lm.cfg.segment_duration)
        self.generation_params = GenerationParams()
        self._progress_callback: Callable[[int, int], None] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.compression_model.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.compression_model.frame_rate

    @property
    def audio_channels(self) -> int:
        return self.compression_model.channels

    @staticmethod
    def get_pretrained(name: str = DEFAULT_MODEL, device: str | torch.device | None = None,
                       t5_path: str | os.PathLike | None = None) -> "MAGNeT":
        """Load a model by hub repo id (``facebook/magnet-small-10secs`` ...) or local directory.

        A directory must hold ``state_dict.bin`` and ``compression_state_dict.bin`` (audiocraft's
        export format). ``device=None`` picks CUDA, then Apple MPS, then CPU. ``t5_path`` is a
        local directory with the T5 encoder, for machines that cannot reach the hub.
        """
        device = resolve_device(device)
        codec = load_compression_model(_codec_source(name), device=device)
        lm = load_lm_model(name, device=device, t5_path=t5_path, frame_rate=int(round(codec.frame_rate)))
        lm.condition_provider.text.load_text_model()
        return MAGNeT(str(name), codec, lm)

    def set_generation_params(self, use_sampling: bool = True, top_k: int = 0, top_p: float = 0.9,
                              temperature: float = 3.0, max_cfg_coef: float = 10.0, min_cfg_coef: float = 1.0,
                              decoding_steps: Sequence[int] = (20, 10, 10, 10),
                              span_arrangement: str = "nonoverlap", anneal_temp: bool = True,
                              span_scoring: str = "max") -> None:
        """Set the decoding options (see :class:`GenerationParams`); defaults are audiocraft's."""
        self.generation_params = GenerationParams(
            use_sampling=use_sampling, top_k=top_k, top_p=top_p, temperature=temperature,
            max_cfg_coef=max_cfg_coef, min_cfg_coef=min_cfg_coef, decoding_steps=list(decoding_steps),
            span_arrangement=span_arrangement, anneal_temp=anneal_temp, span_scoring=span_scoring,
        ).validate(self.lm.num_codebooks)

    def set_custom_progress_callback(self, callback: Callable[[int, int], None] | None = None) -> None:
        """Call ``callback(step, total_steps)`` after every decoding step."""
        self._progress_callback = callback

    def generate(self, descriptions: Sequence[str | None], progress: bool = False,
                 return_tokens: bool = False):
        """Audio [B, C, T] for each description (None or "" = unconditional); with
        ``return_tokens``, also the codes [B, K, T']."""
        descriptions = _check_descriptions(descriptions)
        return self._generate(descriptions, None, progress, return_tokens)

    def generate_unconditional(self, num_samples: int, progress: bool = False, return_tokens: bool = False):
        """``num_samples`` clips with no text condition."""
        if not isinstance(num_samples, int) or num_samples < 1:
            raise InputError(f"num_samples must be a positive integer, got {num_samples!r}")
        return self._generate([None] * num_samples, None, progress, return_tokens)

    def generate_continuation(self, prompt: torch.Tensor, prompt_sample_rate: int,
                              descriptions: Sequence[str | None] | None = None, progress: bool = False,
                              return_tokens: bool = False):
        """Continue audio ``prompt`` [B, C, T] (or [C, T]) at ``prompt_sample_rate``; the prompt's
        tokens are kept and the rest of the model's duration is generated."""
        if not torch.is_tensor(prompt) or prompt.dim() not in (2, 3) or prompt.shape[-1] == 0:
            raise InputError("prompt must be a non-empty audio tensor [B, C, T] or [C, T]")
        if not isinstance(prompt_sample_rate, int) or prompt_sample_rate <= 0:
            raise InputError(f"prompt_sample_rate must be a positive integer, got {prompt_sample_rate!r}")
        if prompt.dim() == 2:
            prompt = prompt[None]
        if descriptions is None:
            descriptions = [None] * prompt.shape[0]
        descriptions = _check_descriptions(descriptions)
        if len(descriptions) != prompt.shape[0]:
            raise InputError(f"{len(descriptions)} descriptions for {prompt.shape[0]} prompts")
        wav = convert_audio(prompt.float(), prompt_sample_rate, self.sample_rate, self.audio_channels)
        with torch.no_grad():
            codes, _ = self.compression_model.encode(wav.to(self.device))
        return self._generate(descriptions, codes, progress, return_tokens)

    def generate_audio(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode codes [B, K, T] to audio [B, C, T * hop]."""
        with torch.no_grad():
            return self.compression_model.decode(codes, None)

    def _generate(self, descriptions: list[str | None], prompt: torch.Tensor | None, progress: bool,
                  return_tokens: bool):
        max_len = int(self.duration * self.frame_rate)
        if prompt is not None and prompt.shape[-1] >= max_len:
            raise InputError(f"the prompt ({prompt.shape[-1] / self.frame_rate:.2f} s) must be shorter than "
                             f"the model's duration ({self.duration:.2f} s)")
        bar = tqdm(total=sum(self.generation_params.decoding_steps), desc="MAGNeT", unit="step") if progress else None

        def callback(step: int, total: int) -> None:
            if bar is not None:
                bar.update(1)
            if self._progress_callback is not None:
                self._progress_callback(step, total)

        autocast = (torch.autocast(self.device.type, dtype=torch.float16) if self.device.type == "cuda"
                    else contextlib.nullcontext())
        try:
            with torch.no_grad(), autocast:
                memory = self.lm.encode_text(list(descriptions) + [None] * len(descriptions))
                codes = generate_codes(self.lm, memory, self.generation_params, max_len, prompt=prompt,
                                       num_samples=len(descriptions), callback=callback)
        finally:
            if bar is not None:
                bar.close()
        wav = self.generate_audio(codes)
        return (wav, codes) if return_tokens else wav


def _codec_source(name: str | os.PathLike) -> str:
    """The compression checkpoint that goes with a model name or directory."""
    path = os.path.expanduser(str(name))
    if os.path.isdir(path):
        candidate = os.path.join(path, CODEC_FILENAME)
        if not os.path.isfile(candidate):
            raise CheckpointError(f"{path} has no {CODEC_FILENAME}")
        return candidate
    return str(name)


def _check_descriptions(descriptions) -> list[str | None]:
    if isinstance(descriptions, str) or not isinstance(descriptions, Sequence):
        raise InputError("descriptions must be a list of strings (or None for unconditional)")
    descriptions = list(descriptions)
    if not descriptions:
        raise InputError("descriptions is empty: give at least one prompt")
    bad = [d for d in descriptions if d is not None and not isinstance(d, str)]
    if bad:
        raise InputError(f"descriptions must be strings or None, got {bad[:3]!r}")
    return descriptions
