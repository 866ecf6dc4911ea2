"""Beat-locked decoding: the prompt's tempo, the beat spans, their pooled predictions, and decoding
that shares one span of tokens across the beats (generate_codes, MAGNeT.generate, the CLI flag)."""

import math

import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.cli import build_parser
from magnet_audio.cli_options import sampling_overrides
from magnet_audio.conditioning.tempo import prompt_tempi, tempo_from_text
from magnet_audio.decoding import GenerationParams, generate_codes
from magnet_audio.decoding.ar import ARGenerationParams, generate_ar
from magnet_audio.decoding.beats import NOT_TIED, beat_spans, pooled_beat_logprobs
from magnet_audio.decoding.hybrid import generate_hybrid_codes
from magnet_audio.errors import InputError
from helpers import tiny_magnet_lm, tiny_musicgen_lm, write_export

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("text,bpm", [
    ("upbeat funk with slap bass and drums, 120 bpm", 120.0), ("house at 124 BPM", 124.0),
    ("a waltz, tempo 96", 96.0), ("march at a tempo of 110", 110.0), ("128 beats per minute techno", 128.0),
    ("calm solo piano ballad in A minor, slow tempo", 70.0), ("very fast drum and bass", 170.0),
    ("fast", 130.0), ("a breakfast jingle", None),  # "fast" only as a word of its own
    ("5 bpm drone", None), ("1000 bpm noise, fast", 130.0),  # numbers outside 20-400 are ignored
    ("", None), (None, None), ("jazz in C major", None),
])
def test_tempo_from_text(text, bpm):
    assert tempo_from_text(text) == bpm


def test_prompt_tempi_marks_prompts_without_a_tempo_nan():
    bpm = prompt_tempi(["techno 128 bpm", "jazz", None, "slow blues"])
    assert bpm[0] == 128 and math.isnan(bpm[1]) and math.isnan(bpm[2]) and bpm[3] == 70


def _nearest_span_start(frame: float, span_len: int) -> int:
    return int(math.floor(frame / span_len + 0.5)) * span_len


@pytest.mark.parametrize("bpm,spans", [(120.0, 1), (120.0, 2), (97.0, 1), (173.0, 3)])
def test_beat_spans_start_at_the_grid_span_nearest_each_beat(bpm, spans):
    length, rate, L = 500, 50.0, 3
    offsets = beat_spans(torch.tensor([bpm, math.nan]), length, rate, L, spans=spans)
    assert offsets.shape == (2, length) and (offsets[1] == NOT_TIED).all()
    period = 60.0 / bpm * rate
    expected = torch.full((length,), NOT_TIED)
    for n in range(int(length / period) + 1):
        start = _nearest_span_start(n * period, L)
        for j in range(L * spans):
            if start + j < length:
                expected[start + j] = j
    assert torch.equal(offsets[0], expected)
    if bpm == 120.0 and spans == 1:  # a beat every 25 frames: spans at 0, 24, 51, 75, ...
        assert offsets[0, [0, 1, 2, 24, 25, 26, 51, 75]].tolist() == [0, 1, 2, 0, 1, 2, 0, 0]
        assert offsets[0, [3, 23, 27, 50]].tolist() == [NOT_TIED] * 4


def test_beat_spans_of_later_windows_continue_the_grid():
    bpm = torch.tensor([133.0, 71.0])
    whole = beat_spans(bpm, 600, 50.0, 3, spans=2)
    parts = [beat_spans(bpm, 300, 50.0, 3, first_frame=0, spans=2),
             beat_spans(bpm, 300, 50.0, 3, first_frame=300, spans=2)]
    assert torch.equal(torch.cat(parts, dim=1), whole)
    # a window starting inside a beat span keeps the span's offsets
    assert torch.equal(beat_spans(bpm, 100, 50.0, 3, first_frame=451, spans=2), whole[:, 451:551])


def test_pooled_beat_logprobs_average_each_offset_over_the_beats():
    logprobs = torch.arange(2 * 6 * 4, dtype=torch.float32).reshape(2, 6, 4)
    offsets = torch.tensor([[0, 1, NOT_TIED, 0, 1, NOT_TIED], [NOT_TIED] * 6])
    pooled = pooled_beat_logprobs(logprobs, offsets, 2)
    assert pooled.shape == (2, 2, 4)
    torch.testing.assert_close(pooled[0, 0], (logprobs[0, 0] + logprobs[0, 3]) / 2)
    torch.testing.assert_close(pooled[0, 1], (logprobs[0, 1] + logprobs[0, 4]) / 2)
    assert (pooled[1] == 0).all()  # no beats: uniform


