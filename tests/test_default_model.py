"""The default model that ships in the package (magnet-audio/synth-music): present, within its size
budget, loaded by every entry point with no network, generating audio, and with a codec that
reconstructs held-out music far better than an untrained codec of the same shape."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio import MAGNeT, load_compression_model
from magnet_audio.audio import convert_audio
from magnet_audio.cli import main as cli_main
from magnet_audio.codec import EncodecModel
from magnet_audio.evaluation.codec_eval import mel_distance, reconstruct
from magnet_audio.names import DEFAULT_MODEL, bundled_models, resolve_bundled

CLIP = "synth/heldout_clip.wav"  # 5 s of a held-out `magnet data synth --seed 0` render (not trained on)


@pytest.fixture(scope="module")
def model() -> MAGNeT:
    return MAGNeT.get_pretrained(device="cpu")  # no name: the default


def test_default_model_ships_in_the_package():
    assert DEFAULT_MODEL == "magnet-audio/synth-music" and DEFAULT_MODEL in bundled_models()
    folder = resolve_bundled(DEFAULT_MODEL)
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert sum(files.values()) <= 60e6
    config = json.loads((folder / "config.json").read_text())
    assert config["lm"]["conditioner"]["model"] == "sentence"  # a text encoder that needs no download


def test_default_model_loads_offline_and_generates(model):
    assert model.name == DEFAULT_MODEL and model.sample_rate == 16000 and model.max_duration == 10.0
    model.set_generation_params(decoding_steps=[4, 2, 2, 2])
    torch.manual_seed(0)
    wav, codes = model.generate(["calm solo piano ballad in A minor, slow tempo", None], return_tokens=True)
    assert codes.shape[:2] == (2, 4) and codes.shape[-1] >= 495
    assert wav.shape[:2] == (2, 1) and torch.isfinite(wav).all()
    assert (wav.square().mean(-1).sqrt() > 1e-3).all()  # not silence


def test_codec_reconstructs_held_out_music(model, fixture_dir):
    """Multi-scale log-mel distance (magnet eval's codec metric) on a clip the codec never saw. The
    codec was trained on mel and L1 losses only, so it rebuilds spectra, not phase: SI-SNR is not
    meaningful for it (the model card reports both)."""
    wav, sr = sf.read(fixture_dir.parent / CLIP, dtype="float32")
    wav = convert_audio(torch.from_numpy(wav)[None, None], sr, model.sample_rate, 1)[0]
    trained = mel_distance(reconstruct(model.compression_model, wav), wav, model.sample_rate)
    torch.manual_seed(0)
    untrained = EncodecModel(model.compression_model.config).eval()
    chance = mel_distance(reconstruct(untrained, wav), wav, model.sample_rate)
    assert trained < 0.4 and trained < 0.25 * chance, (trained, chance)  # measured 0.28 vs 2.60


def test_the_codec_loads_on_its_own():
    codec = load_compression_model(DEFAULT_MODEL, device="cpu")
    assert (codec.sample_rate, codec.frame_rate, codec.num_codebooks) == (16000, 50, 4)


def test_magnet_generate_uses_the_default_model(tmp_path, monkeypatch):
    monkeypatch.delenv("MAGNET_MODEL", raising=False)
    assert cli_main(["generate", "upbeat funk with slap bass and drums, 120 bpm", "-o", str(tmp_path),
                     "--steps", "2,1,1,1", "--seed", "0"]) == 0
    (out,) = tmp_path.glob("*.wav")
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) >= 9.9 * sr and np.isfinite(audio).all()
