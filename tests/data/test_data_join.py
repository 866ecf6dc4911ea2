"""`magnet data join`: one manifest from several, order and fields kept, paths valid from the new folder."""

import json

import pytest

from magnet_audio.cli import main as cli_main
from magnet_audio.data.manifest import join_manifests
from magnet_audio.errors import InputError


def _manifest(folder, names, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps({"path": f"train/{n}.wav", "duration": 10.0, **extra}) + "\n" for n in names))
    return path


def test_join_keeps_order_fields_and_resolves_paths(tmp_path):
    a = _manifest(tmp_path / "a", ["0", "1"], description="piano")
    b = _manifest(tmp_path / "deep" / "b", ["0"], description="drums")
    out = tmp_path / "joined" / "train.jsonl"
    assert join_manifests(out, [a, b]) == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["description"] for line in lines] == ["piano", "piano", "drums"]
    assert [(out.parent / line["path"]).resolve() for line in lines] == [
        (tmp_path / "a/train/0.wav").resolve(), (tmp_path / "a/train/1.wav").resolve(),
        (tmp_path / "deep/b/train/0.wav").resolve()]
    assert all(line["duration"] == 10.0 for line in lines)


def test_join_refuses_bad_input_and_writes_nothing(tmp_path):
    a = _manifest(tmp_path / "a", ["0"])
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match="already named"):
        join_manifests(out, [a, a])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "x.wav"}\n{"description": "no path"}\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        join_manifests(out, [a, bad])
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="UTF-8"):
        join_manifests(out, [binary])
    with pytest.raises(InputError, match="not a .jsonl manifest"):
        join_manifests(out, [tmp_path / "missing.jsonl"])
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    join_manifests(out, [a])
    with pytest.raises(InputError, match="--overwrite"):
        join_manifests(out, [a])
    assert join_manifests(out, [a], overwrite=True) == 1


def test_cli_join(tmp_path, capsys):
    a = _manifest(tmp_path / "a", ["0", "1"])
    out = tmp_path / "j.jsonl"
    cli_main(["data", "join", str(out), str(a)])
    assert "2 lines" in capsys.readouterr().out and len(out.read_text().splitlines()) == 2
