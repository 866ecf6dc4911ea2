"""Prompt-adherence judges on synthetic clips with a known tempo, key, register and drums; the
shuffled baseline; codec reconstruction metrics; ``magnet eval --metrics adherence,codec``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio.evaluation import adherence as A
from magnet_audio.evaluation.codec_eval import codec_report, frame_periodic_share, mel_distance, si_snr

SR = A.SAMPLE_RATE


def _midi_hz(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def _tone(pitch: int, seconds: float, sr: int = SR) -> np.ndarray:
    """A harmonic tone (4 partials) with a short attack and a decay."""
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * k * _midi_hz(pitch) * t) / k for k in range(1, 5))
    env = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)
    return (0.3 * wave * env).astype(np.float32)


def _melody(pitches: list[int], note_seconds: float = 0.4) -> np.ndarray:
    return np.concatenate([_tone(p, note_seconds) for p in pitches])


def _clicks(bpm: float, seconds: float = 8.0, sr: int = SR) -> np.ndarray:
    """A click track: a 20 ms decaying noise burst on every beat."""
    wav = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = np.random.default_rng(0).normal(size=int(0.02 * sr)) * np.exp(-np.linspace(0, 8, int(0.02 * sr)))
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * sr)
        wav[i:i + len(burst)] += burst[:len(wav) - i].astype(np.float32) * 0.5
    return wav


# ----------------------------------------------------------------------------------------------
# Prompt metadata
# ----------------------------------------------------------------------------------------------


def test_parse_key_modes_and_scales():
    assert A.parse_key("A# phrygian") == A.Key(10, "phrygian")
    assert A.parse_key("Bb major") == A.Key(10, "major")
    assert A.parse_key("c#m") == A.Key(1, "minor")
    assert A.parse_key("H dorian") is None and A.parse_key("C blues") is None
    dorian = A.parse_key("D dorian")
    assert dorian.major_minor == A.Key(2, "minor")
    assert A.parse_key("G mixolydian").major_minor == A.Key(7, "major")
    assert dorian.scale == A.Key(0, "major").scale == A.Key(9, "minor").scale  # same key signature
    assert dorian.scale != A.Key(2, "minor").scale


def test_bass_and_drum_instruments():
    assert A.names_bass(["piano", "upright bass"]) and A.names_bass(["trumpet", "tuba"])
    assert not A.names_bass(["bassoon", "flute"]) and not A.names_bass(["cello"])
    assert A.names_bass(["fuzz bass"])  # unknown name with the word bass
    assert A.names_drums(["808 drums"]) and A.names_drums(["tabla percussion"])
    assert not A.names_drums(["steel drums", "piano"])
    target = A.PromptTarget.from_row({"bpm": 96, "key": "E minor", "instruments": ["piano", "brushed drums"]})
    assert target == A.PromptTarget(96.0, A.Key(4, "minor"), False, True)
    assert A.PromptTarget.from_row({"description": "x"}) == A.PromptTarget(None, None, None, None)


@pytest.mark.slow
def test_mirex_score_matches_mir_eval():
    mir_key = pytest.importorskip("mir_eval.key")
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    for ref in (A.Key(t, m) for t in range(12) for m in ("major", "minor")):
        for est in (A.Key(t, m) for t in range(12) for m in ("major", "minor")):
            expected = mir_key.weighted_score(f"{names[ref.tonic]} {ref.mode}", f"{names[est.tonic]} {est.mode}")
            assert A.mirex_key_score(est, ref) == pytest.approx(expected), (ref, est)


def test_tempo_match_and_roc_auc():
    assert A.tempo_match(104, 100) and not A.tempo_match(110, 100)
    assert not A.tempo_match(200, 100) and A.tempo_match(200, 100, octave=True)
    assert A.tempo_match(51, 100, octave=True) and not A.tempo_match(75, 100, octave=True)
    assert A.roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert A.roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert A.roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert A.roc_auc([0.5, 0.6], [True, True]) is None


def test_derangement_has_no_fixed_points_and_is_seeded():
    for n in (2, 3, 10, 57):
        sigma = A.derangement(n, seed=0)
        assert sorted(sigma) == list(range(n))
        assert all(s != i for i, s in enumerate(sigma))
    assert A.derangement(20, seed=0) == A.derangement(20, seed=0) != A.derangement(20, seed=1)


# ----------------------------------------------------------------------------------------------
# Judges on synthetic audio
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [92, 135])
def test_librosa_tempo_recovers_click_track(bpm):
    pytest.importorskip("librosa")
    assert A.tempo_match(A.estimate_tempo(_clicks(bpm)), bpm)


@pytest.mark.parametrize("key,pitches", [
    (A.Key(9, "minor"), [57, 60, 64, 69, 64, 60, 57, 59, 60, 62, 64, 57, 64, 69, 57]),   # A minor arpeggios
    (A.Key(4, "major"), [64, 68, 71, 76, 71, 68, 64, 66, 68, 69, 71, 64, 71, 76, 64]),   # E major arpeggios
])
def test_key_estimate_recovers_tonal_melody(key, pitches):
    librosa = pytest.importorskip("librosa")
    chroma = librosa.feature.chroma_cqt(y=_melody(pitches), sr=SR).mean(axis=1)
    estimate, r = A.estimate_key(chroma)
    assert estimate == key and r > 0.5


def test_percussive_share_separates_clicks_from_tones():
    pytest.importorskip("librosa")
    sustained = np.concatenate([_tone(p, 2.0) for p in (60, 64, 67, 72)])
    assert A.percussive_share(_clicks(120, seconds=8.0)) > 0.5 > A.percussive_share(sustained)


def test_pulse_clarity_separates_a_beat_from_noise():
    pytest.importorskip("librosa")
    noise = (0.1 * np.random.default_rng(1).normal(size=8 * SR)).astype(np.float32)
    for bpm in (70, 120, 170):
        assert A.pulse_clarity_of(_clicks(bpm)) > 0.7, bpm
    assert A.pulse_clarity_of(noise) < 0.3
    assert A.pulse_clarity_of(np.zeros(4 * SR, dtype=np.float32)) == 0.0
    # the same clicks at random times (no period) have no clear pulse
    rng, beat = np.random.default_rng(2), _clicks(60, seconds=0.5)
    scattered = np.zeros(8 * SR, dtype=np.float32)
    for start in rng.uniform(0, 7.5, size=16):
        i = int(start * SR)
        scattered[i:i + len(beat)] += beat
    assert A.pulse_clarity_of(scattered) < 0.5


@pytest.mark.slow
def test_basic_pitch_notes_scale_and_register(tmp_path):
    pytest.importorskip("basic_pitch")
    transcriber = A.NoteTranscriber()
    try:
        transcriber.load()
    except Exception as exc:  # noqa: BLE001 - the backend says why it cannot run
        pytest.skip(str(exc))
    c_major_high = [60, 62, 64, 65, 67, 69, 71, 72]
    sf.write(tmp_path / "high.wav", _melody(c_major_high, 0.5), SR)
    sf.write(tmp_path / "low.wav", _melody([36, 38, 40, 41, 43, 45], 0.6), SR)
    pcs, low = A.note_statistics(transcriber.notes(tmp_path / "high.wav"))
    total = sum(pcs)
    assert total > 0 and low is not None and low < 0.1
    assert sum(pcs[pc] for pc in A.Key(0, "major").scale) / total > 0.9
    assert sum(pcs[pc] for pc in A.Key(6, "major").scale) / total < 0.6  # F# major shares only B and E#
    _, low = A.note_statistics(transcriber.notes(tmp_path / "low.wav"))
    assert low is not None and low > 0.5  # the rest: upper partials transcribed an octave up


# ----------------------------------------------------------------------------------------------
# Scoring and the shuffled baseline
# ----------------------------------------------------------------------------------------------


def _analysis(tempo: float, key: A.Key, low: float, perc: float, notes: A.Key | None = None,
              pulse: float = 0.5) -> A.ClipAnalysis:
    """An analysis with transcribed notes spread evenly over the scale of ``notes`` (default: ``key``)."""
    pcs = [1.0 if pc in (notes or key).scale else 0.0 for pc in range(12)]
    return A.ClipAnalysis(tempo=tempo, key=key, key_r=0.9, pitch_class_weight=pcs, low_note_share=low,
                          percussive_share=perc, n_notes=7, pulse_clarity=pulse)


ROWS = [{"bpm": 80, "key": "C major", "instruments": ["piano", "electric bass", "drums"]},
        {"bpm": 100, "key": "F# minor", "instruments": ["flute"]},
        {"bpm": 128, "key": "D dorian", "instruments": ["synth bass", "808 drums"]},
        {"bpm": 170, "key": "Eb major", "instruments": ["strings"]}]


def _matching(row: dict) -> A.ClipAnalysis:
    target = A.PromptTarget.from_row(row)
    return _analysis(row["bpm"], target.key.major_minor, 0.4 if target.has_bass else 0.05,
                     0.6 if target.has_drums else 0.1, notes=target.key)


def test_score_measures_by_hand():
    pytest.importorskip("scipy", reason="scipy is part of the eval extra: pip install -e '.[eval]'")
    pairs = [(_matching(r), A.PromptTarget.from_row(r)) for r in ROWS]
    scores = A.score_measures(pairs)
    # D dorian is estimated (by design of the mapping) as D minor, whose key signature differs
    assert {m: scores[m]["value"] for m in A.MEASURES} == {**{m: 1.0 for m in A.MEASURES}, "key_signature": 0.75,
                                                          "pulse_clarity": 0.5}
    assert scores["tempo_acc"]["n"] == 4 and scores["bass_auc"]["n_named"] == 2
    # halve every tempo: exact accuracy 0, octave accuracy 1, the order of the tempi kept
    halved = [(_analysis(a.tempo / 2, a.key, 0.1, 0.1, pulse=0.2), t) for a, t in pairs]
    scores = A.score_measures(halved)
    assert scores["tempo_acc"]["value"] == 0.0 and scores["tempo_acc_octave"]["value"] == 1.0
    assert scores["tempo_rank_corr"]["value"] == pytest.approx(1.0) and scores["pulse_clarity"]["value"] == 0.2
    # the fastest prompts get the slowest clips
    clips, targets = [a for a, _ in pairs], [t for _, t in pairs]
    reversed_tempi = [(_analysis(a.tempo, a.key, 0.1, 0.1), t) for a, t in zip(reversed(clips), targets)]
    assert A.score_measures(reversed_tempi)["tempo_rank_corr"]["value"] == pytest.approx(-1.0)
    # D dorian estimated as C major: right key signature, wrong tonic
    dorian = A.PromptTarget.from_row(ROWS[2])
    scores = A.score_measures([(_analysis(128, A.Key(0, "major"), 0.1, 0.1), dorian)])
    assert scores["key_exact"]["value"] == 0.0 and scores["key_signature"]["value"] == 1.0


@pytest.mark.slow
def test_report_pairs_generated_reference_and_shuffled(monkeypatch, tmp_path):
    clips = {tmp_path / f"{i}.wav": _matching(r) for i, r in enumerate(ROWS)}

    class NoTranscriber:
        weights = "none"

        def load(self):
            pass

    monkeypatch.setattr(A, "analyze_clip", lambda path, transcriber: clips[path])
    paths = list(clips)
    report = A.adherence_report(ROWS, paths, [paths[0], None, paths[2], None], transcriber=NoTranscriber())
    tempo = report["measures"]["tempo_acc"]
    assert tempo["generated"]["value"] == 1.0 and tempo["generated"]["n"] == 4
    assert tempo["reference"]["value"] == 1.0 and tempo["reference"]["n"] == 2
    # the four bpms differ by more than 8% (and are not 2x or 1/2 apart): every shuffled pair misses
    assert tempo["shuffled"]["value"] == 0.0 and report["measures"]["tempo_acc_octave"]["shuffled"]["value"] == 0.0
    assert all(s != i for i, s in enumerate(report["shuffle"]))
    assert report["clips"]["reference"][1] is None
    assert "codec" not in tempo  # no codec round trips given: no such condition


def test_report_scores_codec_round_trips_against_their_own_prompts(monkeypatch, tmp_path):
    clips = {tmp_path / f"{i}.wav": _matching(r) for i, r in enumerate(ROWS)}
    # the "round trips" are the clips in reverse order: each is matched to another row's prompt
    rev = {tmp_path / f"rt{i}.wav": _matching(r) for i, r in enumerate(reversed(ROWS))}

    class NoTranscriber:
        weights = "none"

        def load(self):
            pass

    monkeypatch.setattr(A, "analyze_clip", lambda path, transcriber: {**clips, **rev}[path])
    report = A.adherence_report(ROWS, list(clips), list(clips), transcriber=NoTranscriber(), codec=list(rev))
    tempo = report["measures"]["tempo_acc"]
    assert tempo["reference"]["value"] == 1.0
    assert tempo["codec"]["n"] == 4 and tempo["codec"]["value"] == 0.0  # the bpms differ by > 8% pairwise
    assert list(report["measures"]["key_exact"]) == ["generated", "reference", "codec", "shuffled"]
    # p-values: the matching generated clips beat most random pairings; the mismatched round trips none
    assert tempo["generated"]["p_value"] < 0.1 and tempo["codec"]["p_value"] == 1.0
    assert "p_value" not in tempo["reference"]


def test_rank_correlation_by_hand():
    pytest.importorskip("scipy", reason="scipy is part of the eval extra: pip install -e '.[eval]'")
    assert A.rank_correlation([1, 2, 3, 4], [10, 40, 90, 160]) == pytest.approx(1.0)  # monotone, not linear
    assert A.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (1.5, 1.5, 3, 4): ties share their mean rank
    by_hand = np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1]
    assert A.rank_correlation([1, 2, 3, 4], [5, 5, 7, 9]) == pytest.approx(by_hand)
    assert A.rank_correlation([1, 2], [1, 2]) is None  # too few pairs
    assert A.rank_correlation([1, 2, 3], [7, 7, 7]) is None  # constant side


def test_permutation_p_values_by_hand():
    pairs = [(_matching(r), A.PromptTarget.from_row(r)) for r in ROWS]
    observed = A.score_measures(pairs)
    p = A.permutation_p_values(pairs, observed, permutations=2000, seed=1)
    # tempo_acc is 1 only for the identity pairing of the 4 distinct bpms: P = 1/24 per permutation
    assert p["tempo_acc"] == pytest.approx(1 / 24, abs=0.015)
    # a pairing that scores 0 is matched or beaten by every permutation
    worst = {m: {"value": -1.0 if m == "tempo_rank_corr" else 0.0} for m in A.MEASURES}
    p = A.permutation_p_values(pairs, worst, permutations=50)
    assert all(p[m] == 1.0 for m in A.MEASURES if m not in A.PROMPT_FREE)
    assert p["pulse_clarity"] is None  # a property of the clip alone: nothing to test against chance


# ----------------------------------------------------------------------------------------------
# Codec reconstruction
# ----------------------------------------------------------------------------------------------


def test_si_snr_by_hand():
    rng = np.random.default_rng(0)
    s = torch.from_numpy(rng.normal(size=32000))
    assert si_snr(s, s) > 100
    assert si_snr(0.25 * s, s) > 100  # scale-invariant
    noise = torch.from_numpy(rng.normal(size=32000))
    noise = noise - (noise @ s) / (s @ s) * s  # orthogonal to s
    noise = noise / noise.norm() * s.norm() / 10  # 20 dB below the signal
    assert si_snr(s + noise, s) == pytest.approx(20.0, abs=0.05)


def test_mel_distance_zero_for_identical_and_grows_with_noise():
    pytest.importorskip("librosa")
    wav = torch.from_numpy(_melody([60, 64, 67, 72], 0.5))[None]
    assert mel_distance(wav, wav, SR) == 0.0
    rng = np.random.default_rng(1)
    small = wav + 0.001 * torch.from_numpy(rng.normal(size=wav.shape).astype(np.float32))
    large = wav + 0.1 * torch.from_numpy(rng.normal(size=wav.shape).astype(np.float32))
    assert 0 < mel_distance(small, wav, SR) < mel_distance(large, wav, SR)


def test_frame_periodic_share_by_hand():
    hop = 320
    pulse = torch.zeros(1, 10 * hop)
    pulse[0, ::hop] = 1.0  # one click per frame: entirely frame-periodic
    assert frame_periodic_share(pulse, hop) == pytest.approx(1.0)
    # two frames [a, b] and [-a, -b]: their average is 0, nothing repeats
    x = torch.tensor([[1.0, 2.0, -1.0, -2.0]])
    assert frame_periodic_share(x, 2) == 0.0
    # frames [1, 0] and [0, 0]: average [0.5, 0]; 2 * 0.25 / 1 = 0.5 (the trailing sample is dropped)
    assert frame_periodic_share(torch.tensor([[1.0, 0.0, 0.0, 0.0, 9.0]]), 2) == pytest.approx(0.5)
    assert frame_periodic_share(torch.zeros(1, 8), 2) == 0.0
    tone = torch.from_numpy(_melody([60, 64, 67, 72], 0.5))[None]  # music is not locked to the frame grid
    assert frame_periodic_share(tone, hop) < 0.02
    buzzed = tone + 0.5 * tone.square().mean().sqrt() * pulse.repeat(1, tone.shape[-1] // pulse.shape[-1] + 1)[
        :, :tone.shape[-1]] * hop ** 0.5
    assert frame_periodic_share(buzzed, hop) > 0.15
    with pytest.raises(ValueError, match="shorter than one frame"):
        frame_periodic_share(torch.ones(1, 10), hop)


def test_codec_report_on_tiny_codec(fixture_dir, tmp_path):
    pytest.importorskip("librosa")
    from magnet_audio import load_compression_model

    codec = load_compression_model(fixture_dir, device="cpu")
    for i, pitch in enumerate((57, 64)):
        sf.write(tmp_path / f"{i}.wav", _melody([pitch, pitch + 4], 0.5), SR)  # resampled to 32 kHz on read
    report = codec_report(codec, sorted(tmp_path.glob("*.wav")))
    assert report["n_clips"] == 2 and report["sample_rate"] == codec.sample_rate
    for key in ("si_snr_db", "mel_distance", "frame_periodic_share", "reference_frame_periodic_share"):
        assert np.isfinite(report[key]["mean"]) and np.isfinite(report[key]["std"])
    assert report["mel_distance"]["mean"] > 0
    assert 0 <= report["frame_periodic_share"]["mean"] <= 1
    assert report["reference_frame_periodic_share"]["mean"] < 0.02  # the inputs: plain notes


# ----------------------------------------------------------------------------------------------
# magnet eval --metrics adherence,codec
# ----------------------------------------------------------------------------------------------


def test_cli_eval_adherence_and_codec_writes_results(fixture_dir, tmp_path, capsys):
    pytest.importorskip("librosa")
    pytest.importorskip("basic_pitch")
    from magnet_audio import load_compression_model
    from magnet_audio.evaluation.cli import main

    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    rows = [{"path": "ref/a.wav", "description": "flute melody in C major, 100 bpm", "bpm": 100, "key": "C major",
             "instruments": ["flute"]},
            {"path": "ref/b.wav", "description": "drums and bass in A minor, 120 bpm", "bpm": 120, "key": "A minor",
             "instruments": ["electric bass", "rock drums"]}]
    sf.write(ref / "a.wav", _melody([72, 74, 76, 77, 79], 0.6), SR)
    sf.write(ref / "b.wav", _clicks(120, seconds=3.0) + _melody([45, 48, 52, 45], 0.8)[:3 * SR], SR)
    sf.write(gen / "00000_a.wav", _melody([60, 64, 67], 1.0), SR)
    sf.write(gen / "00001_b.wav", _clicks(120, seconds=3.0), SR)
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "eval"
    rc = main(["eval", "--prompts", str(prompts), "--reference", str(ref), "--generated", str(gen),
               "--metrics", "adherence,codec", "--codec", str(fixture_dir), "--out", str(out), "--quiet"])
    assert rc == 0
    payload = json.loads((out / "results.json").read_text())
    by_metric = {r["metric"]: r for r in payload["results"]}
    assert set(by_metric) == set(A.MEASURES) | {"codec_si_snr", "codec_mel", "codec_periodic"}
    for measure in A.MEASURES:
        row = by_metric[measure]
        assert set(A.CONDITIONS) <= set(row["details"]), measure
    assert by_metric["tempo_acc"]["status"] == "ok" and by_metric["tempo_acc"]["details"]["generated"]["n"] == 2
    # two clips are too few for a rank correlation: no value, and the reason says so
    assert by_metric["tempo_rank_corr"]["status"] == "error" and "at least 3" in by_metric["tempo_rank_corr"]["reason"]
    for name in ("codec_si_snr", "codec_mel", "codec_periodic"):
        assert by_metric[name]["status"] == "ok" and np.isfinite(by_metric[name]["value"])
        assert by_metric[name]["details"]["n_clips"] == 2
    # adherence also scored the references after a round trip through the codec, written to out/codec
    round_trips = sorted((out / "codec").glob("*.wav"))
    assert [p.name for p in round_trips] == ["00000_a.wav", "00001_b.wav"]
    assert sf.info(round_trips[0]).samplerate == load_compression_model(fixture_dir, device="cpu").sample_rate
    assert by_metric["tempo_acc"]["details"]["codec"]["n"] == 2
    csv_text = (out / "results.csv").read_text()
    assert "tempo_acc" in csv_text and "codec_mel" in csv_text
    table = capsys.readouterr().out
    assert "TEMPO_ACC" in table and "shuffled" in table and "codec round trip" in table and "CODEC_SI_SNR" in table
