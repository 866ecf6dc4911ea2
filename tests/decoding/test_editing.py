"""Masked editing: decoding with frozen tokens, inpainting, outpainting, variations, seams, errors."""

import math

import pytest
import torch

from magnet_audio import EditInfo, InputError, MAGNeT
from magnet_audio.codec import load_compression_model
from magnet_audio.decoding import GenerationParams, generate_codes
from magnet_audio.decoding.editing import Window, align, merge, plan_windows, seconds_to_frames
from magnet_audio.decoding.magnet import first_step
from magnet_audio.decoding.params import FastOptions
from helpers import tiny_magnet_lm

pytestmark = pytest.mark.usefixtures("one_thread")

SR, HOP, CARD = 32000, 640, 64  # the fixture codec: 32 kHz, 50 Hz frames, 64 codes


@pytest.fixture(scope="module")
def model(fixture_dir):
    codec = load_compression_model(str(fixture_dir / "compression_state_dict.bin"), device="cpu")
    return MAGNeT("tiny", codec, tiny_magnet_lm(0, card=CARD, span_len=3, segment_duration=1.0))


@pytest.fixture
def greedy(model):
    model.set_generation_params(use_sampling=False, decoding_steps=[5, 3, 3, 3])
    yield model
    model.set_generation_params()


def _clip(seconds: float, seed: int = 0, batch: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, round(seconds * SR), generator=gen) - 0.5) * 0.4


def _tokens(model, wav):
    return model.compression_model.encode(wav)[0]


def _outside(ranges_s, length: int) -> torch.Tensor:
    """Bool [length] (samples): True outside every (start, end) range in seconds."""
    keep = torch.ones(length, dtype=torch.bool)
    for a, b in ranges_s:
        keep[max(round(a * SR), 0):round(b * SR)] = False
    return keep


# ---------------------------------------------------------------------------- the decoding loop

@pytest.mark.parametrize("arrangement,fast", [("nonoverlap", False), ("stride1", False), ("nonoverlap", True)])
def test_frozen_tokens_are_never_changed(arrangement, fast):
    """Any frozen mask [B, K, T] (here a middle block and scattered tokens): the frozen tokens come
    back as given, the rest is filled; also with fast mode's cached guidance and for variations."""
    lm = tiny_magnet_lm(1, card=16, span_len=3)
    options = FastOptions(kv_cache_refresh=2, cfg_null_refresh=2, cfg_skip_threshold=0.5) if fast else FastOptions()
    params = GenerationParams(decoding_steps=[4, 3, 2, 2], span_arrangement=arrangement, fast=options)
    gen = torch.Generator().manual_seed(0)
    given = torch.randint(0, 16, (2, 4, 48), generator=gen)
    frozen = torch.rand(2, 4, 48, generator=gen) < 0.2
    frozen[..., 12:30] = True  # frozen tokens in the middle, free ones on both sides
    memory = lm.encode_text(["a", "b", None, None])
    for strength in (1.0, 0.4):
        torch.manual_seed(1)
        codes = generate_codes(lm, memory, params, 48, codes=given, frozen=frozen, strength=strength)
        assert codes.shape == (2, 4, 48) and (codes < 16).all()
        assert torch.equal(codes[frozen], given[frozen])
        assert not torch.equal(codes[~frozen], given[~frozen])


