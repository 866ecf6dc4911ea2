"""What MAGNeT and MusicGen share: a codec + LM pair, audiocraft's generation entry points."""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from .audio import convert_audio
from .codec.model import EncodecModel
from .checkpoints import read_our_config
from .names import resolve_bundled
from .errors import CheckpointError, InputError
from .lm.loading import CODEC_FILENAME
from .validation import finite_tensor


class StepCounter:
    """The decoding loops' progress callback: counts steps, moves a tqdm bar (when ``progress``) and
    calls the model's custom callback as ``callback(done, total)``. Use it in a ``with`` block (it
    closes the bar)."""

    def __init__(self, model: "BaseGenModel", total: int | None, progress: bool, desc: str):
        self.custom, self.total, self.done = model._progress_callback, total, 0
        self.bar = tqdm(total=total, desc=desc, unit="step") if progress else None

    def set_total(self, total: int) -> None:
        """The total once known (MusicGen knows it only after planning its windows)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def __call__(self, step: int = 0, _: int = 0) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.custom is not None:
            self.custom(self.done, self.total)

    def __enter__(self) -> "StepCounter":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


class BaseGenModel:
    """A codec and a language model over its codes; subclasses implement :meth:`_generate`."""

    def __init__(self, name: str, compression_model: EncodecModel, lm: torch.nn.Module):
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

    def inference_autocast(self) -> contextlib.AbstractContextManager:
        """float16 autocast on CUDA (as audiocraft generates), nothing elsewhere."""
        if self.device.type == "cuda":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def set_custom_progress_callback(self, callback: Callable[[int, int], None] | None = None) -> None:
        """Call ``callback(step, total_steps)`` after every decoding step."""
        self._progress_callback = callback

    def generate(self, descriptions: Sequence[str | None], progress: bool = False, return_tokens: bool = False):
        """Audio [B, C, T] for each description (None or "" = unconditional); with
        ``return_tokens``, also the codes [B, K, T']."""
        return self._generate(check_descriptions(descriptions), None, progress, return_tokens)

    def generate_unconditional(self, num_samples: int, progress: bool = False, return_tokens: bool = False):
        """``num_samples`` clips with no text condition."""
        if not isinstance(num_samples, int) or num_samples < 1:
            raise InputError(f"num_samples must be a positive integer, got {num_samples!r}")
        return self._generate([None] * num_samples, None, progress, return_tokens)

    def generate_continuation(self, prompt: torch.Tensor, prompt_sample_rate: int,
                              descriptions: Sequence[str | None] | None = None, progress: bool = False,
                              return_tokens: bool = False):
        """Continue audio ``prompt`` [B, C, T] (or [C, T]) at ``prompt_sample_rate``: the prompt's
        tokens are kept and the rest is generated."""
        codes = self.encode_prompt(prompt, prompt_sample_rate)
        descriptions = check_descriptions([None] * codes.shape[0] if descriptions is None else descriptions)
        if len(descriptions) != codes.shape[0]:
            raise InputError(f"{len(descriptions)} descriptions for {codes.shape[0]} prompts")
        return self._generate(descriptions, codes, progress, return_tokens)

    def encode_prompt(self, prompt: torch.Tensor, prompt_sample_rate: int) -> torch.Tensor:
        """Audio [B, C, T] or [C, T] at any rate -> codes [B, K, T'] of this model's codec."""
        if not torch.is_tensor(prompt) or prompt.dim() not in (2, 3) or prompt.shape[-1] == 0:
            raise InputError("prompt must be a non-empty audio tensor [B, C, T] or [C, T]")
        if not isinstance(prompt_sample_rate, int) or prompt_sample_rate <= 0:
            raise InputError(f"prompt_sample_rate must be a positive integer, got {prompt_sample_rate!r}")
        finite_tensor(prompt, "the prompt audio")
        if prompt.dim() == 2:
            prompt = prompt[None]
        wav = convert_audio(prompt.float(), prompt_sample_rate, self.sample_rate, self.audio_channels)
        with torch.no_grad():
            codes, _ = self.compression_model.encode(wav.to(self.device))
        return codes

    def generate_audio(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode codes [B, K, T] to audio [B, C, T * hop]."""
        with torch.no_grad():
            return self.compression_model.decode(codes, None)

    def _generate(self, descriptions: list[str | None], prompt: torch.Tensor | None, progress: bool,
                  return_tokens: bool):
        raise NotImplementedError


def codec_source(name: str | os.PathLike) -> str:
    """The compression checkpoint that goes with a model name or directory (or the directory itself
    for a model in our format, whose codec lives in its safetensors file)."""
    path = os.path.expanduser(str(resolve_bundled(name)))
    if os.path.isdir(path):
        candidate = os.path.join(path, CODEC_FILENAME)
        if os.path.isfile(candidate):
            return candidate
        if read_our_config(path) is not None:
            return path
        raise CheckpointError(f"{path} has neither {CODEC_FILENAME} (audiocraft) nor a magnet_audio config.json")
    return str(name)


def check_descriptions(descriptions) -> list[str | None]:
    """A non-empty list of strings or None; anything else is an :class:`InputError`."""
    if isinstance(descriptions, str) or not isinstance(descriptions, Sequence):
        raise InputError("descriptions must be a list of strings (or None for unconditional)")
    descriptions = list(descriptions)
    if not descriptions:
        raise InputError("descriptions is empty: give at least one prompt")
    bad = [d for d in descriptions if d is not None and not isinstance(d, str)]
    if bad:
        raise InputError(f"descriptions must be strings or None, got {bad[:3]!r}")
    return descriptions
