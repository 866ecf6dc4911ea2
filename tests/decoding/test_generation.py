"""End-to-end generation: parity with the reference run, decoding invariants, the public API, errors."""

import shutil

import pytest
import torch

from magnet_audio import MAGNeT
from magnet_audio.decoding import GenerationParams, generate_codes
from magnet_audio.decoding.guidance import make_guidance
from magnet_audio.decoding.magnet import decode
from magnet_audio.decoding.schedules import mask_rates, num_to_mask
from magnet_audio.errors import CheckpointError, InputError
from helpers import tiny_magnet_lm, write_export


@pytest.fixture(scope="module")
def model(fixture_dir):
    return MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path=fixture_dir / "t5")


def test_properties(model):
    assert model.sample_rate == 32000 and model.audio_channels == 1
    assert model.frame_rate == 50 and model.duration == 1
    assert model.lm.cfg.span_len == 3  # from masking.span_len, as audiocraft's loader sets it


def test_greedy_generation_matches_reference(model, reference):
    """The reference's greedy run. It was made with an LM built straight from the fixture's saved
    config, whose ``transformer_lm.span_len`` is -1: token-wise masking over all 50 frames (hence 50
    frames, where chunked decoding of span 3 would give 48). We decode with that span length."""
    model.lm.cfg.span_len = -1
    try:
        model.set_generation_params(**reference["greedy_params"])
        wav, codes = model.generate(reference["texts"], return_tokens=True)
    finally:
        model.lm.cfg.span_len = 3
        model.set_generation_params()
    assert torch.equal(codes, reference["greedy_codes"])
    assert wav.shape == reference["greedy_wav"].shape
    torch.testing.assert_close(wav, reference["greedy_wav"], atol=1e-4, rtol=0)


def test_greedy_is_deterministic_and_chunked_length(model, reference):
    model.set_generation_params(use_sampling=False, decoding_steps=[4, 2, 2, 2])
    wav1, codes1 = model.generate(reference["texts"], return_tokens=True)
    wav2, codes2 = model.generate(reference["texts"], return_tokens=True)
    model.set_generation_params()
    assert torch.equal(codes1, codes2)
    assert codes1.shape == (2, 4, 48)  # 50 frames cut to a multiple of the span length
    assert wav1.shape == (2, 1, 48 * 640)
    assert (codes1 < 64).all()


def test_sampling_is_seeded(model):
    model.set_generation_params(decoding_steps=[3, 2, 1, 1])
    torch.manual_seed(7)
    a = model.generate(["lofi beat"], return_tokens=True)[1]
    torch.manual_seed(7)
    b = model.generate(["lofi beat"], return_tokens=True)[1]
    torch.manual_seed(8)
    c = model.generate(["lofi beat"], return_tokens=True)[1]
    model.set_generation_params()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_progress_callback_counts_every_step(model):
    calls = []
    model.set_generation_params(decoding_steps=[3, 2, 1, 1])
    model.set_custom_progress_callback(lambda step, total: calls.append((step, total)))
    model.generate(["x"])
    model.set_custom_progress_callback(None)
    model.set_generation_params()
    assert calls == [(i, 7) for i in range(1, 8)]


def test_continuation_keeps_the_prompt(model, reference):
    prompt = reference["wav"][:, :, :16000]  # 0.5 s = 25 frames
    model.set_generation_params(decoding_steps=[3, 2, 2, 2])
    wav, codes = model.generate_continuation(prompt, 32000, reference["texts"], return_tokens=True)
    prompt_codes, _ = model.compression_model.encode(prompt)
    model.set_generation_params()
    assert torch.equal(codes[..., :25], prompt_codes)
    assert codes.shape == (2, 4, 48) and wav.shape == (2, 1, 48 * 640)


def test_continuation_resamples_the_prompt(model, reference):
    prompt16k = reference["wav"][0, :, :16000:2]  # [C, T]: 0.5 s at 16 kHz
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav, codes = model.generate_continuation(prompt16k, 16000, return_tokens=True)
    model.set_generation_params()
    assert codes.shape == (1, 4, 48)


