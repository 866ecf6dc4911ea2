"""Tempo-relative rotary positions (``tempo_rope``): half of the rotary channel pairs count beats.

The LM, its config, the training objective and decoding (generation, continuation, edits, fast mode)."""

import math

import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.codec import load_compression_model
from magnet_audio.conditioning.tempo import tempo_from_tokens
from magnet_audio.decoding import GenerationParams, generate_codes
from magnet_audio.decoding import magnet as decoding_magnet
from magnet_audio.decoding.guidance import CachedGuidance
from magnet_audio.decoding.params import FastOptions
from magnet_audio.errors import InputError
from magnet_audio.lm import MagnetLMConfig
from magnet_audio.lm.base import audiocraft_blockers
from magnet_audio.lm.transformer import beat_frequencies, rope_rotation, tempo_scale
from magnet_audio.training.objectives import MagnetObjective
from helpers import tiny_magnet_lm

pytestmark = pytest.mark.usefixtures("one_thread")

HEAD_DIM, FRAME_RATE = 16, 50


def _pair_lm(seed=0, **config):
    """(rope LM, the same weights with tempo_rope)."""
    rope = tiny_magnet_lm(seed, positional_embedding="rope", **config)
    trope = tiny_magnet_lm(seed, positional_embedding="rope", tempo_rope=True, **config)
    trope.load_state_dict(rope.state_dict())
    return rope, trope


