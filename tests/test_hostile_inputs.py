"""Hostile and careless input (issue 23): every value here once crashed, hung, ran code, overwrote
or corrupted something. Each case must end in a one-line error (exit code 2 from the CLI, an
:class:`InputError` from the API) and leave no output file behind."""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio import validation
from magnet_audio.cli import main as cli_main
from magnet_audio.errors import CheckpointError, InputError
from magnet_audio.training.config import TrainConfig, from_dict, load_config

pytestmark = pytest.mark.usefixtures("one_thread")


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``magnet ARGV`` in process: (exit code, stderr); argparse's SystemExit becomes its code."""
    try:
        code = cli_main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    return code, err


def error_line(err: str) -> str:
    """The error of a failed command: exactly one line that starts like one, and no traceback."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].strip() == err.strip().splitlines()[-1].strip(), err
    return lines[0]


def fails_cleanly(argv, capsys, out: Path, match: str) -> str:
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    line = error_line(err)
    assert match in line, line
    assert files_under(out) == [], files_under(out)
    return line


# ----------------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "hot", True, None, [1.0]])
def test_finite_float_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(InputError, match="temperature must be a"):
        validation.finite_float(value, "temperature", 0, 10)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", math.nan, 10 ** 30])
def test_positive_int_refuses_non_positive_and_non_integers(value):
    with pytest.raises(InputError, match="batch must be a positive integer"):
        validation.positive_int(value, "batch", 1000)


def test_helpers_accept_good_values():
    assert validation.finite_float("0.5", "x", 0, 1) == 0.5
    assert validation.int_in_range(4.0, "x", 0, 8) == 4
    assert validation.seed(2 ** 63) == 2 ** 63
    assert validation.device("cpu") == "cpu"


# ----------------------------------------------------------------------------------- magnet generate

GENERATE_BAD = [
    (["--duration", "nan"], "--duration must be a finite number"),
    (["--duration", "inf"], "--duration must be a finite number"),
    (["--duration", "1e12"], "--duration must be in (0, 3600]"),
    (["--duration", "-1"], "--duration must be in (0, 3600]"),
    (["--temperature", "nan"], "--temperature must be a finite number"),
    (["--top-p", "2"], "--top-p must be in [0, 1]"),
    (["--cfg", "nan,1"], "--cfg must be a finite number"),
    (["--cfg", "inf"], "--cfg must be a finite number"),
    (["--top-k", "1000000"], "top_k must be in"),
    (["--top-k", "65"], "top_k must be in [0, 64]"),  # the fixture's vocabulary is 64
    (["--seed", "1e23"], "argument --seed: invalid int value"),
    (["--seed", str(10 ** 23)], "--seed must be in [0,"),
    (["--seed", "-1"], "--seed must be in [0,"),
    (["--device", "banana"], "--device 'banana' is not a device"),
    (["--steps", "0,1,1,1"], "decoding_steps must be a positive integer"),
    (["--batch", "0"], "--batch must be a positive integer"),
    (["--beat-lock", "inf"], "--beat-lock must be a finite number"),
]


@pytest.mark.parametrize("flags,match", GENERATE_BAD, ids=[" ".join(f) for f, _ in GENERATE_BAD])
def test_generate_refuses_hostile_numbers(flags, match, fixture_dir, tmp_path, capsys):
    out = tmp_path / "out"
    fails_cleanly(["generate", "x", "--model", fixture_dir, "--t5-path", fixture_dir / "t5", "-o", out, "-q", *flags],
                  capsys, out, match)


def test_api_refuses_hostile_generation_params(fixture_dir):
    from magnet_audio import MAGNeT

    model = MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path=fixture_dir / "t5")
    before = model.generation_params
    for kwargs, match in [({"temperature": math.nan}, "temperature must be a finite"),
                          ({"temperature": "hot"}, "temperature must be a number"),
                          ({"top_k": 10 ** 6}, "top_k must be in"), ({"top_p": math.inf}, "top_p must be a finite"),
                          ({"max_cfg_coef": math.nan}, "max_cfg_coef"), ({"duration": math.inf}, "duration"),
                          ({"duration": 1e12}, "duration"), ({"decoding_steps": [10 ** 9] * 4}, "decoding_steps"),
                          ({"use_sampling": "no"}, "use_sampling must be true or false"),
                          ({"beat_lock": math.nan}, "beat_lock")]:
        with pytest.raises(InputError, match=match):
            model.set_generation_params(**kwargs)
        assert model.generation_params is before  # nothing half-applied


def test_argparse_errors_are_one_line(capsys, tmp_path):
    code, err = run_cli(["generate", "x", "--batch", "four", "-o", tmp_path / "o"], capsys)
    assert code == 2
    assert "invalid int value" in error_line(err)
    assert "usage:" not in err


# ----------------------------------------------------------------------------------- training runs


def write_chords(root: Path, n: int = 3, seconds: float = 1.2, sr: int = 32000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        wav = 0.2 * np.sin(2 * np.pi * (220 + 30 * i) * t) * (0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0))
        sf.write(root / f"{i:02d}.wav", wav.astype(np.float32), sr)
        (root / f"{i:02d}.json").write_text(json.dumps({"description": f"chord {i}"}))
    return root


def run_config(run_dir: Path, train: str, codec: str | None, **sections) -> dict:
    values = {"run_dir": str(run_dir), "seed": 0,
              "data": {"train": train, "segment_duration": 1.0, "batch_size": 2, "valid_fraction": 0.0},
              "model": {"codec": codec, "dim": 16, "num_heads": 2, "num_layers": 1,
                        "conditioner": {"model": "lut", "n_bins": 16, "text_dim": 8}},
              "optim": {"steps": 4, "warmup": 1, "lr": 1e-3},
              "ema": {"every": 1, "decay": 0.9}, "valid": {"every": 0}, "samples": {"every": 0},
              "checkpoint": {"every": 2, "keep_last": 1}, "log": {"every": 2, "progress": False}}
    for name, update in sections.items():
        values[name].update(update)
    return values


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fixture_dir):
    """A 4-step tiny LM run (checkpoints at steps 2 and 4) on three chords, tokenized with the fixture codec."""
    from magnet_audio.training.trainer import train

    root = tmp_path_factory.mktemp("hostile")
    data = write_chords(root / "data")
    run_dir = root / "run"
    train(from_dict(TrainConfig, run_config(run_dir, str(data), str(fixture_dir / "compression_state_dict.bin"))))
    return run_dir


# ----------------------------------------------------------------------------------- magnet export


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in files_under(folder)}


@pytest.mark.parametrize("generation,match", [
    ('{"temperature": "hot"}', "temperature must be a number"),
    ('{"temperature": NaN}', "temperature must be a finite number"),
    ('{"top_k": 1000000}', "top_k must be in"),
    ('{"decoding_steps": [1, 2]}', "decoding_steps must be 4 positive integers"),
    ('{"temprature": 1.0}', "unexpected keyword argument 'temprature'"),
    ('[1, 2]', "must be a JSON object"),
])
def test_export_validates_generation_before_touching_an_existing_model(trained, tmp_path, capsys, generation, match):
    out = tmp_path / "model"
    assert cli_main(["export", str(trained), str(out), "--generation", '{"temperature": 1.5}']) == 0
    capsys.readouterr()
    before = _snapshot(out)
    code, err = run_cli(["export", trained, out, "--generation", generation, "--half"], capsys)
    assert code == 2
    assert match in error_line(err)
    assert _snapshot(out) == before  # the old model is intact: same weights, same config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left


def test_export_failing_midway_leaves_the_old_model(trained, tmp_path, monkeypatch):
    from magnet_audio.training import export as export_module

    out = tmp_path / "model"
    export_module.export(trained, out)
    before = _snapshot(out)
    real = export_module.write_atomic
    calls = []

    def fail_on_second(write, path):  # the LM file is written, then the disk "fills up"
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(write, path)

    monkeypatch.setattr(export_module, "write_atomic", fail_on_second)
    with pytest.raises(OSError):
        export_module.export(trained, out, half=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("make", ["file", "readonly"])
def test_out_naming_a_file_or_a_read_only_folder(trained, tmp_path, capsys, make, fixture_dir, monkeypatch):
    target = tmp_path / "target"
    if make == "file":
        target.write_text("not a folder")
        match = "is a file, not a folder"
    else:
        target.mkdir()
        os.chmod(target, 0o555)
        if os.access(target, os.W_OK):  # root ignores permissions: a read-only mount is what stops it
            monkeypatch.setattr(validation, "_read_only_mount", lambda path: Path(path) == target)
        match = "is not writable"
    try:
        for argv in (["export", trained, target / "m" if make == "readonly" else target],
                     ["eval", "--prompts", fixture_dir / "README.md", "--generated", tmp_path, "--out",
                      target if make == "file" else target / "e"],
                     ["bench", "generate", "--random-size", "tiny", "--out", target if make == "file" else target / "b"]):
            code, err = run_cli(argv, capsys)
            assert code == 2, (argv, err)
            assert match in error_line(err), err
    finally:
        os.chmod(target, 0o755) if target.is_dir() else None
    assert files_under(target) == [] if target.is_dir() else target.read_text() == "not a folder"


# ----------------------------------------------------------------------------------- magnet eval: no code execution


class _Payload:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with open(path, "rb") as file:  # torch.save pickles the payload by reference: check it really runs
        assert b"exec" in file.read()
    return path


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache, downloads allowed (the tests never reach the network: the file is there)."""
    for var in ("HF_HUB_OFFLINE", "MAGNET_OFFLINE", "TRANSFORMERS_OFFLINE", "MAGNET_VGGISH_CHECKPOINT"):
        monkeypatch.delenv(var, raising=False)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_vggish_refuses_a_pickle_planted_in_the_torch_hub_cache(hub_cache, tmp_path):
    from magnet_audio.evaluation.embeddings import VGGISH_URL, Unavailable, VGGishEmbedding

    marker = tmp_path / "ran"
    plant(hub_cache / "checkpoints" / VGGISH_URL.rsplit("/", 1)[-1], marker)
    with pytest.raises(Unavailable, match="is not the published file .*refusing to load it") as info:
        VGGishEmbedding().load()
    assert not marker.exists()
    assert "\n" not in info.value.reason


