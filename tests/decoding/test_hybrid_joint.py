"""The paper's jointly trained Hybrid-MAGNeT: one network, a MAGNeT role and an autoregressive role.

The AR view shares the MAGNeT LM's parameters; joint training lowers both losses; the hybrid flag
survives export and loading; ``generate_hybrid`` without an AR model uses the model's own view.
"""

import json
import math
import random

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from magnet_audio import MAGNeT, load_compression_model
from magnet_audio.cli import main as cli_main
from magnet_audio.decoding.ar import ARGenerationParams, code_probabilities, generate_ar, generate_ar_reference
from magnet_audio.errors import InputError
from magnet_audio.lm import MagnetLMConfig
from magnet_audio.lm.musicgen import MusicGenLM
from magnet_audio.lm.patterns import build_delay_pattern
from magnet_audio.training.config import TrainConfig, from_dict, load_config
from magnet_audio.training.objectives import (MagnetObjective, hybrid_prefix_lengths, prefix_span_mask,
                                              span_mask)
from magnet_audio.training.runtime import list_checkpoints, load_checkpoint
from magnet_audio.training.tokens import CacheMeta, CacheWriter
from magnet_audio.training.trainer import train
from helpers import tiny_magnet_lm

CARD = 64  # the fixture codec's vocabulary


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _tiny_lm(hybrid=True, card=16, seed=0, segment=1.0):
    return tiny_magnet_lm(seed, train=True, card=card, segment_duration=segment, hybrid=hybrid)


# ---------------------------------------------------------------- the AR view

def test_ar_view_shares_the_magnet_parameters():
    lm = _tiny_lm()
    view = lm.ar_view()
    assert isinstance(view, MusicGenLM) and view.delays == [0, 1, 2, 3] and view.special_token_id == lm.mask_id
    ours, theirs = dict(lm.named_parameters()), dict(view.named_parameters())
    assert sorted(ours) == sorted(theirs) and len(ours) == len(list(lm.parameters()))
    assert all(theirs[k] is p and theirs[k].data_ptr() == p.data_ptr() for k, p in ours.items())
    with torch.no_grad():
        lm.linears[1].weight.add_(1.0)  # one tensor: a change through either is seen by both
    assert torch.equal(view.linears[1].weight, lm.linears[1].weight)
    assert view.cfg.segment_duration == lm.cfg.segment_duration and view.cfg.frame_rate == lm.cfg.frame_rate
    assert sorted(lm.state_dict()) == sorted(view.state_dict())  # registering the view adds no parameter


def test_ar_view_computes_what_a_separate_musicgen_with_the_same_weights_computes():
    lm = _tiny_lm(seed=1).eval()
    view = lm.ar_view()
    copy = MusicGenLM(view.cfg).eval()
    copy.load_state_dict(lm.state_dict(), strict=True)  # the layouts are the same, key for key
    seq = build_delay_pattern(torch.randint(0, 16, (2, 4, 9)), view.delays, view.special_token_id)
    memory = lm.encode_text(["warm pad", None])
    with torch.no_grad():
        torch.testing.assert_close(view(seq, memory), copy(seq, memory), rtol=0, atol=0)
        # causal: changing the last step changes no earlier output
        changed = seq.clone()
        changed[..., -1] = (changed[..., -1] + 1) % 16
        torch.testing.assert_close(view(changed, memory)[..., :-1, :], view(seq, memory)[..., :-1, :])


@pytest.mark.parametrize("use_memory,prompt_len", [(True, 0), (True, 5), (False, 0)])
def test_ar_view_greedy_cached_decoding_equals_full_recompute(use_memory, prompt_len):
    lm = _tiny_lm(seed=2).eval()
    view = lm.ar_view()
    memory = lm.encode_text(["warm pad", "drums", None, None]) if use_memory else None
    params = ARGenerationParams(use_sampling=False)
    prompt = torch.randint(0, 16, (2, 4, prompt_len)) if prompt_len else None
    fast = generate_ar(view, memory, params, 30, prompt=prompt, num_samples=2)
    slow = generate_ar_reference(view, memory, params, 30, prompt=prompt, num_samples=2)
    assert fast.shape == (2, 4, 30) and torch.equal(fast, slow)
    assert len(set(fast[0, 0].tolist())) > 3  # a non-trivial sequence


