"""Beat-phase input (``beat_phase``): each frame is told where it falls in the beat and bar.

The features, the LM (a zero map at first; position-dependent predictions where every input is
masked), its config, and decoding (generation from nothing at phase 0, continuation and edits
without a phase, long-form windows moved on, exact and cached guidance)."""

import math

import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.codec import load_compression_model
from magnet_audio.decoding import GenerationParams, generate_codes
from magnet_audio.decoding import magnet as decoding_magnet
from magnet_audio.decoding.guidance import CachedGuidance
from magnet_audio.errors import InputError
from magnet_audio.lm import MagnetLMConfig
from magnet_audio.lm.magnet import PHASE_PERIODS, beat_phase_features, split_tempo, tempo_from_frame
from helpers import tiny_magnet_lm

pytestmark = pytest.mark.usefixtures("one_thread")

FRAME_RATE = 50


def _phase_lm(seed=0, scale=1.0, **config):
    """A tiny tempo_rope LM with beat_phase whose phase map is random (not the zeros it starts with)."""
    lm = tiny_magnet_lm(seed, positional_embedding="rope", tempo_rope=True, tempo_periods="beats", beat_phase=True,
                        **config)
    with torch.no_grad():
        lm.beat_phase.weight.copy_(torch.randn(lm.beat_phase.weight.shape, generator=torch.Generator().manual_seed(1))
                                   * scale)
    return lm


def test_features_are_each_frames_phase_in_every_period_and_zero_where_unknown():
    feats = beat_phase_features(torch.tensor([120.0, 120.0, 90.0]), torch.tensor([0.0, math.nan, 0.5]), 101,
                                FRAME_RATE)
    P = len(PHASE_PERIODS)
    assert feats.shape == (3, 101, 2 * P)
    # 120 bpm: a beat every 25 frames. Frame 50 is beat 2: on the beat of periods 0.5, 1 and 2, 2/3 of
    # the way through a 3-beat bar, half way through a 4-beat one
    phase = torch.atan2(feats[0, 50, P:], feats[0, 50, :P]) % (2 * math.pi) / (2 * math.pi)
    assert torch.allclose(phase, torch.tensor([0.0, 0.0, 0.0, 2 / 3, 0.5]), atol=1e-5)
    assert torch.equal(feats[1], torch.zeros(101, 2 * P))  # no beat known: no features
    # 90 bpm from half a beat: frame 0 is half-way through the beat (cos of period 1 is -1)
    assert feats[2, 0, PHASE_PERIODS.index(1.0)] == pytest.approx(-1.0)
    # a window starting 30 frames in sees the same frames' phases
    tempo = torch.tensor([[120.0, 0.0], [90.0, 0.5]])
    later = tempo_from_frame(tempo, 30, FRAME_RATE)
    bpm, beat0 = split_tempo(later)
    assert torch.allclose(beat_phase_features(bpm, beat0, 71, FRAME_RATE),
                          beat_phase_features(tempo[:, 0], tempo[:, 1], 101, FRAME_RATE)[:, 30:], atol=1e-5)
    assert tempo_from_frame(torch.tensor([120.0]), 30, FRAME_RATE).tolist() == [120.0]  # bpm only: unchanged


def test_a_new_phase_map_leaves_the_lm_as_it_was_and_needs_tempo_rope():
    lm = tiny_magnet_lm(0, positional_embedding="rope", tempo_rope=True)
    codes = torch.randint(0, 16, (2, 4, 50))
    memory = lm.encode_text(["piano", "drums"])
    tempo = torch.tensor([[100.0, 0.0], [140.0, 0.25]])
    before = lm(codes, memory, stage=0, tempo=tempo)  # [B, 2] tempo: an LM without beat_phase reads the bpm
    assert torch.equal(before, lm(codes, memory, stage=0, tempo=tempo[:, 0]))
    lm.use_beat_phase()
    assert lm.cfg.beat_phase and torch.equal(lm.beat_phase.weight, torch.zeros_like(lm.beat_phase.weight))
    assert torch.equal(lm(codes, memory, stage=0, tempo=tempo), before)
    assert "beat_phase.weight" in lm.state_dict()
    plain = tiny_magnet_lm(0, positional_embedding="rope")
    with pytest.raises(ValueError, match="beat_phase needs tempo_rope"):
        plain.use_beat_phase()
    assert not plain.cfg.beat_phase and not hasattr(plain, "beat_phase")  # refused before any change
    with pytest.raises(ValueError, match="beat_phase needs tempo_rope"):
        tiny_magnet_lm(0, positional_embedding="rope", beat_phase=True)
    cfg = _phase_lm().cfg
    assert MagnetLMConfig.from_dict(cfg.to_dict()).beat_phase is True
    assert MagnetLMConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "beat_phase"}).beat_phase is False


