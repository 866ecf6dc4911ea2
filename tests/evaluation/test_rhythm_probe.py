"""scripts/rhythm_probe.py: the score of a clip's own tokens shifted by a fraction of a beat."""

import numpy as np
import torch

from helpers import load_script


def _periodic_clip(T=200, period=20, card=8):
    """Tokens [T] repeating every beat of ``period`` frames: an onset token (0) on the beat, others between."""
    tokens = torch.tensor([0 if t % period == 0 else 1 + (t % period) % (card - 1) for t in range(T)])
    return tokens, card


def test_a_model_that_knows_the_beat_scores_the_aligned_tokens_above_half_a_beat_away():
    shifted_scores = load_script("rhythm_probe").shifted_scores
    tokens, card = _periodic_clip()
    fractions = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    # knows the beat: the onset token is likely on beat frames and unlikely elsewhere
    knows = torch.full((200, card), 1.0)
    knows[torch.arange(200) % 20 == 0, 0] = 50.0
    knows[torch.arange(200) % 20 != 0, 0] = 0.01
    s = shifted_scores(torch.log(knows / knows.sum(-1, keepdim=True)), tokens, 40, 160, 20.0, fractions)
    assert s[2] > s[1] + 0.1 and s[2] > s[3] + 0.1  # aligned above half a beat away
    assert abs(s[0] - s[2]) < 1e-6 and abs(s[4] - s[2]) < 1e-6  # a whole beat away: the same grid
    # no idea where the beat is: the same distribution everywhere, a flat score
    flat = torch.log_softmax(torch.randn(card), -1).expand(200, card)
    s = shifted_scores(flat, tokens, 40, 160, 20.0, fractions)
    assert np.ptp(s) < 0.05


def test_shifts_past_the_clip_are_left_out():
    shifted_scores = load_script("rhythm_probe").shifted_scores
    tokens, card = _periodic_clip(T=60)
    logp = torch.log_softmax(torch.randn(60, card), -1)
    s = shifted_scores(logp, tokens, 50, 60, 20.0, np.array([0.0, 1.0]))  # t + 20 past the end for every t
    assert np.isfinite(s[0]) and np.isnan(s[1])


def test_the_beat_copy_reference_has_a_phase_contrast_on_a_periodic_clip():
    module = load_script("rhythm_probe")
    tokens, card = _periodic_clip()
    copy = module.beat_copy_logprobs(tokens, 20.0, card)
    assert torch.allclose(copy.exp().sum(-1), torch.ones(200))
    s = module.shifted_scores(copy, tokens, 40, 200, 20.0, np.array([0.0, 0.5]))
    assert s[0] > s[1] + 0.5


def test_a_tempo_rope_lm_is_probed_at_the_prompts_tempo_or_the_clips_bpm(fixture_dir):
    from magnet_audio import MAGNeT
    from magnet_audio.codec import load_compression_model
    from helpers import tiny_magnet_lm

    probe_tempo = load_script("rhythm_probe").probe_tempo
    codec = load_compression_model(str(fixture_dir / "compression_state_dict.bin"), device="cpu")
    items = [{"description": "a fast drum groove", "bpm": 124.0}, {"description": "drums and bass", "bpm": 97.0}]
    trope = MAGNeT("t", codec, tiny_magnet_lm(0, card=64, positional_embedding="rope", tempo_rope=True))
    assert probe_tempo(trope, items, "metadata").tolist() == [124.0, 97.0]
    prompt = probe_tempo(trope, items, "prompt")
    assert prompt[0] == 130.0 and prompt[1].isnan()  # "fast"; no tempo named: 120 in the LM
    phase = MAGNeT("b", codec, tiny_magnet_lm(0, card=64, positional_embedding="rope", tempo_rope=True,
                                              beat_phase=True))
    assert probe_tempo(phase, items, "metadata").tolist() == [[124.0, 0.0], [97.0, 0.0]]  # renders start on a beat
    assert probe_tempo(phase, items, "prompt").tolist() == [[130.0, 0.0], [120.0, 0.0]]
    plain = MAGNeT("p", codec, tiny_magnet_lm(0, card=64, positional_embedding="rope"))
    assert probe_tempo(plain, items, "metadata") is None and probe_tempo(plain, items, "prompt") is None
