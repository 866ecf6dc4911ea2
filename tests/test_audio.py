"""Audio I/O, resampling, channel conversion, BS.1770 loudness and normalisation (magnet_audio.audio)."""

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio import audio
from magnet_audio.audio import (audio_read, audio_write, convert_audio, convert_channels, loudness, normalize_audio,
                                resample)
from magnet_audio.errors import InputError

PEAK = 10 ** (-1 / 20)
FORMATS = ["wav", "flac", "ogg"] + (["mp3"] if "MP3" in sf.available_formats() else [])


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5, channels: int = 1) -> torch.Tensor:
    t = torch.arange(int(round(seconds * sr)), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).repeat(channels, 1)


def _noise(sr: int, seconds: float, channels: int, amp: float = 0.1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return amp * torch.randn(channels, int(round(seconds * sr)), generator=gen, dtype=torch.float64)


def _peak_hz(x: torch.Tensor, sr: int) -> float:
    spectrum = torch.fft.rfft(x.double() * torch.hann_window(x.shape[-1], dtype=torch.float64))
    return spectrum.abs().argmax().item() * sr / x.shape[-1]


# ------------------------------------------------------------------------------------------- loudness

def test_k_weighting_matches_the_bs1770_table_at_48k():
    (shelf_b, shelf_a), (rlb_b, rlb_a) = audio._k_weighting(48000)
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(rlb_b, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(rlb_a, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("length", [1, 100, 256, 12345])
def test_block_lfilter_equals_scipy(length):
    signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(length).standard_normal((3, length))
    for b, a in audio._k_weighting(22050):
        np.testing.assert_allclose(audio._lfilter(b, a, x), signal.lfilter(b, a, x, axis=-1), atol=1e-10)


@pytest.mark.parametrize("sr", [16000, 32000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_loudness_matches_pyloudnorm(sr, channels):
    pyln = pytest.importorskip("pyloudnorm")
    meter = pyln.Meter(sr, filter_class="DeMan")  # BS.1770 filters by bilinear transform at any rate
    gated = torch.cat([_sine(1000, sr, 2.0, 0.5, channels), _sine(1000, sr, 1.0, 0.003, channels)], dim=-1)
    signals = {
        "noise": _noise(sr, 3.0, channels),
        "sine 440 Hz": _sine(440, sr, 3.0, 0.5, channels),
        "sine 60 Hz": _sine(60, sr, 3.0, 0.3, channels),
        "sine 5 kHz": _sine(5000, sr, 3.0, 0.2, channels),
        "tone then near-silence (gating)": gated,
    }
    for name, x in signals.items():
        expected = meter.integrated_loudness(x.T.numpy())
        assert loudness(x.float(), sr) == pytest.approx(expected, abs=0.01), name


def test_loudness_of_full_scale_997hz_sine_is_minus_3_01():
    assert loudness(_sine(997, 48000, 5.0, amp=1.0), 48000) == pytest.approx(-3.01, abs=0.05)


def test_loudness_edge_cases():
    assert loudness(torch.zeros(2, 16000), 16000) == float("-inf")
    short = _sine(1000, 16000, 0.2)  # shorter than one 400 ms block: measured as a single block
    assert loudness(short, 16000) == pytest.approx(loudness(_sine(1000, 16000, 2.0), 16000), abs=0.1)
    assert loudness(short[0], 16000) == loudness(short, 16000)
    odd = _noise(11025, 2.05, 2)  # fractional hop (1102.5 samples)
    assert loudness(odd, 11025) == pytest.approx(loudness(odd[:, :22050], 11025), abs=0.1)
    with pytest.raises(InputError):
        loudness(torch.zeros(6, 16000), 16000)
    with pytest.raises(InputError):
        loudness(torch.zeros(1, 0), 16000)


def test_loudness_is_fast():
    import time
    x = torch.randn(2, 10 * 32000)
    start = time.perf_counter()
    loudness(x, 32000)
    assert time.perf_counter() - start < 1.0


# ------------------------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("headroom", [14, 16])
@pytest.mark.parametrize("sr", [16000, 32000])
def test_loudness_strategy_hits_target(headroom, sr):
    x = _noise(sr, 3.0, 2, amp=0.02).float()
    out = normalize_audio(x, strategy="loudness", loudness_headroom_db=headroom, sample_rate=sr)
    assert loudness(out, sr) == pytest.approx(-headroom, abs=0.1)


def test_loudness_strategy_energy_floor_and_compressor():
    quiet = _noise(16000, 1.0, 1, amp=1e-3).float()  # RMS 1e-3 < 2e-3
    assert torch.equal(normalize_audio(quiet, strategy="loudness", sample_rate=16000), quiet)
    rumble = _sine(1, 16000, 2.0, amp=0.05).float()  # above the energy floor, but no block passes the gates
    assert loudness(rumble, 16000) == float("-inf")
    assert torch.equal(normalize_audio(rumble, strategy="loudness", sample_rate=16000), rumble)
    loud = _noise(16000, 2.0, 1, amp=0.5).float()
    squashed = normalize_audio(loud, strategy="loudness", loudness_compressor=True, sample_rate=16000)
    plain = normalize_audio(loud, strategy="loudness", sample_rate=16000)
    torch.testing.assert_close(squashed, torch.tanh(plain))
    with pytest.raises(InputError):
        normalize_audio(loud, strategy="loudness")  # no sample_rate


def test_peak_clip_rms_none():
    x = _noise(16000, 1.0, 2, amp=0.1).float()
    original = x.clone()
    assert normalize_audio(x).abs().max().item() == pytest.approx(PEAK, rel=1e-6)
    assert torch.equal(normalize_audio(x, normalize=False), x)  # only ever attenuates
    assert normalize_audio(x * 20, normalize=False).abs().max().item() == pytest.approx(PEAK, rel=1e-6)
    assert torch.equal(normalize_audio(torch.zeros(1, 10)), torch.zeros(1, 10))

    clipped = normalize_audio(x * 20, strategy="clip")
    assert clipped.abs().max().item() == pytest.approx(PEAK, rel=1e-6)
    torch.testing.assert_close(clipped, (x * 20).clamp(-PEAK, PEAK))

    rms = normalize_audio(x, strategy="rms")
    assert rms.mean(dim=0).pow(2).mean().sqrt().item() == pytest.approx(10 ** (-18 / 20), rel=1e-4)
    assert torch.equal(normalize_audio(x * 1e-3, strategy="rms", normalize=False), x * 1e-3)

    assert torch.equal(normalize_audio(x, strategy="none"), x)
    assert torch.equal(normalize_audio(x, strategy=""), x)
    with pytest.raises(InputError):
        normalize_audio(x * 20, strategy="none")
    with pytest.raises(InputError):
        normalize_audio(x, strategy="lufs")
    assert torch.equal(x, original)  # inputs are never modified in place


def test_clipping_is_clamped_and_logged(capsys):
    spiky = torch.full((1, 16000), 0.001)
    spiky[0, ::1000] = 1.0  # RMS normalisation pushes the spikes far above 1
    out = normalize_audio(spiky, strategy="rms", log_clipping=True, stem_name="spiky")
    assert out.abs().max().item() == 1.0
    assert "clipping in spiky" in capsys.readouterr().err
    normalize_audio(spiky, strategy="rms", log_clipping=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------- writing

@pytest.mark.parametrize("fmt", FORMATS)
def test_audio_write_round_trip(tmp_path, fmt):
    sr = 16000 if fmt == "mp3" else 32000
    wav = torch.cat([_sine(440, sr, 1.0, 0.3), _sine(660, sr, 1.0, 0.2)]).float()
    path = audio_write(tmp_path / "song", wav, sr, format=fmt)
    assert path == tmp_path / f"song.{fmt}"
    back, back_sr = audio_read(path)
    assert back_sr == sr and back.dtype == torch.float32 and back.shape == wav.shape
    expected = normalize_audio(wav)  # default strategy: peak at -1 dBFS
    if fmt in ("wav", "flac"):
        torch.testing.assert_close(back, expected, atol=1e-4, rtol=0)
    else:
        for channel, freq in enumerate([440, 660]):
            assert _peak_hz(back[channel], sr) == pytest.approx(freq, abs=2)
        assert back.abs().max().item() == pytest.approx(PEAK, abs=0.05)


def test_audio_write_mono_1d_suffix_and_strategy(tmp_path):
    path = audio_write(tmp_path / "sub" / "a.b", _sine(440, 16000, 2.0).float()[0], 16000, strategy="loudness")
    assert path == tmp_path / "sub" / "a.b.wav"
    back, _ = audio_read(path)
    assert back.shape == (1, 32000)
    assert loudness(back, 16000) == pytest.approx(-14, abs=0.1)
    bare = audio_write(tmp_path / "bare", _sine(440, 16000, 0.5).float(), 16000, format="flac", add_suffix=False)
    assert bare == tmp_path / "bare" and sf.info(str(bare)).format == "FLAC"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare", "sub"]


def test_audio_write_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = audio_write(tmp_path / "x", _sine(440, 16000, 0.1).float(), 16000)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_audio_write_rejects_bad_input_without_writing(tmp_path):
    ok = _sine(440, 16000, 0.1).float()
    for bad in (torch.tensor([[0.1, float("nan")]]), torch.tensor([[0.1, float("inf")]])):
        with pytest.raises(InputError, match="non-finite"):
            audio_write(tmp_path / "out" / "bad", bad, 16000)
    with pytest.raises(InputError):
        audio_write(tmp_path / "out" / "bad", ok[None], 16000)  # [1, 1, T]
    with pytest.raises(InputError):
        audio_write(tmp_path / "out" / "bad", (ok * 100).long(), 16000)
    with pytest.raises(InputError, match="wav, flac, ogg"):
        audio_write(tmp_path / "out" / "bad", ok, 16000, format="aac")
    assert not (tmp_path / "out").exists()


def test_mp3_unavailable_names_supported_formats(tmp_path, monkeypatch):
    formats = {k: v for k, v in sf.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(audio.sf, "available_formats", lambda: formats)
    with pytest.raises(InputError, match="can write: wav, flac, ogg"):
        audio_write(tmp_path / "x", _sine(440, 16000, 0.1).float(), 16000, format="mp3")


def test_audio_write_unwritable_location(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(InputError, match="file.txt"):
        audio_write(blocker / "sub" / "x", _sine(440, 16000, 0.1).float(), 16000)
    with pytest.raises(InputError, match="missing"):
        audio_write(tmp_path / "missing" / "x", _sine(440, 16000, 0.1).float(), 16000, make_parent_dir=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_audio_write_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="locked"):
            audio_write(locked / "x", _sine(440, 16000, 0.1).float(), 16000)
    finally:
        locked.chmod(0o755)


def test_audio_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "song.wav"
    target.write_bytes(b"previous take")

    def failing_write(file, data, samplerate, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"RIFF half a header")
        raise sf.LibsndfileError(0, "disk full")

    monkeypatch.setattr(audio.sf, "write", failing_write)
    with pytest.raises(InputError, match="song.wav"):
        audio_write(tmp_path / "song", _sine(440, 16000, 0.1).float(), 16000)
    with pytest.raises(InputError):
        audio_write(tmp_path / "new", _sine(440, 16000, 0.1).float(), 16000)
    assert target.read_bytes() == b"previous take"
    assert [p.name for p in tmp_path.iterdir()] == ["song.wav"]  # no temp files, no partial new.wav


# ------------------------------------------------------------------------------------------- reading

def test_audio_read_options(tmp_path):
    sr = 16000
    stereo = torch.cat([_sine(440, sr, 2.0, 0.3), _sine(880, sr, 2.0, 0.2)]).float()
    path = tmp_path / "x.wav"
    sf.write(str(path), stereo.T.numpy(), sr, subtype="FLOAT")
    wav, got_sr = audio_read(path)
    assert got_sr == sr and torch.equal(wav, stereo)
    part, _ = audio_read(path, seek=0.5, duration=0.25)
    assert torch.equal(part, stereo[:, 8000:12000])
    padded, _ = audio_read(path, 1.5, 1.0, True)  # audiocraft's positional order: seek, duration, pad
    assert padded.shape == (2, 16000) and torch.equal(padded[:, :8000], stereo[:, 24000:])
    assert not padded[:, 8000:].any()
    mono32, sr32 = audio_read(path, sample_rate=32000, channels=1)
    assert sr32 == 32000 and mono32.shape == (1, 64000)
    assert _peak_hz(mono32[0], 32000) == pytest.approx(440, abs=1)


def test_audio_read_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        audio_read(tmp_path / "nope.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("this is not audio")
    with pytest.raises(InputError, match="garbage.wav"):
        audio_read(garbage)
    with pytest.raises(InputError):
        audio_read(tmp_path)
    sf.write(str(tmp_path / "ok.wav"), np.zeros(100, dtype=np.float32), 16000)
    with pytest.raises(InputError):
        audio_read(tmp_path / "ok.wav", seek=-1.0)


# ------------------------------------------------------------------------------------------- resampling, channels

@pytest.mark.parametrize("orig_sr,target_sr", [(44100, 32000), (32000, 16000), (16000, 48000), (24000, 32000)])
def test_resample_keeps_frequency_and_length(orig_sr, target_sr):
    x = torch.cat([_sine(1000, orig_sr, 1.0), _sine(3000, orig_sr, 1.0)]).float()[None]  # [1, 2, T]
    x = x[..., :orig_sr - 7]  # a length that does not divide evenly
    y = resample(x, orig_sr, target_sr)
    assert y.shape == (1, 2, math.floor(x.shape[-1] * target_sr / orig_sr + 0.5)) and y.dtype == torch.float32
    assert _peak_hz(y[0, 0], target_sr) == pytest.approx(1000, abs=2)
    assert _peak_hz(y[0, 1], target_sr) == pytest.approx(3000, abs=2)
    middle = y[..., target_sr // 10: -target_sr // 10]  # away from the ringing of the abrupt start and end
    assert middle.abs().max().item() == pytest.approx(0.5, abs=0.01)


def test_resample_identity_dtype_and_errors():
    x = _sine(1000, 16000, 0.5)
    assert resample(x, 16000, 16000) is x
    assert resample(x, 16000, 8000).dtype == torch.float64
    assert resample(x[..., :240], 48000, 44100).shape[-1] == 221  # 220.5: soxr alone gives 220
    assert resample(x.half(), 16000, 8000).dtype == torch.float16
    with pytest.raises(InputError):
        resample(x, 0, 16000)
    with pytest.raises(InputError):
        resample(x.long(), 16000, 8000)


def test_convert_channels_semantics():
    stereo = torch.stack([torch.ones(5), 3 * torch.ones(5)])
    assert torch.equal(convert_channels(stereo, 2), stereo)
    torch.testing.assert_close(convert_channels(stereo, 1), 2 * torch.ones(1, 5))
    mono = torch.arange(5.0)[None]
    assert torch.equal(convert_channels(mono, 3), mono.repeat(3, 1))
    three = torch.randn(4, 3, 7)  # batched [B, C, T]
    assert torch.equal(convert_channels(three, 2), three[:, :2])
    torch.testing.assert_close(convert_channels(three, 1), three.mean(dim=1, keepdim=True))
    with pytest.raises(InputError):
        convert_channels(stereo, 3)
    with pytest.raises(InputError):
        convert_channels(stereo, 0)


def test_convert_audio_resamples_then_converts():
    prompt = torch.cat([_sine(440, 44100, 0.5), _sine(440, 44100, 0.5)]).float()[None]  # [1, 2, T]
    out = convert_audio(prompt, 44100, 32000, 1)
    assert out.shape == (1, 1, 16000)
    torch.testing.assert_close(out, resample(prompt, 44100, 32000).mean(dim=1, keepdim=True))