def test_with_a_phase_a_fully_masked_clip_gets_predictions_that_depend_on_the_beat():
    """Where every input is the mask token, relative positions cannot tell frames apart (the first
    decoding step's situation): every frame gets the same prediction, so the first spans kept fall
    anywhere. With the beat given, frames on and off the beat get different ones."""
    lm = _phase_lm()
    masked = torch.full((1, 4, 100), lm.mask_id)
    memory = lm.encode_text(["drums"])
    unknown = lm(masked, memory, stage=0, tempo=torch.tensor([[120.0, math.nan]]))[0, 0]  # [T, card]
    assert torch.allclose(unknown, unknown[:1].expand_as(unknown), atol=1e-5)
    known = lm(masked, memory, stage=0, tempo=torch.tensor([[120.0, 0.0]]))[0, 0]
    assert (known - known[:1]).abs().amax(dim=-1)[1:25].min() > 1e-3  # every frame of the first beat differs
    # frames the same phase apart in every period (12 beats = 300 frames at 120 bpm) are not in 100
    # frames; half-way through differs from on the beat
    assert not torch.allclose(known[0], known[12], atol=1e-3)


def test_the_objective_drops_the_phase_of_a_fifth_of_the_rows_in_training_only():
    import random

    from magnet_audio.training.objectives import PHASE_DROPOUT, MagnetObjective, phase_dropout

    tempi = torch.tensor([[120.0, 0.0]] * 2000)
    dropped = phase_dropout(tempi, PHASE_DROPOUT, random.Random(0))
    assert dropped[:, 0].eq(120.0).all() and tempi[:, 1].eq(0.0).all()  # bpm kept, input untouched
    assert abs(float(dropped[:, 1].isnan().float().mean()) - PHASE_DROPOUT) < 0.03
    lm = _phase_lm()
    seen = []
    inner = lm.forward

    def spy(codes, memory, stage=-1, tempo=None):
        seen.append(tempo.clone())
        return inner(codes, memory, stage=stage, tempo=tempo)

    lm.forward = spy
    objective = MagnetObjective(lm, cfg_dropout=0.0)
    codes = torch.randint(0, 16, (64, 4, 20))
    objective.train()(codes, ["a"] * 64, torch.tensor([[120.0, 0.0]] * 64), rng=random.Random(0))
    assert 0 < int(seen[-1][:, 1].isnan().sum()) < 64
    with torch.no_grad():
        objective.eval()(codes, ["a"] * 64, torch.tensor([[120.0, 0.0]] * 64), stage=0)
    assert not seen[-1][:, 1].isnan().any()  # validation keeps every row's phase


class _TempoSpy:
    """Records the tempo each LM pass gets."""

    def __init__(self, lm):
        self.inner, self.tempi = lm.hidden, []
        lm.hidden = self

    def __call__(self, *args, tempo=None, **kwargs):
        self.tempi.append(None if tempo is None else [tuple(row) if tempo.dim() == 2 else row for row in tempo.tolist()])
        return self.inner(*args, tempo=tempo, **kwargs)


@pytest.fixture(scope="module")
def model(fixture_dir):
    codec = load_compression_model(str(fixture_dir / "compression_state_dict.bin"), device="cpu")
    return MAGNeT("tiny-phase", codec, _phase_lm(card=64, segment_duration=1.0))


def _none_nan(rows):
    return {tuple(None if math.isnan(v) else v for v in row) for row in rows}


def test_generation_starts_on_the_beat_and_continuations_and_edits_do_not_claim_one(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1], use_sampling=False)
    spy = _TempoSpy(model.lm)
    try:
        model.generate(["drums at 96 bpm", "ambient pads"])
        # every pass: the conditional rows from beat 0 (120 bpm where the text names none), then the null
        # rows at the same tempi without the beat (beat guidance, the default)
        assert {_none_nan(t[2:]) == {(96.0, None), (120.0, None)} and t[:2] == [(96.0, 0.0), (120.0, 0.0)]
                for t in spy.tempi} == {True}
        spy.tempi.clear()
        model.generate_continuation(torch.zeros(1, 1, 16000), 32000, ["a fast beat"])
        assert set().union(*map(_none_nan, spy.tempi)) == {(130.0, None)}
        spy.tempi.clear()
        model.generate_inpainting(torch.zeros(1, 1, 32000), 32000, ["tempo 150 groove"], [(0.3, 0.6)])
        assert spy.tempi and set().union(*map(_none_nan, spy.tempi)) == {(150.0, None)}
        spy.tempi.clear()
        model.set_generation_params(decoding_steps=[2, 1, 1, 1], use_sampling=False, duration=1.6,
                                    extend_stride=0.5)
        model.generate(["at 120 bpm"])
        # windows of 48 frames (whole 3-frame spans) overlapping by 21 start at frames 0, 27 and 54: a beat
        # every 25 frames, so at beats 0, 1.08 and 2.16
        starts = sorted({t[0][1] for t in spy.tempi})
        assert starts == pytest.approx([0.0, 27 / 25, 54 / 25])
        assert {t[1][0] == 120.0 and math.isnan(t[1][1]) for t in spy.tempi} == {True}  # the null row
    finally:
        model.lm.hidden = spy.inner
        model.set_generation_params(decoding_steps=[2, 1, 1, 1])


