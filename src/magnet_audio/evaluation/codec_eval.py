"""Codec reconstruction quality: encode and decode held-out audio, compare with the input.

Each clip is read at the codec's sample rate and channel count, encoded to codes with every codebook,
decoded, trimmed to the input length and compared with the input:

* **SI-SNR** (dB, higher is better): both signals made zero-mean,
  ``s_t = <ŝ, s> s / ||s||²``, ``SI-SNR = 10 log10(||s_t||² / ||ŝ - s_t||²)`` (channels flattened).
* **mel distance** (lower is better): mean over STFT sizes 512, 1024 and 2048 (hop = size / 4, Hann
  window) of the mean absolute difference of ``log10(max(mel, 1e-5))``, where ``mel`` is the 64-band
  Slaney mel filterbank (librosa) applied to the STFT magnitude, from 0 Hz to half the sample rate.
  A value of 0.1 means the mel bands differ by about 26% (10^0.1) on average.
* **frame-periodic share** (lower is better; compare with the input's): the share of a signal's
  energy in its frame-synchronous average, the one waveform of ``hop`` samples that repeats every
  code frame: fold [C, T] into N frames of ``hop`` samples, ``p`` = their mean, share =
  ``N ||p||² / ||x||²``. Music is not locked to the codec's frame grid (real clips: ~0.001); a
  decoder that adds a buzz at the frame rate (a comb on the harmonics of 50 Hz that coarse
  spectral losses mistake for tonal content) scores near 1.

All are reported as mean and standard deviation over clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..audio import audio_read

MEL_FFT_SIZES = (512, 1024, 2048)
MEL_BANDS = 64
MEL_FLOOR = 1e-5


def si_snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> float:
    """Scale-invariant signal-to-noise ratio in dB of ``estimate`` against ``target`` (same shape)."""
    s = target.reshape(-1).double()
    e = estimate.reshape(-1).double()
    s, e = s - s.mean(), e - e.mean()
    s_t = (e @ s) / (s @ s + eps) * s
    noise = e - s_t
    return float(10 * torch.log10((s_t @ s_t + eps) / (noise @ noise + eps)))


def _log_mel(wav: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    import librosa

    fb = torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=MEL_BANDS)).to(wav)
    spec = torch.stft(wav.reshape(-1, wav.shape[-1]), n_fft, hop_length=n_fft // 4,
                      window=torch.hann_window(n_fft, dtype=wav.dtype, device=wav.device), return_complex=True)
    return torch.log10(torch.clamp(fb @ spec.abs(), min=MEL_FLOOR))


def mel_distance(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int) -> float:
    """Multi-scale log-mel L1 distance (see the module docstring) of two [C, T] signals."""
    est, ref = estimate.double(), target.double()
    return float(np.mean([(_log_mel(est, sample_rate, n) - _log_mel(ref, sample_rate, n)).abs().mean().item()
                          for n in MEL_FFT_SIZES]))


def frame_periodic_share(wav: torch.Tensor, hop: int) -> float:
    """Share in [0, 1] of the energy of wav [C, T] in its frame-synchronous average (module
    docstring); the last partial frame is dropped. 0 for silence."""
    x = wav.double().reshape(-1, wav.shape[-1])
    n = x.shape[-1] // hop
    if n == 0:
        raise ValueError(f"a clip of {x.shape[-1]} samples is shorter than one frame ({hop} samples)")
    frames = x[:, :n * hop].reshape(x.shape[0], n, hop)
    total = float(frames.square().sum())
    return 0.0 if total == 0 else float(n * frames.mean(dim=1).square().sum()) / total


@torch.no_grad()
def reconstruct(codec, wav: torch.Tensor) -> torch.Tensor:
    """Encode and decode audio [C, T] with every codebook; returns [C, T] (trimmed to the input)."""
    codes, scale = codec.encode(wav[None])
    return codec.decode(codes, scale)[0, :, :wav.shape[-1]].to(wav)


def codec_report(codec, paths: Sequence[Path], progress: Callable[[str], None] | None = None) -> dict:
    """Mean and std of SI-SNR, mel distance and frame-periodic share of ``codec`` over audio files
    ``paths`` (also the frame-periodic share of the inputs, for comparison)."""
    if not paths:
        raise ValueError("no reference clips to reconstruct")
    snr, mel, periodic, periodic_ref = [], [], [], []
    for i, path in enumerate(paths):
        if progress is not None and i % 10 == 0:
            progress(f"codec: reconstructing clip {i + 1} of {len(paths)}")
        wav, _ = audio_read(path, sample_rate=codec.sample_rate, channels=codec.channels)
        wav = wav.float()
        rec = reconstruct(codec, wav).float().cpu()
        snr.append(si_snr(rec, wav))
        mel.append(mel_distance(rec, wav, codec.sample_rate))
        periodic.append(frame_periodic_share(rec, codec.hop_length))
        periodic_ref.append(frame_periodic_share(wav, codec.hop_length))

    def stats(values):
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    return {"si_snr_db": stats(snr), "mel_distance": stats(mel), "frame_periodic_share": stats(periodic),
            "reference_frame_periodic_share": stats(periodic_ref),
            "n_clips": len(paths), "sample_rate": codec.sample_rate, "channels": codec.channels,
            "n_codebooks": codec.num_codebooks, "frame_rate": codec.frame_rate}
