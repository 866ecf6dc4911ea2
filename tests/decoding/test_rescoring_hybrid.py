"""Rescoring MAGNeT with an external AR model, Hybrid-MAGNeT, long-form MAGNeT, and their CLI flags."""

import pytest
import soundfile as sf
import torch

from magnet_audio import MAGNeT, MusicGen
from magnet_audio.cli import main
from magnet_audio.decoding import GenerationParams, generate_codes
from magnet_audio.decoding.ar import ARGenerationParams, code_probabilities, generate_ar
from magnet_audio.decoding.hybrid import generate_hybrid_codes
from magnet_audio.decoding.rescoring import ARRescorer, combine_probs
from magnet_audio.decoding.schedules import mask_rates, num_to_mask
from magnet_audio.errors import InputError
from helpers import fixture_sized_musicgen_lm, tiny_magnet_lm, tiny_musicgen_lm, write_export

TEXTS = ["lofi beat", "calm piano"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def magnet(fixture_dir):
    return MAGNeT.get_pretrained(str(fixture_dir), device="cpu", t5_path=fixture_dir / "t5")


@pytest.fixture(scope="module")
def musicgen_dir(fixture_dir, tmp_path_factory):
    return write_export(fixture_sized_musicgen_lm(segment=2.0), tmp_path_factory.mktemp("ar") / "musicgen",
                        fixture_dir / "compression_state_dict.bin")


@pytest.fixture(scope="module")
def musicgen(musicgen_dir, fixture_dir):
    return MusicGen.get_pretrained(str(musicgen_dir), device="cpu", t5_path=fixture_dir / "t5")


@pytest.fixture(autouse=True)
def _reset(magnet):
    yield
    magnet.set_generation_params()


def _tiny_magnet(card=16, seed=0):
    return tiny_magnet_lm(seed, card=card)


# ---------------------------------------------------------------- the rescoring formula

def test_combination_is_the_papers_convex_mix():
    p = torch.tensor([0.9, 0.2, 0.5])
    r = torch.tensor([0.1, 0.8, 0.5])
    torch.testing.assert_close(combine_probs(p, r, 0.25), torch.tensor([0.7, 0.35, 0.5]))
    assert torch.equal(combine_probs(p, r, 0.0), p) and torch.equal(combine_probs(p, r, 1.0), r)
    with pytest.raises(InputError, match="rescore_weight"):
        combine_probs(p, r, 1.5)
    with pytest.raises(InputError, match="rescore_weight"):
        GenerationParams(rescore_weight=-0.1).validate(4)


def test_ar_rescorer_scores_one_codebook_of_a_masked_candidate():
    ar = tiny_musicgen_lm(card=16)
    rescorer = ARRescorer(ar, ["a", "b"])
    codes = torch.randint(0, 16, (2, 4, 30))
    codes[:, 2:] = 16  # higher codebooks still masked (MAGNeT's mask id = card)
    probs = rescorer(codes, 1)
    assert probs.shape == (2, 30) and ((probs > 0) & (probs <= 1)).all()
    expected = code_probabilities(ar, codes, ar.encode_text(["a", "b"]))[:, 1]
    torch.testing.assert_close(probs, expected)
    assert rescorer.calls == 1 and rescorer.seconds > 0
    with pytest.raises(InputError, match="descriptions"):
        rescorer(codes[:1], 0)


class _FavourEvenChunks:
    """A rescorer that trusts chunks 0, 2, 4, ... (p = 0.95) and distrusts the others (p = 0.05)."""

    def __init__(self):
        self.calls = []

    def __call__(self, codes, stage):
        self.calls.append((stage, codes.clone()))
        frames = torch.arange(codes.shape[-1])
        return torch.where((frames // 3) % 2 == 0, 0.95, 0.05).expand(codes.shape[0], -1)


def _stage0_rows(lm, params, rescorer):
    """The stage-0 token row fed to the LM at every step of stage 0."""
    rows, inner = [], lm.hidden

    def spy(codes, stage, memory=None, cross_kv=None, **kwargs):
        if stage == 0:
            rows.append(codes[0, 0].clone())
        return inner(codes, stage, memory, cross_kv, **kwargs)

    lm.hidden = spy
    try:
        codes = generate_codes(lm, lm.encode_text(["a", None]), params, 50, rescorer=rescorer)
    finally:
        del lm.hidden
    return codes, rows


def test_the_rescorer_decides_which_spans_stay_masked():
    lm = _tiny_magnet()
    steps = [3, 1, 1, 1]
    favour = _FavourEvenChunks()
    with_rescorer = GenerationParams(use_sampling=False, decoding_steps=steps, rescore_weight=1.0)
    codes, rows = _stage0_rows(lm, with_rescorer, favour)
    masked = (rows[1] == lm.mask_id).reshape(16, 3).all(1)
    assert masked.sum() == num_to_mask(mask_rates(3)[1], 16) == 11
    assert masked[1::2].all()  # every distrusted chunk was re-masked: only trusted chunks were kept
    masked2 = (rows[2] == lm.mask_id).reshape(16, 3).all(1)
    assert masked2.sum() == 1 and masked2[1::2].any()
    # MAGNeT alone keeps other spans
    plain, plain_rows = _stage0_rows(lm, GenerationParams(use_sampling=False, decoding_steps=steps), None)
    plain_masked = (plain_rows[1] == lm.mask_id).reshape(16, 3).all(1)
    assert not plain_masked[1::2].all()
    # called once per step, on the candidate: the stage row fully sampled, higher codebooks masked
    assert [s for s, _ in favour.calls] == [0, 0, 0, 1, 2, 3]
    for stage, candidate in favour.calls:
        assert (candidate[:, stage] < lm.mask_id).all() and (candidate[:, stage + 1:] == lm.mask_id).all()


def test_rescoring_through_the_api_is_deterministic_and_changes_the_result(magnet, musicgen):
    magnet.set_generation_params(use_sampling=False, decoding_steps=[4, 2, 2, 2])
    plain = magnet.generate(TEXTS, return_tokens=True)[1]
    magnet.set_generation_params(use_sampling=False, decoding_steps=[4, 2, 2, 2], rescorer=musicgen,
                                 rescore_weight=0.0)
    assert torch.equal(magnet.generate(TEXTS, return_tokens=True)[1], plain)  # weight 0 = plain MAGNeT
    magnet.set_generation_params(use_sampling=False, decoding_steps=[4, 2, 2, 2], rescorer=musicgen,
                                 rescore_weight=0.7)
    wav, first = magnet.generate(TEXTS, return_tokens=True)
    second = magnet.generate(TEXTS, return_tokens=True)[1]
    assert first.shape == plain.shape == (2, 4, 48) and wav.shape == (2, 1, 48 * 640)
    assert torch.equal(first, second)
    assert not torch.equal(first, plain)


def test_rescorer_must_share_the_codec(magnet):
    with pytest.raises(InputError, match="codec"):
        magnet.set_generation_params(rescorer=tiny_musicgen_lm(card=16))
    with pytest.raises(InputError, match="MusicGen"):
        magnet.set_generation_params(rescorer="facebook/musicgen-small")


# ---------------------------------------------------------------- Hybrid-MAGNeT

def test_hybrid_keeps_the_ar_prefix_verbatim(magnet, musicgen, monkeypatch):
    import magnet_audio.decoding.hybrid as hybrid

    prefixes = []

    def recording(*args, **kwargs):
        out = generate_ar(*args, **kwargs)
        prefixes.append(out)
        return out

    monkeypatch.setattr(hybrid, "generate_ar", recording)
    magnet.set_generation_params(decoding_steps=[3, 2, 2, 2])  # sampling MAGNeT
    musicgen.set_generation_params(duration=1)  # sampling AR (top-k 250)
    torch.manual_seed(0)
    calls = []
    magnet.set_custom_progress_callback(lambda step, total: calls.append((step, total)))
    wav, codes = magnet.generate_hybrid(TEXTS, musicgen, prefix_seconds=0.4, return_tokens=True)
    magnet.set_custom_progress_callback(None)
    assert codes.shape == (2, 4, 48) and wav.shape == (2, 1, 48 * 640)
    (prefix,) = prefixes
    assert prefix.shape == (2, 4, 20)  # 0.4 s; frames 18, 19 share a span with MAGNeT's frame 20
    assert torch.equal(codes[..., :20], prefix)
    assert calls == [(i, 23 + 9) for i in range(1, 33)]  # 20 frames + 3 delay steps, then 9 MAGNeT steps


def test_hybrid_greedy_prefix_is_the_ar_models_own_generation():
    ar, nar = tiny_musicgen_lm(card=16), _tiny_magnet(card=16)
    ar_memory, memory = ar.encode_text(["a", None]), nar.encode_text(["a", None])
    ar_params = ARGenerationParams(use_sampling=False)
    codes = generate_hybrid_codes(ar, ar_memory, ar_params, nar, memory, GenerationParams(decoding_steps=[2, 1, 1, 1]),
                                  prefix_len=13, max_len=50)
    assert codes.shape == (1, 4, 48)
    assert torch.equal(codes[..., :13], generate_ar(ar, ar_memory, ar_params, 13))
    with pytest.raises(InputError, match="prefix"):
        generate_hybrid_codes(ar, ar_memory, ar_params, nar, memory, GenerationParams(), prefix_len=50, max_len=50)
    with pytest.raises(InputError, match="codec"):
        generate_hybrid_codes(tiny_musicgen_lm(card=32), None, ar_params, nar, None, GenerationParams(), 10, 50)


def test_hybrid_rejects_a_prefix_outside_the_window(magnet, musicgen):
    with pytest.raises(InputError, match="prefix_seconds"):
        magnet.generate_hybrid(TEXTS, musicgen, prefix_seconds=1.0)


# ---------------------------------------------------------------- long-form MAGNeT

def test_long_form_magnet_reuses_the_tail_as_the_next_prompt(magnet, monkeypatch):
    import magnet_audio.models as models

    windows = []

    def recording(lm, memory, params, max_len, prompt=None, **kwargs):
        out = generate_codes(lm, memory, params, max_len, prompt=prompt, **kwargs)
        windows.append((max_len, None if prompt is None else prompt.clone(), out))
        return out

    monkeypatch.setattr(models, "generate_codes", recording)
    magnet.set_generation_params(decoding_steps=[2, 1, 1, 1], duration=3.3)  # default stride: half the window
    torch.manual_seed(0)
    wav, codes = magnet.generate(["lofi beat"], return_tokens=True)
    assert codes.shape == (1, 4, 165) and wav.shape == (1, 1, 165 * 640)
    # windows of 48 frames (50 cut to whole spans), 21 frames of overlap, the last one shorter
    assert [w[0] for w in windows] == [50, 48, 48, 48, 48, 30]
    assert windows[0][1] is None
    so_far = windows[0][2]
    for _, prompt, out in windows[1:]:
        assert torch.equal(prompt, so_far[..., -21:])  # the prompt is the tail generated so far
        assert torch.equal(out[..., :21], prompt)  # ... and it is kept
        so_far = torch.cat([so_far, out[..., 21:]], dim=-1)
    assert torch.equal(codes, so_far[..., :165])


def test_long_form_with_rescorer_counts_steps(magnet, musicgen):
    magnet.set_generation_params(decoding_steps=[2, 1, 1, 1], duration=2.0, extend_stride=0.6, rescorer=musicgen)
    calls = []
    magnet.set_custom_progress_callback(lambda step, total: calls.append((step, total)))
    codes = magnet.generate(["x"], return_tokens=True)[1]
    magnet.set_custom_progress_callback(None)
    assert codes.shape == (1, 4, 100)
    # 3 windows (48, 48 and 42 frames; 0.6 s stride -> 18 frames of overlap) of 5 steps each
    assert calls == [(i, 15) for i in range(1, 16)]


def test_shorter_duration_cuts_the_window(magnet):
    magnet.set_generation_params(decoding_steps=[2, 1, 1, 1], duration=0.5)
    assert magnet.generate(["x"], return_tokens=True)[1].shape == (1, 4, 25)
    with pytest.raises(InputError, match="extend_stride"):
        magnet.set_generation_params(duration=3, extend_stride=1.0)


# ---------------------------------------------------------------- CLI

def test_cli_rescorer_hybrid_and_duration(tmp_path, fixture_dir, musicgen_dir):
    common = ["--model", str(fixture_dir), "--t5-path", str(fixture_dir / "t5"), "--steps", "2,1,1,1", "--seed", "0",
              "-q"]
    assert main(["generate", "lofi beat", "-o", str(tmp_path / "r"), "--rescorer", str(musicgen_dir),
                 "--rescore-weight", "0.6"] + common) == 0
    assert main(["generate", "lofi beat", "-o", str(tmp_path / "h"), "--hybrid-ar", str(musicgen_dir),
                 "--hybrid-prefix-seconds", "0.3"] + common) == 0
    assert main(["generate", "lofi beat", "-o", str(tmp_path / "d"), "--duration", "2.5"] + common) == 0
    lengths = {name: len(sf.read(next((tmp_path / name).glob("*.wav")))[0]) for name in "rhd"}
    assert lengths == {"r": 48 * 640, "h": 48 * 640, "d": 125 * 640}
    assert main(["generate", "x", "-o", str(tmp_path / "bad"), "--rescore-weight", "2",
                 "--rescorer", str(musicgen_dir)] + common) == 2