def test_odd_pairs_count_beats_even_pairs_count_frames():
    positions = torch.arange(200)
    plain = rope_rotation(positions, HEAD_DIM)  # [T, 8]
    angles = rope_rotation(positions, HEAD_DIM, tempo_scale=torch.tensor([1.0, 0.75, 1.25]))  # [3, T, 8]
    assert angles.shape == (3, 200, HEAD_DIM // 2)
    assert torch.equal(angles[0], plain)  # 120 bpm is plain rope
    for row, scale in enumerate((0.75, 1.25), start=1):
        assert torch.equal(angles[row][:, 0::2], plain[:, 0::2])
        assert torch.allclose(angles[row][:, 1::2], plain[:, 1::2] * scale)
    # one beat back (frame_rate * 60 / bpm frames: 33.3 at 90 bpm, 20 at 150) turns the odd pairs by the same
    # angle at every tempo: 25 frames' worth, one beat at 120 bpm
    for bpm in (90.0, 150.0):
        beat = FRAME_RATE * 60 / bpm
        a = rope_rotation(torch.tensor([100.0, 100.0 - beat]), HEAD_DIM, tempo_scale=torch.tensor([bpm / 120]))[0]
        ref = rope_rotation(torch.tensor([25.0, 0.0]), HEAD_DIM)
        assert torch.allclose((a[0] - a[1])[1::2], (ref[0] - ref[1])[1::2], atol=1e-4)
        assert not torch.allclose((a[0] - a[1])[0::2], (ref[0] - ref[1])[0::2], atol=1e-3)  # frames: not a beat


def test_beat_periods_turn_the_tempo_pairs_by_whole_turns_every_beat_at_any_tempo():
    frequencies = beat_frequencies(HEAD_DIM, FRAME_RATE)  # 4 pairs: every 1/4, 3/8, 1/2, 3/4 beat
    assert frequencies.shape == (HEAD_DIM // 4,)
    assert torch.allclose(frequencies * 25, 2 * math.pi / torch.tensor([0.25, 0.375, 0.5, 0.75]))  # 25 frames a beat
    for bpm in (75.0, 128.0):
        beat = FRAME_RATE * 60 / bpm
        a = rope_rotation(torch.tensor([0.0, 3 * beat]), HEAD_DIM, tempo_scale=torch.tensor([bpm / 120]),
                          tempo_frequencies=frequencies)[0]
        turned = (a[1] - a[0])[1::2]  # three beats: whole turns for every period that divides 3 beats
        assert torch.allclose(torch.cos(turned[[0, 1, 2, 3]]), torch.ones(4), atol=1e-4)
        half = rope_rotation(torch.tensor([0.0, beat / 2]), HEAD_DIM, tempo_scale=torch.tensor([bpm / 120]),
                             tempo_frequencies=frequencies)[0]
        # half a beat: two turns of the 1/4-beat pair, two thirds of a turn of the 3/4-beat pair
        assert torch.allclose(torch.cos((half[1] - half[0])[1::2][[0, 3]]), torch.tensor([1.0, -0.5]), atol=1e-4)
    assert len(beat_frequencies(64, 50)) == 16 and torch.allclose(  # the 16 pairs of a 64-d head: 1/4 to 48 beats
        2 * math.pi / (beat_frequencies(64, 50) * 25), torch.tensor([0.25, 0.375, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8,
                                                                      12, 16, 24, 32, 48.0]))


def test_a_rope_lm_turned_into_a_beat_periods_lm_matches_one_built_so():
    rope, _ = _pair_lm()
    beats = tiny_magnet_lm(0, positional_embedding="rope", tempo_rope=True, tempo_periods="beats")
    beats.load_state_dict(rope.state_dict())
    codes, memory = torch.randint(0, 16, (2, 4, 50)), rope.encode_text(["a", "b"])
    plain = rope(codes, memory, stage=0)
    rope.use_tempo_positions("beats")
    assert rope.cfg.tempo_rope and rope.cfg.tempo_periods == "beats"
    for tempo in (None, torch.tensor([90.0, 140.0])):
        assert torch.equal(rope(codes, memory, stage=0, tempo=tempo), beats(codes, memory, stage=0, tempo=tempo))
    assert not torch.allclose(beats(codes, memory, stage=0), plain, atol=1e-4)  # not plain rope, even at 120
    assert MagnetLMConfig.from_dict(beats.cfg.to_dict()).tempo_periods == "beats"
    with pytest.raises(ValueError, match="needs tempo_rope"):
        tiny_magnet_lm(0, positional_embedding="rope", tempo_periods="beats")
    with pytest.raises(ValueError, match="rope or beats"):
        tiny_magnet_lm(0, positional_embedding="rope", tempo_rope=True, tempo_periods="bars")
    with pytest.raises(ValueError, match="rope or beats"):
        beats.use_tempo_positions("bars")
    assert beats.cfg.tempo_periods == "beats" and beats.transformer.tempo_frequencies is not None  # unchanged


def test_tempo_scale_reads_nan_as_120_and_refuses_bad_tempi():
    assert tempo_scale(torch.tensor([60.0, math.nan, 180.0]), 3, torch.device("cpu")).tolist() == [0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="one tempo per row"):
        tempo_scale(torch.tensor([120.0]), 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="positive bpm"):
        tempo_scale(torch.tensor([-90.0]), 1, torch.device("cpu"))


def test_tempo_rope_lm_is_rope_at_120_bpm_and_differs_at_other_tempi():
    rope, trope = _pair_lm()
    codes = torch.randint(0, 16, (2, 4, 50))
    memory = rope.encode_text(["piano", "drums"])
    plain = rope(codes, memory, stage=0)
    assert torch.equal(trope(codes, memory, stage=0), plain)  # no tempo: 120
    assert torch.allclose(trope(codes, memory, stage=0, tempo=torch.tensor([120.0, math.nan])), plain, atol=1e-6)
    other = trope(codes, memory, stage=0, tempo=torch.tensor([90.0, 150.0]))
    assert not torch.allclose(other, plain, atol=1e-3)
    assert torch.equal(rope(codes, memory, stage=0, tempo=torch.tensor([90.0, 150.0])), plain)  # rope LMs ignore it
    # each row has its own tempo: row 0 at 90 bpm does not depend on row 1's
    alone = trope(codes[:1], memory[:1], stage=0, tempo=torch.tensor([90.0]))
    assert torch.allclose(alone, other[:1], atol=1e-5)


def test_config_round_trips_and_refuses_what_cannot_carry_a_tempo():
    cfg = tiny_magnet_lm(0, positional_embedding="rope", tempo_rope=True).cfg
    assert MagnetLMConfig.from_dict(cfg.to_dict()).tempo_rope is True
    assert MagnetLMConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "tempo_rope"}).tempo_rope is False
    assert any("tempo_rope" in reason for reason in audiocraft_blockers(cfg))  # no audiocraft files are written
    with pytest.raises(ValueError, match="needs positional_embedding rope"):
        tiny_magnet_lm(0, positional_embedding="sin", tempo_rope=True)
    with pytest.raises(ValueError, match="needs positional_embedding rope"):
        tiny_magnet_lm(0, positional_embedding="sin_rope", tempo_rope=True)
    with pytest.raises(ValueError, match="hybrid"):
        tiny_magnet_lm(0, positional_embedding="rope", tempo_rope=True, hybrid=True)