def _assert_shared_across_beats(codes: torch.Tensor, offsets: torch.Tensor) -> None:
    """codes [K, T]: every frame at offset j of a beat span has the same token in each codebook (and
    there are at least two beats)."""
    assert (offsets[:codes.shape[-1]] == 0).sum() >= 2
    for j in range(int(offsets.max()) + 1):
        column = codes[:, offsets[:codes.shape[-1]] == j]
        assert (column == column[:, :1]).all()


@pytest.mark.parametrize("arrangement", ["nonoverlap", "stride1"])
def test_generate_codes_shares_the_beat_spans_and_keeps_the_prompt(arrangement):
    lm = tiny_magnet_lm(card=16, segment_duration=2.0)
    params = GenerationParams(decoding_steps=[4, 2, 2, 2], span_arrangement=arrangement, temperature=1.0)
    tied = beat_spans(torch.tensor([150.0, math.nan]), 100, 50.0, 3, spans=2)  # a beat every 20 frames
    prompt = torch.randint(0, 16, (2, 4, 9))
    torch.manual_seed(0)
    codes = generate_codes(lm, lm.encode_text(["a", "b", None, None]), params, max_len=100, prompt=prompt,
                           tied=tied)
    assert (codes < 16).all() and torch.equal(codes[..., :9], prompt)
    _assert_shared_across_beats(codes[0][:, 9:], tied[0, 9:])
    # the prompt's frames are not tied: its first beat span (frames 0-5) keeps the prompt's tokens
    assert not (codes[0, :, 21:27] == prompt[0, :, 0:6]).all()
    # without any beat, the same draws as plain decoding
    torch.manual_seed(0)
    plain = generate_codes(lm, lm.encode_text(["a", "b", None, None]), params, max_len=100, prompt=prompt)
    torch.manual_seed(0)
    none = generate_codes(lm, lm.encode_text(["a", "b", None, None]), params, max_len=100, prompt=prompt,
                          tied=torch.full((2, 100), NOT_TIED))
    assert torch.equal(plain, none)


def test_beat_tokens_are_the_pooled_argmax_of_the_first_guided_pass():
    lm = tiny_magnet_lm(card=16)
    params = GenerationParams(decoding_steps=[3, 1, 1, 1], max_cfg_coef=4.0)  # sampling for the other frames
    tied = beat_spans(torch.tensor([120.0]), 50, 50.0, 3)
    memory = lm.encode_text(["a", None])
    codes = generate_codes(lm, memory, params, max_len=50, tied=tied)
    masked = torch.full((1, 4, 48), lm.mask_id)
    with torch.no_grad():
        h = lm.hidden(torch.cat([masked, masked]), 0, memory)
        cond, uncond = lm.linears[0](h).split(1)
        logits = uncond + (cond - uncond) * params.max_cfg_coef
    pooled = pooled_beat_logprobs(torch.log_softmax(logits.float(), dim=-1), tied[:, :48], 3)
    assert codes[0, 0, 0:3].tolist() == pooled[0].argmax(dim=-1).tolist()
    assert codes[0, 0, 24:27].tolist() == pooled[0].argmax(dim=-1).tolist()


def test_hybrid_keeps_the_ar_prefix_and_locks_the_beats_after_it():
    ar, nar = tiny_musicgen_lm(card=16), tiny_magnet_lm(card=16)
    ar_params = ARGenerationParams(use_sampling=False)
    tied = beat_spans(torch.tensor([300.0]), 50, 50.0, 3)  # a beat every 10 frames
    codes = generate_hybrid_codes(ar, ar.encode_text(["a", None]), ar_params, nar, nar.encode_text(["a", None]),
                                  GenerationParams(decoding_steps=[2, 1, 1, 1]), prefix_len=13, max_len=50, tied=tied)
    assert torch.equal(codes[..., :13], generate_ar(ar, ar.encode_text(["a", None]), ar_params, 13))
    after = tied[0].clone()
    after[:13] = NOT_TIED  # beats at frames 21, 30, 39 (and 48, cut by the 48-frame chunked length)
    _assert_shared_across_beats(codes[0], after)


