"""Hostile and careless input (issue 23): every value here once crashed, hung, ran code, overwrote
or corrupted something. Each case must end in a one-line error (exit code 2 from the CLI, an
:class:`InputError` from the API) and leave no output file behind."""

from __future__ import annotations

import json
import math
import os
import time
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
    (["--temperature", "nan"], "temperature (--temperature) must be a finite number"),
    (["--top-p", "2"], "top_p (--top-p) must be in [0, 1]"),
    (["--cfg", "nan,1"], "(--cfg) must be a finite number"),
    (["--cfg", "inf"], "(--cfg) must be a finite number"),
    (["--top-k", "1000000"], "top_k must be in"),
    (["--top-k", "65"], "top_k must be in [0, 64]"),  # the fixture's vocabulary is 64
    (["--seed", "1e23"], "argument --seed: invalid int value"),
    (["--seed", str(10 ** 23)], "--seed must be in [0,"),
    (["--seed", "-1"], "--seed must be in [0,"),
    (["--device", "banana"], "--device 'banana' is not a device"),
    (["--steps", "0,1,1,1"], "decoding_steps must be a positive integer"),
    (["--batch", "0"], "--batch must be a positive integer"),
    (["--beat-lock", "inf"], "beat_lock (--beat-lock) must be a finite number"),
    (["--choice-temperature", "-1"], "choice_temperature (--choice-temperature) must be in [0,"),
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
                          ({"beat_lock": math.nan}, "beat_lock"),
                          ({"choice_temperature": -0.5}, "choice_temperature must be in")]:
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
    from magnet_audio.evaluation import backend, embeddings

    marker = tmp_path / "ran"
    name = embeddings.VGGISH_URL.rsplit("/", 1)[-1]
    plant(hub_cache / "checkpoints" / name, marker)
    monkeypatch.setattr(backend, "sha256_of", lambda path: "10086976" + "0" * 56)  # what load_hub_weights calls
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
    from magnet_audio.names import BUNDLED_DIR

    src = BUNDLED_DIR / "synth-music"  # the bundled model: a spectral codec
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


# ----------------------------------------------------------------------------------- training


@pytest.mark.parametrize("override,match", [
    ("optim.lr=.inf", "optim.lr must be a finite number, got inf"),
    ("optim.lr=.nan", "optim.lr must be a finite number, got nan"),
    ("optim.lr=1e400", "optim.lr must be a finite number"),
    ("optim.lr=5", "optim.lr must be in (0, 1]"),
    ("optim.eps=-.inf", "optim.eps must be a finite number"),
    ("optim.max_norm=.nan", "optim.max_norm must be a finite number"),
    ("data.segment_duration=1e12", "data.segment_duration must be at most 3600"),
    ("ema.decay=.nan", "ema.decay must be a finite number"),
])
def test_train_config_refuses_non_finite_and_out_of_range_numbers(tmp_path, capsys, override, match):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(run_config(tmp_path / "run", str(tmp_path), None)))
    fails_cleanly(["train", config, override], capsys, tmp_path / "run", match)


def test_train_codec_config_refuses_non_finite_numbers(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"run_dir": str(tmp_path / "run"), "data": {"train": str(tmp_path)}}))
    fails_cleanly(["train-codec", config, "optim.lr=.inf"], capsys, tmp_path / "run", "must be a finite number")


def _poison(monkeypatch, *, loss_from_call: int | None = None, weights_after_step: int | None = None):
    """Make MagnetObjective's training loss NaN from the given call on, or the weights infinite
    after the given update (whose loss was finite, as after one huge step)."""
    from magnet_audio.training.objectives import MagnetObjective
    from magnet_audio.training.loop import Trainer

    real_forward, real_step, calls = MagnetObjective.forward, Trainer._train_step, []

    def forward(self, *args, **kwargs):
        loss, metrics = real_forward(self, *args, **kwargs)
        if self.training:
            calls.append(1)
            if loss_from_call is not None and len(calls) >= loss_from_call:
                loss = loss * math.nan
        return loss, metrics

    def train_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        if self.step == weights_after_step:
            with torch.no_grad():
                next(self.model.parameters()).fill_(math.inf)
        return result

    monkeypatch.setattr(MagnetObjective, "forward", forward)
    monkeypatch.setattr(Trainer, "_train_step", train_step)


