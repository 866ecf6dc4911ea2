"""``magnet edit`` and ``magnet generate --continue``: files written, sidecars, and one-line errors."""

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from magnet_audio.cli import main
from magnet_audio.errors import InputError
from magnet_audio.validation import parse_regions, strength

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def song(tmp_path):
    """A 0.8 s stereo tone at 44.1 kHz: both the rate and the channels differ from the tiny codec's."""
    t = np.arange(int(0.8 * 44100)) / 44100
    path = tmp_path / "song.wav"
    sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 440 * t)], 1), 44100)
    return path


def _model_args(fixture_dir):
    return ["--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"), "--steps", "2,1,1,1", "-q"]


def test_regions_and_strength_are_checked():
    assert parse_regions(["3.0:5.5", "-2:0", "9:12"]) == [(-2.0, 0.0), (3.0, 5.5), (9.0, 12.0)]
    assert parse_regions("1:2, 2:3") == [(1.0, 2.0), (2.0, 3.0)]  # touching is not overlapping
    assert parse_regions([(1, 2)]) == [(1.0, 2.0)]
    for bad, message in [(["3:2"], "end must be after the start"), (["a:b"], "START:END"), (["3"], "START:END"),
                         (["1:4", "2:5"], "overlap"), (["1:inf"], "finite"), ([], "at least one")]:
        with pytest.raises(InputError, match=message):
            parse_regions(bad)
    assert strength(0.3) == 0.3
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        strength(1.5)


