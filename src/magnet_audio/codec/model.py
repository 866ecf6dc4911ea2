"""EnCodec: SEANet autoencoder + residual vector quantizer, turning audio into discrete tokens."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .config import EncodecConfig
from .quantizer import ResidualVectorQuantizer
from .seanet import SEANetDecoder, SEANetEncoder


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
