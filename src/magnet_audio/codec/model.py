"""EnCodec: SEANet autoencoder + residual vector quantizer, turning audio into discrete tokens."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .quantizer import ResidualVectorQuantizer
from .seanet import PAD_MODES, SEANetDecoder, SEANetEncoder, make_activation

NORMS = ("weight_norm", "none")


@dataclass
class EncodecConfig:
    """Hyperparameters of an EnCodec model, named as in audiocraft's ``seanet`` / ``rvq`` configs.

    Defaults are audiocraft's constructor defaults (used for keys absent from an ``xp.cfg``), not
    MAGNeT's codec: that one is ``sample_rate=32000, dimension=128, n_filters=64,
    n_residual_layers=1, ratios=[8, 5, 4, 4], norm='weight_norm', lstm=2, n_q=4, bins=2048``.
    ``decay``, ``kmeans_init``, ``kmeans_iters``, ``threshold_ema_dead_code`` and ``q_dropout`` only
    matter for training; they are kept so exports carry them.
    """

    sample_rate: int
    channels: int = 1
    renormalize: bool = False
    # SEANet
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 3
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    activation: str = "ELU"
    activation_params: dict = field(default_factory=lambda: {"alpha": 1.0})
    final_activation: str | None = None
    final_activation_params: dict | None = None
    norm: str = "none"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    causal: bool = False
    pad_mode: str = "reflect"
    true_skip: bool = True
    compress: int = 2
    lstm: int = 0
    disable_norm_outer_blocks: int = 0
    trim_right_ratio: float = 1.0
    # RVQ
    n_q: int = 8
    bins: int = 1024
    q_dropout: bool = False
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: int = 2

    def __post_init__(self):
        if not isinstance(self.ratios, (list, tuple)) or not self.ratios or not all(
                isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in self.ratios):
            raise InputError(f"codec config: ratios must be a non-empty list of positive integers, got {self.ratios!r}")
        self.ratios = list(self.ratios)
        for name in ("activation_params", "final_activation_params"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise InputError(f"codec config: {name} must be a mapping, got {value!r}")
        self.activation_params = dict(self.activation_params or {})
        positive = ("sample_rate", "channels", "dimension", "n_filters", "kernel_size", "last_kernel_size",
                    "residual_kernel_size", "dilation_base", "compress", "n_q", "bins")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"codec config: {name} must be a positive integer, got {value!r}")
        for name in ("n_residual_layers", "lstm", "disable_norm_outer_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"codec config: {name} must be a non-negative integer, got {value!r}")
        if self.norm not in NORMS:
            raise InputError(f"codec config: norm {self.norm!r} is not supported (supported: {', '.join(NORMS)})")
        if self.pad_mode not in PAD_MODES:
            raise InputError(f"codec config: pad_mode {self.pad_mode!r} is not supported "
                             f"(supported: {', '.join(PAD_MODES)})")
        if self.disable_norm_outer_blocks > len(self.ratios) + 2:
            raise InputError(f"codec config: disable_norm_outer_blocks {self.disable_norm_outer_blocks} exceeds "
                             f"the {len(self.ratios) + 2} blocks")
        if self.causal and self.renormalize:
            raise InputError("codec config: a causal codec cannot renormalize its input")
        if not self.causal and self.trim_right_ratio != 1.0:
            raise InputError("codec config: trim_right_ratio != 1.0 only applies to causal codecs")
        if not 0.0 <= self.trim_right_ratio <= 1.0:
            raise InputError(f"codec config: trim_right_ratio must be in [0, 1], got {self.trim_right_ratio}")
        try:
            make_activation(self.activation, self.activation_params)
            if self.final_activation is not None:
                make_activation(self.final_activation, self.final_activation_params)
        except ValueError as exc:
            raise InputError(f"codec config: {exc}") from exc

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    def to_dict(self) -> dict:
        """Plain (YAML/JSON-safe) dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EncodecConfig:
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"codec config: unknown keys {unknown}")
        return cls(**values)