def test_a_prompt_is_a_frozen_prefix():
    lm = tiny_magnet_lm(2, card=16, span_len=3)
    params = GenerationParams(decoding_steps=[3, 2, 2, 2])
    memory = lm.encode_text(["a", None])
    prompt = torch.randint(0, 16, (1, 4, 10), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    with_prompt = generate_codes(lm, memory, params, 48, prompt=prompt)
    codes = torch.full((1, 4, 48), lm.mask_id)
    codes[..., :10] = prompt
    frozen = torch.zeros(1, 4, 48, dtype=torch.bool)
    frozen[..., :10] = True
    torch.manual_seed(5)
    assert torch.equal(generate_codes(lm, memory, params, 48, codes=codes, frozen=frozen), with_prompt)


def test_schedules_count_only_the_tokens_to_generate():
    """With 4 of 16 spans free, step i re-masks max(int(rate_i * 4), 1) spans, all inside the free ones."""
    lm = tiny_magnet_lm(3, card=16, span_len=3)
    seen = []
    inner = lm.hidden
    lm.hidden = lambda codes, stage, *a, **k: (seen.append((stage, codes[0, stage].clone())), inner(codes, stage, *a, **k))[1]
    codes = torch.randint(0, 16, (1, 4, 48), generator=torch.Generator().manual_seed(0))
    frozen = torch.ones(1, 4, 48, dtype=torch.bool)
    frozen[..., 18:30] = False
    generate_codes(lm, None, GenerationParams(decoding_steps=[5, 2, 2, 2]), 48, codes=codes, frozen=frozen)
    stage0 = [row for stage, row in seen if stage == 0]
    rates = [math.cos(math.pi / 2 * i / 4) for i in range(5)]
    for row, rate in zip(stage0, rates):
        masked = row == lm.mask_id
        assert not masked[:18].any() and not masked[30:].any()
        assert int(masked.sum()) == 3 * max(int(rate * 4 + 1e-6), 1)


def test_first_step_is_the_step_whose_mask_rate_is_nearest():
    assert first_step(20, 1.0) == 0
    assert first_step(20, 0.5) == round(19 * 2 / 3)  # cos(pi/2 * t) = 0.5 at t = 2/3
    assert first_step(10, 1e-3) == 9


# ---------------------------------------------------------------------------- frame arithmetic

def test_windows_centre_short_regions_and_slide_over_long_ones():
    assert seconds_to_frames(0.1, 0.5, 50) == (5, 25) and seconds_to_frames(-0.3, 0.1, 50, 15) == (0, 20)
    assert seconds_to_frames(0.5, 0.50000001, 50) == (25, 26)  # never empty
    assert align((16, 25), 0, 3, 48) == (15, 27) and merge([(0, 3), (3, 6), (9, 12)]) == [(0, 6), (9, 12)]
    # two nearby regions in one window, centred and clamped to the clip
    assert plan_windows([(10, 14), (20, 24)], 150, 51, 3, 24) == [Window(0, 51, ((9, 15), (18, 24)))]
    (w,) = plan_windows([(100, 110)], 150, 51, 3, 24)
    assert w.start <= 100 and w.start + 51 >= 110 and w.free[0][0] <= 100 and w.free[0][1] >= 110
    # a region longer than a window: pieces, each after `context` frames of the previous one
    pieces = plan_windows([(30, 140)], 150, 51, 3, 24)
    assert len(pieces) > 1 and pieces[0].free[0][0] <= 30 and pieces[-1].free[0][1] >= 140
    for before, after in zip(pieces, pieces[1:]):
        assert after.free[0][0] <= before.free[0][1] and after.start <= before.free[0][1] - 24 + 3


# ---------------------------------------------------------------------------- inpainting

def _reference_inpaint(lm, texts, tokens, a, b, steps, temperature=3.0, max_cfg=10.0, min_cfg=1.0):
    """MAGNeT's masked decoding of frames [a, b) of tokens [B, K, T], written plainly from the paper:
    per codebook, n steps; at step i the mask rate is cos(pi/2 * i / (n - 1)), the
    max(int(rate * N), 1) least confident of the N spans (all at step 0; after that, among the
    spans re-masked at the previous step) are masked, the guided logits uncond + (cond - uncond) *
    coef (coef from max_cfg to min_cfg with the rate) give the argmax token, and a span's confidence
    is the highest probability of its tokens at the annealed temperature."""
    L = lm.cfg.span_len
    codes = tokens.clone()
    codes[:, :, a:b] = lm.mask_id
    B, K, _ = codes.shape
    memory = lm.encode_text(list(texts) + [None] * B)
    spans = [(s, s + L) for s in range(a, b, L)]
    for k, n in enumerate(steps):
        confidence = torch.zeros(B, len(spans))
        chosen = torch.ones(B, len(spans), dtype=torch.bool)
        for i in range(n):
            rate = math.cos(math.pi / 2 * (i / (n - 1) if n > 1 else 0.0))
            num = max(int(rate * len(spans)), 1)
            order = torch.where(chosen, confidence, torch.tensor(float("inf"))).argsort(dim=1, stable=True)  # least sure first
            chosen = torch.zeros_like(chosen)
            for row in range(B):
                chosen[row, order[row, :num]] = True
                for j in order[row, :num].tolist():
                    codes[row, k, spans[j][0]:spans[j][1]] = lm.mask_id
            with torch.no_grad():
                cond = lm(codes, memory[:B], stage=k)[:, k]
                uncond = lm(codes, memory[B:], stage=k)[:, k]
            coef = rate * max_cfg + (1 - rate) * min_cfg
            logits = uncond + (cond - uncond) * coef
            temp = max(temperature * (n - 1 - i) / n, 1e-2)
            probs = torch.softmax(logits / temp, dim=-1)
            best = logits.argmax(dim=-1)
            masked = codes[:, k] == lm.mask_id
            codes[:, k] = torch.where(masked, best, codes[:, k])
            token_prob = probs.gather(-1, best[..., None])[..., 0]
            for j, (s, e) in enumerate(spans):
                confidence[:, j] = token_prob[:, s:e].max(dim=1).values
    return codes


def test_greedy_inpainting_equals_the_plain_reference(greedy):
    wav = _clip(0.96, batch=2)  # 48 frames: one window, a whole number of spans
    texts = ["drums", "piano"]
    out, codes = greedy.generate_inpainting(wav, SR, texts, regions=[(0.3, 0.48)], return_tokens=True)
    assert greedy.last_edit.used == (((0.3, 0.48),), ((0.3, 0.48),))  # frames 15..24: already on the grid
    tokens = _tokens(greedy, wav)
    expected = _reference_inpaint(greedy.lm, texts, tokens, 15, 24, [5, 3, 3, 3])
    assert torch.equal(codes, expected)
    assert not torch.equal(codes[..., 15:24], tokens[..., 15:24])


def test_untouched_audio_is_bit_identical_and_frozen_tokens_kept(model):
    model.set_generation_params(decoding_steps=[3, 2, 2, 2])
    wav = _clip(1.0, batch=2)
    original = wav.clone()
    torch.manual_seed(0)
    out, codes = model.generate_inpainting(wav, SR, ["a", "b"], regions=[(0.1, 0.25), (0.6, 0.7)],
                                           return_tokens=True)
    info = model.last_edit
    assert isinstance(info, EditInfo) and info.spliced and info.kind == "inpainting" and info.sample_rate == SR
    assert info.requested == (((0.1, 0.25), (0.6, 0.7)),) * 2
    assert out.shape == wav.shape and torch.equal(wav, original)  # the input is not modified
    for item in range(2):
        used = info.used[item]
        for (ra, rb), (ua, ub) in zip(info.requested[item], used):
            assert ua <= ra and ub >= rb and ub - ua <= rb - ra + 2 * 3 / 50  # widened by less than a span each side
        keep = _outside(used, wav.shape[-1])
        assert torch.equal(out[item, :, keep], wav[item, :, keep])
        frames = torch.ones(codes.shape[-1], dtype=torch.bool)
        for a, b in used:
            frames[round(a * 50):round(b * 50)] = False
        assert torch.equal(codes[item][:, frames], _tokens(model, wav)[item][:, frames])
    assert not torch.equal(out, wav)
    # splice=False: the pure decode of the edited tokens
    torch.manual_seed(0)
    pure, pure_codes = model.generate_inpainting(wav, SR, ["a", "b"], regions=[(0.1, 0.25), (0.6, 0.7)],
                                                 splice=False, return_tokens=True)
    assert torch.equal(pure_codes, codes) and not model.last_edit.spliced
    with torch.no_grad():  # as the model decodes: with autograd on, oneDNN may pick other conv kernels (last bits)
        decoded = model.compression_model.decode(codes)
    assert torch.equal(pure, decoded[..., :wav.shape[-1]])
    model.set_generation_params()


def test_per_item_regions(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav = _clip(1.0, batch=2)
    calls = []
    model.set_custom_progress_callback(lambda step, total: calls.append((step, total)))
    try:
        out = model.generate_inpainting(wav, SR, None, regions=[[(0.1, 0.2)], [(0.5, 0.6), (0.8, 0.9)]])
    finally:
        model.set_custom_progress_callback(None)
    assert calls == [(i, 5) for i in range(1, 6)]  # one window per item, decoded as one batch
    assert out.shape == wav.shape and len(model.last_edit.used[0]) == 1 and len(model.last_edit.used[1]) == 2
    assert torch.equal(out[0, :, _outside(model.last_edit.used[0], out.shape[-1])],
                       wav[0, :, _outside(model.last_edit.used[0], out.shape[-1])])
    model.set_generation_params()


def test_outpainting_lengthens_and_keeps_the_input(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav = _clip(0.8)
    out = model.generate_inpainting(wav, SR, ["x"], regions=[(-0.3, 0.0), (0.8, 1.2)])
    info = model.last_edit
    assert info.prepended_s == pytest.approx(0.3) and info.appended_s == pytest.approx(0.4)
    assert out.shape[-1] == round(0.3 * SR) + wav.shape[-1] + round(0.4 * SR)
    start = round(0.3 * SR)
    inside = _outside([(u[0] + 0.3, u[1] + 0.3) for u in info.used[0]], out.shape[-1])
    shifted = torch.zeros_like(out)
    shifted[..., start:start + wav.shape[-1]] = wav
    assert inside[start:start + wav.shape[-1]].any() and torch.equal(out[..., inside], shifted[..., inside])
    assert out[..., :start].abs().sum() > 0 and out[..., -1000:].abs().sum() > 0  # generated, not silence
    model.set_generation_params()


def test_long_form_region_beyond_the_window(model):
    """A 3 s clip with a 1 s model: a region at 2.2-2.6 s is decoded in a window around it, a 2.4 s
    region in several windows; everything outside the used regions stays as it was."""
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    wav = _clip(3.0)
    tokens = _tokens(model, wav)
    for region in [(2.2, 2.6), (0.2, 2.6)]:
        out, codes = model.generate_inpainting(wav, SR, ["x"], regions=[region], return_tokens=True)
        (used,) = model.last_edit.used[0]
        assert used[0] <= region[0] and used[1] >= region[1] and used[1] - used[0] < region[1] - region[0] + 0.2
        a, b = round(used[0] * 50), round(used[1] * 50)
        assert torch.equal(codes[..., :a], tokens[..., :a]) and torch.equal(codes[..., b:], tokens[..., b:])
        assert not torch.equal(codes[..., a:b], tokens[..., a:b])
        keep = _outside([used], wav.shape[-1])
        assert torch.equal(out[..., keep], wav[..., keep])
    model.set_generation_params()


def test_fast_mode_keeps_the_frozen_tokens(model):
    model.set_generation_params(decoding_steps=[3, 2, 2, 2], fast=True)
    assert not model.generation_params.fast.exact_guidance
    wav = _clip(1.0)
    out, codes = model.generate_inpainting(wav, SR, ["x"], regions=[(0.4, 0.6)], return_tokens=True)
    (used,) = model.last_edit.used[0]
    a, b = round(used[0] * 50), round(used[1] * 50)
    tokens = _tokens(model, wav)
    assert torch.equal(codes[..., :a], tokens[..., :a]) and torch.equal(codes[..., b:], tokens[..., b:])
    keep = _outside([used], wav.shape[-1])
    assert torch.equal(out[..., keep], wav[..., keep])
    model.set_generation_params()


def test_other_rates_and_channels_are_converted_with_a_warning(model):
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    stereo16k = torch.rand(1, 2, 16000) - 0.5
    with pytest.warns(UserWarning, match="converted to the model's 32000 Hz, 1 channel"):
        out = model.generate_inpainting(stereo16k, 16000, ["x"], regions=[(0.2, 0.4)])
    assert out.shape == (1, 1, 32000) and model.last_edit.converted
    model.set_generation_params()


# ---------------------------------------------------------------------------- variations

def test_variations_strength_zero_returns_the_input(model):
    wav = _clip(1.0, batch=2)
    out, codes = model.generate_variations(wav, SR, ["a", "b"], strength=0.0, return_tokens=True)
    assert torch.equal(codes, _tokens(model, wav)) and torch.equal(out, wav)
    assert model.last_edit.kind == "variations" and model.last_edit.strength == 0.0


def test_variations_strength_one_does_not_depend_on_the_input(model):
    model.set_generation_params(decoding_steps=[3, 2, 2, 2])
    results = []
    for seed in (1, 2):
        torch.manual_seed(11)
        results.append(model.generate_variations(_clip(1.0, seed=seed), SR, ["a"], strength=1.0,
                                                 return_tokens=True)[1])
    assert torch.equal(results[0], results[1])
    model.set_generation_params()


def test_variations_change_about_their_strength(model):
    model.set_generation_params(decoding_steps=[10, 4, 4, 4])
    wav = _clip(1.0)
    tokens = _tokens(model, wav)
    torch.manual_seed(0)
    out, low = model.generate_variations(wav, SR, ["a"], strength=0.2, return_tokens=True)
    torch.manual_seed(0)
    high = model.generate_variations(wav, SR, ["a"], strength=0.9, return_tokens=True)[1]
    assert out.shape == wav.shape and low.shape == tokens.shape
    changed = lambda c: (c[:, 0] != tokens[:, 0]).float().mean().item()  # noqa: E731
    assert 0 < changed(low) < changed(high)
    model.set_generation_params()


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,message", [
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(1.5, 2.0)]), "outside the clip"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(-2.0, -1.0)]), "outside the clip"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(0.1, 0.5), (0.4, 0.6)]), "overlap"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(0.5, 0.5)]), "empty or reversed"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(0.6, 0.2)]), "empty or reversed"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(float("nan"), 0.2)]), "finite"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[]), "non-empty"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=None), "non-empty"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=["0-1"]), "pairs"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[[(0.1, 0.2)], [(0.3, 0.4)]]), "2 lists"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x", "y"], regions=[(0.1, 0.2)]), "2 descriptions for 1"),
    (lambda m, w: m.generate_inpainting(w * float("nan"), SR, ["x"], regions=[(0.1, 0.2)]), "NaN"),
    (lambda m, w: m.generate_inpainting(w, 0, ["x"], regions=[(0.1, 0.2)]), "sample rate"),
    (lambda m, w: m.generate_inpainting(w, 44100.5, ["x"], regions=[(0.1, 0.2)]), "sample rate"),
    (lambda m, w: m.generate_inpainting(w[0, 0], SR, ["x"], regions=[(0.1, 0.2)]), "audio tensor"),
    (lambda m, w: m.generate_inpainting(w.long(), SR, ["x"], regions=[(0.1, 0.2)]), "float"),
    (lambda m, w: m.generate_inpainting(w, SR, ["x"], regions=[(0.1, 0.2)], splice="yes"), "splice"),
    (lambda m, w: m.generate_inpainting(w.expand(2, 1, -1), SR, None, regions=[[(-0.2, 0.1)], [(0.3, 0.4)]]),
     "same amount"),
    (lambda m, w: m.generate_variations(w, SR, ["x"], strength=1.5), "strength"),
    (lambda m, w: m.generate_variations(w, SR, ["x"], strength=float("nan")), "strength"),
])
def test_bad_input_is_an_input_error_and_changes_nothing(model, call, message):
    wav = _clip(1.0)
    original = wav.clone()
    model.last_edit = None
    with pytest.raises(InputError, match=message):
        call(model, wav)
    assert torch.equal(wav, original) and model.last_edit is None