@pytest.mark.parametrize("poison,last_good", [({"loss_from_call": 5}, 4), ({"weights_after_step": 4}, 2)],
                         ids=["nan-loss", "inf-weights"])
def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(trained, tmp_path, monkeypatch, poison,
                                                                      last_good):
    from magnet_audio.errors import TrainingDiverged
    from magnet_audio.training.runtime import list_checkpoints, load_checkpoint
    from magnet_audio.training.trainer import train

    cfg = from_dict(TrainConfig, run_config(tmp_path / "run", str(trained / "tokens" / "train"), None,
                                            optim={"steps": 8}))
    _poison(monkeypatch, **poison)
    with pytest.raises(TrainingDiverged, match=f"the last good checkpoint is .*step {last_good}.*--resume") as info:
        train(cfg)
    assert "\n" not in str(info.value)
    found = list_checkpoints(tmp_path / "run")
    assert [step for step, _ in found] == [last_good]  # keep_last 1 never rotated it away for a bad one
    ckpt = load_checkpoint(found[-1][1])
    assert all(torch.isfinite(v).all() for v in ckpt["objective"].values() if v.is_floating_point())


def test_resume_applies_a_changed_learning_rate(trained, tmp_path, caplog):
    import shutil

    from magnet_audio.training.runtime import list_checkpoints, load_checkpoint
    from magnet_audio.training.trainer import train

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    values = run_config(run, str(trained / "tokens" / "train"), None, optim={"steps": 6, "lr": 2.5e-4})
    with caplog.at_level("WARNING"):
        train(from_dict(TrainConfig, values), resume=True)
    assert "optim.lr changed from 0.001 to 0.00025: the new value applies" in caplog.text
    ckpt = load_checkpoint(list_checkpoints(run)[-1][1])
    assert ckpt["step"] == 6
    assert ckpt["scheduler"]["base_lrs"] == [2.5e-4]
    assert all(group["initial_lr"] == 2.5e-4 for group in ckpt["optimizer"]["param_groups"])


# ----------------------------------------------------------------------------------- data: manifests and audio


HOSTILE_LINES = ['{"path": 123}', '{"path": null}', '{"path": ""}', '{"path": ["a.wav"]}', '[1, 2]', '"a.wav"',
                 '{"nopath": 1}', '{"path": "a/.."}', "{not json"]


@pytest.mark.parametrize("command", ["tokenize", "train", "train-codec"])
def test_manifests_with_hostile_lines_fail_with_one_line(tmp_path, capsys, fixture_dir, command):
    manifest = tmp_path / "data.jsonl"
    manifest.write_bytes(("\n".join(HOSTILE_LINES) + "\n").encode() + b'{"path": "\xff\xfe.wav"}\n\xff\xfe\n')
    out = tmp_path / "out"
    codec = fixture_dir / "compression_state_dict.bin"
    if command == "tokenize":
        argv = ["tokenize", manifest, "--codec", codec, "--out", out, "-q"]
    else:
        config = tmp_path / "c.yaml"
        values = (run_config(out, str(manifest), str(codec)) if command == "train"
                  else {"run_dir": str(out), "data": {"train": str(manifest)}})
        config.write_text(json.dumps(values))
        argv = [command, config]
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert "has no usable audio file (0 files kept, 11 unreadable" in error_line(err)
    assert [p for p in files_under(out) if p.suffix in (".npy", ".pt")] == []