def test_the_objective_trains_each_crop_at_its_files_tempo():
    rope, trope = _pair_lm()
    codes = torch.randint(0, 16, (2, 4, 50))

    def loss(lm, tempi):
        objective = MagnetObjective(lm, cfg_dropout=0.0).eval()
        # stage 2: codebooks 0 and 1 visible (were every input the mask token, attention could not tell positions)
        with torch.no_grad():
            return objective(codes, ["a", "b"], tempi, stage=2, generator=torch.Generator().manual_seed(3))[0]

    at_120 = loss(trope, torch.tensor([120.0, math.nan]))
    assert torch.allclose(at_120, loss(rope, None), atol=1e-6)
    # a random tiny LM barely uses positions: the tempo moves its loss by ~1e-4, far above float noise (0 here)
    assert abs(float(loss(trope, torch.tensor([80.0, 160.0])) - at_120)) > 1e-6
    assert torch.equal(loss(rope, torch.tensor([80.0, 160.0])), loss(rope, None))  # plain rope ignores tempi


class _TempoSpy:
    """Records the tempo each LM pass gets."""

    def __init__(self, lm):
        self.inner, self.tempi = lm.hidden, []
        lm.hidden = self

    def __call__(self, *args, tempo=None, **kwargs):
        self.tempi.append(None if tempo is None else tempo.tolist())
        return self.inner(*args, tempo=tempo, **kwargs)


@pytest.fixture(scope="module")
def model(fixture_dir):
    codec = load_compression_model(str(fixture_dir / "compression_state_dict.bin"), device="cpu")
    lm = tiny_magnet_lm(0, card=64, positional_embedding="rope", tempo_rope=True, segment_duration=1.0)
    return MAGNeT("tiny-trope", codec, lm)


def _nan_to_none(rows):
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows]


def test_generation_continuation_and_edits_decode_at_the_prompts_tempo(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1], use_sampling=False)
    spy = _TempoSpy(model.lm)
    try:
        model.generate(["drums at 96 bpm", "ambient pads"])
        # the conditional rows, then the null rows at the same tempo
        assert set(map(tuple, _nan_to_none(spy.tempi))) == {(96.0, None, 96.0, None)}
        spy.tempi.clear()
        prompt = torch.zeros(1, 1, 16000)
        model.generate_continuation(prompt, 32000, ["a fast beat"])
        assert set(map(tuple, spy.tempi)) == {(130.0, 130.0)}  # "fast": the middle of 110-150 bpm
        spy.tempi.clear()
        model.generate_inpainting(torch.zeros(1, 1, 32000), 32000, ["tempo 150 groove"], [(0.3, 0.6)])
        assert spy.tempi and set(map(tuple, spy.tempi)) == {(150.0, 150.0)}
    finally:
        model.lm.hidden = spy.inner