def test_generate_codes_rejects_bad_frozen_masks():
    lm = tiny_magnet_lm(0, card=16, span_len=3)
    params = GenerationParams(decoding_steps=[1, 1, 1, 1])
    codes, frozen = torch.zeros(1, 4, 48, dtype=torch.long), torch.zeros(1, 4, 48, dtype=torch.bool)
    with pytest.raises(InputError, match="not both"):
        generate_codes(lm, None, params, 48, prompt=codes[..., :3], codes=codes, frozen=frozen)
    with pytest.raises(InputError, match="both"):
        generate_codes(lm, None, params, 48, codes=codes)
    with pytest.raises(InputError, match=r"\[B, 4, 48\]"):
        generate_codes(lm, None, params, 48, codes=codes[..., :30], frozen=frozen[..., :30])
    with pytest.raises(InputError, match="bool"):
        generate_codes(lm, None, params, 48, codes=codes, frozen=frozen.long())
    with pytest.raises(InputError, match="strength"):
        generate_codes(lm, None, params, 48, codes=codes, frozen=frozen, strength=0.0)


# ---------------------------------------------------------------------------- the models we load

def _check_edit(model, wav, sample_rate, region):
    out, codes = model.generate_inpainting(wav, sample_rate, ["a beat"], regions=[region], return_tokens=True)
    (used,) = model.last_edit.used[0]
    assert used[0] <= region[0] and used[1] >= region[1]
    keep = torch.ones(out.shape[-1], dtype=torch.bool)
    keep[round(used[0] * sample_rate):round(used[1] * sample_rate)] = False
    assert out.shape == wav.shape and torch.equal(out[..., keep], wav[..., keep])
    assert not torch.equal(out, wav)


@pytest.mark.slow
def test_an_official_format_checkpoint_edits(fixture_dir):
    """audiocraft's export format (the fixture: EnCodec 32 kHz, T5, token-wise masking); slow: T5 loads."""
    model = MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path=fixture_dir / "t5")
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    _check_edit(model, _clip(1.0), SR, (0.3, 0.45))
    variation = model.generate_variations(_clip(1.0), SR, ["a beat"], strength=0.5)
    assert variation.shape == (1, 1, SR)


@pytest.mark.slow
def test_the_bundled_model_edits_long_clips():
    """magnet-audio/synth-music (our format, 16 kHz spectral codec, 10 s window): a region of a 12 s
    clip beyond the window, and outpainting."""
    model = MAGNeT.get_pretrained("magnet-audio/synth-music", device="cpu")
    model.set_generation_params(decoding_steps=[2, 1, 1, 1])
    sr = model.sample_rate
    wav = (torch.rand(1, 1, 12 * sr, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.2
    _check_edit(model, wav, sr, (10.5, 11.5))
    longer = model.generate_inpainting(wav, sr, ["a beat"], regions=[(11.0, 13.0)])
    assert longer.shape[-1] == 13 * sr and torch.equal(longer[..., :10 * sr], wav[..., :10 * sr])
