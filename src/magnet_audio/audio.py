"""Audio I/O, resampling, channel conversion, BS.1770 loudness and audiocraft-style normalisation.

Everything here works on ``torch`` tensors shaped ``[C, T]`` (channels, samples) unless a docstring says
otherwise. Files go through libsndfile (``soundfile``) and resampling through ``soxr``; there is no
ffmpeg or torchaudio dependency. The public names and defaults follow ``audiocraft.data.audio`` and
``audiocraft.data.audio_utils`` so code written for audiocraft only needs its import changed.
"""

from __future__ import annotations

import math
import os
import sys
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import InputError

__all__ = [
    "audio_read",
    "audio_write",
    "resample",
    "convert_channels",
    "convert_audio_channels",
    "convert_audio",
    "loudness",
    "normalize_loudness",
    "normalize_audio",
]

# --------------------------------------------------------------------------------------------------
# Reading, resampling, channels
# --------------------------------------------------------------------------------------------------


def audio_read(filepath: str | os.PathLike, seek: float = 0.0, duration: float | None = -1.0, pad: bool = False, *,
               sample_rate: int | None = None, channels: int | None = None) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``[C, T]`` in [-1, 1].

    ``seek`` and ``duration`` are in seconds; ``duration`` of ``None`` or <= 0 reads to the end. With ``pad``
    and a positive ``duration`` the result is zero-padded (or trimmed) to exactly ``int(duration * sr)`` samples.
    The first four parameters are audiocraft's ``audio_read``; ``sample_rate`` and ``channels`` additionally
    resample (soxr) and convert channels (:func:`convert_channels`). Returns ``(wav, sr)`` with ``sr`` the
    rate of ``wav`` (``sample_rate`` when given, else the file's).
    """
    path = Path(filepath)
    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    if seek < 0:
        raise InputError(f"seek must be >= 0 seconds, got {seek}")
    try:
        file_sr = sf.info(str(path)).samplerate
        frames = -1 if duration is None or duration <= 0 else int(duration * file_sr)
        data, file_sr = sf.read(str(path), start=int(seek * file_sr), frames=frames, dtype="float32",
                                always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise InputError(f"cannot read audio file {path}: {exc}") from exc
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    sr = file_sr
    if sample_rate is not None:
        wav = resample(wav, file_sr, sample_rate)
        sr = sample_rate
    if channels is not None:
        wav = convert_channels(wav, channels)
    if pad and duration is not None and duration > 0:
        target = int(duration * sr)
        wav = torch.nn.functional.pad(wav, (0, target - wav.shape[-1]))
    return wav.contiguous(), sr


def resample(wav: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Resample ``wav [..., T]`` from ``orig_sr`` to ``target_sr`` with soxr (high quality).

    The output has ``round(T * target_sr / orig_sr)`` samples (an exact half rounds up) and the dtype and
    device of the input. Equal rates return ``wav`` itself. The work happens on CPU in float32 (float64 for
    float64 input).
    """
    if int(orig_sr) != orig_sr or int(target_sr) != target_sr or orig_sr <= 0 or target_sr <= 0:
        raise InputError(f"sample rates must be positive integers, got {orig_sr} -> {target_sr}")
    if not wav.is_floating_point():
        raise InputError(f"resample expects a floating-point tensor, got {wav.dtype}")
    if orig_sr == target_sr:
        return wav
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    work_dtype = np.float64 if wav.dtype == torch.float64 else np.float32
    *lead, length = wav.shape
    flat = wav.detach().reshape(-1, length).cpu().numpy().astype(work_dtype, copy=False)
    out = soxr.resample(np.ascontiguousarray(flat.T), orig_sr, target_sr, quality="HQ")  # [T', N]
    # soxr rounds an exact half either way depending on float error; fix the length to the exact rounding.
    expected = (2 * length * target_sr + orig_sr) // (2 * orig_sr)
    out = np.pad(out[:expected], ((0, max(0, expected - out.shape[0])), (0, 0)))
    out = torch.from_numpy(np.ascontiguousarray(out.T)).reshape(*lead, expected)
    return out.to(device=wav.device, dtype=wav.dtype)


def convert_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``wav [..., C, T]`` to ``channels`` channels with audiocraft's ``convert_audio_channels`` rules.

    Same count: unchanged. To mono: average of all channels. From mono: the channel repeated. Otherwise, with
    more channels than asked for: the first ``channels`` channels. Fewer (but not mono) is an error.
    """
    if channels < 1:
        raise InputError(f"channels must be >= 1, got {channels}")
    src = wav.shape[-2]
    if src == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=-2, keepdim=True)
    if src == 1:
        return wav.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()
    if src > channels:
        return wav[..., :channels, :]
    raise InputError(f"cannot convert {src}-channel audio to {channels} channels (only mono can be upmixed)")


convert_audio_channels = convert_channels  # audiocraft's name


def convert_audio(wav: torch.Tensor, from_rate: int, to_rate: int, to_channels: int) -> torch.Tensor:
    """Resample ``wav [..., C, T]`` from ``from_rate`` to ``to_rate``, then convert it to ``to_channels``."""
    return convert_channels(resample(wav, from_rate, to_rate), to_channels)


# --------------------------------------------------------------------------------------------------
# ITU-R BS.1770-4 loudness
# --------------------------------------------------------------------------------------------------

# Analog prototypes of the two K-weighting stages, fitted so that the bilinear transform at 48 kHz gives
# the coefficient table printed in BS.1770 (the parametrisation used by libebur128 and pyloudnorm's
# "DeMan" filters). Evaluating them at other rates gives the equivalent filter for any sample rate.
_SHELF_F0, _SHELF_GAIN_DB, _SHELF_Q, _SHELF_VB_EXP = 1681.974450955533, 3.999843853973347, 0.7071752369554196, \
    0.4996667741545416
_RLB_F0, _RLB_Q = 38.13547087602444, 0.5003270373238773
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs
_BLOCK_S, _HOP_S = 0.4, 0.1  # 400 ms gating blocks, 75 % overlap
_ABSOLUTE_GATE_LUFS, _RELATIVE_GATE_LU = -70.0, -10.0


def _k_weighting(sample_rate: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(b, a) of the shelving pre-filter and the RLB high-pass, both with a[0] == 1."""
    k = math.tan(math.pi * _SHELF_F0 / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh ** _SHELF_VB_EXP
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf_b = np.array([vh + vb * k / _SHELF_Q + k * k, 2.0 * (k * k - vh), vh - vb * k / _SHELF_Q + k * k]) / a0
    shelf_a = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _SHELF_Q + k * k]) / a0
    k = math.tan(math.pi * _RLB_F0 / sample_rate)
    a0 = 1.0 + k / _RLB_Q + k * k
    # BS.1770 gives the RLB numerator as [1, -2, 1], not divided by a0; the -0.691 offset assumes that.
    rlb_b = np.array([1.0, -2.0, 1.0])
    rlb_a = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _RLB_Q + k * k]) / a0
    return [(shelf_b, shelf_a), (rlb_b, rlb_a)]


