"""The model that ships in the package (magnet-audio/synth-music): present, within its size budget,
loaded with no network (by `magnet generate` too, when the default facebook/magnet-small-10secs
cannot be had: see test_default_choice.py), generating audio, and with a codec that reconstructs
held-out music, pitch included, far better than an untrained codec of the same shape."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio import MAGNeT, load_compression_model
from magnet_audio.audio import convert_audio
from magnet_audio.cli import main as cli_main
from magnet_audio.codec import SpectralCodec, codec_from_config
from magnet_audio.decoding.beats import beat_spans
from magnet_audio.evaluation.codec_eval import mel_distance, reconstruct
from magnet_audio import names
from magnet_audio.names import BUNDLED_MODEL, bundled_models, resolve_bundled

CLIP = "synth/heldout_clip.wav"  # 5 s of a held-out `magnet data synth --seed 0` render (not trained on)


@pytest.fixture(scope="module")
def model() -> MAGNeT:
    return MAGNeT.get_pretrained(BUNDLED_MODEL, device="cpu")


def test_default_model_ships_in_the_package():
    assert BUNDLED_MODEL == "magnet-audio/synth-music" and BUNDLED_MODEL in bundled_models()
    folder = resolve_bundled(BUNDLED_MODEL)
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert sum(files.values()) <= 60e6
    config = json.loads((folder / "config.json").read_text())
    assert config["lm"]["conditioner"]["model"] == "sentence"  # a text encoder that needs no download
    # its decoding options are the recipe's (scripts/train_default.sh exports with this file)
    recipe = json.loads((Path(__file__).resolve().parents[1] / "configs" / "default" / "generation.json").read_text())
    assert config["generation"] == recipe

    def strings(node):
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        return [node] if isinstance(node, str) else []
    assert not [s for s in strings(config) if os.path.isabs(s)]  # nothing of the machine that exported it


def test_default_model_is_what_its_recipe_trains():
    """The bundled LM is the one configs/default/magnet.yaml describes (scripts/train_default.sh trains it
    with no overrides but the data paths): the same architecture, exported after the recipe's last update."""
    from magnet_audio.training.config import load_config
    recipe = load_config(Path(__file__).resolve().parents[1] / "configs" / "default" / "magnet.yaml",
                         ["data.train=runs/default-cache/train", "model.codec=null"])  # the script's overrides
    config = json.loads((resolve_bundled(BUNDLED_MODEL) / "config.json").read_text())
    lm = config["lm"]
    for key in ("dim", "num_heads", "num_layers", "hidden_scale", "subcodes_context", "span_len", "cfg_dropout"):
        assert lm[key] == getattr(recipe.model, key), key
    assert lm.get("positional_embedding", "sin") == recipe.model.positional_embedding
    assert lm["conditioner"]["model"] == recipe.model.conditioner.model
    assert config["training"]["step"] == recipe.optim.steps and config["training"]["ema"] == recipe.ema.use


@pytest.mark.slow
def test_default_model_loads_offline_and_generates(model):
    assert model.name == BUNDLED_MODEL and model.sample_rate == 16000 and model.max_duration == 10.0
    model.set_generation_params(decoding_steps=[4, 2, 2, 2])
    torch.manual_seed(0)
    wav, codes = model.generate(["calm solo piano ballad in A minor, slow tempo", None], return_tokens=True)
    assert codes.shape[:2] == (2, 4) and codes.shape[-1] >= 495
    assert wav.shape[:2] == (2, 1) and torch.isfinite(wav).all()
    assert (wav.square().mean(-1).sqrt() > 1e-3).all()  # not silence


@pytest.mark.slow
def test_default_model_beat_lock_is_opt_in(model):
    """Beat-locked decoding is a decoder device, not the model following tempo: the config does not
    recommend it; asked for, it ties the first 0.18 s of every beat of the prompt's tempo."""
    assert model.recommended_generation_params.get("beat_lock", 0.0) == 0.0
    model.set_generation_params(**{**model.recommended_generation_params, "decoding_steps": [4, 2, 2, 2],
                                   "beat_lock": 0.18})
    torch.manual_seed(0)
    codes = model.generate(["minimal techno with synth bass, 120 bpm"], return_tokens=True)[1][0]
    tied = beat_spans(torch.tensor([120.0]), codes.shape[-1], 50.0, 3, spans=3)[0]  # 0.18 s = 9 frames a beat
    assert int((tied == 0).sum()) == 20  # a beat every 25 frames of the 10 s
    for j in range(9):
        column = codes[:, tied == j]
        assert (column == column[:, :1]).all()


def _chroma_correlation(a: torch.Tensor, b: torch.Tensor, sr: int) -> float:
    """Mean over frames of the Pearson correlation of two clips' librosa chroma (CQT) vectors."""
    import librosa

    ca, cb = (librosa.feature.chroma_cqt(y=x.numpy()[0], sr=sr) for x in (a, b))
    return float(np.mean([np.corrcoef(ca[:, t], cb[:, t])[0, 1] for t in range(min(ca.shape[1], cb.shape[1]))]))


@pytest.mark.slow
def test_codec_reconstructs_held_out_music_with_its_pitch(model, fixture_dir):
    """On a clip the codec never saw: multi-scale log-mel distance (magnet eval's codec metric), and
    the chroma of the round trip against the clip's (pitch classes, frame by frame). The codec is
    our spectral one, whose Griffin-Lim phase makes SI-SNR meaningless (the model card reports it)."""
    assert isinstance(model.compression_model, SpectralCodec)
    wav, sr = sf.read(fixture_dir.parent / CLIP, dtype="float32")
    wav = convert_audio(torch.from_numpy(wav)[None, None], sr, model.sample_rate, 1)[0]
    rec = reconstruct(model.compression_model, wav)
    torch.manual_seed(0)
    untrained = reconstruct(codec_from_config(model.compression_model.config).eval(), wav)
    trained_mel, chance_mel = (mel_distance(x, wav, model.sample_rate) for x in (rec, untrained))
    assert trained_mel < 0.3 and trained_mel < 0.5 * chance_mel, (trained_mel, chance_mel)  # measured 0.20 vs 0.77
    # measured 0.52, untrained 0.02; the EnCodec the previous default shipped kept no pitch: 0.03
    trained_chroma, chance_chroma = (_chroma_correlation(x, wav, model.sample_rate) for x in (rec, untrained))
    assert trained_chroma > 0.35 and chance_chroma < 0.15, (trained_chroma, chance_chroma)


def test_the_codec_loads_on_its_own():
    codec = load_compression_model(BUNDLED_MODEL, device="cpu")
    assert (codec.sample_rate, codec.frame_rate, codec.num_codebooks) == (16000, 50, 4)


@pytest.mark.slow
def test_magnet_generate_falls_back_to_the_bundled_model_offline(tmp_path, monkeypatch, capsys):
    """The README's Quickstart here (offline, nothing cached): the bundled model, with a one-line note."""
    monkeypatch.delenv("MAGNET_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(names, "default_model_cached", lambda t5_path=None: False)
    assert cli_main(["generate", "upbeat funk with slap bass and drums, 120 bpm", "-o", str(tmp_path),
                     "--steps", "2,1,1,1", "--seed", "0"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: using the bundled {BUNDLED_MODEL}, not the default facebook/magnet-small-10secs: it "
                     "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; --model or $MAGNET_MODEL "
                     "picks another"]
    (out,) = tmp_path.glob("*.wav")
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) >= 9.9 * sr and np.isfinite(audio).all()