def check_audio(wav, channels: int) -> None:
    """Raise :class:`InputError` unless ``wav`` is non-empty floating-point audio [B, ``channels``, T]."""
    if not torch.is_tensor(wav) or wav.dim() != 3:
        shape = tuple(wav.shape) if torch.is_tensor(wav) else type(wav).__name__
        raise InputError(f"encode expects audio of shape [B, C, T], got {shape}")
    if wav.shape[1] != channels:
        raise InputError(f"encode expects {channels} audio channel(s), got {wav.shape[1]} (shape [B, C, T])")
    if wav.shape[0] == 0 or wav.shape[-1] == 0:
        raise InputError(f"encode got empty audio of shape {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise InputError(f"encode expects floating-point audio, got {wav.dtype}")


def check_codes(codes, num_codebooks: int, cardinality: int) -> None:
    """Raise :class:`InputError` unless ``codes`` are non-empty integers [B, K, T] with
    1 <= K <= ``num_codebooks`` and values in [0, ``cardinality``)."""
    if not torch.is_tensor(codes) or codes.dim() != 3:
        shape = tuple(codes.shape) if torch.is_tensor(codes) else type(codes).__name__
        raise InputError(f"decode expects codes of shape [B, K, T], got {shape}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise InputError(f"decode expects integer codes, got {codes.dtype}")
    if not 1 <= codes.shape[1] <= num_codebooks:
        raise InputError(f"decode expects 1 to {num_codebooks} codebooks, got {codes.shape[1]} "
                         f"(codes shape [B, K, T] = {tuple(codes.shape)})")
    if codes.numel() == 0:
        raise InputError(f"decode got empty codes of shape {tuple(codes.shape)}")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= cardinality:
        raise InputError(f"codes must be in [0, {cardinality}), got values in [{low}, {high}]")


class CodecOutput(NamedTuple):
    """What :meth:`EncodecModel.forward` returns."""

    audio: torch.Tensor        # reconstruction [B, C, T], the input's length
    codes: torch.Tensor        # [B, K, ceil(T / hop)], K = the codebooks used (fewer with q_dropout)
    commit_loss: torch.Tensor  # [] commitment loss of the quantizer (mean over codebooks)


class EncodecModel(nn.Module):
    """EnCodec: waveform [B, C, T] <-> codes [B, K, T'] with T' = ceil(T / hop_length).

    Submodules ``encoder`` (:class:`SEANetEncoder`), ``decoder`` (:class:`SEANetDecoder`) and
    ``quantizer`` (:class:`ResidualVectorQuantizer`) give ``state_dict()`` audiocraft's key names.
    """

    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.config = config
        self.encoder = SEANetEncoder(config)
        self.decoder = SEANetDecoder(config)
        self.quantizer = ResidualVectorQuantizer(
            config.dimension, config.n_q, config.bins, q_dropout=config.q_dropout, decay=config.decay,
            kmeans_init=config.kmeans_init, kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.threshold_ema_dead_code)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame."""
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        """Code frames per second (50.0 for MAGNeT's codecs)."""
        return self.config.sample_rate / self.config.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.config.n_q

    @property
    def cardinality(self) -> int:
        """Codebook size: codes are in ``[0, cardinality)``."""
        return self.config.bins

    def _reference_param(self) -> torch.Tensor:
        return self.quantizer.codebooks[0].embed

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> CodecOutput:
        """Autoencode audio [B, C, T] for training: encoder, RVQ (straight-through in training mode,
        with EMA codebook updates), decoder; the output is trimmed to the input's length.

        A renormalizing codec divides the input by its RMS before encoding and multiplies the output
        back. ``n_q`` limits the codebooks used (default: all, or a random count with ``q_dropout``).
        """
        length = wav.shape[-1]
        x, scale = wav, None
        if self.config.renormalize:
            scale = x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt() + 1e-8
            x = x / scale
        quantized, codes, commit_loss = self.quantizer(self.encoder(x), n_q=n_q)
        out = self.decoder(quantized)[..., :length]
        if scale is not None:
            out = out * scale
        return CodecOutput(out, codes, commit_loss)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Audio [B, C, T] (float, at ``sample_rate``) -> (codes [B, K, ceil(T / hop)] int64, scale).

        ``scale`` [B, 1] is None unless the codec renormalizes: then the input is divided by
        ``scale = RMS(mean over channels) + 1e-8`` before encoding, and :meth:`decode` needs it back.
        The input is moved to the model's device and dtype.
        """
        check_audio(wav, self.channels)
        ref = self._reference_param()
        x = wav.to(device=ref.device, dtype=ref.dtype)
        scale = None
        if self.config.renormalize:
            volume = x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt()
            scale = volume + 1e-8
            x = x / scale
            scale = scale.view(-1, 1)
        return self.quantizer.encode(self.encoder(x)), scale

    def decode(self, codes: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Codes [B, K, T'] (integers in ``[0, cardinality)``, K <= num_codebooks) -> audio [B, C, T' · hop].

        ``scale`` [B, 1] is the one :meth:`encode` returned for a renormalizing codec (else None).
        """
        check_codes(codes, self.num_codebooks, self.cardinality)
        if scale is not None and not self.config.renormalize:
            raise InputError("this codec does not renormalize: decode takes scale=None")
        ref = self._reference_param()
        out = self.decoder(self.quantizer.decode(codes.to(device=ref.device, dtype=torch.long)))
        if scale is not None:
            out = out * scale.to(out).view(-1, 1, 1)
        return out
