"""Pure decoding functions against hand-computed values."""

import math

import pytest
import torch

from magnet_audio.decoding.sampling import sample, top_k_filter, top_p_sorted
from magnet_audio.decoding.schedules import guidance_coef, mask_rates, num_to_mask, temperature
from magnet_audio.decoding.spans import chunk_scores, least_probable_spans, spans_mask, token_scores


def test_mask_rates_endpoints():
    assert [float(r) for r in mask_rates(1)] == [1.0]
    rates = [float(r) for r in mask_rates(3)]
    assert rates[0] == 1.0
    assert rates[1] == pytest.approx(math.sqrt(0.5), abs=1e-7)
    assert abs(rates[2]) < 1e-7  # cos(pi/2) in float32 is -4.4e-8, not 0


def test_num_to_mask_20_steps_166_chunks():
    # 10 s at 50 Hz trimmed to 498 frames = 166 chunks of 3
    expected = [166, 165, 163, 160, 157, 152, 145, 138, 130, 122, 112, 101, 90, 79, 66, 53, 40, 27, 13, 1]
    assert [num_to_mask(r, 166) for r in mask_rates(20)] == expected


def test_num_to_mask_never_below_one():
    assert num_to_mask(0.0, 100) == 1
    assert num_to_mask(0.004, 100) == 1
    assert num_to_mask(0.5, 7) == 3  # truncation, not rounding


def test_cfg_coef_anneals_from_max_to_min():
    assert guidance_coef(1.0, 10.0, 1.0) == 10.0
    assert guidance_coef(0.5, 10.0, 1.0) == 5.5
    assert guidance_coef(0.0, 10.0, 1.0) == 1.0
    assert guidance_coef(torch.tensor(0.25), 20.0, 2.0) == pytest.approx(6.5)


def test_temperature_linear_decay():
    assert temperature(3.0, 0, 20) == pytest.approx(2.85)
    assert temperature(3.0, 1, 20) == pytest.approx(2.70)
    assert temperature(3.0, 19, 20) == 0.0
    assert temperature(3.0, 5, 20, anneal=False) == 3.0


def test_top_p_keeps_the_token_that_crosses_p():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    kept, order = top_p_sorted(probs, 0.7)
    assert order.tolist() == [1, 3, 0, 2]
    assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    kept, _ = top_p_sorted(probs, 0.5)  # mass before the 2nd token is exactly 0.5: kept
    assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    kept, _ = top_p_sorted(probs, 0.4)
    assert torch.allclose(kept, torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_top_k_keeps_ties():
    probs = torch.tensor([0.1, 0.4, 0.4, 0.1])
    assert torch.allclose(top_k_filter(probs, 1), torch.tensor([0.0, 0.5, 0.5, 0.0]))
    assert torch.allclose(top_k_filter(probs, 3), probs)


def test_sample_stays_in_the_nucleus_and_scores_use_the_right_distribution():
    torch.manual_seed(0)
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3]).expand(2000, 4)
    ids, score_probs = sample(probs, top_p=0.7)
    assert set(ids.flatten().tolist()) == {1, 3}
    assert score_probs is probs  # top-p scores come from the full distribution
    frac = (ids == 1).float().mean().item()
    assert abs(frac - 0.625) < 0.04
    ids, score_probs = sample(probs, top_k=1)
    assert set(ids.flatten().tolist()) == {1}
    assert torch.allclose(score_probs[0], torch.tensor([0.0, 1.0, 0.0, 0.0]))  # truncated, renormalised


def test_sample_is_reproducible_with_a_seed():
    probs = torch.softmax(torch.randn(4, 50, 64), dim=-1)
    torch.manual_seed(3)
    a, _ = sample(probs, top_p=0.9)
    torch.manual_seed(3)
    b, _ = sample(probs, top_p=0.9)
    assert torch.equal(a, b) and a.shape == (4, 50, 1)


def test_chunk_scores():
    probs = torch.tensor([[0.9, 0.2, 0.5, 0.1, 0.1, 0.3]])
    assert torch.allclose(chunk_scores(probs, 3, "max"), torch.tensor([[0.1, 0.7]]))
    expected = torch.tensor([[-math.log(0.9) - math.log(0.2) - math.log(0.5), -2 * math.log(0.1) - math.log(0.3)]])
    assert torch.allclose(chunk_scores(probs, 3, "prod"), expected)
    with pytest.raises(ValueError):
        chunk_scores(probs, 3, "mean")


@pytest.mark.parametrize("choice_temp", [1.0, 0.5, 2.0])
def test_choice_temperature_keeps_spans_in_proportion_to_confidence(choice_temp):
    """MaskGIT's randomised choice: with Gumbel noise of scale tau on the log confidences, the chunk
    kept (the lower score) is drawn with probability proportional to confidence ** (1 / tau)."""
    torch.manual_seed(0)
    n = 20000
    probs = torch.tensor([0.9, 0.2, 0.5, 0.1, 0.3, 0.2]).repeat(n, 1)  # chunk confidences (max): 0.9, 0.3
    scores = chunk_scores(probs, 3, "max", choice_temp)
    first_kept = (scores[:, 0] < scores[:, 1]).float().mean().item()
    w = [0.9 ** (1 / choice_temp), 0.3 ** (1 / choice_temp)]
    assert abs(first_kept - w[0] / sum(w)) < 0.015
    # ... and the "prod" confidences (the product of the chunk's probabilities): 0.09 vs 0.006
    prod = chunk_scores(probs, 3, "prod", choice_temp)
    w = [0.09 ** (1 / choice_temp), 0.006 ** (1 / choice_temp)]
    assert abs((prod[:, 0] < prod[:, 1]).float().mean().item() - w[0] / sum(w)) < 0.015
    tokens = token_scores(torch.tensor([0.6, 0.2]).repeat(n, 1), choice_temp)
    w = [0.6 ** (1 / choice_temp), 0.2 ** (1 / choice_temp)]
    assert abs((tokens[:, 0] < tokens[:, 1]).float().mean().item() - w[0] / sum(w)) < 0.015


def test_choice_temperature_zero_is_the_deterministic_scores():
    probs = torch.tensor([[0.9, 0.2, 0.5, 0.1, 0.1, 0.3]])
    assert torch.equal(chunk_scores(probs, 3, "max", 0.0), chunk_scores(probs, 3, "max"))
    assert torch.allclose(token_scores(probs), -torch.log(probs))


def test_spans_mask_cuts_at_the_end():
    mask = spans_mask(torch.tensor([0, 4]), 6, 3)
    assert mask.tolist() == [True, True, True, False, True, True]


def test_least_probable_spans_single_span():
    scores = torch.tensor([0.0, 1, 5, 6, 7, 0, 0, 0, 2, 3])
    # span sums (L=3): 6, 12, 18, 13, 7, 0, 2, 5 -> the least probable span starts at 2
    assert least_probable_spans(scores, 3, 3).nonzero().flatten().tolist() == [2, 3, 4]


def test_least_probable_spans_binary_search():
    scores = torch.tensor([0.0, 1, 5, 6, 7, 0, 0, 0, 2, 3])
    # target 6: u in [2, 4], mid 3 -> spans at 2, 3, 1 cover 1..5 (5 <= 6) -> lo 3, mid round(3.5) = 4 = hi:
    # the search stops and returns the last probe's mask (3 spans), not a 4-span mask.
    assert least_probable_spans(scores, 6, 3).nonzero().flatten().tolist() == [1, 2, 3, 4, 5]
    # a target below the span length is raised to it
    assert least_probable_spans(scores, 1, 3).sum().item() == 3