def test_generate_codes_rejects_a_wrong_beat_shape():
    lm = tiny_magnet_lm()
    with pytest.raises(InputError, match="tied has shape"):
        generate_codes(lm, None, GenerationParams(decoding_steps=[1, 1, 1, 1]), max_len=50, num_samples=1,
                       tied=torch.zeros(1, 40, dtype=torch.long))


@pytest.fixture(scope="module")
def model(tmp_path_factory, fixture_dir):
    directory = tmp_path_factory.mktemp("beat") / "model"
    write_export(tiny_magnet_lm(card=64, segment_duration=2.0), directory, fixture_dir / "compression_state_dict.bin")
    return MAGNeT.get_pretrained(str(directory), device="cpu")


def test_generate_locks_the_beats_of_prompts_that_name_a_tempo(model):
    model.set_generation_params(decoding_steps=[3, 2, 2, 2], beat_lock=0.12)  # 6 frames: two spans
    torch.manual_seed(0)
    _, codes = model.generate(["drums at 150 bpm", "ambient pad"], return_tokens=True)
    tied = beat_spans(torch.tensor([150.0]), codes.shape[-1], 50.0, 3, spans=2)[0]
    _assert_shared_across_beats(codes[0], tied)
    # the prompt without a tempo is not locked (these tokens would be shared by chance with p ~ 64^-23)
    assert not all((codes[1][:, tied == j] == codes[1][:, tied == j][:, :1]).all() for j in range(6))
    # beat_lock 0: plain decoding, the same draws as the defaults
    model.set_generation_params(decoding_steps=[3, 2, 2, 2], beat_lock=0)
    torch.manual_seed(0)
    off = model.generate(["drums at 150 bpm", "ambient pad"], return_tokens=True)[1]
    model.set_generation_params(decoding_steps=[3, 2, 2, 2])
    torch.manual_seed(0)
    assert torch.equal(off, model.generate(["drums at 150 bpm", "ambient pad"], return_tokens=True)[1])


def test_token_wise_models_lock_whole_frames(model):
    """An LM masking single tokens (span_len -1, as audiocraft's fixture config) ties beat_lock's frames."""
    model.lm.cfg.span_len = -1
    try:
        model.set_generation_params(decoding_steps=[2, 1, 1, 1], beat_lock=0.1)  # 5 frames a beat
        _, codes = model.generate(["drums at 150 bpm"], return_tokens=True)
    finally:
        model.lm.cfg.span_len = 3
        model.set_generation_params()
    assert codes.shape[-1] == 100
    tied = beat_spans(torch.tensor([150.0]), 100, 50.0, 1, spans=5)[0]
    assert int(tied.max()) == 4 and int((tied == 0).sum()) == 5  # beats at frames 0, 20, 40, 60, 80
    _assert_shared_across_beats(codes[0], tied)


def test_long_form_windows_lock_the_beats_of_the_whole_piece(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1], beat_lock=0.06, duration=3.5, extend_stride=1.0)
    try:
        torch.manual_seed(1)
        _, codes = model.generate(["techno, 120 bpm"], return_tokens=True)
    finally:
        model.set_generation_params()
    assert codes.shape[-1] == 175
    tied = beat_spans(torch.tensor([120.0]), 175, 50.0, 3)[0]
    # windows of 99 frames, each after the first prompted with the last 48: new frames 0-98, 99-149, 150-174;
    # each window shares one span over its new beats
    first = tied.clone()
    first[99:] = NOT_TIED
    _assert_shared_across_beats(codes[0], first)
    for start, end in ((99, 150), (150, 175)):
        window = torch.full_like(tied, NOT_TIED)
        window[start:end] = tied[start:end]
        _assert_shared_across_beats(codes[0], window)  # beats at frames 100 and 125; 150 and 175 (cut)


def test_beat_lock_option_is_checked_and_reaches_the_cli(model):
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(InputError, match="beat_lock"):
            model.set_generation_params(beat_lock=bad)
    args = build_parser().parse_args(["generate", "x", "--beat-lock", "0.18"])
    assert sampling_overrides(args)["beat_lock"] == 0.18
    assert "beat_lock" not in sampling_overrides(build_parser().parse_args(["generate", "x"]))
