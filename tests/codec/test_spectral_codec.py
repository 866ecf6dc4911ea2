"""The spectral codec: Griffin-Lim, the codec interface, our format, and its training."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from magnet_audio.codec import (SpectralCodec, SpectralCodecConfig, load_compression_model, save_audiocraft_export,
                                save_our_codec)
from magnet_audio.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000
SMALL = dict(sample_rate=SR, n_fft=512, hop_length=160, hidden=16, dimension=8, encoder_dilations=[1],
             decoder_dilations=[1], n_q=2, bins=16, kmeans_init=False, griffin_lim_iters=32)


def _tones(freqs, seconds=1.0, sr=SR):
    t = torch.arange(int(seconds * sr)) / sr
    return sum(torch.sin(2 * math.pi * f * t) for f in freqs) / len(freqs)


def _peak_hz(wav: torch.Tensor, sr=SR) -> float:
    spectrum = torch.fft.rfft(wav.double() * torch.hann_window(wav.shape[-1], dtype=torch.float64)).abs()
    return float(spectrum.argmax()) * sr / wav.shape[-1]


def test_griffin_lim_rebuilds_audio_with_the_given_magnitudes():
    """From the exact magnitudes of a two-tone signal, Griffin-Lim gives audio whose STFT magnitudes
    are close to them (spectral convergence), whose loudest partial is the right one, and the same
    audio on every call."""
    codec = SpectralCodec(SpectralCodecConfig(**SMALL))
    x = 0.7 * _tones([440.0]) + 0.3 * _tones([660.0])
    frames = math.ceil(len(x) / codec.hop_length)
    magnitude = codec._stft(x[None]).abs()[..., :frames]
    y = codec.griffin_lim(magnitude, len(x))
    assert y.shape == (1, len(x))
    rebuilt = codec._stft(y).abs()[..., :frames]
    convergence = float((rebuilt - magnitude).norm() / magnitude.norm())
    random_phase = float((codec._stft(torch.randn_like(x)[None] * x.std()).abs()[..., :frames] - magnitude).norm()
                         / magnitude.norm())
    print(f"spectral convergence {convergence:.3f} (noise of the same level: {random_phase:.3f})")
    assert convergence < 0.15 < random_phase
    assert abs(_peak_hz(y[0]) - 440.0) < 5
    assert torch.equal(y, codec.griffin_lim(magnitude, len(x)))


def test_interface_shapes_errors_and_our_format(tmp_path):
    torch.manual_seed(0)
    codec = SpectralCodec(SpectralCodecConfig(**SMALL)).eval()
    assert (codec.sample_rate, codec.channels, codec.frame_rate, codec.num_codebooks, codec.cardinality) == \
        (SR, 1, 50.0, 2, 16)
    wav = torch.stack([_tones([220.0]), 0.1 * _tones([330.0])])[:, None, :1000]
    codes, scale = codec.encode(wav)
    assert codes.shape == (2, 2, math.ceil(1000 / 160)) and codes.dtype == torch.int64
    assert torch.allclose(scale.view(-1), wav.pow(2).mean(dim=(1, 2)).sqrt() + 1e-8)
    audio = codec.decode(codes, scale)
    assert audio.shape == (2, 1, codes.shape[-1] * 160) and torch.isfinite(audio).all()
    # the scale restores each clip's level: the quiet clip decodes quieter
    assert audio[1].pow(2).mean() < audio[0].pow(2).mean()
    assert torch.equal(codec.decode(codes, scale), audio)  # deterministic phase

    for bad, match in ((wav.repeat(1, 2, 1), "1 audio channel"), (wav[0], r"shape \[B, C, T\]"),
                       ((wav * 1000).long(), "floating-point")):
        with pytest.raises(InputError, match=match):
            codec.encode(bad)
    for bad, match in ((codes + 16, r"must be in \[0, 16\)"), (codes.float(), "integer codes"),
                       (codes.repeat(1, 2, 1), "1 to 2 codebooks")):
        with pytest.raises(InputError, match=match):
            codec.decode(bad)
    with pytest.raises(InputError, match="mono"):
        SpectralCodecConfig(channels=2)
    with pytest.raises(InputError, match="unknown keys"):
        SpectralCodecConfig.from_dict({"type": "spectral", "ratios": [8, 5]})

    out = save_our_codec(codec, tmp_path / "codec")
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors"}
    assert json.loads((out / "config.json").read_text())["codec"]["type"] == "spectral"
    loaded = load_compression_model(out, device="cpu")
    assert isinstance(loaded, SpectralCodec) and loaded.config == codec.config
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in codec.state_dict().items())
    assert torch.equal(loaded.encode(wav)[0], codes) and torch.equal(loaded.decode(codes, scale), audio)
    with pytest.raises(InputError, match="EnCodec models only"):
        save_audiocraft_export(codec, tmp_path / "compression_state_dict.bin")


def _write_tones(folder, n=16, seconds=0.5, sr=16000):
    """n clips: a harmonic tone (4 partials) with a random pitch (110-440 Hz) and a decaying envelope."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    folder.mkdir()
    t = np.arange(int(seconds * sr)) / sr
    freqs = []
    for i in range(n):
        f = 110 * 2 ** (rng.integers(0, 25) / 12)
        wave = sum(np.sin(2 * np.pi * h * f * t) / h for h in range(1, 5))
        wave = wave * np.minimum(1, t * 40) * np.exp(-t * rng.uniform(0.5, 2))
        sf.write(folder / f"clip{i:02d}.wav", (0.3 * wave).astype(np.float32), sr)
        freqs.append(f)
    return freqs