# ---------------------------------------------------------------- the joint objective

def test_prefix_lengths_and_prefix_span_masks():
    g = torch.Generator().manual_seed(0)
    lengths = hybrid_prefix_lengths(2000, 50, 3, 0.5, torch.device("cpu"), g)
    assert (lengths % 3 == 0).all() and set(lengths.tolist()) == set(range(0, 25, 3))  # 0 .. 8 spans, each drawn
    rates = torch.rand(6, generator=g)
    prefix = torch.tensor([0, 6, 6, 24, 0, 12])
    mask = prefix_span_mask(rates, prefix, 50, 3, torch.Generator().manual_seed(1))
    for b, P in enumerate(prefix.tolist()):
        assert not mask[b, :P].any() and mask[b, P:].any()  # the prefix stays visible, the rest has spans
    zero = torch.zeros(6, dtype=torch.long)  # no prefix: exactly MAGNeT's span mask, same random draws
    assert torch.equal(prefix_span_mask(rates, zero, 50, 3, torch.Generator().manual_seed(1)),
                       span_mask(rates, 50, 3, torch.Generator().manual_seed(1)))


def test_hybrid_step_has_both_finite_losses_and_keeps_the_prefix_visible():
    lm = _tiny_lm()
    objective = MagnetObjective(lm, cfg_dropout=0.0, ar_weight=0.5).train()
    seen = []
    lm.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    codes = torch.randint(0, 16, (4, 4, 30), generator=torch.Generator().manual_seed(0))
    loss, metrics = objective(codes, ["a", "b c", None, "d"], stage=1, generator=torch.Generator().manual_seed(3))
    assert {"ce", "ar_ce", "loss", "ce_stage1", "count"} <= set(metrics)
    assert math.isfinite(float(metrics["ce"])) and math.isfinite(float(metrics["ar_ce"]))
    assert float(loss.detach()) == pytest.approx(float(metrics["ce"]) + 0.5 * float(metrics["ar_ce"]), rel=1e-6)
    (inputs,) = seen  # the MAGNeT pass (the AR view is a different module, its hook is not called)
    masked = inputs == lm.mask_id
    prefixes = [int(masked[b, 3].nonzero()[0]) for b in range(4)]  # codebooks above the stage: masked after it
    assert any(prefixes) and all(P % 3 == 0 and P <= 15 for P in prefixes)
    for b, P in enumerate(prefixes):
        assert torch.equal(inputs[b, :, :P], codes[b, :, :P])  # the prefix is given in every codebook
        assert masked[b, 2:, P:].all() and masked[b, 1, P:].any()  # ... and only the rest is masked
    assert metrics["count"] == masked[:, 1].sum()  # scored: the masked stage tokens, none of the prefix
    # the AR cross-entropy is the teacher-forced likelihood the decoding code computes
    with torch.no_grad():
        probs = code_probabilities(lm.ar_view(), codes, lm.encode_text(["a", "b c", None, "d"]))
    assert float(metrics["ar_ce"]) == pytest.approx(float(-probs.log().mean()), rel=1e-4)
    loss.backward()
    assert all(p.grad is not None for p in objective.parameters())  # every parameter in the graph (DDP)


@pytest.mark.slow
def test_overfitting_one_batch_lowers_both_losses():
    lm = _tiny_lm(seed=3)
    objective = MagnetObjective(lm, cfg_dropout=0.0)
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 16, (4, 4, 6), generator=g)
    codes = base.repeat(1, 1, 5)  # [4, 4, 30]: a learnable, periodic batch
    texts = ["one", "two", "three", "four"]

    def measure():
        objective.eval()
        with torch.no_grad():
            _, m = objective(codes, texts, generator=torch.Generator().manual_seed(1), rng=random.Random(1))
        objective.train()
        return float(m["ce"]), float(m["ar_ce"])

    before = measure()
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for step in range(40):
        optimizer.zero_grad()
        loss, _ = objective(codes, texts, rng=random.Random(step))
        loss.backward()
        optimizer.step()
    after = measure()
    assert after[0] < before[0] - 0.5, (before, after)  # MAGNeT's masked CE
    assert after[1] < before[1] - 0.5, (before, after)  # the AR CE


