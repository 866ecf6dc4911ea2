"""Training: config, data, token cache, the trainer (loss goes down, resume, DDP), export, bench."""

import dataclasses
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from magnet_audio import MAGNeT, load_compression_model
from magnet_audio.cli import main as cli_main
from magnet_audio.conditioning import ConditionerConfig
from magnet_audio.errors import CheckpointError, InputError
from magnet_audio.lm import MagnetLM, MagnetLMConfig
from magnet_audio.training.config import TrainConfig, from_dict, load_config
from magnet_audio.training.data import (
    AudioSegments,
    DescriptionConfig,
    EpochSampler,
    load_items,
    make_description,
)
from magnet_audio.training.tokens import TokenCache, TokenCrops, tokenize
from magnet_audio.training.runtime import EMA, list_checkpoints, load_checkpoint, lr_factor, save_atomic
from magnet_audio.training.trainer import init_lm_weights, train

REPO = Path(__file__).resolve().parents[2]
CHORDS = {"C major": (261.63, 329.63, 392.0), "A minor": (220.0, 261.63, 329.63),
          "G major": (196.0, 246.94, 293.66), "E minor": (164.81, 196.0, 246.94)}


def _write_dataset(root: Path, n: int = 10, seconds: float = 1.2) -> Path:
    """Chords (some 44.1 kHz stereo, some 32 kHz mono) with audiocraft sidecar metadata, plus an
    unreadable file and one too short for a 1 s segment."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        key = list(CHORDS)[i % len(CHORDS)]
        sr, channels = (44100, 2) if i % 3 == 0 else (32000, 1)
        t = np.arange(int(seconds * sr)) / sr
        pulse = 0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0)  # 2 Hz on/off rhythm
        wav = sum(np.sin(2 * np.pi * f * t) for f in CHORDS[key]) * 0.2 * pulse
        wav = wav + 0.01 * rng.standard_normal(len(t))
        sf.write(root / f"{i:03d}.wav", np.stack([wav] * channels, axis=1).astype(np.float32), sr)
        meta = {"description": f"{key.split()[1]} chord on {key.split()[0]}", "key": key, "bpm": 120,
                "genre": "Test", "moods": ["calm", "steady"], "instrument": "Sine"}
        (root / f"{i:03d}.json").write_text(json.dumps(meta))
    (root / "broken.wav").write_bytes(b"RIFF not really audio")
    sf.write(root / "short.wav", np.zeros(3200, np.float32), 32000)
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread is as fast, and immune to oversubscription on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("audio") / "data")


def _config(run_dir: Path, train: str, codec: str | None, **sections) -> dict:
    values = {
        "run_dir": str(run_dir), "seed": 0,
        "data": {"train": train, "segment_duration": 1.0, "batch_size": 4, "valid_fraction": 0.2},
        "model": {"codec": codec, "dim": 32, "num_heads": 2, "num_layers": 2,
                  "conditioner": {"model": "lut", "n_bins": 64, "text_dim": 16, "word_dropout": 0.1}},
        "optim": {"steps": 80, "warmup": 5, "lr": 3e-3},
        "ema": {"every": 1, "decay": 0.9},
        "valid": {"every": 40, "batches": 2},
        "samples": {"every": 0},
        "checkpoint": {"every": 40, "keep_last": 2},
        "log": {"every": 10, "progress": False},
    }
    for name, update in sections.items():
        values.setdefault(name, {}).update(update) if isinstance(update, dict) else values.update({name: update})
    return values


@pytest.fixture(scope="module")
def trained_run(dataset, fixture_dir, tmp_path_factory):
    """A tiny LM trained from the audio folder (tokenized into the run with the fixture codec)."""
    run_dir = tmp_path_factory.mktemp("runs") / "main"
    cfg = from_dict(TrainConfig, _config(run_dir, str(dataset), str(fixture_dir / "compression_state_dict.bin"),
                                         samples={"every": 80, "num": 2, "decoding_steps": [2, 1, 1, 1]}))
    start = time.perf_counter()
    final = train(cfg)
    return run_dir, final, time.perf_counter() - start


# ----------------------------------------------------------------------------------- config


def _dotted_fields(cls, prefix=""):
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and f.type in {
                "DataConfig", "ModelConfig", "OptimConfig", "EMAConfig", "ValidConfig", "SamplesConfig",
                "CheckpointConfig", "LogConfig", "DistributedConfig", "ConditionerConfig"}):
            hint = {**vars(__import__("magnet_audio.training.config", fromlist=["x"])),
                    "ConditionerConfig": ConditionerConfig}[f.type] if isinstance(f.type, str) else f.type
            yield from _dotted_fields(hint, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_example_config_documents_every_option_with_its_default():
    path = REPO / "configs" / "train_magnet.yaml"
    raw = yaml.safe_load(path.read_text())
    for key in _dotted_fields(TrainConfig):
        node = raw
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} is not documented in {path}"
            node = node[part]
    example = load_config(path, ["data.train=some/folder"]).to_dict()
    defaults = from_dict(TrainConfig, {"data": {"train": "some/folder"}}).to_dict()
    assert example == defaults
    assert "# " in path.read_text().splitlines()[0]


def test_config_overrides_types_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: x\noptim:\n  lr: 3e-4\n")
    cfg = load_config(path, ["optim.steps=10", "model.conditioner.model=lut", "samples.decoding_steps=[4, 2, 2, 2]",
                             "valid.batches=null", "ema.use=false", "optim.warmup=0"])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)  # "3e-4" is a string to PyYAML
    assert cfg.optim.steps == 10 and cfg.model.conditioner.model == "lut" and cfg.ema.use is False
    assert cfg.samples.decoding_steps == [4, 2, 2, 2] and cfg.valid.batches is None
    with pytest.raises(InputError, match="optim.stpes"):
        load_config(path, ["optim.stpes=10"])
    with pytest.raises(InputError, match="data.batch_size: expected int"):
        load_config(path, ["data.batch_size=many"])
    with pytest.raises(InputError, match="key=value"):
        load_config(path, ["optim.steps"])
    with pytest.raises(InputError, match="data.train is required"):
        load_config(None, [])
    with pytest.raises(InputError, match="optim.schedule"):
        load_config(path, ["optim.schedule=linear"])
    assert load_config(path, ["model.stage_weights=[4, 1, 1, 1]"]).model.stage_weights == [4, 1, 1, 1]
    with pytest.raises(InputError, match="model.stage_weights"):
        load_config(path, ["model.stage_weights=[1, -1, 1, 1]"])
    with pytest.raises(InputError, match="model.stage_weights"):
        load_config(path, ["model.stage_weights=[0, 0, 0, 0]"])
    assert load_config(path, ["model.positional_embedding=rope"]).model.positional_embedding == "rope"
    with pytest.raises(InputError, match="model.positional_embedding must be one of sin, rope, sin_rope"):
        load_config(path, ["model.positional_embedding=alibi"])
    with pytest.raises(InputError, match="even head dimension"):  # 1024 / 16 is fine, 48 / 16 = 3 is not
        load_config(path, ["model.positional_embedding=rope", "model.dim=48"])


# ----------------------------------------------------------------------------------- data


def test_folder_and_manifest_scanning(dataset, tmp_path, caplog):
    items, report = load_items(dataset, min_duration=1.0)
    assert len(items) == 10 and report.kept == 10
    assert report.unreadable == 1 and report.too_short == 1
    assert any("broken.wav" in s for s in report.skipped) and any("short.wav" in s for s in report.skipped)
    first = items[0]
    assert first.sample_rate == 44100 and first.channels == 2 and first.duration == pytest.approx(1.2)
    assert first.info["description"] == "major chord on C"

    manifest = tmp_path / "list.jsonl"
    rel = os.path.relpath(dataset, tmp_path)
    lines = [json.dumps({"path": f"{rel}/001.wav", "duration": 1.2, "description": "from the manifest"}),
             json.dumps({"path": str(dataset / "002.wav")}), "not json", json.dumps({"path": "missing.wav"})]
    manifest.write_text("\n".join(lines) + "\n")
    items, report = load_items(manifest)
    assert [Path(i.path).name for i in items] == ["001.wav", "002.wav"]
    assert items[0].info["description"] == "from the manifest" and items[0].info["genre"] == "Test"  # + sidecar
    assert report.unreadable == 2
    with pytest.raises(InputError, match="no usable audio"):
        load_items(dataset, min_duration=60)


def test_descriptions_follow_audiocraft():
    info = {"description": "calm piano", "genre": "Jazz", "moods": "happy, sad", "bpm": "120", "key": "C major",
            "keywords": ["Lofi", "Chill"], "instrument": "Piano", "title": "ignored"}
    assert make_description(info) == "calm piano."  # no merge: audiocraft appends an empty metadata text
    merged = make_description(info, random.Random(0), merge_text_p=1.0, drop_desc_p=0.0, drop_other_p=1.0)
    parts = merged.split(". ")
    assert parts[0] == "calm piano"
    assert sorted(parts[1:]) == sorted(["key: c major", "bpm: 120.0", "genre: jazz", "moods: happy, sad",
                                        "keywords: lofi, chill", "instrument: piano"])
    only_meta = make_description(info, random.Random(0), merge_text_p=1.0, drop_desc_p=1.0, drop_other_p=1.0)
    assert "calm piano" not in only_meta and "genre: jazz" in only_meta
    assert make_description({"key": "C major, D minor"}, random.Random(0), 1.0, 1.0, 1.0) is None  # several keys
    assert make_description({}) is None


def test_epoch_sampler_shards_are_disjoint_and_deterministic():
    ranks = [EpochSampler(20, 3, seed=7, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 3
    for position in range(6):
        epochs, batches = zip(*(s.batch(position) for s in ranks))
        assert epochs[0] == epochs[1] == position // 3
        assert not set(batches[0]) & set(batches[1])
    epoch0 = [i for s in ranks for p in range(3) for i in s.batch(p)[1]]
    assert len(set(epoch0)) == 18  # 20 items, 2 x 3 x 3 used, none twice
    assert ranks[0].batch(4) == EpochSampler(20, 3, seed=7, rank=0, world_size=2).batch(4)
    assert ranks[0].batch(0) != EpochSampler(20, 3, seed=8, rank=0, world_size=2).batch(0)
    tiny = EpochSampler(2, 4, seed=0, rank=1, world_size=2)  # fewer items than one global batch
    assert len(tiny.batch(0)[1]) == 4


def test_audio_segments_resample_and_skip_unreadable(dataset, caplog):
    items, _ = load_items(dataset, min_duration=1.0)
    items[1].path = str(dataset / "broken.wav")  # becomes unreadable after the scan
    segments = AudioSegments(items[:3], segment_duration=1.0, sample_rate=16000, channels=1,
                             descriptions=DescriptionConfig(0, 0, 0))
    wav, texts = segments.batch([0, 1, 2], [1, 2, 3])
    assert wav.shape == (3, 1, 16000) and texts[0] == "major chord on C."
    assert segments.read_errors == 1 and texts[1] == texts[2]  # item 1 replaced by item 2
    again, _ = segments.batch([0], [1])
    assert torch.equal(again[0], wav[0])  # the crop is a function of the seed


# ----------------------------------------------------------------------------------- token cache


def test_tokenize_matches_the_codec_and_resumes(dataset, fixture_dir, tmp_path):
    from magnet_audio.audio import audio_read
    from magnet_audio.codec import load_compression_model

    codec_path = str(fixture_dir / "compression_state_dict.bin")
    out = tmp_path / "cache"
    assert cli_main(["tokenize", str(dataset), "--codec", codec_path, "--out", str(out), "--min-duration", "1",
                     "--chunk-seconds", "0.5", "--quiet"]) == 0
    cache = TokenCache(out)
    assert cache.meta.complete and cache.meta.files == 10 and cache.meta.unreadable == 1
    assert cache.meta.too_short == 1 and (cache.meta.n_q, cache.meta.card, cache.meta.frame_rate) == (4, 64, 50.0)
    codec = load_compression_model(codec_path, device="cpu")
    entry = cache.entries[1]  # 32 kHz mono
    wav, _ = audio_read(entry["path"])
    codes, _ = codec.encode(wav[None])
    assert entry["frames"] == 60 and np.array_equal(cache.codes(entry), codes[0].numpy())
    assert entry["info"]["genre"] == "Test"

    # a crash while writing the index: a torn last line, the last file missing -> rerun completes it
    index = out / "index.jsonl"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    meta = tokenize(dataset, codec_path, out, device="cpu", min_duration=1.0, progress=False)
    cache = TokenCache(out)
    assert meta.files == 10 and sorted(e["path"] for e in cache.entries) == sorted({e["path"] for e in cache.entries})
    with pytest.raises(InputError, match="another folder"):
        tokenize(dataset, str(fixture_dir), out, device="cpu", progress=False)

    crops = TokenCrops(cache, cache.entries, segment_frames=50, descriptions=DescriptionConfig(0, 0, 0))
    codes, texts, tempi = crops.batch([0, 1], [5, 6])
    assert codes.shape == (2, 4, 50) and codes.dtype == torch.long and texts[0].endswith("chord on C.")
    assert tempi[:, 0].tolist() == [120.0, 120.0]  # each file's metadata bpm
    with pytest.raises(InputError, match="at least 100 frames"):
        TokenCrops(cache, cache.entries, segment_frames=100)


# ----------------------------------------------------------------------------------- trainer pieces


def test_lr_schedule_and_ema_by_hand():
    assert [lr_factor(s, "cosine", 10, 110) for s in (0, 5, 10, 60, 110, 200)] == pytest.approx(
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    assert lr_factor(60, "cosine", 10, 110, min_ratio=0.2) == pytest.approx(0.6)
    assert lr_factor(40, "inverse_sqrt", 10, 110) == pytest.approx(0.5)
    assert lr_factor(3, "constant", 0, 10) == 1.0

    module = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(module, decay=0.5)
    with torch.no_grad():
        module.weight.fill_(1.0)
        ema.update(module)                 # count 1: copies
        module.weight.fill_(3.0)
        ema.update(module)                 # count 1.5, w = 2/3: 1/3 * 1 + 2/3 * 3
    assert float(ema.state["weight"]) == pytest.approx(7 / 3)
    with ema.swapped(module):
        assert float(module.weight.detach()) == pytest.approx(7 / 3)
    assert float(module.weight.detach()) == 3.0

    # a weight that does not change (a frozen encoder) keeps its exact value, update after update:
    # (1 - w) * ema + w * value would drift by rounding (0.1 * 0.999 + 0.001 * 0.1 != 0.1 in float32)
    frozen = torch.nn.Linear(64, 64)
    ema = EMA(frozen, decay=0.999)
    for _ in range(50):
        ema.update(frozen)
    assert all(torch.equal(ema.state[k], v) for k, v in frozen.state_dict().items())


def test_init_lm_weights_scales_with_depth():
    torch.manual_seed(0)
    lm = MagnetLM(MagnetLMConfig(dim=256, num_heads=4, num_layers=3, n_q=2, card=512, segment_duration=1,
                                 conditioner=ConditionerConfig(model="lut", n_bins=64, text_dim=16)))
    init_lm_weights(lm)
    for depth, layer in enumerate(lm.transformer.layers, 1):
        w = layer.linear1.weight
        std = 1 / math.sqrt(256) / math.sqrt(2 * depth)
        assert float(w.detach().std()) == pytest.approx(std * 0.986, rel=0.03)  # truncation at 3 std shrinks it a bit
        assert float(w.detach().abs().max()) <= 3 * std + 1e-6
    assert float(lm.linears[0].weight.detach().std()) == pytest.approx(0.986 / 16, rel=0.03)
    in_proj = lm.transformer.layers[0].self_attn.in_proj_weight.detach()
    assert float(in_proj.abs().max()) <= 1 / 16  # PyTorch's default Linear init: U(-1/sqrt(fan_in), ...)


def test_save_atomic_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint_00000001.pt"
    save_atomic({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_atomic({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# ----------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_lowers_validation_loss(trained_run):
    run_dir, final, seconds = trained_run
    valid = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "valid"]
    assert [row["step"] for row in valid] == [0, 40, 80]
    before, after = valid[0]["ce"], valid[-1]["ce"]
    assert before > math.log(64) - 0.3  # an untrained LM is no better than uniform over the 64 codes
    assert after < before - 1.0, (before, after)
    assert final["ce"] == pytest.approx(after)
    assert seconds < 60
    train_rows = (run_dir / "train.csv").read_text().splitlines()
    assert train_rows[0].startswith("step,") and len(train_rows) == 1 + 8
    samples = sorted((run_dir / "samples" / "step_00000080").glob("*.wav"))
    assert len(samples) == 2 and all(sf.info(str(p)).samplerate == 32000 for p in samples)
    assert [step for step, _ in list_checkpoints(run_dir)] == [40, 80]
    ckpt = load_checkpoint(list_checkpoints(run_dir)[-1][1])
    assert ckpt["step"] == 80 and ckpt["meta"]["kind"] == "magnet" and ckpt["ema"] is not None
    assert (run_dir / "tokens" / "train" / "cache.json").is_file()


@pytest.mark.slow
def test_export_loads_with_the_public_api(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    out = tmp_path / "exported"
    assert cli_main(["export", str(run_dir), str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"state_dict.bin", "compression_state_dict.bin", "model.safetensors",
                                              "config.json"}
    package = torch.load(out / "state_dict.bin", weights_only=True)
    assert package["exported"] is True and isinstance(package["xp.cfg"], str)
    xp = yaml.safe_load(package["xp.cfg"])
    assert xp["lm_model"] == "transformer_lm_magnet" and xp["dataset"]["segment_duration"] == 1
    assert type(xp["dataset"]["segment_duration"]) is int  # audiocraft's MAGNeT slices with it (issue 23)

    model = MAGNeT.get_pretrained(str(out), device="cpu")
    ema = load_checkpoint(list_checkpoints(run_dir)[-1][1])["ema"]["state"]
    assert all(torch.equal(model.lm.state_dict()[k], v) for k, v in ema.items())  # the EMA weights are exported
    model.set_generation_params(decoding_steps=[3, 2, 2, 2])
    torch.manual_seed(0)
    wav, codes = model.generate(["minor chord on A", None], return_tokens=True)
    assert wav.shape == (2, 1, 48 * 640) and codes.shape == (2, 4, 48) and torch.isfinite(wav).all()

    ours = tmp_path / "ours"  # our format alone: model.safetensors + config.json
    ours.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(out / name, ours / name)
    again = MAGNeT.get_pretrained(str(ours), device="cpu")
    assert all(torch.equal(again.lm.state_dict()[k], v) for k, v in model.lm.state_dict().items())
    assert all(torch.equal(again.compression_model.state_dict()[k], v)
               for k, v in model.compression_model.state_dict().items())
    codec = load_compression_model(str(ours), device="cpu")
    assert all(torch.equal(codec.state_dict()[k], v) for k, v in model.compression_model.state_dict().items())
    again.set_generation_params(decoding_steps=[3, 2, 2, 2])
    torch.manual_seed(0)
    assert torch.equal(again.generate(["minor chord on A", None], return_tokens=True)[1], codes)

    half = tmp_path / "half"
    assert cli_main(["export", str(run_dir), str(half), "--half", "--no-ema"]) == 0
    halved = torch.load(half / "state_dict.bin", weights_only=True)["best_state"]
    assert halved["out_norm.weight"].dtype == torch.float16
    (half / "state_dict.bin").unlink()  # our format, fp16 on disk, loads into float32
    (half / "compression_state_dict.bin").unlink()
    loaded = MAGNeT.get_pretrained(str(half), device="cpu")
    assert loaded.lm.out_norm.weight.dtype == torch.float32
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        from magnet_audio.training.export import export
        export(tmp_path, tmp_path / "x")


@pytest.mark.slow
def test_export_with_a_spectral_codec_ships_our_format_alone(trained_run, tmp_path, capsys):
    """--codec with our spectral codec: no audiocraft codec file (there is no such format for it; a
    stale one from an earlier export is removed, else it would be loaded first), and the model loads
    and generates with that codec."""
    from magnet_audio.codec import SpectralCodec, SpectralCodecConfig, save_our_codec

    run_dir, _, _ = trained_run
    torch.manual_seed(0)
    spectral = SpectralCodec(SpectralCodecConfig(sample_rate=32000, n_fft=1280, hop_length=640, hidden=16,
                                                 dimension=8, encoder_dilations=[1], decoder_dilations=[1],
                                                 n_q=4, bins=64, kmeans_init=False, griffin_lim_iters=4))
    codec_dir = save_our_codec(spectral, tmp_path / "spectral")
    out = tmp_path / "exported"
    assert cli_main(["export", str(run_dir), str(out)]) == 0
    assert (out / "compression_state_dict.bin").exists()
    capsys.readouterr()
    assert cli_main(["export", str(run_dir), str(out), "--codec", str(codec_dir)]) == 0
    assert "note: audiocraft cannot load this folder as a model: its spectral codec has no audiocraft form" in \
        capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"state_dict.bin", "model.safetensors", "config.json"}
    assert json.loads((out / "config.json").read_text())["codec"]["type"] == "spectral"
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    assert isinstance(model.compression_model, SpectralCodec)
    assert all(torch.equal(model.compression_model.state_dict()[k], v) for k, v in spectral.state_dict().items())
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav, codes = model.generate(["minor chord on A"], return_tokens=True)
    assert wav.shape == (1, 1, codes.shape[-1] * 640) and torch.isfinite(wav).all()


@pytest.mark.slow
def test_export_carries_recommended_decoding_options(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    out = tmp_path / "exported"
    assert cli_main(["export", str(run_dir), str(out), "--generation", '{"temperature": 1.5, "max_cfg_coef": 3.0}']) == 0
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    assert model.recommended_generation_params == {"temperature": 1.5, "max_cfg_coef": 3.0}
    assert (model.generation_params.temperature, model.generation_params.max_cfg_coef) == (1.5, 3.0)
    assert cli_main(["export", str(run_dir), str(tmp_path / "bad"), "--generation", "{temperature: 1"]) == 2
    config = json.loads((out / "config.json").read_text())
    config["generation"] = {"temprature": 1.0}
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="invalid generation options"):
        MAGNeT.get_pretrained(str(out), device="cpu")


@pytest.mark.slow
def test_existing_run_needs_resume(trained_run):
    run_dir, _, _ = trained_run
    cfg = from_dict(TrainConfig, _config(run_dir, str(run_dir / "tokens" / "train"), None))
    with pytest.raises(InputError, match="--resume"):
        train(cfg)


@pytest.mark.slow
def test_stage_weights_must_match_the_codebooks(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    cfg = from_dict(TrainConfig, _config(tmp_path / "run", str(run_dir / "tokens" / "train"), None,
                                         model={"stage_weights": [3, 1]}))
    with pytest.raises(InputError, match="stage_weights has 2 values; the codec has 4 codebooks"):
        train(cfg)


def test_max_minutes_stops_with_a_final_checkpoint_and_resume_finishes(trained_run, tmp_path):
    """optim.max_minutes: once the budget is spent the update in progress is the last one (logged,
    validated, checkpointed); --resume without a budget then trains on to optim.steps."""
    run_dir, _, _ = trained_run
    cache = str(run_dir / "tokens" / "train")
    values = _config(tmp_path / "run", cache, None, optim={"steps": 12, "warmup": 2, "max_minutes": 1e-7},
                     valid={"every": 0, "batches": 1}, checkpoint={"every": 100, "keep_last": 5})
    final = train(from_dict(TrainConfig, values))
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [1]  # no update fits 6 microseconds
    assert math.isfinite(final["ce"])  # the stop is validated like the end of a run
    valid_steps = [int(row.split(",")[0]) for row in (tmp_path / "run" / "valid.csv").read_text().splitlines()[1:]]
    assert valid_steps == [0, 1]
    values["optim"]["max_minutes"] = None
    train(from_dict(TrainConfig, values), resume=True)
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [1, 12]
    with pytest.raises(InputError, match="optim.max_minutes must be > 0"):
        from_dict(TrainConfig, {**values, "optim": {**values["optim"], "max_minutes": 0}})


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def spawn():
    """Start commands in their own process group; whatever is still running at the end is killed."""
    started = []

    def start(cmd: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _train_cmd(config: Path, run_dir: Path, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "magnet_audio.train", str(config), f"run_dir={run_dir}"] + (
        ["--resume"] if resume else [])


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_for_bit(trained_run, tmp_path, spawn):
    """Kill a run with SIGKILL mid-training; every checkpoint file on disk is complete; resuming from
    the last one ends with the same weights, optimizer and EMA as a run that never stopped."""
    run_dir, _, _ = trained_run
    config = tmp_path / "resume.yaml"
    values = _config(tmp_path / "unused", str(run_dir / "tokens" / "train"), None,
                     optim={"steps": 240}, checkpoint={"every": 20, "keep_last": 3}, valid={"every": 60})
    config.write_text(yaml.safe_dump(values))

    straight = spawn(_train_cmd(config, tmp_path / "straight"))
    killed_dir = tmp_path / "killed"
    killed = spawn(_train_cmd(config, killed_dir))
    # a safety net only (the run ends by itself at 240 updates): on a loaded 2-core machine (the straight
    # run beside it, and anything else running) two checkpoints took more than a minute
    deadline = time.time() + 600
    while len(list_checkpoints(killed_dir)) < 2 and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stdout.read()
    on_disk = list_checkpoints(killed_dir)
    assert on_disk and on_disk[-1][0] < 240
    for _, path in on_disk:
        load_checkpoint(path)  # complete: no half-written checkpoint

    resumed = spawn(_train_cmd(config, killed_dir, resume=True))
    out = resumed.communicate(timeout=120)[0]
    assert resumed.returncode == 0, out
    assert f"resuming from {on_disk[-1][1]}" in out
    out = straight.communicate(timeout=120)[0]
    assert straight.returncode == 0, out

    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1][1])
    b = load_checkpoint(list_checkpoints(killed_dir)[-1][1])
    assert a["step"] == b["step"] == 240
    for key in a["objective"]:
        assert torch.equal(a["objective"][key], b["objective"][key]), key
    for key in a["ema"]["state"]:
        assert torch.equal(a["ema"]["state"][key], b["ema"]["state"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    rows = [json.loads(line) for line in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if r["split"] == "train"]
    assert train_steps == sorted(set(train_steps))  # the redone interval is logged once
    assert not list((killed_dir / "checkpoints").glob(".*tmp*"))


@pytest.mark.slow
def test_two_processes_gloo(trained_run, tmp_path, spawn):
    run_dir, _, _ = trained_run
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / "ddp", str(run_dir / "tokens" / "train"), None,
                                             optim={"steps": 20, "grad_accum": 2},
                                             checkpoint={"every": 10, "keep_last": 1},
                                             valid={"every": 10})))
    proc = spawn([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  "-m", "magnet_audio.train", str(config)])
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    checkpoints = list_checkpoints(tmp_path / "ddp")
    assert [step for step, _ in checkpoints] == [20]  # one file per checkpoint, the older one pruned
    ckpt = load_checkpoint(checkpoints[0][1])
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["consumed"] == 40  # 2 micro-batches/update
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # ranks draw their own masks
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["split"], r["step"]) for r in rows if r["split"] == "valid"] == [("valid", 0), ("valid", 10),
                                                                              ("valid", 20)]
    assert len([r for r in rows if r["split"] == "train"]) == 2  # rank 0 alone writes
    assert "2 process(es)" in out and "[rank 1]" not in out  # rank 1 logs warnings only


@pytest.mark.slow
def test_max_minutes_under_two_processes_stops_both_at_the_same_update(trained_run, tmp_path, spawn):
    run_dir, _, _ = trained_run
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / "ddp", str(run_dir / "tokens" / "train"), None,
                                             optim={"steps": 20, "max_minutes": 1e-7},
                                             checkpoint={"every": 10, "keep_last": 2}, valid={"every": 0})))
    proc = spawn([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  "-m", "magnet_audio.train", str(config)])
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out  # a rank that went on alone would hang in its next collective
    checkpoints = list_checkpoints(tmp_path / "ddp")
    assert [step for step, _ in checkpoints] == [1] and load_checkpoint(checkpoints[0][1])["world_size"] == 2
    assert "optim.max_minutes (1e-07) spent at step 1 of 20" in out


def test_bench_train_smoke():
    from magnet_audio.training.bench import format_result, run_train_bench

    result = run_train_bench(size="tiny", batch=2, duration=0.2, steps=1, warmup=0, device="cpu", card=64)
    assert result["tokens_per_s"] > 0 and result["frames"] == 10 and result["precision"] == "float32"
    assert "tokens/s" in format_result(result)


@pytest.mark.slow
def test_fine_tune_from_an_official_format_checkpoint(dataset, fixture_dir, tmp_path):
    """model.init_from: the fixture MAGNeT (audiocraft export, T5 conditioner) fine-tuned on our audio;
    the codec comes with it, the T5 from model.conditioner.path."""
    cfg = from_dict(TrainConfig, _config(
        tmp_path / "ft", str(dataset), None, optim={"steps": 4, "warmup": 0, "lr": 1e-3},
        model={"init_from": str(fixture_dir), "conditioner": {"model": "t5", "path": str(fixture_dir / "t5"),
                                                                "word_dropout": 0.3}},
        valid={"every": 0, "batches": 1}, checkpoint={"every": 4}, ema={"use": False}))
    train(cfg)
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "ft")[-1][1])
    lm_cfg = MagnetLMConfig.from_dict(ckpt["meta"]["lm_config"])
    assert (lm_cfg.dim, lm_cfg.num_layers, lm_cfg.conditioner.model) == (64, 2, "t5")  # the fixture's, not cfg.model's
    assert lm_cfg.conditioner.word_dropout == 0.3 and lm_cfg.segment_duration == 1.0
    assert ckpt["meta"]["codec"] == str((fixture_dir / "compression_state_dict.bin").resolve())
    original = torch.load(fixture_dir / "state_dict.bin", weights_only=True)["best_state"]
    tuned = {k[len("lm."):]: v for k, v in ckpt["objective"].items()}
    assert set(tuned) == set(original)
    assert not torch.equal(tuned["linears.0.weight"], original["linears.0.weight"].float())