def test_unconditional(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav = model.generate_unconditional(3)
    model.set_generation_params()
    assert wav.shape == (3, 1, 48 * 640) and torch.isfinite(wav).all()


@pytest.mark.parametrize("call,message", [
    (lambda m: m.generate([]), "empty"),
    (lambda m: m.generate("a string"), "list"),
    (lambda m: m.generate([3]), "strings"),
    (lambda m: m.generate_unconditional(0), "positive"),
    (lambda m: m.set_generation_params(decoding_steps=[1, 2]), "decoding_steps"),
    (lambda m: m.set_generation_params(top_p=1.5), "top_p"),
    (lambda m: m.set_generation_params(span_arrangement="random"), "span_arrangement"),
    (lambda m: m.generate_continuation(torch.zeros(1, 1, 32000), 32000), "shorter"),
    (lambda m: m.generate_continuation(torch.zeros(5), 32000), "tensor"),
    (lambda m: m.generate_continuation(torch.zeros(2, 1, 100), 32000, ["a"]), "1 descriptions for 2"),
])
def test_bad_input_is_reported(model, call, message):
    with pytest.raises(InputError, match=message):
        call(model)


def _tiny_lm(card=16, n_q=4, span_len=3, segment=1, seed=0):
    return tiny_magnet_lm(seed, card=card, n_q=n_q, span_len=span_len, segment_duration=segment)


class _Spy:
    """Records the stage row of every LM input during decoding."""

    def __init__(self, lm):
        self.rows, self.lm, self.inner = [], lm, lm.hidden

    def __call__(self, codes, stage, memory=None, cross_kv=None, **kwargs):
        self.rows.append((stage, codes[0, stage].clone()))
        return self.inner(codes, stage, memory, cross_kv, **kwargs)


def test_chunked_decoding_masks_whole_chunks_on_the_cosine_schedule():
    lm = _tiny_lm()
    spy = _Spy(lm)
    lm.hidden = spy
    params = GenerationParams(decoding_steps=[6, 4, 3, 2])
    memory = lm.encode_text(["a", None])
    codes = generate_codes(lm, memory, params, max_len=50)
    assert codes.shape == (1, 4, 48) and (codes < 16).all()
    n_chunks = 16
    for stage, steps in enumerate(params.decoding_steps):
        rows = [row for s, row in spy.rows if s == stage]
        assert len(rows) == steps
        previous = None
        for row, rate in zip(rows, mask_rates(steps)):
            masked = (row == lm.mask_id).reshape(n_chunks, 3)
            assert (masked.all(1) | ~masked.any(1)).all()  # whole chunks only
            assert masked.all(1).sum() == num_to_mask(rate, n_chunks)
            if previous is not None:
                assert not (masked & ~previous).any()  # re-masked chunks were masked before
            previous = masked


@pytest.mark.parametrize("choice_temperature", [0.0, 2.0])
def test_stride1_and_token_modes_fill_every_position(choice_temperature):
    for span_len, arrangement in ((3, "stride1"), (1, "nonoverlap")):
        lm = _tiny_lm(span_len=span_len)
        params = GenerationParams(decoding_steps=[5, 3, 2, 2], span_arrangement=arrangement, span_scoring="prod",
                                  choice_temperature=choice_temperature)
        codes = generate_codes(lm, lm.encode_text(["a", "b", None, None]), params, max_len=50)
        assert codes.shape == (2, 4, 50) and (codes < 16).all()


def test_choice_temperature_keeps_the_chunk_schedule_and_changes_which_chunks_are_kept():
    """With the randomised choice the schedule is the same (whole chunks, the cosine counts) but the
    chunks kept early are no longer always the surest: the decoded codes differ from plain decoding's
    under the same seed, and are reproducible with it."""
    lm = _tiny_lm()
    memory = lm.encode_text(["a", None])
    plain, noisy = GenerationParams(decoding_steps=[6, 4, 3, 2]), GenerationParams(decoding_steps=[6, 4, 3, 2],
                                                                                  choice_temperature=3.0)
    runs = []
    for params in (plain, noisy, noisy):
        torch.manual_seed(0)
        spy = _Spy(lm)
        lm.hidden = spy
        runs.append((generate_codes(lm, memory, params, max_len=48), spy.rows))
        lm.hidden = spy.inner
    (a, _), (b, rows), (c, _) = runs
    assert torch.equal(b, c) and not torch.equal(a, b)
    for stage, steps in enumerate(noisy.decoding_steps):
        stage_rows = [row for s, row in rows if s == stage]
        for row, rate in zip(stage_rows, mask_rates(steps)):
            masked = (row == lm.mask_id).reshape(16, 3)
            assert (masked.all(1) | ~masked.any(1)).all() and masked.all(1).sum() == num_to_mask(rate, 16)


@pytest.mark.parametrize("arrangement", ["nonoverlap", "stride1"])
def test_decode_fills_around_frozen_tokens_and_a_frozen_prefix_is_a_prompt(arrangement):
    """decode() fills what a frozen mask [B, K, T] leaves free and never changes the frozen tokens;
    a prefix frozen in every codebook decodes as generate_codes' prompt."""
    lm = _tiny_lm()
    params = GenerationParams(decoding_steps=[4, 2, 2, 2], span_arrangement=arrangement)
    memory = lm.encode_text(["a", "b", None, None])
    gen = torch.Generator().manual_seed(0)
    given = torch.randint(0, 16, (2, 4, 48), generator=gen)
    frozen = torch.rand(2, 4, 48, generator=gen) < 0.3
    guidance = make_guidance(lm, memory, 2, params.fast)
    codes = decode(lm, torch.where(frozen, given, lm.mask_id), frozen, guidance, params)
    assert torch.equal(codes[frozen], given[frozen]) and (codes < 16).all()
    assert not torch.equal(codes, given)
    prefix = torch.zeros(2, 4, 48, dtype=torch.bool)
    prefix[..., :10] = True
    torch.manual_seed(3)
    with_prompt = generate_codes(lm, memory, params, 48, prompt=given[..., :10])
    torch.manual_seed(3)
    codes = decode(lm, torch.where(prefix, given, lm.mask_id), prefix, make_guidance(lm, memory, 2, params.fast),
                   params)
    assert torch.equal(codes, with_prompt)


def test_update_generation_params_is_the_recommendation_then_the_overrides(model):
    model.recommended_generation_params = {"temperature": 1.5, "decoding_steps": [3, 2, 2, 2], "top_k": 5}
    try:
        model.set_generation_params(max_cfg_coef=2.0, span_scoring="prod")  # not kept: neither recommended nor given
        model.update_generation_params(top_k=9, temperature=None, cfg_null_refresh=3)  # None: not given
        p = model.generation_params
        assert (p.temperature, p.decoding_steps, p.top_k, p.fast.cfg_null_refresh) == (1.5, [3, 2, 2, 2], 9, 3)
        assert (p.max_cfg_coef, p.span_scoring) == (10.0, "max")
        flat = p.to_dict()
        assert flat["cfg_null_refresh"] == 3 and flat["top_k"] == 9 and "fast" not in flat
    finally:
        model.recommended_generation_params = {}
        model.set_generation_params()
    assert model.generation_params.decoding_steps == [20, 10, 10, 10]


@pytest.mark.parametrize("segment,context", [(2, 3), (1, -1)])
def test_other_sizes_load_and_generate(tmp_path, fixture_dir, segment, context):
    lm = _tiny_lm(card=64, segment=segment)
    lm.cfg.subcodes_context = context
    write_export(lm, tmp_path / "model", fixture_dir / "compression_state_dict.bin")
    model = MAGNeT.get_pretrained(str(tmp_path / "model"), device="cpu")
    assert model.duration == segment and model.lm.cfg.subcodes_context == context
    model.set_generation_params(use_sampling=False, decoding_steps=[3, 2, 2, 1])
    wav, codes = model.generate(["warm synth pad", "drums"], return_tokens=True)
    frames = segment * 50 // 3 * 3
    assert codes.shape == (2, 4, frames) and wav.shape == (2, 1, frames * 640)
    assert torch.equal(codes, model.generate(["warm synth pad", "drums"], return_tokens=True)[1])


def test_mismatched_codec_is_refused(tmp_path, fixture_dir):
    write_export(_tiny_lm(card=32), tmp_path / "model", fixture_dir / "compression_state_dict.bin")
    with pytest.raises(CheckpointError, match="codebook size"):
        MAGNeT.get_pretrained(str(tmp_path / "model"), device="cpu")


def test_missing_files_are_reported(tmp_path, fixture_dir):
    with pytest.raises(CheckpointError, match="compression_state_dict.bin"):
        MAGNeT.get_pretrained(str(tmp_path), device="cpu")
    (tmp_path / "m").mkdir()
    shutil.copy(fixture_dir / "compression_state_dict.bin", tmp_path / "m")
    with pytest.raises(CheckpointError, match="state_dict.bin"):
        MAGNeT.get_pretrained(str(tmp_path / "m"), device="cpu")


def test_missing_t5_is_reported(fixture_dir):
    with pytest.raises(CheckpointError, match="t5_path"):
        MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path="/nonexistent/t5")