# ---------------------------------------------------------------- config, training run, export

def test_config_flag_round_trips(tmp_path):
    cfg = _tiny_lm().cfg
    assert MagnetLMConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    xp = cfg.to_xp_cfg()
    assert xp["magnet_audio"] == {"hybrid": True} and MagnetLMConfig.from_xp_cfg(xp) == cfg
    plain = _tiny_lm(hybrid=False).cfg
    assert "magnet_audio" not in plain.to_xp_cfg() and not MagnetLMConfig.from_xp_cfg(plain.to_xp_cfg()).hybrid
    assert not MagnetLMConfig.from_dict({k: v for k, v in plain.to_dict().items() if k != "hybrid"}).hybrid
    train_cfg = load_config(None, ["data.train=x", "model.hybrid=true", "model.hybrid_ar_weight=0.5"])
    assert train_cfg.model.hybrid and train_cfg.model.hybrid_ar_weight == 0.5 and train_cfg.model.hybrid_max_prefix == 0.5
    with pytest.raises(InputError, match="hybrid_max_prefix"):
        load_config(None, ["data.train=x", "model.hybrid_max_prefix=1"])
    with pytest.raises(InputError, match="hybrid_ar_weight"):
        load_config(None, ["data.train=x", "model.hybrid_ar_weight=-1"])


