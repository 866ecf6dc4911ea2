"""The autoregressive side: MusicGen LM checkpoints, the delay pattern, cached decoding vs a full
recompute, long-form sliding windows, and the MusicGen API."""

import shutil

import pytest
import torch
import yaml

from magnet_audio import MusicGen
from magnet_audio.checkpoints import load_export
from magnet_audio.decoding.ar import ARGenerationParams, code_probabilities, generate_ar, generate_ar_reference
from magnet_audio.errors import CheckpointError, InputError
from magnet_audio.lm.loading import load_musicgen_lm
from magnet_audio.lm.musicgen import MusicGenLMConfig
from magnet_audio.lm.patterns import build_delay_pattern, delay_valid_mask, revert_delay_logits, revert_delay_pattern
from magnet_audio.lm.transformer import causal_mask
from helpers import fixture_sized_musicgen_lm, tiny_musicgen_lm, write_export

S = 99  # the special token in the hand-computed examples


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def musicgen(fixture_dir, tmp_path_factory):
    directory = write_export(fixture_sized_musicgen_lm(), tmp_path_factory.mktemp("mg") / "model",
                             fixture_dir / "compression_state_dict.bin")
    return MusicGen.get_pretrained(str(directory), device="cpu", t5_path=fixture_dir / "t5")


# ---------------------------------------------------------------- checkpoint format

def test_state_dict_layout_is_audiocraft_lm_layout(fixture_dir):
    """audiocraft's MusicGen LMModel and MagnetLMModel have the same parameters (MAGNeT adds none);
    the fixture's state_dict.bin was written by audiocraft itself."""
    reference, _ = load_export(fixture_dir / "state_dict.bin")
    ours = fixture_sized_musicgen_lm().state_dict()
    assert sorted(ours) == sorted(reference)
    assert all(ours[k].shape == reference[k].shape for k in reference)


def _audiocraft_musicgen_cfg(fixture_dir) -> dict:
    """The fixture's real xp.cfg turned into a MusicGen one by musicgen_lm.yaml's settings."""
    _, cfg = load_export(fixture_dir / "state_dict.bin")
    cfg["lm_model"] = "transformer_lm"
    for key in ("subcodes_context", "compression_model_framerate", "segment_duration", "span_len"):
        cfg["transformer_lm"].pop(key)
    cfg["transformer_lm"]["causal"] = True
    cfg["codebooks_pattern"] = {"modeling": "delay",
                                "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0, "empty_initial": 0},
                                "unroll": {"flattening": [0, 1, 2, 3], "delays": [0, 0, 0, 0]},
                                "music_lm": {"group_by": 2}, "coarse_first": {"delays": [0, 0, 0]}}
    cfg.pop("masking")
    cfg["dataset"]["segment_duration"] = 30
    return cfg


def test_xp_cfg_is_read_and_written_in_audiocraft_layout(fixture_dir):
    real = _audiocraft_musicgen_cfg(fixture_dir)
    cfg = MusicGenLMConfig.from_xp_cfg(real)
    assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.n_q, cfg.card, cfg.delays) == (64, 4, 2, 4, 64, [0, 1, 2, 3])
    assert (cfg.segment_duration, cfg.cfg_coef, cfg.cfg_dropout) == (30, 3.0, 0.3)
    assert cfg.conditioner.model == "t5" and cfg.conditioner.name == "t5-base"
    ours = cfg.to_xp_cfg()
    for section in ("transformer_lm", "codebooks_pattern", "fuser", "classifier_free_guidance", "conditioners"):
        assert set(ours[section]) == set(real[section]), section
    assert ours["transformer_lm"] == real["transformer_lm"]
    assert MusicGenLMConfig.from_xp_cfg(ours) == cfg
    assert MusicGenLMConfig.from_dict(cfg.to_dict()) == cfg
    rope = MusicGenLMConfig.from_xp_cfg({**real, "transformer_lm": {**real["transformer_lm"],
                                                                    "positional_embedding": "sin_rope"}})
    assert rope.positional_embedding == "sin_rope" and MusicGenLMConfig.from_xp_cfg(rope.to_xp_cfg()) == rope


