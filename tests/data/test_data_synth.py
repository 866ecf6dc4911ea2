"""`magnet data synth`: composed / corpus MIDI rendered with FluidSynth into a captioned dataset."""

import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from magnet_audio.data import synth as S
from magnet_audio.errors import InputError

N_CLIPS, SECONDS, SR = 6, 2.0, 32000


def _fluidsynth_or_skip() -> None:
    """Skip only when FluidSynth itself (library, Python binding or GM soundfont) is not installed."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"FluidSynth is not installed ({exc}): run scripts/install_system_deps.sh and "
                    "pip install 'magnet-audio[data]'")
    try:
        S.find_soundfont()
    except InputError as exc:
        pytest.skip(str(exc))


def _has_music21() -> bool:
    try:
        import music21  # noqa: F401
    except ImportError:
        return False
    return True


def _make(out: Path, seed: int, via_cli: bool = False) -> Path:
    corpus = 0.5 if _has_music21() else 0.0
    if via_cli:
        from magnet_audio.cli import main

        rc = main(["data", "synth", str(out), "--clips", str(N_CLIPS), "--seed", str(seed), "--clip-seconds",
                   str(SECONDS), "--heldout", "0.34", "--corpus-fraction", str(corpus), "--workers", "1", "-q"])
        assert rc == 0
    else:
        cfg = S.SynthConfig(out=str(out), n_clips=N_CLIPS, seed=seed, sample_rate=SR, clip_seconds=SECONDS,
                            heldout=0.34, corpus_fraction=corpus)
        S.synthesize(cfg, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    _fluidsynth_or_skip()
    root = tmp_path_factory.mktemp("synth")
    return {"a": _make(root / "a", seed=3), "b": _make(root / "b", seed=3, via_cli=True),
            "c": _make(root / "c", seed=4)}


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _mentions_tempo(caption: str, bpm: float) -> bool:
    words = S.TEMPO_WORDS[S.tempo_word(bpm)]
    return bool(re.search(rf"\b{int(round(bpm))}\b", caption)) or any(w in caption.lower() for w in words)


def _synonyms(name: str) -> tuple[str, ...]:
    return S.INSTRUMENTS[name][1] if name in S.INSTRUMENTS else S.DRUM_KITS[name][1]


@pytest.mark.slow
def test_layout_audio_and_metadata(datasets):
    d = datasets["a"]
    train = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (d / "heldout.jsonl").read_text().splitlines()]
    assert len(train) + len(held) == N_CLIPS and len(held) == 2
    assert {Path(e["path"]).stem for e in train}.isdisjoint({Path(e["path"]).stem for e in held})
    for entry, split in [(e, "train") for e in train] + [(e, "heldout") for e in held]:
        wav_path = d / entry["path"]
        assert wav_path.parent.name == split and re.fullmatch(r"\d{6}\.wav", wav_path.name)
        info = sf.info(wav_path)
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, int(SECONDS * SR))
        wav, _ = sf.read(wav_path, dtype="float32")
        rms = float(np.sqrt(np.mean(wav ** 2)))
        assert 0.02 < rms < 0.5 and np.abs(wav).max() < 1.0, f"{wav_path}: rms {rms}"
        assert not S.is_silent(wav, SR)
        meta = json.loads(wav_path.with_suffix(".json").read_text())
        assert wav_path.with_suffix(".mid").stat().st_size > 50
        for key in ("description", "genre", "moods", "instrument", "instruments", "bpm", "key", "keywords",
                    "duration", "sample_rate", "title", "source"):
            assert key in meta, key
        assert meta["duration"] == SECONDS and meta["sample_rate"] == SR
        assert isinstance(meta["moods"], list) and meta["moods"]
        assert isinstance(meta["instrument"], str) and meta["instrument"] == ", ".join(meta["instruments"])
        assert 40 <= meta["bpm"] <= 200
        assert re.fullmatch(r"[A-G][b#]? (major|minor|dorian|mixolydian|phrygian|lydian)", meta["key"])
        assert meta["source"] == "synth" or meta["source"].startswith("music21:")
        # the manifest line carries the path, duration, sample rate and the same metadata
        assert entry["duration"] == SECONDS and entry["sample_rate"] == SR
        assert all(entry[k] == v for k, v in meta.items())


@pytest.mark.slow
def test_captions_follow_the_spec(datasets):
    for meta_path in sorted(datasets["a"].rglob("*.json")):
        meta = json.loads(meta_path.read_text())
        caption = meta["description"]
        lead = meta["instruments"][0]
        ensemble = meta["spec"].get("ensemble", "")
        assert any(s.lower() in caption.lower() for s in _synonyms(lead)) or (ensemble and ensemble in caption), \
            caption
        assert _mentions_tempo(caption, meta["bpm"]), caption
        for number in re.findall(r"(\d+) (?:bpm|BPM|beats per minute)", caption):
            assert int(number) == round(meta["bpm"]), caption
        mode_words = re.findall(r"\b(major|minor|dorian|mixolydian|phrygian|lydian)\b", caption)
        if mode_words:
            assert mode_words == [meta["key"].split()[1]], caption


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(datasets):
    a, b, c = (_files(datasets[k]) for k in "abc")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], f"{name} differs between two runs with the same seed"
    wav_a = {Path(k).name: v for k, v in a.items() if k.endswith(".wav")}
    wav_c = {Path(k).name: v for k, v in c.items() if k.endswith(".wav")}
    assert all(wav_a[k] != wav_c[k] for k in wav_a.keys() & wav_c.keys())
    assert (datasets["a"] / "train.jsonl").read_bytes() != (datasets["c"] / "train.jsonl").read_bytes()


@pytest.mark.slow
def test_refuses_to_overwrite(datasets):
    cfg = S.SynthConfig(out=str(datasets["a"]), n_clips=1, seed=3, clip_seconds=SECONDS, corpus_fraction=0)
    with pytest.raises(InputError, match="--overwrite"):
        S.synthesize(cfg, progress=False)


def test_caption_statistics():
    """Over many specs: the tempo and lead instruments are always named, the key often, never wrongly."""
    captions, with_key = set(), 0
    for i in range(400):
        rng = random.Random(i)
        spec = S.sample_synth_spec(rng, i, 0, 10.0)
        caption = S.make_caption(spec, rng)
        captions.add(caption)
        assert spec.style in S.STYLES and 40 <= spec.bpm <= 200
        assert _mentions_tempo(caption, spec.bpm), caption
        assert any(s.lower() in caption.lower() for s in _synonyms(spec.instruments[0])), caption
        if spec.solo:
            assert "solo" in caption.lower() or len(spec.parts) == 1, caption
        key = spec.key.replace("b ", " flat ").replace("# ", " sharp ")
        if spec.key in caption or key in caption:
            with_key += 1
        assert len(re.findall(r"\b(major|minor|dorian|mixolydian|phrygian|lydian)\b", caption)) <= 1
    assert with_key >= 0.6 * 400
    assert len(captions) == 400
    assert len({c.split()[0].lower() for c in captions}) > 40  # many different openings


def test_spec_styles_keys_and_tempos_cover_the_space():
    specs = [S.sample_synth_spec(random.Random(i), i, 0, 10.0) for i in range(600)]
    assert {s.style for s in specs} == set(S.STYLES)
    assert {s.root for s in specs} == set(range(12))
    assert {"major", "minor", "dorian", "mixolydian", "phrygian", "lydian"} <= {s.mode for s in specs}
    assert min(s.bpm for s in specs) <= 66 and max(s.bpm for s in specs) >= 165
    assert {(3, 4), (4, 4)} <= {s.meter for s in specs}
    assert len({i for s in specs for i in s.instruments}) > 50


def test_midi_follows_the_spec():
    pytest.importorskip("pretty_midi", reason="pretty_midi is part of the data extra")
    for i in range(30):
        rng = random.Random(100 + i)
        spec = S.sample_synth_spec(rng, i, 0, 4.0)
        pm = S.compose(spec, rng)
        assert len(pm.instruments) == len(spec.parts)
        pitched = [n.pitch % 12 for inst in pm.instruments if not inst.is_drum for n in inst.notes]
        for inst, part in zip(pm.instruments, spec.parts):
            expected = S.DRUM_KITS[part.instrument][0] if part.role == "drums" else S.INSTRUMENTS[part.instrument][0]
            assert inst.program == expected and inst.is_drum == (part.role == "drums")
            assert inst.notes, (spec.style, part)
        allowed = {(spec.root + x) % 12 for x in S.MODES[spec.mode]}
        allowed |= {pc for c in spec.progression for pc in S.parse_chord(c, spec.root)}
        if pitched:
            assert np.mean([p in allowed for p in pitched]) > 0.9, spec
        assert pm.get_end_time() >= 4.0


def test_theory_helpers():
    assert S.key_name(9, "minor") == "A minor"
    assert S.key_name(10, "major") == "Bb major"
    assert S.key_name(6, "major") == "F# major"
    assert S.key_name(2, "dorian") == "D dorian"
    assert S.parse_chord("V7", 0) == [7, 11, 2, 5]
    assert S.parse_chord("bVII", 9) == [7, 11, 2]
    assert S.parse_chord("ii7", 0) == [2, 5, 9, 0]
    assert S.add_seventh("I") == "Imaj7" and S.add_seventh("V") == "V7" and S.add_seventh("vi") == "vi7"
    splits = S.split_of(100, 0.05, seed=0)
    assert splits.count("heldout") == 5 and splits == S.split_of(100, 0.05, seed=0)
    assert S.split_of(100, 0.05, seed=1) != splits


def test_missing_fluidsynth_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # import raises ImportError
    with pytest.raises(InputError, match="install_system_deps.sh"):
        S.check_dependencies()


def test_missing_soundfont_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(S.render, "SOUNDFONT_CANDIDATES", (str(tmp_path / "none.sf2"),))
    monkeypatch.delenv("MAGNET_SOUNDFONT", raising=False)
    with pytest.raises(InputError, match="fluid-soundfont-gm"):
        S.find_soundfont()
    with pytest.raises(InputError, match="not found"):
        S.find_soundfont(tmp_path / "missing.sf2")
