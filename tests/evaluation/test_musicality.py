"""Musicality measures on constructed clips whose answer is known: a sine melody (confident, stable
notes), a click track (clear pulse, right tempo), white and pink noise (flat spectrum, no pulse, no
notes), steady vs fading loudness, constant vs varied codec tokens; ``magnet eval --metrics musicality``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from magnet_audio.errors import InputError
from magnet_audio.evaluation import musicality as M

SR = 22050


def _sine_melody(pitches=(60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 67), note_seconds=0.5,
                 sr=SR) -> np.ndarray:
    """Pure sine notes with 10 ms fades (no clicks between notes)."""
    t = np.arange(int(note_seconds * sr)) / sr
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    notes = [0.3 * np.sin(2 * np.pi * 440.0 * 2 ** ((p - 69) / 12) * t) * fade for p in pitches]
    return np.concatenate(notes).astype(np.float32)


def _clicks(bpm: float, seconds: float = 8.0, sr: int = SR) -> np.ndarray:
    """A 20 ms decaying noise burst on every beat."""
    wav = np.zeros(int(seconds * sr), dtype=np.float32)
    n = int(0.02 * sr)
    burst = (np.random.default_rng(0).normal(size=n) * np.exp(-np.linspace(0, 8, n)) * 0.5).astype(np.float32)
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * sr)
        wav[i:i + n] += burst[:len(wav) - i]
    return wav


def _white(seconds: float = 8.0, seed: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).normal(size=int(seconds * SR))).astype(np.float32)


def _pink(seconds: float = 8.0, seed: int = 2) -> np.ndarray:
    """1/f power noise, shaped in the frequency domain, RMS 0.1."""
    n = int(seconds * SR)
    spec = np.fft.rfft(np.random.default_rng(seed).normal(size=n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return (0.1 * x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# The arithmetic, by hand
# ----------------------------------------------------------------------------------------------


def test_note_measures_by_hand():
    post = np.zeros((4, 88))
    post[0, 10], post[1, 20], post[2, 30], post[3, 5] = 0.9, 0.6, 0.4, 0.1
    notes = [(0.0, 1.0, 60, 0.5),   # long: weight 0.5
             (1.0, 1.2, 62, 1.0),   # 0.2 s: short, weight 0.2
             (2.0, 2.25, 64, 0.2)]  # exactly 0.25 s counts as long: weight 0.05
    out = M.note_measures(post, notes)
    assert out["confident_notes"] == pytest.approx(0.5)  # 0.9 and 0.6 are above 0.5
    assert out["pitch_salience"] == pytest.approx((0.9 + 0.6 + 0.4 + 0.1) / 4)
    assert out["note_stability"] == pytest.approx(0.55 / 0.75)
    assert out["n_notes"] == 3
    assert M.note_measures(post, [])["note_stability"] == 0.0  # no notes: 0, as defined
    with pytest.raises(ValueError, match="frames, pitches"):
        M.note_measures(np.zeros(5), [])


def test_token_measures_constant_vs_varied_grid():
    constant = np.full(500, 7)
    varied = np.random.default_rng(0).integers(0, 256, size=500)
    assert M.token_measures(constant) == {"distinct_tokens": 1, "top_token_share": 1.0}
    out = M.token_measures(varied)
    assert out["distinct_tokens"] > 200 and out["top_token_share"] < 0.02
    assert M.token_measures([3, 3, 3, 5]) == {"distinct_tokens": 2, "top_token_share": 0.75}
    with pytest.raises(ValueError, match="shorter than one codec frame"):
        M.token_measures(np.zeros(0, dtype=int))


def test_summarize_subsets_follow_the_prompt_metadata():
    rows = [{**dict.fromkeys(M.CLIP_MEASURES, 0.5), "pulse_clarity": 0.8, "tempo": 121.0},
            {**dict.fromkeys(M.CLIP_MEASURES, 0.5), "pulse_clarity": 0.2, "tempo": 90.0},
            {**dict.fromkeys(M.CLIP_MEASURES, 0.5), "pulse_clarity": 0.4, "tempo": 140.0}, None]
    prompts = [{"bpm": 120, "instruments": ["piano", "rock drums"]},  # drums, tempo within 8 %
               {"bpm": 120, "instruments": ["piano"]},                # no drums, tempo off by 25 %
               {"instruments": ["808 drums"]},                        # drums, no bpm
               {"bpm": 100, "instruments": ["rock drums"]}]           # no clip: ignored
    out = M.summarize(rows, prompts)
    assert out["pulse_clarity"] == {"value": pytest.approx(1.4 / 3), "n": 3}
    assert out["pulse_clarity_drums"] == {"value": pytest.approx(0.6), "n": 2}
    assert out["tempo_within_8pct"] == {"value": pytest.approx(0.5), "n": 2}
    bare = M.summarize(rows)
    assert bare["pulse_clarity_drums"]["value"] is None and bare["tempo_within_8pct"]["value"] is None
    with pytest.raises(InputError, match="4 clips but 2 prompt rows"):
        M.summarize(rows, prompts[:2])


# ----------------------------------------------------------------------------------------------
# librosa measures on constructed audio
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_spectral_flatness_noise_above_tones():
    librosa = pytest.importorskip("librosa")
    tone, white, pink = M.spectral_flatness(_sine_melody()), M.spectral_flatness(_white()), M.spectral_flatness(_pink())
    assert tone < 0.01
    assert white > 0.3 and pink > 0.05
    assert white > pink > tone
    # at 22.05 kHz it is librosa's own spectral_flatness, as the issue defines it
    expected = librosa.feature.spectral_flatness(y=_pink(), n_fft=1024, hop_length=256).mean()
    assert M.spectral_flatness(_pink(), native_rate=32000) == pytest.approx(float(expected), rel=1e-6)


def test_spectral_flatness_of_a_16khz_clip_ignores_its_empty_top_band():
    pytest.importorskip("librosa")
    import torch

    from magnet_audio.audio import resample

    for noise in (_white(), _pink()):
        at_16k = resample(resample(torch.from_numpy(noise)[None], SR, 16000), 16000, SR)[0].numpy()
        full = M.spectral_flatness(noise)
        # all bins: the empty 8-11 kHz band makes noise look like a pure tone
        assert M.spectral_flatness(at_16k) < 0.01
        # its own band: noise stays noise
        assert M.spectral_flatness(at_16k, native_rate=16000) == pytest.approx(full, rel=0.15)


@pytest.mark.slow
def test_pulse_and_tempo_of_a_click_track():
    pytest.importorskip("librosa")
    from magnet_audio.evaluation.adherence import estimate_tempo, pulse_clarity_of, tempo_match

    for bpm in (90, 124):
        clicks = _clicks(bpm)
        assert pulse_clarity_of(clicks) > 0.7
        assert tempo_match(estimate_tempo(clicks), bpm)
    assert pulse_clarity_of(_white()) < 0.3 and pulse_clarity_of(_pink()) < 0.3


def test_loudness_range_fade_vs_steady():
    pytest.importorskip("librosa")
    steady = _white()
    fading = steady * np.geomspace(1.0, 0.01, len(steady)).astype(np.float32)  # a 40 dB fade
    assert M.loudness_range(steady) < 2.0
    assert M.loudness_range(fading) == pytest.approx(0.9 * 40, abs=3)  # 5th to 95th percentile of the fade
    assert M.loudness_range(_sine_melody()) < M.loudness_range(fading)


# ----------------------------------------------------------------------------------------------
# Codec tokens
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_codec():
    from magnet_audio.codec import load_compression_model

    try:
        return load_compression_model("magnet-audio/synth-music", device="cpu")
    except Exception as exc:  # noqa: BLE001 - the bundled model may be absent from a slim checkout
        pytest.skip(f"bundled codec unavailable: {exc}")


def _harmonic_melody(sr: int, seconds: float = 16.0) -> np.ndarray:
    """Plucked harmonic notes (5 partials, decaying) over three octaves, 4 a second."""
    out = []
    for p in [48, 55, 60, 64, 67, 72, 76, 79, 74, 71, 67, 62, 57, 53, 50, 45] * int(np.ceil(seconds / 4)):
        t = np.arange(int(0.25 * sr)) / sr
        f = 440.0 * 2 ** ((p - 69) / 12)
        out.append(0.3 * sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6)) * np.minimum(1, t / 0.01)
                   * np.exp(-2 * t))
    return np.concatenate(out)[:int(seconds * sr)].astype(np.float32)


def test_first_codebook_crops_normalises_and_separates_drone_from_music(bundled_codec):
    codec = bundled_codec
    melody = _harmonic_melody(codec.sample_rate)  # 16 s at the codec's rate
    codes = M.first_codebook(codec, melody, codec.sample_rate)
    assert codes.ndim == 1 and len(codes) == int(np.ceil(M.TOKEN_SECONDS * codec.frame_rate))  # first 10 s only
    # the clip is normalised to RMS 0.1 first: its level does not change its tokens
    np.testing.assert_array_equal(M.first_codebook(codec, 0.05 * melody, codec.sample_rate), codes)
    t = np.arange(10 * codec.sample_rate) / codec.sample_rate
    drone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    steady = M.token_measures(M.first_codebook(codec, drone, codec.sample_rate))
    varied = M.token_measures(codes)
    assert steady["distinct_tokens"] <= 5 and steady["top_token_share"] > 0.8
    assert varied["distinct_tokens"] >= 15 and varied["top_token_share"] < 0.5
    # another input rate is resampled to the codec's: the same number of frames per second
    at_22k = M.first_codebook(codec, _sine_melody(), SR)
    assert len(at_22k) == int(np.ceil(len(_sine_melody()) / SR * codec.frame_rate))


# ----------------------------------------------------------------------------------------------
# basic-pitch and the whole table
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transcriber():
    pytest.importorskip("librosa")
    pytest.importorskip("basic_pitch")
    from magnet_audio.evaluation.adherence import NoteTranscriber

    t = NoteTranscriber()
    try:
        t.load()
    except Exception as exc:  # noqa: BLE001 - the backend says why it cannot run
        pytest.skip(str(exc))
    return t


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    sf.write(d / "a_melody.wav", _sine_melody(), SR)
    sf.write(d / "b_clicks.wav", _clicks(124), SR)
    sf.write(d / "c_white.wav", _white(), SR)
    sf.write(d / "d_pink.wav", _pink(), SR)
    sf.write(d / "e_white_16k.wav", (0.1 * np.random.default_rng(3).normal(size=8 * 16000)).astype(np.float32), 16000)
    return d


@pytest.mark.slow
def test_musicality_table_directions(transcriber, clip_dir, fixture_dir):
    rows = M.musicality_table(clip_dir, codec=str(fixture_dir), transcriber=transcriber)
    by = {r["path"].split("/")[-1][0]: r for r in rows}
    assert [r["path"].split("/")[-1] for r in rows] == ["a_melody.wav", "b_clicks.wav", "c_white.wav", "d_pink.wav",
                                                          "e_white_16k.wav"]
    melody, clicks, white, pink, white_16k = by["a"], by["b"], by["c"], by["d"], by["e"]
    # noise recorded at 16 kHz is as flat as at 22.05 kHz (only its own band is looked at)
    assert white_16k["sample_rate"] == 16000 and white["sample_rate"] == SR
    assert white_16k["spectral_flatness"] == pytest.approx(white["spectral_flatness"], rel=0.15)
    # the sine melody: confident, stable notes; noise: none
    assert melody["confident_notes"] > 0.6 and melody["note_stability"] > 0.7 and melody["n_notes"] >= 8
    for noise in (white, pink):
        assert noise["confident_notes"] < 0.05 and noise["note_stability"] < 0.3
        assert noise["pitch_salience"] < melody["pitch_salience"]
        assert noise["spectral_flatness"] > melody["spectral_flatness"]
        assert noise["pulse_clarity"] < 0.3
    # the click track: a clear pulse at the right tempo
    assert clicks["pulse_clarity"] > 0.7 and abs(clicks["tempo"] - 124) <= 0.08 * 124
    for r in rows:  # every measure present, token measures from the tiny codec
        assert set(M.CLIP_MEASURES) <= set(r) and all(r[m] is not None for m in M.CLIP_MEASURES)
        assert 1 <= r["distinct_tokens"] and 0 < r["top_token_share"] <= 1
    no_codec = M.musicality_table([clip_dir / "a_melody.wav"], transcriber=transcriber)
    assert no_codec[0]["distinct_tokens"] is None and no_codec[0]["confident_notes"] == melody["confident_notes"]


def test_musicality_table_bad_input(tmp_path):
    with pytest.raises(InputError, match="no audio files"):
        M.musicality_table(tmp_path)
    with pytest.raises(InputError, match="not found"):
        M.musicality_table([tmp_path / "missing.wav"])


@pytest.mark.slow
def test_cli_eval_musicality_writes_table(transcriber, fixture_dir, tmp_path, capsys):
    from magnet_audio.evaluation.cli import main

    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    rows = [{"path": "ref/a.wav", "description": "flute melody, 100 bpm", "bpm": 100, "instruments": ["flute"]},
            {"path": "ref/b.wav", "description": "rock drums at 124 bpm", "bpm": 124, "instruments": ["rock drums"]}]
    sf.write(ref / "a.wav", _sine_melody()[:4 * SR], SR)
    sf.write(ref / "b.wav", _clicks(124, seconds=4.0), SR)
    sf.write(gen / "00000_a.wav", _pink(4.0), SR)
    sf.write(gen / "00001_b.wav", _white(4.0), SR)
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "eval"
    rc = main(["eval", "--prompts", str(prompts), "--reference", str(ref), "--generated", str(gen),
               "--metrics", "musicality", "--codec", str(fixture_dir), "--out", str(out), "--quiet"])
    assert rc == 0
    by_metric = {r["metric"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    assert set(by_metric) == set(M.MEASURES)
    for m in M.MEASURES:
        row = by_metric[m]
        assert row["status"] == "ok" and row["backend"] == "musicality", (m, row["reason"])
        assert {"generated", "reference", "codec"} <= set(row["details"]), m
    # noise was generated; the references have notes and (the click track, the prompt asking for drums) a pulse
    notes = by_metric["confident_notes"]["details"]
    assert notes["generated"]["value"] < 0.05 < 0.3 < notes["reference"]["value"]
    drums = by_metric["pulse_clarity_drums"]["details"]
    assert drums["generated"]["n"] == 1 and drums["reference"]["value"] > 0.7 > drums["generated"]["value"]
    assert by_metric["tempo_within_8pct"]["details"]["reference"]["n"] == 2
    with (out / "musicality_clips.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and {r["condition"] for r in table} == {"generated", "reference", "codec"}
    assert json.loads((out / "musicality_clips.json").read_text())[0]["prompt"] == rows[0]["description"]
    printed = capsys.readouterr().out
    assert "CONFIDENT_NOTES" in printed and "codec round trip" in printed and "LOUDNESS_RANGE" in printed


def test_module_command_on_a_folder(transcriber, tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    sf.write(clips / "melody.wav", _sine_melody()[:4 * SR], SR)
    assert M.main([str(clips), "--out", str(tmp_path / "out")]) == 0
    printed = dict(line.split()[:2] for line in capsys.readouterr().out.splitlines())
    assert set(printed) == set(M.CLIP_MEASURES)
    assert float(printed["confident_notes"]) > 0.6 and printed["distinct_tokens"] == "-"  # no --codec
    with (tmp_path / "out" / "musicality_clips.csv").open() as f:
        assert [r["path"] for r in csv.DictReader(f)] == [str(clips / "melody.wav")]
    assert M.main([str(tmp_path / "nothing-here")]) == 2
