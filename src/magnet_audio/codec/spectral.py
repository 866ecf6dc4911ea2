"""A spectral codec: STFT magnitudes <-> tokens, waveform back by Griffin-Lim.

EnCodec's SEANet learns to draw waveforms sample by sample; trained for a few thousand CPU
updates it reproduces the spectral envelope but not the harmonics, so its tokens carry no pitch.
This codec works on what a short CPU run can learn: the log-magnitude STFT of the (unit-RMS) audio,
one frame per hop, through frame-rate convolutions, the same residual vector quantizer as EnCodec,
and back to the log magnitudes. The waveform is rebuilt from the decoded magnitudes by fast
Griffin-Lim (Perraudin et al., 2013) from a fixed phase, so decoding is deterministic.

It keeps EnCodec's interface (:meth:`SpectralCodec.encode`, :meth:`SpectralCodec.decode`,
``sample_rate``, ``frame_rate``, ``num_codebooks``, ``cardinality``, submodules ``encoder``,
``quantizer`` and ``decoder``), so tokenization, LM training, generation and evaluation take either.
It has no audiocraft counterpart: it is saved in our format only (``config.json`` with
``"type": "spectral"`` in its ``codec`` section, tensors in ``model.safetensors``).

Shapes: audio [B, 1, T]; log magnitudes [B, F, T'] with F = n_fft // 2 + 1 and T' = ceil(T / hop);
latent [B, D, T']; codes [B, K, T'].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..validation import MAX_GRIFFIN_LIM_ITERS, MAX_MODEL_DIM, MAX_SAMPLE_RATE, strict_int
from .model import check_audio, check_codes
from .quantizer import ResidualVectorQuantizer

CODEC_TYPE = "spectral"
#: Floor added to magnitudes before the log (the quietest level the codec tells apart).
MAGNITUDE_FLOOR = 1e-3


@dataclass
class SpectralCodecConfig:
    """Hyperparameters of a :class:`SpectralCodec` (mono only).

    ``hop_length`` samples per frame (320 at 16 kHz: 50 frames/s, as MAGNeT's codecs); ``n_fft`` the
    STFT size (Hann window of the same length); ``hidden`` the channels of the residual conv blocks,
    one block per entry of ``encoder_dilations`` / ``decoder_dilations`` (kernel 3, that dilation);
    ``dimension`` the latent (codeword) size. The RVQ keys are :class:`EncodecConfig`'s.
    ``griffin_lim_iters`` iterations rebuild the phase when decoding.
    """

    sample_rate: int = 16000
    channels: int = 1
    n_fft: int = 1024
    hop_length: int = 320
    hidden: int = 384
    dimension: int = 128
    encoder_dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 1])
    decoder_dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 1, 2, 4])
    griffin_lim_iters: int = 64
    # RVQ
    n_q: int = 4
    bins: int = 256
    q_dropout: bool = False
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: float = 2.0

    def __post_init__(self):
        bounds = {"sample_rate": MAX_SAMPLE_RATE, "channels": 64, "n_fft": 1 << 16, "hop_length": 1 << 16,
                  "hidden": MAX_MODEL_DIM, "dimension": MAX_MODEL_DIM, "griffin_lim_iters": MAX_GRIFFIN_LIM_ITERS,
                  "n_q": 64, "bins": 1 << 20, "kmeans_iters": 10_000}
        for name, high in bounds.items():  # types first: a string or float here would crash below
            strict_int(getattr(self, name), f"spectral codec config: {name}", 1, high)
        for name in ("encoder_dilations", "decoder_dilations"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) > 64:
                raise InputError(f"spectral codec config: {name} must be a list of dilations, got {value!r}")
            for d in value:
                strict_int(d, f"spectral codec config: {name}", 1, 1 << 16)
        checks = [
            (self.sample_rate > 0, "sample_rate must be > 0"),
            (self.channels == 1, "the spectral codec is mono: channels must be 1"),
            (0 < self.hop_length <= self.n_fft, "hop_length must be in (0, n_fft]"),
            (self.n_fft % 2 == 0, "n_fft must be even"),
            (self.hidden >= 1 and self.dimension >= 1, "hidden and dimension must be >= 1"),
            (len(self.encoder_dilations) >= 1 and len(self.decoder_dilations) >= 1
             and all(d >= 1 for d in [*self.encoder_dilations, *self.decoder_dilations]),
             "encoder_dilations and decoder_dilations must be non-empty lists of dilations >= 1"),
            (isinstance(self.griffin_lim_iters, int) and not isinstance(self.griffin_lim_iters, bool)
             and 1 <= self.griffin_lim_iters <= MAX_GRIFFIN_LIM_ITERS,
             f"griffin_lim_iters must be an integer in [1, {MAX_GRIFFIN_LIM_ITERS}], got {self.griffin_lim_iters!r}"),
            (self.n_q >= 1 and self.bins >= 2, "n_q must be >= 1 and bins >= 2"),
            (0 < self.decay < 1, "decay must be in (0, 1)"),
            (self.threshold_ema_dead_code >= 0, "threshold_ema_dead_code must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"spectral codec config: {message}")

    @property
    def freq_bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return {"type": CODEC_TYPE, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> SpectralCodecConfig:
        values = dict(values)
        kind = values.pop("type", CODEC_TYPE)
        if kind != CODEC_TYPE:
            raise InputError(f"not a spectral codec config (type {kind!r})")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"spectral codec config: unknown keys {unknown}")
        return cls(**values)


class SpectralOutput(NamedTuple):
    """What :meth:`SpectralCodec.forward` returns for training."""

    prediction: torch.Tensor   # [B, F, T'] decoded log magnitudes
    target: torch.Tensor       # [B, F, T'] log magnitudes of the (unit-RMS) input
    codes: torch.Tensor        # [B, K, T']
    commit_loss: torch.Tensor  # []


class ResidualBlock(nn.Module):
    """x + conv1x1(GELU(conv3(GroupNorm(x)))) over [B, C, T']."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.gelu(self.conv(self.norm(x))))


def _stack(c_in: int, hidden: int, c_out: int, dilations: list[int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, hidden, 3, padding=1), *(ResidualBlock(hidden, d) for d in dilations),
                         nn.GroupNorm(1, hidden), nn.Conv1d(hidden, c_out, 1))


class SpectralCodec(nn.Module):
    """Log-magnitude STFT autoencoder with a residual vector quantizer (see the module docstring)."""

    def __init__(self, config: SpectralCodecConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = _stack(c.freq_bins, c.hidden, c.dimension, c.encoder_dilations)
        self.quantizer = ResidualVectorQuantizer(
            c.dimension, c.n_q, c.bins, q_dropout=c.q_dropout, decay=c.decay, kmeans_init=c.kmeans_init,
            kmeans_iters=c.kmeans_iters, threshold_ema_dead_code=c.threshold_ema_dead_code)
        self.decoder = _stack(c.dimension, c.hidden, c.freq_bins, c.decoder_dilations)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    sample_rate = property(lambda self: self.config.sample_rate)
    channels = property(lambda self: self.config.channels)
    hop_length = property(lambda self: self.config.hop_length, doc="Audio samples per code frame.")
    frame_rate = property(lambda self: self.config.sample_rate / self.config.hop_length)
    num_codebooks = property(lambda self: self.config.n_q)
    cardinality = property(lambda self: self.config.bins, doc="Codebook size: codes are in [0, cardinality).")

    # ------------------------------------------------------------------ signal side

    def _stft(self, wav: torch.Tensor) -> torch.Tensor:
        """[N, T] -> complex [N, F, 1 + T // hop]."""
        return torch.stft(wav, self.config.n_fft, self.config.hop_length, window=self.window.to(wav),
                          center=True, return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.config.n_fft, self.config.hop_length, window=self.window.to(spec.real),
                           center=True, length=length)

    @staticmethod
    def _normalize(wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio [B, 1, T] -> (unit-RMS audio [B, T], scale [B, 1])."""
        scale = wav[:, 0].pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8
        return wav[:, 0] / scale, scale

    def log_magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Unit-RMS audio [B, T] -> log(|STFT| + floor) [B, F, ceil(T / hop)] (float32)."""
        frames = math.ceil(wav.shape[-1] / self.config.hop_length)
        shortest = self.config.n_fft // 2 + 1  # the centred STFT reflects n_fft / 2 samples at each end
        if wav.shape[-1] < shortest:  # a clip under n_fft / 2 samples: zero-pad it (the frames still count T)
            wav = torch.nn.functional.pad(wav, (0, shortest - wav.shape[-1]))
        return torch.log(self._stft(wav.float()).abs()[..., :frames] + MAGNITUDE_FLOOR)

    def griffin_lim(self, magnitude: torch.Tensor, length: int) -> torch.Tensor:
        """Magnitudes [B, F, T'] -> audio [B, length] by fast Griffin-Lim (momentum 0.99) from a fixed
        pseudo-random phase; ``length`` <= T' * hop."""
        magnitude = magnitude.float()
        # one more frame, a copy of the last, so that the centred STFT covers T' * hop samples
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
        generator = torch.Generator().manual_seed(0)
        phase = torch.rand(magnitude.shape[1:], generator=generator).to(magnitude.device) * (2 * math.pi)
        angles = torch.polar(torch.ones_like(magnitude), phase.expand_as(magnitude))
        previous = torch.zeros_like(angles)
        span = magnitude.shape[-1] * self.config.hop_length - self.config.hop_length
        for _ in range(self.config.griffin_lim_iters):
            rebuilt = self._stft(self._istft(magnitude * angles, span))
            accelerated = rebuilt - (0.99 / 1.99) * previous
            previous = rebuilt
            angles = accelerated / accelerated.abs().clamp_min(1e-8)
        return self._istft(magnitude * angles, span)[..., :length]

    # ------------------------------------------------------------------ codec interface

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> SpectralOutput:
        """Training pass on audio [B, 1, T]: encoder, RVQ (straight-through, EMA codebooks), decoder;
        ``n_q`` limits the codebooks (default: all, or a random count with ``q_dropout``)."""
        target = self.log_magnitude(self._normalize(wav)[0])
        quantized, codes, commit_loss = self.quantizer(self.encoder(target), n_q=n_q)
        return SpectralOutput(self.decoder(quantized), target, codes, commit_loss)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio [B, 1, T] -> (codes [B, K, ceil(T / hop)] int64, scale [B, 1]): the input is divided
        by ``scale`` (its RMS + 1e-8) before encoding, and :meth:`decode` multiplies it back."""
        check_audio(wav, 1)
        ref = self.quantizer.codebooks[0].embed
        normalized, scale = self._normalize(wav.to(device=ref.device, dtype=ref.dtype))
        latent = self.encoder(self.log_magnitude(normalized).to(ref.dtype))
        return self.quantizer.encode(latent), scale

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Codes [B, K, T'] (K <= num_codebooks) -> audio [B, 1, T' * hop]; ``scale`` [B, 1] from
        :meth:`encode` (None: unit RMS)."""
        check_codes(codes, self.num_codebooks, self.cardinality)
        ref = self.quantizer.codebooks[0].embed
        log_mag = self.decoder(self.quantizer.decode(codes.to(ref.device)))
        magnitude = (log_mag.float().exp() - MAGNITUDE_FLOOR).clamp_min(0)
        wav = self.griffin_lim(magnitude, codes.shape[-1] * self.config.hop_length)
        if scale is not None:
            wav = wav * scale.to(wav).view(-1, 1)
        return wav[:, None].to(ref.dtype)