def _melody(cfg):
    cfg["conditioners"]["self_wav"] = {"model": "chroma_stem", "chroma_stem": {"sample_rate": 32000}}
    cfg["fuser"].update(prepend=["self_wav", "description"], cross=[])


@pytest.mark.parametrize("change,message", [
    (_melody, "self_wav"),
    (lambda c: c.update(lm_model="transformer_lm_magnet"), "MAGNeT"),
    (lambda c: c["codebooks_pattern"].update(modeling="parallel"), "codebooks_pattern"),
    (lambda c: c["codebooks_pattern"]["delay"].update(flatten_first=2), "flatten_first"),
    (lambda c: c["transformer_lm"].update(causal=False), "causal"),
    (lambda c: c["transformer_lm"].update(positional_embedding="alibi"), "positional_embedding"),
    (lambda c: c.pop("dataset"), "dataset"),
])
def test_unsupported_configs_are_refused(fixture_dir, change, message):
    cfg = _audiocraft_musicgen_cfg(fixture_dir)
    change(cfg)
    with pytest.raises(CheckpointError, match=message):
        MusicGenLMConfig.from_xp_cfg(cfg)


def test_melody_checkpoint_is_refused_on_load(tmp_path, fixture_dir):
    cfg = _audiocraft_musicgen_cfg(fixture_dir)
    _melody(cfg)
    (tmp_path / "m").mkdir()
    torch.save({"best_state": fixture_sized_musicgen_lm().state_dict(), "xp.cfg": yaml.safe_dump(cfg)},
               tmp_path / "m" / "state_dict.bin")
    shutil.copy(fixture_dir / "compression_state_dict.bin", tmp_path / "m")
    with pytest.raises(CheckpointError, match="melody"):
        MusicGen.get_pretrained(str(tmp_path / "m"), device="cpu")
    with pytest.raises(CheckpointError, match="MAGNeT"):
        MusicGen.get_pretrained(str(fixture_dir), device="cpu")


def test_export_loads_fp16_into_float32(tmp_path, fixture_dir):
    lm = fixture_sized_musicgen_lm(seed=3)
    write_export(lm, tmp_path / "m", fixture_dir / "compression_state_dict.bin")
    loaded = load_musicgen_lm(tmp_path / "m", device="cpu", t5_path=fixture_dir / "t5")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.equal(loaded.linears[2].weight, lm.linears[2].weight.half().float())
    assert loaded.cfg.delays == [0, 1, 2, 3] and loaded.cfg.max_len == 100


# ---------------------------------------------------------------- the delay pattern, by hand

def test_delay_pattern_build_and_revert_by_hand():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]])
    expected = torch.tensor([[[S, 1, 2, 3, S, S, S],
                              [S, S, 4, 5, 6, S, S],
                              [S, S, S, 7, 8, 9, S],
                              [S, S, S, S, 10, 11, 12]]])
    seq = build_delay_pattern(codes, [0, 1, 2, 3], S)
    assert torch.equal(seq, expected)
    assert torch.equal(revert_delay_pattern(seq, [0, 1, 2, 3]), codes)
    assert torch.equal(delay_valid_mask(3, [0, 1, 2, 3]), expected[0] != S)
    # other delays: [0, 0, 2] puts two codebooks in parallel
    seq = build_delay_pattern(codes[:, :3, :2], [0, 0, 2], S)
    assert seq.tolist() == [[[S, 1, 2, S, S], [S, 4, 5, S, S], [S, S, S, 7, 8]]]


def test_delay_logits_are_taken_one_step_before_each_code():
    # output step s predicts step s + 1: the logits of code (k, t) come from step t + delay_k
    out = torch.arange(4 * 6, dtype=torch.float).view(1, 4, 6, 1)  # value = 6 k + s
    logits = revert_delay_logits(out, [0, 1, 2, 3], length=3)[0, ..., 0]
    assert logits.tolist() == [[0, 1, 2], [7, 8, 9], [14, 15, 16], [21, 22, 23]]