def test_a_hub_file_with_the_right_hash_is_still_not_unpickled(hub_cache, tmp_path, monkeypatch):
    """Even a file that passed the hash check (a broken hash, a collision) is read with weights_only."""
    from magnet_audio.evaluation import embeddings

    marker = tmp_path / "ran"
    name = embeddings.VGGISH_URL.rsplit("/", 1)[-1]
    plant(hub_cache / "checkpoints" / name, marker)
    monkeypatch.setattr(embeddings, "sha256_of", lambda path: "10086976" + "0" * 56)
    with pytest.raises(embeddings.Unavailable, match="not a plain tensor file, refusing to unpickle it"):
        embeddings.load_hub_weights(embeddings.VGGISH_URL, "VGGish")
    assert not marker.exists()


def test_laion_clap_checkpoint_is_not_unpickled(tmp_path):
    from magnet_audio.evaluation.embeddings import ClapModel, Unavailable, load_laion_checkpoint

    marker = tmp_path / "ran"
    path = plant(tmp_path / "music_audioset_epoch_15_esc_90.14.pt", marker)
    with pytest.raises(Unavailable, match="refusing to unpickle it"):
        ClapModel(str(path)).load()
    assert not marker.exists()
    import argparse  # what real laion checkpoints hold beside the tensors still loads
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1e-4), "epoch": np.int64(15)}, good)
    assert torch.equal(load_laion_checkpoint(good)["state_dict"]["w"], torch.ones(2))