def test_manifest_reader_skips_bad_lines_and_keeps_good_ones(tmp_path):
    from magnet_audio.training.data import read_manifest

    write_chords(tmp_path, n=1)
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'{"path": 123}\n\xff\n{"path": "00.wav", "description": "ok"}\n')
    items, report = read_manifest(manifest)
    assert [Path(i.path).name for i in items] == ["00.wav"]
    assert report.unreadable == 2
    assert "'path' must be a non-empty string, got 123" in report.skipped[0]
    assert "not UTF-8" in report.skipped[1]


def test_tokenize_refuses_nan_audio_by_name_and_encodes_short_audio(tmp_path, capsys, fixture_dir, caplog):
    from magnet_audio.training.tokens import TokenCache

    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "nan.wav", np.full(32000, np.nan, np.float32), 32000, subtype="FLOAT")
    sf.write(data / "inf.wav", np.concatenate([np.zeros(100), [np.inf], np.zeros(100)]).astype(np.float32), 32000,
             subtype="FLOAT")
    out = tmp_path / "cache"
    code, err = run_cli(["tokenize", data, "--codec", fixture_dir / "compression_state_dict.bin", "--out", out,
                         "-q"], capsys)
    assert code == 2
    line = error_line(err)
    assert "could be tokenized: " in line and "nan.wav: its audio at 0.0 s contains NaN or infinite" in line, line
    assert files_under(out) == []
    sf.write(data / "short.wav", np.full(300, 0.1, np.float32), 32000)  # under 1,024 samples
    with caplog.at_level("WARNING"):
        assert cli_main(["tokenize", str(data), "--codec", "magnet-audio/synth-music", "--out",
                         str(tmp_path / "c2"), "-q"]) == 0
    assert "nan.wav: its audio at 0.0 s contains NaN or infinite samples" in caplog.text
    assert "inf.wav: its audio at 0.0 s contains NaN or infinite samples" in caplog.text
    entries = TokenCache(tmp_path / "c2").entries
    assert [Path(e["path"]).name for e in entries] == ["short.wav"]


# ----------------------------------------------------------------------------------- no silent overwrites


def test_generate_never_replaces_an_earlier_clip_unless_told(fixture_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "00_lofi_beat.wav").write_bytes(b"an earlier clip")
    argv = ["generate", "lofi beat", "--model", fixture_dir, "--t5-path", fixture_dir / "t5", "-o", out, "-q",
            "--steps", "1,1,1,1"]
    assert run_cli(argv, capsys)[0] == 0
    assert run_cli(argv, capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["00_lofi_beat.wav", "00_lofi_beat_1.wav", "00_lofi_beat_2.wav"]
    assert (out / "00_lofi_beat.wav").read_bytes() == b"an earlier clip"
    assert run_cli(argv + ["--overwrite"], capsys)[0] == 0
    assert len(list(out.iterdir())) == 3
    assert (out / "00_lofi_beat.wav").read_bytes()[:4] == b"RIFF"  # replaced, as asked


def test_concurrent_writers_into_one_folder_keep_every_clip(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from magnet_audio.audio import audio_write

    def write(i: int) -> Path:
        return audio_write(tmp_path / "00_same_prompt", torch.full((1, 800), 0.01 * (i + 1)), 16000,
                           strategy="none", exclusive=True)

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(write, range(16)))
    assert len(set(paths)) == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary left
    levels = sorted(round(float(np.abs(sf.read(p)[0]).max()), 2) for p in paths)
    assert levels == [round(0.01 * (i + 1), 2) for i in range(16)]  # each clip is its own, none clobbered


def test_tokenize_does_not_add_a_folder_again_by_another_path(tmp_path, fixture_dir, monkeypatch, capsys):
    from magnet_audio.training.tokens import TokenCache

    data = write_chords(tmp_path / "data", n=2)
    codec = fixture_dir / "compression_state_dict.bin"
    assert cli_main(["tokenize", str(data), "--codec", str(codec), "--out", str(tmp_path / "cache"), "-q"]) == 0
    monkeypatch.chdir(tmp_path)
    assert cli_main(["tokenize", "data", "--codec", str(codec), "--out", "cache", "-q"]) == 0
    assert cli_main(["tokenize", "./data/../data", "--codec", str(codec), "--out", "cache", "-q"]) == 0
    assert len(TokenCache(tmp_path / "cache").entries) == 2


# ----------------------------------------------------------------------------------- continuation prompts


def test_continuation_with_a_prompt_under_1024_samples_and_a_nan_prompt(fixture_dir):
    from magnet_audio import MAGNeT
    from magnet_audio.codec.spectral import SpectralCodec, SpectralCodecConfig

    model = MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path=fixture_dir / "t5")
    # a spectral codec (a centred STFT, which needed more than n_fft / 2 samples) at the LM's rate and vocabulary
    model.compression_model = SpectralCodec(SpectralCodecConfig(
        sample_rate=32000, n_fft=2048, hop_length=640, hidden=8, dimension=8, n_q=4, bins=64,
        griffin_lim_iters=1)).eval()
    model.set_generation_params(decoding_steps=[1, 1, 1, 1], duration=1.0)
    for samples in (1, 300, 1023):
        wav = model.generate_continuation(torch.full((1, samples), 0.1), 32000, ["x"])
        assert wav.shape[:2] == (1, 1) and wav.shape[-1] >= 0.9 * 32000 and torch.isfinite(wav).all()
    for bad in (math.nan, math.inf):
        with pytest.raises(InputError, match="the prompt audio contains NaN or infinite samples"):
            model.generate_continuation(torch.full((1, 300), bad), 32000, ["x"])