def test_bad_input_is_one_line_and_exit_2(tmp_path, song, fixture_dir, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    out = tmp_path / "out"
    cases = [
        ([str(text), "x", "--region", "0:1"], "not an audio file"),
        ([str(tmp_path / "missing.wav"), "x", "--region", "0:1"], "no such file"),
        ([str(tmp_path), "x", "--region", "0:1"], "not a file"),
        ([str(song), "x", "--region", "3:2"], "end must be after the start"),
        ([str(song), "x", "--region", "a:b"], "START:END"),
        ([str(song), "x", "--region", "0:0.5", "--region", "0.4:0.6"], "overlap"),
        ([str(song), "x"], "--region START:END"),
        ([str(song), "x", "--vary", "2"], "[0, 1]"),
        ([str(song), "x", "--vary", "0.5", "--no-splice"], "--no-splice"),
        ([str(song), "x", "--region", "0:1", "--out", str(song)], "would replace the input"),
    ]
    for argv, message in cases:
        assert main(["edit", "-o", str(out), *argv, *_model_args(fixture_dir)]) == 2, argv  # a later --out wins
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and err.count("\n") == 1, (argv, err)
    assert not out.exists()
    # argparse's own errors (both modes at once) are one line and exit 2 too
    with pytest.raises(SystemExit) as exc:
        main(["edit", str(song), "x", "--region", "0:1", "--vary", "0.3"])
    assert exc.value.code == 2 and capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_continue_writes_a_new_file_and_a_sidecar(tmp_path, song, fixture_dir, capsys):
    before = song.read_bytes()
    out = tmp_path / "out"
    argv = ["generate", "calm piano", "--continue", str(song), "--prompt-seconds", "0.4", "-o", str(out),
            *_model_args(fixture_dir)]
    assert main([*argv, "--seed", "3"]) == 0
    assert "resampled 44100 -> 32000 Hz, mixed 2 -> 1 channel(s)" not in capsys.readouterr().err  # -q: no note
    assert main(argv[:-1] + ["--seed", "3"]) == 0  # again, not quiet: a taken name gets _1
    assert "note: song.wav: resampled 44100 -> 32000 Hz, mixed 2 -> 1 channel(s)" in capsys.readouterr().err
    assert song.read_bytes() == before
    first, second = out / "00_calm_piano.wav", out / "00_calm_piano_1.wav"
    wav, sr = sf.read(first)
    assert sr == 32000 and wav.ndim == 1 and len(wav) == 48 * 640  # the model's window, 0.96 s
    assert np.array_equal(wav, sf.read(second)[0])  # the same seed reproduces it
    record = json.loads(first.with_suffix(".json").read_text())
    assert record["command"] == "generate --continue" and record["seed"] == 3 and record["prompt"] == "calm piano"
    assert record["prompt_seconds"] == 0.4 and record["input"]["sample_rate"] == 44100
    assert record["input"]["channels"] == 2 and record["output"] == first.name
    assert record["generation_params"]["decoding_steps"] == [2, 1, 1, 1]
    assert json.loads(second.with_suffix(".json").read_text())["output"] == second.name
    # no seed given: a random one, recorded; a prompt longer than the file is refused
    assert main(argv) == 0
    assert isinstance(json.loads((out / "00_calm_piano_2.json").read_text())["seed"], int)
    assert main([*argv[:4], "--prompt-seconds", "0.9", *argv[6:]]) == 2
    assert "longer than song.wav (0.80 s)" in capsys.readouterr().err


@dataclasses.dataclass
class _FakeEdit:
    regions: list
    spliced: bool


@pytest.mark.slow
def test_edit_calls_the_api_and_records_it(tmp_path, song, fixture_dir, monkeypatch, capsys):
    """The command's plumbing: what it passes to generate_inpainting / generate_variations and what it
    writes (the API's own behaviour is tested in tests/test_editing.py)."""
    from magnet_audio.models import MAGNeT

    calls = []

    def inpaint(self, audio, sample_rate, descriptions, regions, progress=False, return_tokens=False, splice=True):
        calls.append(("inpaint", tuple(audio.shape), sample_rate, descriptions, regions, splice))
        self.last_edit = _FakeEdit([regions], splice)
        return audio.clone()

    def vary(self, audio, sample_rate, descriptions, strength, progress=False, return_tokens=False):
        calls.append(("vary", tuple(audio.shape), sample_rate, descriptions, strength))
        self.last_edit = _FakeEdit([], False)
        return audio * 0.5

    monkeypatch.setattr(MAGNeT, "generate_inpainting", inpaint, raising=False)
    monkeypatch.setattr(MAGNeT, "generate_variations", vary, raising=False)
    out = tmp_path / "out"
    assert main(["edit", str(song), "jazz drums", "--region", "0.5:0.7", "--region", "0.1:0.2", "--seed", "5",
                 "-o", str(out), *_model_args(fixture_dir)]) == 0
    samples = int(round(0.8 * 32000))
    assert calls[-1] == ("inpaint", (1, 1, samples), 32000, ["jazz drums"], [(0.1, 0.2), (0.5, 0.7)], True)
    record = json.loads((out / "song_inpaint.json").read_text())
    assert record["mode"] == "inpaint" and record["regions"] == [[0.1, 0.2], [0.5, 0.7]] and record["splice"]
    assert record["seed"] == 5 and record["edit"] == {"regions": [[[0.1, 0.2], [0.5, 0.7]]], "spliced": True}
    assert sf.read(out / "song_inpaint.wav")[0].shape == (samples,)

    assert main(["edit", str(song), "jazz drums", "--region=-0.5:0", "--region", "0.7:1.5", "--no-splice",
                 "--out", str(tmp_path / "named.flac"), *_model_args(fixture_dir)]) == 0
    assert calls[-1][-2:] == ([(-0.5, 0.0), (0.7, 1.5)], False)
    record = json.loads((tmp_path / "named.json").read_text())
    assert record["mode"] == "outpaint" and isinstance(record["seed"], int) and record["splice"] is False
    assert sf.info(tmp_path / "named.flac").format == "FLAC"

    assert main(["edit", str(song), "jazz drums", "--vary", "0.3", "-o", str(out), *_model_args(fixture_dir)]) == 0
    assert calls[-1][-1] == 0.3
    record = json.loads((out / "song_vary.json").read_text())
    assert record["mode"] == "vary" and record["strength"] == 0.3 and "regions" not in record
    printed = capsys.readouterr().out
    assert "song_inpaint.wav" in printed and "named.flac" in printed and "song_vary.wav" in printed


@pytest.mark.slow
def test_edit_with_the_model(tmp_path, song, fixture_dir):
    """The real editing API behind the command: an inpainting keeps the length and records the
    regions used; an outpainting is longer by what it adds."""
    out = tmp_path / "out"
    assert main(["edit", str(song), "jazz drums", "--region", "0.2:0.4", "--seed", "1", "-o", str(out),
                 *_model_args(fixture_dir)]) == 0
    record = json.loads((out / "song_inpaint.json").read_text())
    assert record["edit"]["kind"] == "inpainting" and record["edit"]["requested"] == [[[0.2, 0.4]]]
    start, end = record["edit"]["used"][0][0]
    assert start <= 0.2 and end >= 0.4  # widened to whole spans
    assert sf.info(out / "song_inpaint.wav").frames == int(round(0.8 * 32000))
    assert main(["edit", str(song), "jazz drums", "--region", "0.7:1.2", "-o", str(out),
                 *_model_args(fixture_dir)]) == 0
    record = json.loads((out / "song_outpaint.json").read_text())
    assert record["mode"] == "outpaint" and record["seconds"] == pytest.approx(1.2, abs=0.02)