def test_cached_guidance_passes_the_phase_as_exact_guidance_does_and_bad_phases_are_refused(model, monkeypatch):
    lm, memory = model.lm, model.lm.encode_text(["x", "y", None, None])
    params = GenerationParams(decoding_steps=[3, 2, 2, 2], use_sampling=False)
    tempo = torch.tensor([[90.0, 0.0], [150.0, 0.5]])
    exact = generate_codes(lm, memory, params, 48, tempo=tempo)
    assert not torch.equal(generate_codes(lm, memory, params, 48, tempo=tempo[:, 0]), exact)  # the phase matters
    with monkeypatch.context() as patch:
        patch.setattr(decoding_magnet, "make_guidance", CachedGuidance)
        assert torch.equal(generate_codes(lm, memory, params, 48, tempo=tempo), exact)
    with pytest.raises(InputError, match="finite or NaN"):
        generate_codes(lm, memory, params, 48, tempo=torch.tensor([[90.0, math.inf], [90.0, 0.0]]))
    with pytest.raises(InputError, match="one tempo per row"):
        generate_codes(lm, memory, params, 48, tempo=torch.tensor([[90.0, 0.0]]))
    with pytest.raises(InputError, match=r"\[B, 2\]"):
        generate_codes(lm, memory, params, 48, tempo=torch.zeros(2, 3))


def test_beat_guidance_decodes_the_null_rows_without_the_beat_and_can_be_turned_off(model, monkeypatch):
    lm, memory = model.lm, model.lm.encode_text(["x", "y", None, None])
    tempo = torch.tensor([[90.0, 0.0], [150.0, 0.5]])
    spy = _TempoSpy(lm)
    try:
        exact = generate_codes(lm, memory, GenerationParams(decoding_steps=[2, 1, 1, 1], use_sampling=False), 48,
                               tempo=tempo)
        # the conditional rows with their beat, the null rows with the tempo alone
        assert set().union(*map(_none_nan, spy.tempi)) == {(90.0, 0.0), (150.0, 0.5), (90.0, None), (150.0, None)}
        assert all(len(t) == 4 and t[0][1] == 0.0 and math.isnan(t[2][1]) for t in spy.tempi)
        spy.tempi.clear()
        off = GenerationParams(decoding_steps=[2, 1, 1, 1], use_sampling=False, beat_guidance=False)
        same = generate_codes(lm, memory, off, 48, tempo=tempo)
        assert {tuple(t) for t in spy.tempi} == {((90.0, 0.0), (150.0, 0.5), (90.0, 0.0), (150.0, 0.5))}
        spy.tempi.clear()
        generate_codes(lm, memory, off, 48, tempo=tempo[:, :1].squeeze(1))  # bpm only: nothing to take away
        assert {tuple(t) for t in spy.tempi} == {(90.0, 150.0, 90.0, 150.0)}
    finally:
        lm.hidden = spy.inner
    assert not torch.equal(exact, same)  # guidance on the beat changes what is decoded
    with monkeypatch.context() as patch:  # fast mode's machinery passes the same tempi
        patch.setattr(decoding_magnet, "make_guidance", CachedGuidance)
        assert torch.equal(generate_codes(lm, memory, GenerationParams(decoding_steps=[2, 1, 1, 1],
                                                                       use_sampling=False), 48, tempo=tempo), exact)
    with pytest.raises(InputError, match="beat_guidance"):
        GenerationParams(beat_guidance="yes").validate(4)
    model.set_generation_params(decoding_steps=[2, 1, 1, 1], beat_guidance=False)
    assert model.generation_params.beat_guidance is False
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    assert model.generation_params.beat_guidance is True  # the default