# ----------------------------------------------------------------------------------- the app


@pytest.fixture
def fake_serving(monkeypatch):
    """``magnet app`` in process with gradio and the server replaced: what launch() was given."""
    from magnet_audio import app, app_page

    seen: dict = {}
    monkeypatch.setattr(app_page, "_import_gradio", lambda: None)
    monkeypatch.setattr(app.Generator, "load", lambda self, name: None)
    monkeypatch.setattr(app_page, "build_app", lambda generator, **kw: seen.update(generator=generator) or "demo")

    def launch(demo, **kwargs):
        seen.update(kwargs)
        if seen.get("sigterm"):
            os.kill(os.getpid(), __import__("signal").SIGTERM)
            time.sleep(5)  # the handler interrupts this at once
            seen["not_interrupted"] = True

    monkeypatch.setattr(app_page, "launch", launch)
    return seen


def test_app_offers_official_models_only_when_asked(fake_serving, fixture_dir, capsys):
    from magnet_audio.names import MAGNET_REPOS

    assert cli_main(["app", "--model", str(fixture_dir), "--port", "0"]) == 0
    assert not set(MAGNET_REPOS) & set(fake_serving["generator"].models)
    assert fake_serving["max_file_size"] == "20mb"  # the default (an audio clip to edit fits); Gradio's upload route refuses larger files
    assert cli_main(["app", "--model", str(fixture_dir), "--port", "0", "--offer-official",
                     "--max-upload-mb", "0.5"]) == 0
    assert set(MAGNET_REPOS) <= set(fake_serving["generator"].models)
    assert fake_serving["max_file_size"] == "0.5mb"


def test_app_removes_its_temporary_folder_on_sigterm(fake_serving, fixture_dir, capsys):
    import signal

    fake_serving["sigterm"] = True
    before = signal.getsignal(signal.SIGTERM)
    assert cli_main(["app", "--model", str(fixture_dir), "--port", "0"]) == 130
    assert "not_interrupted" not in fake_serving
    assert not fake_serving["generator"].output_dir.exists()
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the app's only while it serves


@pytest.mark.parametrize("index,value,match", [
    (0, math.inf, "Duration"), (0, "nan", "Duration"), (0, 1e12, "Duration"), (1, math.nan, "CFG max"),
    (3, "-inf", "Temperature"), (4, True, "Top-p must be a number"), (5, 1e23, "Seed"), (5, "1e400", "Seed"),
])
def test_app_form_refuses_hostile_numbers(index, value, match):
    from magnet_audio.app import check_params

    args = [5, 10, 1, 3.0, 0.9, 0]
    args[index] = value
    with pytest.raises(InputError, match=match):
        check_params(*args, max_duration=30)