def test_causal_mask_with_a_cache():
    assert causal_mask(2, past=3).tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize("use_memory,prompt_len", [(True, 0), (True, 7), (False, 0)])
def test_greedy_cached_decoding_equals_full_recompute(use_memory, prompt_len):
    lm = tiny_musicgen_lm()
    memory = lm.encode_text(["warm pad", "drums", None, None]) if use_memory else None
    params = ARGenerationParams(use_sampling=False)
    prompt = torch.randint(0, 16, (2, 4, prompt_len)) if prompt_len else None
    fast = generate_ar(lm, memory, params, 40, prompt=prompt, num_samples=2)
    slow = generate_ar_reference(lm, memory, params, 40, prompt=prompt, num_samples=2)
    assert fast.shape == (2, 4, 40) and (fast >= 0).all() and (fast < 16).all()
    assert torch.equal(fast, slow)
    assert len(set(fast[0, 0].tolist())) > 3  # a non-trivial sequence
    if prompt is not None:
        assert torch.equal(fast[..., :prompt_len], prompt)


def test_sampled_cached_decoding_equals_full_recompute_for_a_seed():
    lm = tiny_musicgen_lm(1)
    memory = lm.encode_text(["a", None])
    params = ARGenerationParams(top_k=5, temperature=1.2)
    torch.manual_seed(11)
    fast = generate_ar(lm, memory, params, 30)
    torch.manual_seed(11)
    slow = generate_ar_reference(lm, memory, params, 30)
    torch.manual_seed(12)
    other = generate_ar(lm, memory, params, 30)
    assert torch.equal(fast, slow) and not torch.equal(fast, other)