# ----------------------------------------------------------------------------------- model folders (config.json)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    from magnet_audio.training.export import export

    return export(trained, tmp_path_factory.mktemp("exported") / "model")


def _edited_copy(src: Path, dst: Path, section: str, **changes) -> Path:
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    node = config
    for key in section.split("."):
        node = node[key]
    node.update(changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize("changes,match", [
    ({"num_heads": 0}, "num_heads must be in [1,"),
    ({"dim": "16"}, "dim must be an integer, got '16'"),
    ({"dim": 16.0}, "dim must be an integer, got 16.0"),
    ({"dim": 1e9}, "dim must be an integer"),
    ({"dim": 10 ** 9}, "dim must be in [1, 65536]"),
    ({"dim": 15}, "must be a multiple of num_heads"),
    ({"card": -1}, "card must be in"),
    ({"segment_duration": float("nan")}, "segment_duration must be a finite number"),
])
def test_config_json_with_hostile_architecture_numbers(exported, tmp_path, capsys, changes, match):
    model = _edited_copy(exported, tmp_path / "m", "lm", **changes)
    out = tmp_path / "out"
    line = fails_cleanly(["generate", "x", "--model", model, "-o", out, "-q"], capsys, out, match)
    assert "config.json" in line


def test_config_json_naming_an_unknown_hub_text_encoder_is_refused(exported, tmp_path, capsys, monkeypatch):
    from magnet_audio import MAGNeT

    model = _edited_copy(exported, tmp_path / "m", "lm.conditioner", model="t5", name="someone/evil-encoder")
    with pytest.raises(InputError, match="not a known t5 model.*MAGNET_ALLOW_ANY"):
        MAGNeT.get_pretrained(str(model), device="cpu")
    monkeypatch.setenv("MAGNET_ALLOW_ANY_TEXT_ENCODER", "1")  # opt in: then it gets as far as the weights
    with pytest.raises(Exception) as info:
        MAGNeT.get_pretrained(str(model), device="cpu")
    assert "not a known" not in str(info.value)


def test_spectral_codec_griffin_lim_iters_is_bounded(tmp_path, capsys):
    from magnet_audio.names import BUNDLED_DIR, DEFAULT_MODEL

    src = BUNDLED_DIR / DEFAULT_MODEL.split("/", 1)[1]
    for value, match in ((1e9, "griffin_lim_iters must be an integer"), (10 ** 9, "griffin_lim_iters must be in")):
        model = _edited_copy(src, tmp_path / f"m{value!r}", "codec", griffin_lim_iters=value)
        out = tmp_path / "out"
        fails_cleanly(["generate", "x", "--model", model, "-o", out, "-q"], capsys, out, match)


def test_spectral_codec_encodes_clips_shorter_than_its_window():
    from magnet_audio.codec.spectral import SpectralCodec, SpectralCodecConfig

    codec = SpectralCodec(SpectralCodecConfig(hidden=8, dimension=8, n_q=2, bins=16)).eval()
    for samples in (1, 100, 512, 1023):
        codes, _ = codec.encode(torch.full((1, 1, samples), 0.1))
        assert codes.shape == (1, 2, math.ceil(samples / 320))