# ----------------------------------------------------------------------------------- text files that are not UTF-8


def test_configs_and_prompt_files_that_are_not_utf8(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_bytes(b"run_dir: \xff\xfe\n")
    fails_cleanly(["train", bad], capsys, tmp_path / "runs", "is not UTF-8 text")
    fails_cleanly(["train-codec", bad], capsys, tmp_path / "runs", "is not UTF-8 text")
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(b"lofi \xff beat\n")
    fails_cleanly(["eval", "--prompts", prompts, "--generated", tmp_path, "--out", tmp_path / "e", "--metrics", "fad"],
                  capsys, tmp_path / "e", "is not UTF-8 text")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('[1, 2]\n')
    fails_cleanly(["eval", "--prompts", jsonl, "--generated", tmp_path, "--out", tmp_path / "e", "--metrics", "fad"],
                  capsys, tmp_path / "e", "expected a JSON object or string")


def test_eval_generated_manifest_with_hostile_lines(tmp_path, capsys):
    generated = tmp_path / "gen"
    generated.mkdir()
    prompts = tmp_path / "p.txt"
    prompts.write_text("lofi beat\n")
    reference = write_chords(tmp_path / "ref", n=1)
    for line in (b'{"description": "lofi beat", "path": 123}', b'{"description": null, "path": "a.wav"}', b"\xff"):
        (generated / "generated.jsonl").write_bytes(line + b"\n")
        fails_cleanly(["eval", "--prompts", prompts, "--generated", generated, "--reference", reference,
                       "--out", tmp_path / "e", "--metrics", "fad"], capsys, tmp_path / "e",
                      "is not a valid generated.jsonl")


def test_train_config_bounds_the_model_size(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(run_config(tmp_path / "run", str(tmp_path), None)))
    fails_cleanly(["train", config, "model.dim=1000000000"], capsys, tmp_path / "run", "model.dim must be <= 65536")
    fails_cleanly(["train", config, "model.dim=1e9"], capsys, tmp_path / "run", "model.dim: expected int, got '1e9'")
    fails_cleanly(["train", config, "model.dim=1.0e+9"], capsys, tmp_path / "run", "model.dim must be <= 65536")
    fails_cleanly(["train", config, "model.num_heads=0"], capsys, tmp_path / "run", "positive multiple")


@pytest.mark.parametrize("command", ["train", "train-codec"])
def test_training_config_with_an_unknown_device(tmp_path, capsys, fixture_dir, command):
    data = write_chords(tmp_path / "data", n=1)
    config = tmp_path / "c.yaml"
    values = (run_config(tmp_path / "run", str(data), str(fixture_dir / "compression_state_dict.bin"))
              if command == "train" else {"run_dir": str(tmp_path / "run"), "data": {"train": str(data)}})
    config.write_text(json.dumps({**values, "device": "banana"}))
    code, err = run_cli([command, config], capsys)
    assert code == 2
    assert "the config's device 'banana' is not a device" in error_line(err)
    assert not list((tmp_path / "run").rglob("*.pt"))


@pytest.mark.parametrize("flags,match", [(["--hours", "nan"], "--hours must be a finite number"),
                                         (["--clip-seconds", "inf"], "--clip-seconds must be a finite number"),
                                         (["--heldout", "2"], "--heldout must be in [0, 1]"),
                                         (["--clips", "0"], "--clips must be a positive integer"),
                                         (["--sample-rate", "-1"], "--sample-rate must be a positive integer")])
def test_data_synth_refuses_hostile_numbers(tmp_path, capsys, flags, match):
    fails_cleanly(["data", "synth", tmp_path / "out", *flags], capsys, tmp_path / "out", match)