def _spectrum(wav: torch.Tensor) -> torch.Tensor:
    """Mean STFT magnitude of audio [T] at 16 kHz, 47-2,000 Hz (n_fft 2048)."""
    return torch.stft(wav.float(), 2048, 512, window=torch.hann_window(2048), return_complex=True).abs().mean(-1)[6:256]


TINY = ["model.hidden=32", "model.dimension=16", "model.n_fft=512", "model.encoder_dilations=[1,2]",
        "model.decoder_dilations=[1,2]", "model.bins=32", "model.threshold_ema_dead_code=0.1",
        "model.griffin_lim_iters=16", "data.segment_duration=0.32", "data.batch_size=8", "data.num_workers=0",
        "data.valid_fraction=0.0", "ema.decay=0.9", "optim.warmup=5", "optim.lr=3e-3", "log.progress=false", "device=cpu",
        "samples.every=0"]


@pytest.mark.slow
def test_default_recipe_trains_a_spectral_codec_that_keeps_pitch(tmp_path):
    """configs/default/codec.yaml (shrunk) through `magnet train-codec`: the loss falls, the export is
    a spectral codec in our format, and the round trip of each tone keeps its spectrum (so its pitch)
    apart from the others'; resuming from a checkpoint gives the same weights; decoder_only keeps the
    codes and trains the decoder."""
    import shutil

    import soundfile as sf

    from magnet_audio.cli import main
    from magnet_audio.training.codec_train import load_codec_config
    from magnet_audio.training.runtime import list_checkpoints, load_checkpoint

    freqs = _write_tones(tmp_path / "tones")
    run = tmp_path / "run"
    args = ["configs/default/codec.yaml", f"data.train={tmp_path / 'tones'}", f"run_dir={run}", *TINY,
            "optim.steps=300", "valid.every=0", "log.every=20", "checkpoint.every=150", "checkpoint.keep_last=2"]
    assert main(["train-codec", *args]) == 0
    import csv
    with open(run / "train.csv", newline="") as f:
        rows = [float(r["recon"]) for r in csv.DictReader(f)]
    print(f"train recon every 20 updates: {[round(r, 3) for r in rows]}")
    assert np.mean(rows[-3:]) < 0.6 * rows[0]

    export = run / "export"
    assert {p.name for p in export.iterdir()} == {"config.json", "model.safetensors"}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "compression_state_dict.bin").write_bytes(b"an older EnCodec export")
    assert main(["export", str(run), str(tmp_path / "out")]) == 0  # a codec run: the codec alone, ours
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"config.json", "model.safetensors"}
    codec = load_compression_model(export, device="cpu")
    assert isinstance(codec, SpectralCodec) and codec.frame_rate == 50.0
    originals, decoded = [], []
    for i in range(len(freqs)):
        wav = torch.from_numpy(sf.read(tmp_path / "tones" / f"clip{i:02d}.wav", dtype="float32")[0])
        codes, scale = codec.encode(wav.view(1, 1, -1))
        originals.append(_spectrum(wav))
        decoded.append(_spectrum(codec.decode(codes, scale)[0, 0, :len(wav)]))
    # cosine similarity of each round trip's spectrum to every original: its own tone (or one of the
    # same pitch) against the other pitches. A codec that loses pitch scores the same on both.
    cosine = F.normalize(torch.stack(decoded), dim=1) @ F.normalize(torch.stack(originals), dim=1).T
    same = torch.tensor([[abs(a - b) < 1 for b in freqs] for a in freqs])
    own, other = cosine[same].mean().item(), cosine[~same].mean().item()
    print(f"round-trip spectrum vs its own tone {own:.3f}, vs other pitches {other:.3f}")
    assert own > other + 0.2

    (_, ckpt1), (_, ckpt2) = list_checkpoints(run)
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    (resumed / "checkpoints" / ckpt2.name).unlink()
    assert main(["train-codec", *args[:2], f"run_dir={resumed}", *args[3:], "--resume"]) == 0
    s2, s2_resumed = (load_checkpoint(d / "checkpoints" / ckpt2.name)["objective"] for d in (run, resumed))
    assert all(torch.equal(s2[k], s2_resumed[k]) for k in s2)

    tuned = tmp_path / "tuned"
    assert main(["train-codec", *args[:2], f"run_dir={tuned}", *TINY[8:], "optim.steps=5", "valid.every=0",
                 "checkpoint.every=5", "decoder_only=true", f"model={{init_from: {export}}}"]) == 0
    tuned_codec = load_compression_model(tuned / "export", device="cpu")
    assert all(torch.equal(v, tuned_codec.state_dict()[k]) for k, v in codec.state_dict().items()
               if not k.startswith("decoder."))
    assert any(not torch.equal(v, tuned_codec.state_dict()[k]) for k, v in codec.state_dict().items()
               if k.startswith("decoder."))

    with pytest.raises(InputError, match="losses.adversarial=false"):
        load_codec_config("configs/default/codec.yaml", ["data.train=x", "losses.adversarial=true"])