def _token_cache(directory, codec_file, n=6, frames=60):
    meta = CacheMeta(codec=str(codec_file), sample_rate=32000, frame_rate=50.0, n_q=4, card=CARD, channels=1,
                     source="synthetic")
    rng = np.random.default_rng(0)
    with CacheWriter(directory, meta) as writer:
        for i in range(n):
            pattern = rng.integers(0, CARD, size=(4, 6))
            writer.add(f"item{i}.wav", np.tile(pattern, (1, frames // 6)), {"description": f"pattern {i % 3}"})
        writer.finish()
    return directory


def _train_config(run_dir, cache, steps, **sections):
    values = {
        "run_dir": str(run_dir), "seed": 0,
        "data": {"train": str(cache), "segment_duration": 1.0, "batch_size": 2, "valid_fraction": 0.3},
        "model": {"dim": 32, "num_heads": 2, "num_layers": 2, "hybrid": True, "hybrid_ar_weight": 1.0,
                  "conditioner": {"model": "lut", "n_bins": 64, "text_dim": 16, "word_dropout": 0.1}},
        "optim": {"steps": steps, "warmup": 0, "lr": 3e-3, "schedule": "constant"},
        "ema": {"every": 1, "decay": 0.9}, "valid": {"every": 2, "batches": 1}, "samples": {"every": 0},
        "checkpoint": {"every": 2, "keep_last": 2}, "log": {"every": 1, "progress": False},
    }
    for name, update in sections.items():
        values[name].update(update)
    return from_dict(TrainConfig, values)


@pytest.fixture(scope="module")
def hybrid_run(fixture_dir, tmp_path_factory):
    """A tiny hybrid LM trained for 4 updates on a synthetic token cache, and its export."""
    root = tmp_path_factory.mktemp("hybrid")
    cache = _token_cache(root / "cache", fixture_dir / "compression_state_dict.bin")
    train(_train_config(root / "run", cache, steps=4))
    out = root / "exported"
    assert cli_main(["export", str(root / "run"), str(out)]) == 0
    return root, cache, out


def test_training_logs_both_losses_and_resumes_bit_for_bit(hybrid_run):
    root, cache, _ = hybrid_run
    rows = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    for split in ("train", "valid"):
        assert all({"ce", "ar_ce"} <= set(r) and math.isfinite(r["ar_ce"]) for r in rows if r["split"] == split)
    assert [r["step"] for r in rows if r["split"] == "valid"] == [0, 2, 4]
    ckpt = load_checkpoint(list_checkpoints(root / "run")[-1][1])
    assert ckpt["meta"]["lm_config"]["hybrid"] is True
    # stop after 2 updates, resume to 4: the same weights as the straight run
    train(_train_config(root / "resumed", cache, steps=2))
    train(_train_config(root / "resumed", cache, steps=4), resume=True)
    resumed = load_checkpoint(list_checkpoints(root / "resumed")[-1][1])
    assert resumed["step"] == 4
    for key, value in ckpt["objective"].items():
        assert torch.equal(value, resumed["objective"][key]), key


def test_export_marks_the_model_hybrid_and_keeps_the_weights(hybrid_run, tmp_path):
    root, _, out = hybrid_run
    assert json.loads((out / "config.json").read_text())["lm"]["hybrid"] is True
    xp = yaml.safe_load(torch.load(out / "state_dict.bin", weights_only=True)["xp.cfg"])
    assert xp["lm_model"] == "transformer_lm_magnet" and xp["magnet_audio"] == {"hybrid": True}
    model = MAGNeT.get_pretrained(str(out), device="cpu")
    assert model.lm.cfg.hybrid
    ema = load_checkpoint(list_checkpoints(root / "run")[-1][1])["ema"]["state"]
    assert all(torch.equal(model.lm.state_dict()[k], v) for k, v in ema.items())
    audiocraft_only = tmp_path / "audiocraft"  # audiocraft's files alone: the flag comes from xp.cfg
    audiocraft_only.mkdir()
    for name in ("state_dict.bin", "compression_state_dict.bin"):
        (audiocraft_only / name).write_bytes((out / name).read_bytes())
    assert MAGNeT.get_pretrained(str(audiocraft_only), device="cpu").lm.cfg.hybrid


# ---------------------------------------------------------------- generation with the model's own AR view

def test_generate_hybrid_with_its_own_ar_view(hybrid_run, monkeypatch):
    import magnet_audio.decoding.hybrid as hybrid

    prefixes = []

    def recording(*args, **kwargs):
        out = generate_ar(*args, **kwargs)
        prefixes.append((args[0], out))
        return out

    monkeypatch.setattr(hybrid, "generate_ar", recording)
    model = MAGNeT.get_pretrained(str(hybrid_run[2]), device="cpu")
    model.set_generation_params(use_sampling=False, decoding_steps=[2, 1, 1, 1])
    texts = ["pattern 1", "pattern 2"]
    wav, codes = model.generate_hybrid(texts, prefix_seconds=0.4, return_tokens=True)
    again = model.generate_hybrid(texts, prefix_seconds=0.4, return_tokens=True)[1]
    assert codes.shape == (2, 4, 48) and wav.shape == (2, 1, 48 * 640)
    assert torch.equal(codes, again)  # greedy: deterministic
    (ar_lm, prefix), _ = prefixes
    assert isinstance(ar_lm, MusicGenLM) and ar_lm.linears[0].weight is model.lm.linears[0].weight
    assert prefix.shape == (2, 4, 20) and torch.equal(codes[..., :20], prefix)  # kept verbatim by MAGNeT
    memory = model.lm.encode_text(texts + [None, None])
    assert torch.equal(prefix, generate_ar(model.lm.ar_view(), memory, ARGenerationParams(use_sampling=False), 20))


def test_a_plain_magnet_needs_an_ar_model(fixture_dir):
    codec = load_compression_model(str(fixture_dir / "compression_state_dict.bin"), device="cpu")
    model = MAGNeT("plain", codec, _tiny_lm(hybrid=False, card=CARD).eval())
    with pytest.raises(InputError, match="plain is not a hybrid model"):
        model.generate_hybrid(["x"], prefix_seconds=0.4)


@pytest.mark.slow
def test_cli_hybrid_ar_self(hybrid_run, fixture_dir, tmp_path, capsys):
    common = ["--steps", "2,1,1,1", "--seed", "0", "-q", "--hybrid-ar", "self", "--hybrid-prefix-seconds", "0.3"]
    assert cli_main(["generate", "pattern 1", "--model", str(hybrid_run[2]), "-o", str(tmp_path / "h")] + common) == 0
    assert len(sf.read(next((tmp_path / "h").glob("*.wav")))[0]) == 48 * 640
    assert cli_main(["generate", "x", "--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"),
                     "-o", str(tmp_path / "plain")] + common) == 2
    assert "not a hybrid model" in capsys.readouterr().err