def test_cached_guidance_passes_the_tempo_as_exact_guidance_does(model, monkeypatch):
    """Fast mode's machinery (:class:`CachedGuidance`) at its exact settings decodes the tokens exact
    decoding does at these tempi; with partial passes (rows of a cache) 120 bpm is plain rope."""
    lm, memory = model.lm, model.lm.encode_text(["x", "y", None, None])
    params = GenerationParams(decoding_steps=[3, 2, 2, 2], use_sampling=False)
    tempo = torch.tensor([90.0, 150.0])
    exact = generate_codes(lm, memory, params, 48, tempo=tempo)
    assert not torch.equal(generate_codes(lm, memory, params, 48), exact)  # the tempo changes what is decoded
    with monkeypatch.context() as patch:
        patch.setattr(decoding_magnet, "make_guidance", CachedGuidance)
        assert torch.equal(generate_codes(lm, memory, params, 48, tempo=tempo), exact)
    partial = GenerationParams(decoding_steps=[6, 3, 3, 3], use_sampling=False,
                               fast=FastOptions(kv_cache_refresh=3, cfg_null_refresh=2))
    at_120 = generate_codes(lm, memory, partial, 48, tempo=torch.tensor([120.0, math.nan]))
    assert torch.equal(at_120, generate_codes(lm, memory, partial, 48))
    assert not torch.equal(generate_codes(lm, memory, partial, 48, tempo=tempo), at_120)
    with pytest.raises(InputError, match="one tempo per row"):
        generate_codes(lm, memory, params, 48, tempo=torch.tensor([90.0]))
    with pytest.raises(InputError, match="positive bpm"):
        generate_codes(lm, memory, params, 48, tempo=torch.tensor([90.0, -5.0]))


def _periodic_tokens(bpm, T=150, noise=0.5, seed=0):
    """First-codebook tokens [T] of a pattern of 12 slots a beat at ``bpm`` (50 frames a second), a
    share ``noise`` of them replaced by random ones."""
    g = torch.Generator().manual_seed(seed)
    beat = FRAME_RATE * 60 / bpm
    pattern = torch.randint(0, 256, (12,), generator=g)
    tokens = pattern[((torch.arange(T) % beat) / beat * 12).long()]
    return torch.where(torch.rand(T, generator=g) < noise, torch.randint(0, 256, (T,), generator=g), tokens)


def test_the_tempo_of_a_continuation_prompt_is_read_from_its_repeating_tokens():
    tokens = torch.stack([_periodic_tokens(bpm, seed=i) for i, bpm in enumerate((72, 90, 128, 150))])
    assert torch.allclose(tempo_from_tokens(tokens, FRAME_RATE), torch.tensor([72.0, 90, 128, 150], dtype=torch.float64),
                          atol=2)
    noise = torch.randint(0, 256, (1, 150), generator=torch.Generator().manual_seed(9))
    drone = torch.full((1, 150), 7)
    assert tempo_from_tokens(noise, FRAME_RATE).isnan().all() and tempo_from_tokens(drone, FRAME_RATE).isnan().all()
    assert tempo_from_tokens(tokens[:, :90], FRAME_RATE).isnan().all()  # under two beats of 60 bpm


def test_the_texts_tempo_wins_and_the_prompt_audios_fills_in_where_it_names_none(model):
    heard = _periodic_tokens(140)
    noise = torch.randint(0, 64, (150,), generator=torch.Generator().manual_seed(3))
    prompt = torch.stack([heard, heard, heard, noise])[:, None].expand(-1, 4, -1)  # [B, K, P]
    tempo = model.decoding_tempo(["at 96 bpm", "a fast beat", None, None], prompt)
    assert _nan_to_none([tempo.tolist()]) == [[96.0, 130.0, pytest.approx(140.0, abs=1), None]]
    assert _nan_to_none([model.decoding_tempo(["a fast beat", None]).tolist()]) == [[130.0, None]]  # no audio: the text
