"""The ``magnet`` command line."""

import subprocess
import sys

import pytest
import soundfile as sf

from magnet_audio.cli import build_parser, main
from magnet_audio.cli_options import sampling_overrides
from magnet_audio.utils import slugify


@pytest.mark.slow
def test_generate_writes_a_playable_wav(tmp_path, fixture_dir, capsys):
    out = tmp_path / "out"
    code = main(["generate", "lofi beat", "calm piano", "--model", str(fixture_dir), "--t5-path",
                 str(fixture_dir / "t5"), "-o", str(out), "--steps", "2,1,1,1", "--seed", "1", "-q"])
    assert code == 0
    files = sorted(out.glob("*.wav"))
    assert [f.name for f in files] == ["00_lofi_beat.wav", "01_calm_piano.wav"]
    data, sr = sf.read(files[0])
    assert sr == 32000 and data.ndim == 1
    assert len(data) == 48 * 640  # the model's 1 s segment, cut to whole 3-frame spans (0.96 s)
    assert abs(data).max() > 0
    printed = capsys.readouterr().out
    assert str(files[0]) in printed and str(files[1]) in printed


def test_bad_input_exits_cleanly(tmp_path, fixture_dir, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    code = main(["generate", "x", "--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"),
                 "-o", str(blocked / "sub")])
    assert code == 2 and "cannot write to output directory" in capsys.readouterr().err
    code = main(["generate", "x", "--model", str(tmp_path / "missing"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
    assert not list((tmp_path / "o").glob("*.wav"))
    assert main(["generate", "  ", "--model", str(fixture_dir), "-o", str(tmp_path / "o")]) == 2
    assert main(["generate", "x", "--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"),
                 "-o", str(tmp_path / "o"), "--steps", "1,1"]) == 2
    assert not list((tmp_path / "o").glob("*.wav"))


@pytest.mark.slow
def test_help_documents_generate():
    result = subprocess.run([sys.executable, "-m", "magnet_audio.cli", "generate", "--help"],
                            capture_output=True, text=True, check=True)
    for option in ("--model", "--t5-path", "--steps", "--cfg", "--temperature", "--top-p", "--seed", "--batch"):
        assert option in result.stdout


def test_slugify():
    assert slugify("Upbeat Funk, 120 BPM!") == "upbeat_funk_120_bpm"
    assert slugify("???") == "audio"


def test_generate_and_eval_share_the_decoding_flags():
    parser = build_parser()
    flags = ["--steps", "2,1,1,1", "--cfg", "5", "--temperature", "0.7", "--top-p", "0.8"]
    expected = {"decoding_steps": [2, 1, 1, 1], "max_cfg_coef": 5.0, "min_cfg_coef": 1.0, "temperature": 0.7,
                "top_p": 0.8}
    assert sampling_overrides(parser.parse_args(["generate", "x", *flags])) == expected
    assert sampling_overrides(parser.parse_args(["eval", "--prompts", "p.txt", *flags])) == expected
    # flags left out stay out, so the model's recommended options apply
    assert sampling_overrides(parser.parse_args(["eval", "--prompts", "p.txt", "--cfg", "4,2"])) == {
        "max_cfg_coef": 4.0, "min_cfg_coef": 2.0}
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--prompts", "p.txt", "--steps", ","])


def test_eval_rejects_bad_decoding_options_before_writing(tmp_path, fixture_dir, capsys):
    (tmp_path / "p.txt").write_text("a prompt\n")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"), "--prompts",
                 str(tmp_path / "p.txt"), "--metrics", "clap", "--top-p", "1.5", "--out", str(out), "-q"]) == 2
    assert "top_p" in capsys.readouterr().err
    assert not out.exists()