@pytest.mark.parametrize("positions", ["sin", "rope", "sin_rope"])
def test_cached_hidden_states_equal_causal_full_pass(positions):
    lm = tiny_musicgen_lm(num_layers=3, positional_embedding=positions)
    seq = torch.randint(0, 17, (2, 4, 12))
    memory = lm.encode_text(["x y", "z"])
    with torch.no_grad():
        full = lm.hidden(seq, memory)
        cache = lm.new_cache(12)
        parts = [lm.hidden(seq[..., :5], memory, cache=cache)] + [
            lm.hidden(seq[..., t:t + 1], memory, cache=cache) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 12


def test_code_probabilities_match_per_code_prefix_passes():
    lm = tiny_musicgen_lm(2)
    memory = lm.encode_text(["a", "b", None, None])
    codes = torch.randint(0, 16, (2, 4, 9))
    probs = code_probabilities(lm, codes, memory, cfg_coef=2.0)
    seq = build_delay_pattern(codes, lm.delays, lm.special_token_id)
    with torch.no_grad():
        for k, d in enumerate(lm.delays):
            for t in (0, 4, 8):
                prefix = seq[..., :t + 1 + d]
                cond, uncond = lm(torch.cat([prefix, prefix]), memory)[:, k, -1].split(2)
                expected = torch.softmax(uncond + (cond - uncond) * 2.0, -1).gather(-1, codes[:, k, t, None])[:, 0]
                torch.testing.assert_close(probs[:, k, t], expected, atol=1e-5, rtol=1e-4)


def test_top_k_larger_than_the_vocabulary_is_clamped():
    lm = tiny_musicgen_lm()
    codes = generate_ar(lm, None, ARGenerationParams(top_k=250), 10)  # audiocraft's default k, card 16
    assert codes.shape == (1, 4, 10)


# ---------------------------------------------------------------- the MusicGen API

def test_loaded_model_generates_like_the_reference(musicgen):
    assert musicgen.max_duration == 2 and musicgen.duration == 2  # min(15 s, the segment)
    assert musicgen.sample_rate == 32000 and musicgen.frame_rate == 50
    musicgen.set_generation_params(use_sampling=False, duration=0.6)
    wav, codes = musicgen.generate(["lofi beat", "calm piano"], return_tokens=True)
    assert codes.shape == (2, 4, 30) and wav.shape == (2, 1, 30 * 640)
    memory = musicgen.lm.encode_text(["lofi beat", "calm piano", None, None])
    expected = generate_ar_reference(musicgen.lm, memory, ARGenerationParams(use_sampling=False), 30)
    assert torch.equal(codes, expected)


def test_defaults_and_progress(musicgen):
    musicgen.set_generation_params(duration=0.2)
    params = musicgen.generation_params
    assert (params.use_sampling, params.top_k, params.top_p, params.temperature, params.cfg_coef) == \
        (True, 250, 0.0, 1.0, 3.0)
    calls = []
    musicgen.set_custom_progress_callback(lambda step, total: calls.append((step, total)))
    musicgen.generate_unconditional(2)
    musicgen.set_custom_progress_callback(None)
    assert calls == [(i, 13) for i in range(1, 14)]  # 10 frames + 3 delay steps, as audiocraft counts


def test_continuation_keeps_the_prompt(musicgen, reference):
    musicgen.set_generation_params(use_sampling=False, duration=1.0)
    prompt = reference["wav"][:, :, :16000]  # 0.5 s = 25 frames
    wav, codes = musicgen.generate_continuation(prompt, 32000, ["a", "b"], return_tokens=True)
    prompt_codes, _ = musicgen.compression_model.encode(prompt)
    assert codes.shape == (2, 4, 50) and torch.equal(codes[..., :25], prompt_codes)


def test_long_form_slides_windows_prompted_by_the_previous_tail(musicgen, monkeypatch):
    import magnet_audio.musicgen as module

    windows = []

    def recording(lm, memory, params, max_len, prompt=None, **kwargs):
        out = generate_ar(lm, memory, params, max_len, prompt=prompt, **kwargs)
        windows.append((max_len, None if prompt is None else prompt.clone(), out))
        return out

    monkeypatch.setattr(module, "generate_ar", recording)
    musicgen.set_generation_params(use_sampling=False, duration=5.0, extend_stride=1.2)
    calls = []
    musicgen.set_custom_progress_callback(lambda step, total: calls.append((step, total)))
    codes = musicgen.generate(["lofi beat"], return_tokens=True)[1]
    musicgen.set_custom_progress_callback(None)
    assert codes.shape == (1, 4, 250)
    assert calls == [(i, 103 + 63 + 63 + 33) for i in range(1, 263)]  # new frames + 3 delay steps per window
    # audiocraft's schedule: windows start every 60 frames, span <= 100, prompted with 40 frames
    assert [w[0] for w in windows] == [100, 100, 100, 70]
    assert windows[0][1] is None
    for (_, _, previous), (_, prompt, _) in zip(windows, windows[1:]):
        assert torch.equal(prompt, previous[..., 60:])  # the prompt is the previous window's tail
    pieces = [windows[0][2]] + [out[..., 40:] for _, _, out in windows[1:]]
    assert torch.equal(codes, torch.cat(pieces, dim=-1))


def test_long_form_continuation_keeps_the_prompt(musicgen, reference):
    musicgen.set_generation_params(use_sampling=False, duration=2.6, extend_stride=1.5)
    prompt = reference["wav"][:1, :, :16000]
    codes = musicgen.generate_continuation(prompt, 32000, return_tokens=True)[1]
    assert codes.shape == (1, 4, 130)
    assert torch.equal(codes[..., :25], musicgen.compression_model.encode(prompt)[0])


@pytest.mark.parametrize("call,message", [
    (lambda m: m.generate([]), "empty"),
    (lambda m: m.set_generation_params(duration=0), "duration"),
    (lambda m: m.set_generation_params(duration=10, extend_stride=2), "extend_stride"),
    (lambda m: m.set_generation_params(top_p=2), "top_p"),
    (lambda m: m.generate_unconditional(0), "positive"),
])
def test_bad_input_is_reported(musicgen, call, message):
    with pytest.raises(InputError, match=message):
        call(musicgen)


def test_prompt_longer_than_the_duration_is_refused(musicgen, reference):
    musicgen.set_generation_params(duration=0.4)
    with pytest.raises(InputError, match="shorter"):
        musicgen.generate_continuation(reference["wav"][:1, :, :16000], 32000)