def _lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, block: int = 256) -> np.ndarray:
    """Filter ``x [M, T]`` (float64) along T with the IIR filter (b, a), a[0] == 1, from zero state.

    Same result as ``scipy.signal.lfilter`` up to rounding, without a per-sample Python loop. In state-space
    form (transposed direct form II) ``y[n] = C s[n] + D x[n]``, ``s[n+1] = A s[n] + B x[n]``. The signal is
    cut into blocks of ``block`` samples: inside a block the response to the block's own input is a product
    with the lower-triangular Toeplitz matrix of the impulse response, and the response to the state carried
    in is ``C A^n s``. Only those carried states are computed sequentially, once per block.
    """
    order = len(a) - 1
    A = np.zeros((order, order))
    A[:, 0] = -a[1:]
    A[:-1, 1:] = np.eye(order - 1)
    B = b[1:] - a[1:] * b[0]
    powers = [np.eye(order)]
    for _ in range(block):
        powers.append(A @ powers[-1])
    powers = np.stack(powers)  # [block + 1, order, order]: A^0 .. A^block
    c_powers = powers[:block, 0, :]  # C A^n, C = e_0
    impulse = np.concatenate([[b[0]], c_powers[:-1] @ B])  # h[0] = D, h[n] = C A^(n-1) B
    lag = np.arange(block)[:, None] - np.arange(block)[None, :]
    toeplitz = np.where(lag >= 0, impulse[np.clip(lag, 0, None)], 0.0)  # [n, k] = h[n - k]
    state_gain = powers[block - 1::-1] @ B  # [k] = A^(block-1-k) B

    rows, length = x.shape
    n_blocks = -(-length // block)
    xb = np.zeros((rows, n_blocks * block))
    xb[:, :length] = x
    xb = xb.reshape(rows, n_blocks, block)
    state_in = xb @ state_gain  # [M, nb, order]: state each block's input leaves behind
    carried = np.zeros_like(state_in)  # state at the start of each block
    transition = powers[block].T
    for j in range(1, n_blocks):
        carried[:, j] = carried[:, j - 1] @ transition + state_in[:, j - 1]
    y = xb @ toeplitz.T + carried @ c_powers.T
    return y.reshape(rows, -1)[:, :length]


def loudness(wav: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness of ``wav [C, T]`` (or ``[T]``, mono) in LUFS, per ITU-R BS.1770-4.

    K-weighting (shelf + RLB high-pass, coefficients for any ``sample_rate``), mean square over 400 ms blocks
    with 75 % overlap, channel weights 1, 1, 1, 1.41, 1.41 (L, R, C, Ls, Rs; at most 5 channels), an absolute
    gate at -70 LUFS and a relative gate 10 LU below the absolute-gated loudness. A signal shorter than one
    block is measured as a single block. Returns ``-inf`` when no block passes the gates (e.g. silence).
    """
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2 or not 1 <= wav.shape[0] <= len(_CHANNEL_WEIGHTS):
        raise InputError(f"loudness expects [C, T] audio with 1 to 5 channels, got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise InputError("loudness of empty audio is undefined")
    x = wav.detach().cpu().double().numpy()
    for b, a in _k_weighting(sample_rate):
        x = _lfilter(b, a, x)
    length = x.shape[-1]
    block = min(int(round(_BLOCK_S * sample_rate)), length)
    hop = _HOP_S * sample_rate  # may be fractional (e.g. 11025 Hz); block starts are rounded, never past the end
    starts = np.round(np.arange(int((length - block) // hop) + 1) * hop).astype(np.int64)
    cumulative = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x * x, axis=-1)], axis=-1)
    energy = (cumulative[:, starts + block] - cumulative[:, starts]) / block  # [C, blocks]
    weights = np.array(_CHANNEL_WEIGHTS[: x.shape[0]])[:, None]

    def _lufs(channel_energy: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return -0.691 + 10.0 * np.log10((weights * channel_energy).sum(axis=0))

    block_loudness = _lufs(energy)
    gated = block_loudness > _ABSOLUTE_GATE_LUFS
    if not gated.any():
        return float("-inf")
    relative_gate = _lufs(energy[:, gated].mean(axis=1, keepdims=True))[0] + _RELATIVE_GATE_LU
    gated &= block_loudness > relative_gate
    return float(_lufs(energy[:, gated].mean(axis=1, keepdims=True))[0])


# --------------------------------------------------------------------------------------------------
# Normalisation (audiocraft.data.audio_utils)
# --------------------------------------------------------------------------------------------------


def normalize_loudness(wav: torch.Tensor, sample_rate: int, loudness_headroom_db: float = 14,
                       loudness_compressor: bool = False, energy_floor: float = 2e-3) -> torch.Tensor:
    """Scale ``wav [C, T]`` to ``-loudness_headroom_db`` LUFS, optionally followed by a ``tanh`` compressor.

    Audio whose overall RMS is below ``energy_floor`` (near silence), or that has no block above the
    BS.1770 gates, is returned unchanged.
    """
    if wav.pow(2).mean().sqrt().item() < energy_floor:
        return wav
    input_lufs = loudness(wav, sample_rate)
    if not math.isfinite(input_lufs):
        return wav
    out = wav * 10.0 ** ((-loudness_headroom_db - input_lufs) / 20.0)
    return torch.tanh(out) if loudness_compressor else out


def _clip(wav: torch.Tensor, log_clipping: bool, stem_name: str | None) -> torch.Tensor:
    """Clamp to [-1, 1], reporting on stderr how much was clipped when ``log_clipping``."""
    peak = wav.abs().max().item()
    if log_clipping and peak > 1:
        fraction = (wav.abs() > 1).float().mean().item()
        where = f" in {stem_name}" if stem_name else ""
        print(f"clipping{where}: {fraction:.3%} of samples clamped to [-1, 1] (peak {peak:.3f})", file=sys.stderr)
    return wav.clamp(-1, 1)


def normalize_audio(wav: torch.Tensor, normalize: bool = True, strategy: str = "peak",
                    peak_clip_headroom_db: float = 1, rms_headroom_db: float = 18, loudness_headroom_db: float = 14,
                    loudness_compressor: bool = False, log_clipping: bool = False, sample_rate: int | None = None,
                    stem_name: str | None = None) -> torch.Tensor:
    """Normalise ``wav [C, T]`` with one of audiocraft's strategies; the input tensor is never modified.

    - ``'peak'``: scale so that max |x| = 10^(-peak_clip_headroom_db/20); with ``normalize=False`` only ever
      attenuate. All-zero audio is returned unchanged.
    - ``'clip'``: clamp to ±10^(-peak_clip_headroom_db/20).
    - ``'rms'``: scale so that the RMS of the channel mean is 10^(-rms_headroom_db/20) (only attenuate when
      ``normalize=False``), then clamp to ±1.
    - ``'loudness'``: :func:`normalize_loudness` to ``-loudness_headroom_db`` LUFS (needs ``sample_rate``),
      then clamp to ±1.
    - ``'none'`` or ``''``: unchanged; the audio must already satisfy |x| < 1.
    """
    scale_peak = 10.0 ** (-peak_clip_headroom_db / 20.0)
    if strategy == "peak":
        peak = wav.abs().max()
        if peak == 0:
            return wav
        gain = scale_peak / peak
        return wav * gain if normalize or gain < 1 else wav
    if strategy == "clip":
        return wav.clamp(-scale_peak, scale_peak)
    if strategy == "rms":
        rms = wav.mean(dim=0).pow(2).mean().sqrt()
        if rms > 0:
            gain = 10.0 ** (-rms_headroom_db / 20.0) / rms
            if normalize or gain < 1:
                wav = wav * gain
        return _clip(wav, log_clipping, stem_name)
    if strategy == "loudness":
        if sample_rate is None:
            raise InputError("strategy='loudness' needs the sample_rate")
        wav = normalize_loudness(wav, sample_rate, loudness_headroom_db, loudness_compressor)
        return _clip(wav, log_clipping, stem_name)
    if strategy in ("none", ""):
        if wav.abs().max() >= 1:
            raise InputError("strategy='none' needs audio strictly inside (-1, 1); use 'peak', 'clip' or 'loudness'")
        return wav
    raise InputError(f"unknown normalisation strategy {strategy!r}; use 'peak', 'clip', 'rms', 'loudness' or 'none'")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

_SUFFIXES = {"wav": ".wav", "flac": ".flac", "ogg": ".ogg", "mp3": ".mp3"}
# Nominal Vorbis bitrates (kbps, 44.1 kHz stereo) of quality levels 0..10, used to map ogg_rate to a quality.
_VORBIS_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)


def _mp3_compression(mp3_rate: int, sample_rate: int) -> float:
    """libsndfile's compression level for a constant ``mp3_rate`` kbps.

    libsndfile maps the level in [0, 1] linearly onto the bitrate range of the MPEG version that
    ``sample_rate`` implies (MPEG-1: 32-320 kbps, MPEG-2 below 32 kHz: 8-160, MPEG-2.5 below 16 kHz: 8-64);
    rates outside that range are clamped to it, so the default 320 kbps gives 160 kbps for 16 kHz audio.
    """
    if mp3_rate <= 0:
        raise InputError(f"mp3_rate must be a positive number of kbps, got {mp3_rate}")
    low, high = (32, 320) if sample_rate >= 32000 else (8, 160) if sample_rate >= 16000 else (8, 64)
    # libsndfile truncates the bitrate it derives, so nudge exact rates up by a hair; it also rejects levels
    # within about 1e-5 of 1, and 0.999 already truncates to the lowest bitrate.
    return min(0.999, max(0.0, (high - mp3_rate) / (high - low) - 1e-9))


def _encoder_settings(fmt: str, sample_rate: int, mp3_rate: int, ogg_rate: int | None) -> dict:
    """soundfile.write keyword arguments for ``fmt``."""
    if fmt == "wav":
        return {"format": "WAV", "subtype": "PCM_16"}
    if fmt == "flac":
        return {"format": "FLAC", "subtype": "PCM_16"}
    if fmt == "ogg":
        settings = {"format": "OGG", "subtype": "VORBIS"}
        if ogg_rate is not None:  # libsndfile encodes Vorbis as VBR: use the quality with that nominal rate
            quality = float(np.interp(ogg_rate, _VORBIS_KBPS, np.arange(len(_VORBIS_KBPS)))) / 10.0
            settings["compression_level"] = 1.0 - quality
        return settings
    return {"format": "MP3", "subtype": "MPEG_LAYER_III", "bitrate_mode": "CONSTANT",
            "compression_level": _mp3_compression(mp3_rate, sample_rate)}


def _supported_formats() -> list[str]:
    available = sf.available_formats()
    return [fmt for fmt in _SUFFIXES if fmt.upper() in available]


def audio_write(stem_name: str | os.PathLike, wav: torch.Tensor, sample_rate: int, format: str = "wav",
                mp3_rate: int = 320, ogg_rate: int | None = None, normalize: bool = True, strategy: str = "peak",
                peak_clip_headroom_db: float = 1, rms_headroom_db: float = 18, loudness_headroom_db: float = 14,
                loudness_compressor: bool = False, log_clipping: bool = True, make_parent_dir: bool = True,
                add_suffix: bool = True, exclusive: bool = False) -> Path:
    """Normalise ``wav [C, T]`` (or ``[T]``) with :func:`normalize_audio` and write it to ``stem_name`` + suffix.

    Formats: ``'wav'`` (16-bit PCM), ``'flac'`` (16-bit), ``'ogg'`` (Vorbis; ``ogg_rate`` kbps is mapped to the
    nearest Vorbis quality) and ``'mp3'`` (constant ``mp3_rate`` kbps, clamped to the range the MPEG version allows at
    ``sample_rate``) when this libsndfile can encode MP3.
    The file is written to a temporary name in the target directory and renamed into place, so a failure
    never leaves a partial file. ``exclusive``: never replace an existing file; when the name is
    taken (by an earlier run, or by a concurrent one writing into the same folder) the first free
    ``STEM_1``, ``STEM_2``, ... is used instead, claimed atomically (a hard link, or an ``O_EXCL``
    create where links are not supported). Returns the path written. Bad input (non-finite samples, unknown format,
    unwritable location) raises :class:`InputError` before anything is written.
    """
    if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
        raise InputError("audio_write expects a floating-point torch.Tensor")
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2 or wav.shape[-1] == 0:
        raise InputError(f"audio_write expects non-empty audio [C, T] or [T], got shape {tuple(wav.shape)}")
    if not torch.isfinite(wav).all():
        raise InputError("audio_write got non-finite samples (NaN or inf)")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    supported = _supported_formats()
    if format not in supported:
        raise InputError(f"unsupported audio format {format!r}; this installation can write: {', '.join(supported)}")
    settings = _encoder_settings(format, sample_rate, mp3_rate, ogg_rate)
    wav = normalize_audio(wav.detach().cpu().float(), normalize, strategy, peak_clip_headroom_db, rms_headroom_db,
                          loudness_headroom_db, loudness_compressor, log_clipping=log_clipping,
                          sample_rate=sample_rate, stem_name=str(stem_name))
    data = np.ascontiguousarray(wav.numpy().T)  # [T, C]

    path = Path(str(stem_name) + (_SUFFIXES[format] if add_suffix else ""))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    created = False
    try:
        if make_parent_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # honours the umask, unlike mkstemp
        created = True
        sf.write(str(tmp), data, sample_rate, **settings)
        if exclusive:
            path = _claim(tmp, str(stem_name), _SUFFIXES[format] if add_suffix else "")
        else:
            os.replace(tmp, path)
        created = tmp.exists()
    except (OSError, RuntimeError) as exc:  # soundfile's errors are RuntimeErrors
        raise InputError(f"cannot write audio to {path}: {exc}") from exc
    finally:
        if created:
            tmp.unlink(missing_ok=True)
    return path


def _claim(tmp: Path, stem: str, suffix: str, attempts: int = 10_000) -> Path:
    """Move the finished file ``tmp`` to the first free name of ``STEM{,_1,_2,...}SUFFIX``, atomically:
    two processes can never both take a name, and an existing file is never replaced."""
    for n in range(attempts):
        candidate = Path(f"{stem}_{n}{suffix}" if n else f"{stem}{suffix}")
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: reserve the name, then move the file onto it
            try:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            os.replace(tmp, candidate)
            return candidate
        tmp.unlink()
        return candidate
    raise InputError(f"no free file name for {stem}{suffix} (tried {attempts})")
