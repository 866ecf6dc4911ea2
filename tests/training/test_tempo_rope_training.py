"""Training with tempo-relative positions (``model.tempo_rope``): each crop at its file's bpm, the
config's refusals, fine-tuning a rope LM into it, export (our format only) and loading."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_audio import MAGNeT
from magnet_audio.errors import InputError
from magnet_audio.training.config import TrainConfig, from_dict
from magnet_audio.training.data import DescriptionConfig
from magnet_audio.training.export import export
from magnet_audio.training.runtime import list_checkpoints, load_checkpoint
from magnet_audio.training.tokens import TokenCache, TokenCrops, tokenize
from magnet_audio.training.trainer import build_lm, train
from helpers import tiny_magnet_lm, write_export

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 32000
BPMS = [90, 140, None, "fast", -4, 120]  # metadata as files carry it: numbers, none, junk


@pytest.fixture(scope="module")
def cache(fixture_dir, tmp_path_factory) -> Path:
    """A token cache of six 1.2 s clicks at these bpm (sidecar metadata), by the fixture codec."""
    root = tmp_path_factory.mktemp("tempo")
    for i, bpm in enumerate(BPMS):
        wav = np.zeros(int(1.2 * SR), np.float32)
        period = int(SR * 60 / (bpm if isinstance(bpm, int) and bpm > 0 else 120))
        wav[::period] = 0.8
        sf.write(root / f"{i}.wav", wav, SR)
        meta = {"description": f"clicks {i}", **({} if bpm is None else {"bpm": bpm})}
        (root / f"{i}.json").write_text(json.dumps(meta))
    tokenize(str(root), str(fixture_dir / "compression_state_dict.bin"), root / "cache", device="cpu",
             min_duration=1.0, progress=False)
    return root / "cache"


def _cfg(run_dir: Path, cache: Path, **model) -> TrainConfig:
    return from_dict(TrainConfig, {
        "run_dir": str(run_dir), "seed": 0,
        "data": {"train": str(cache), "segment_duration": 1.0, "batch_size": 3, "valid_fraction": 0.0},
        "model": {"dim": 32, "num_heads": 2, "num_layers": 2, "positional_embedding": "rope", "tempo_rope": True,
                  "conditioner": {"model": "lut", "n_bins": 64, "text_dim": 16, "word_dropout": 0.0}, **model},
        "optim": {"steps": 3, "warmup": 0, "lr": 1e-3}, "ema": {"use": False}, "valid": {"every": 0},
        "samples": {"every": 0}, "checkpoint": {"every": 3}, "log": {"every": 1, "progress": False}})


def test_each_crop_carries_its_files_bpm(cache):
    store = TokenCache(cache)
    crops = TokenCrops(store, store.entries, 50, DescriptionConfig(0, 0, 0))
    by_path = {Path(e["path"]).stem: i for i, e in enumerate(crops.entries)}
    order = [by_path[str(i)] for i in range(len(BPMS))]
    _, texts, tempi = crops.batch(order, list(range(len(order))))
    expected = [90.0, 140.0, math.nan, math.nan, math.nan, 120.0]  # a word or a negative number is no bpm
    assert tempi.shape == (len(BPMS), 2)
    assert torch.allclose(tempi[:, 0], torch.tensor(expected), equal_nan=True)
    assert texts == [f"clicks {i}." for i in range(len(BPMS))]  # the same order


def test_config_refuses_tempo_rope_without_rope_or_with_hybrid(tmp_path, cache):
    with pytest.raises(InputError, match="tempo_periods beats needs model.tempo_rope"):
        _cfg(tmp_path / "c", cache, tempo_rope=False, tempo_periods="beats")
    with pytest.raises(InputError, match="tempo_rope needs model.positional_embedding rope"):
        _cfg(tmp_path / "a", cache, positional_embedding="sin")
    with pytest.raises(InputError, match="tempo_rope and model.hybrid"):
        _cfg(tmp_path / "b", cache, hybrid=True)


@pytest.mark.parametrize("periods", ["rope", "beats"])
def test_a_rope_lm_fine_tunes_into_tempo_rope_and_a_sin_one_is_refused(tmp_path, cache, fixture_dir, periods):
    rope = tiny_magnet_lm(0, positional_embedding="rope", card=64)
    source = write_export(rope, tmp_path / "rope", fixture_dir / "compression_state_dict.bin")
    meta = SimpleNamespace(n_q=4, card=64, frame_rate=50.0)
    lm = build_lm(_cfg(tmp_path / "ft", cache, init_from=str(source), tempo_periods=periods), meta)
    assert lm.cfg.tempo_rope and lm.transformer.tempo_rope and lm.cfg.tempo_periods == periods
    assert (lm.transformer.tempo_frequencies is not None) == (periods == "beats")
    assert all(torch.equal(v.float(), rope.state_dict()[k].half().float()) for k, v in lm.state_dict().items())
    with pytest.raises(InputError, match="needs a rope LM"):
        build_lm(_cfg(tmp_path / "sin", cache, init_from=str(fixture_dir)), meta)


def test_a_tempo_rope_run_trains_exports_our_format_and_generates(tmp_path, cache):
    run = tmp_path / "run"
    train(_cfg(run, cache))
    ckpt = load_checkpoint(list_checkpoints(run)[-1][1])
    assert ckpt["meta"]["lm_config"]["tempo_rope"] is True
    out = tmp_path / "export"
    with pytest.warns(UserWarning, match="not an audiocraft model: its tempo_rope positions are ours"):
        export(str(run), str(out))
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json"}  # audiocraft has no tempo_rope
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    assert model.lm.cfg.tempo_rope and model.lm.transformer.tempo_rope
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav = model.generate(["clicks at 100 bpm"])
    assert wav.shape[0] == 1 and torch.isfinite(wav).all()


def test_each_crop_carries_the_beat_at_its_first_frame(cache):
    """Files start on a beat: a crop starting ``start`` frames in starts start x bpm / 3000 beats in."""
    store = TokenCache(cache)
    crops = TokenCrops(store, store.entries, 50, DescriptionConfig(0, 0, 0))
    by_path = {Path(e["path"]).stem: i for i, e in enumerate(crops.entries)}
    index = by_path["1"]  # 140 bpm, 60 frames: crops start at frames 0-10
    seeds = list(range(40))
    _, _, tempi = crops.batch([index] * len(seeds), seeds)
    starts = [crops._crop(index, s)[2] for s in seeds]
    assert len(set(starts)) > 3  # the offsets vary
    assert torch.allclose(tempi[:, 1], torch.tensor(starts, dtype=torch.float32) * 140 / 3000)
    _, _, unknown = crops.batch([by_path["2"]], [0])  # no bpm: no beat either
    assert unknown[0].isnan().all()


def test_a_tempo_rope_lm_fine_tunes_into_beat_phase_trains_and_loads(tmp_path, cache, fixture_dir):
    trope = tiny_magnet_lm(0, positional_embedding="rope", tempo_rope=True, tempo_periods="beats", card=64)
    source = write_export(trope, tmp_path / "trope", fixture_dir / "compression_state_dict.bin")
    meta = SimpleNamespace(n_q=4, card=64, frame_rate=50.0)
    cfg = _cfg(tmp_path / "ft", cache, init_from=str(source), tempo_periods="beats", beat_phase=True)
    lm = build_lm(cfg, meta)
    assert lm.cfg.beat_phase and not lm.beat_phase.weight.any()  # a new zero map
    with pytest.raises(InputError, match="beat_phase needs model.tempo_rope"):
        _cfg(tmp_path / "no", cache, positional_embedding="rope", tempo_rope=False, beat_phase=True)
    run = tmp_path / "run"
    train(_cfg(run, cache, tempo_periods="beats", beat_phase=True))
    ckpt = load_checkpoint(list_checkpoints(run)[-1][1])
    assert ckpt["meta"]["lm_config"]["beat_phase"] is True
    out = tmp_path / "export"
    with pytest.warns(UserWarning, match="not an audiocraft model"):
        export(str(run), str(out))
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    assert model.lm.cfg.beat_phase and model.lm.beat_phase.weight.any()  # trained away from zero
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    assert torch.isfinite(model.generate(["clicks at 100 bpm"])).all()
