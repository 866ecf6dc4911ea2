"""MAGNeT's training objective against hand-computed values (audiocraft-spec §2)."""

import math
import random

import pytest
import torch

from magnet_audio.training.objectives import (
    MagnetObjective,
    draw_stage,
    cfg_dropout,
    cosine_mask_rate,
    masked_cross_entropy,
    masked_input,
    span_count_lut,
    span_mask,
    stage_mask,
)
from helpers import tiny_magnet_lm


def test_cosine_mask_rate():
    t = torch.tensor([0.0, 0.5, 1.0])
    rate = cosine_mask_rate(t)
    assert rate.dtype == torch.float32
    assert rate[0] == 1.0
    assert rate[1] == pytest.approx(math.cos(math.pi / 4))
    assert abs(float(rate[2])) < 1e-7  # cos(pi/2) in float32 is about -4.4e-8


def test_lut_sample_values_from_the_spec():
    lut = span_count_lut(500, 3)
    assert len(lut) == 101
    assert {m: lut[m] for m in (0, 1, 5, 10, 25, 50, 75, 90, 99, 100)} == {
        0: 0, 1: 2, 5: 9, 10: 18, 25: 46, 50: 103, 75: 185, 90: 268, 99: 392, 100: 498}
    lut = span_count_lut(1500, 3)
    assert {m: lut[m] for m in (10, 50, 90, 100)} == {10: 52, 50: 310, 90: 804, 100: 1498}


def test_lut_small_case_by_hand():
    # T=10, L=3: mean[u] = 1 - prod_{j<u} (7-j)/(10-j):
    # 0, .3, .5333, .7083, .8333, .9167, .9667, .99167, 1, 1 -> lut[m] = first u with mean[u] >= m/100
    lut = span_count_lut(10, 3)
    expected = [0] + [1] * 30 + [2] * 23 + [3] * 17 + [4] * 13 + [5] * 8 + [6] * 5 + [7] * 3 + [8]
    assert list(lut) == expected


def test_span_mask_matches_its_definition():
    """k starts among all T frames (k from the LUT, at least 1), each extended right over L frames."""
    T, L = 30, 3
    rates = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    mask = span_mask(rates, T, L, torch.Generator().manual_seed(3))
    assert mask.shape == (5, T) and mask.dtype == torch.bool
    order = torch.rand(5, T, generator=torch.Generator().manual_seed(3)).argsort(dim=-1)
    lut = span_count_lut(T, L)
    k = torch.tensor([max(1, lut[round(100 * float(r))]) for r in rates])
    starts = order < k[:, None]
    expected = starts.clone()
    for shift in range(1, L):
        expected[:, shift:] |= starts[:, :-shift]
    assert torch.equal(mask, expected)
    assert (starts.sum(-1) == k).all()
    assert (mask.sum(-1) <= k * L).all()  # overlaps merge


def test_span_truncation_and_run_lengths():
    """k = 1 (rate 1 %): exactly one run per row, of length 3, or cut at the end (1 or 2 frames)."""
    T, B = 10, 400
    mask = span_mask(torch.full((B,), 0.01), T, 3, torch.Generator().manual_seed(0))
    lengths = set()
    for row in mask.tolist():
        first = row.index(True)
        length = sum(row)
        assert row[first:first + length] == [True] * length  # one contiguous run
        assert length == min(3, T - first)
        lengths.add(length)
    assert lengths == {1, 2, 3}


def test_span_mask_mean_rate_is_the_target():
    T = 500
    for p in (0.1, 0.5, 0.9):
        mask = span_mask(torch.full((2000,), p), T, 3, torch.Generator().manual_seed(1))
        assert float(mask.float().mean()) == pytest.approx(p, abs=0.01)


def test_span_len_one_masks_round_T_p_tokens():
    mask = span_mask(torch.tensor([0.0, 0.25, 0.5, 1.0]), 10, 1, torch.Generator().manual_seed(0))
    assert mask.sum(-1).tolist() == [1, 2, 5, 10]  # round half to even: 2.5 -> 2; at least 1


def test_stage_mask_and_input():
    spans = torch.tensor([[True, False, True, False, False], [False, True, True, True, False]])
    mask = stage_mask(spans, 4, 1)
    assert mask.shape == (2, 4, 5)
    assert not mask[:, 0].any()             # lower codebooks visible
    assert torch.equal(mask[:, 1], spans)   # the stage codebook span-masked
    assert mask[:, 2:].all()                # higher codebooks all masked
    codes = torch.arange(40).view(2, 4, 5) % 7
    inputs = masked_input(codes, mask, 99)
    assert torch.equal(inputs[:, 0], codes[:, 0])
    assert torch.equal(inputs[:, 1], torch.where(spans, 99, codes[:, 1]))
    assert (inputs[:, 2:] == 99).all()
    with pytest.raises(ValueError):
        stage_mask(spans, 4, 4)


def test_masked_cross_entropy_ignores_unmasked_positions():
    card = 5
    logits = torch.zeros(1, 3, card)
    logits[0, 0, 2] = math.log(4.0)  # p(target 2) = 4 / (4 + 4) = 0.5
    targets = torch.tensor([[2, 1, 0]])
    mask = torch.tensor([[True, True, False]])
    expected = (math.log(2.0) + math.log(card)) / 2  # position 1: uniform logits, p = 1 / card
    assert float(masked_cross_entropy(logits, targets, mask)) == pytest.approx(expected, abs=1e-6)
    logits[0, 2] = torch.randn(card) * 10  # an unmasked position changes nothing
    assert float(masked_cross_entropy(logits, targets, mask)) == pytest.approx(expected, abs=1e-6)


def test_cfg_dropout_is_one_draw_per_batch():
    texts = ["a", "b", None, "c"]

    class Draws(random.Random):
        def __init__(self, values):
            super().__init__(0)
            self.values = list(values)

        def random(self):
            return self.values.pop(0)

    assert cfg_dropout(texts, 0.3, Draws([0.29])) == [None] * 4
    assert cfg_dropout(texts, 0.3, Draws([0.3])) == texts
    rng = Draws([0.1, 0.9])
    cfg_dropout(texts, 0.3, rng)
    assert rng.values == [0.9]  # exactly one draw


def _lm(card=16, n_q=4, word_dropout=0.0):
    return tiny_magnet_lm(train=True, card=card, n_q=n_q, subcodes_context=5, word_dropout=word_dropout)


def test_objective_masks_only_the_stage_and_scores_its_masked_tokens():
    lm = _lm()
    objective = MagnetObjective(lm, cfg_dropout=0.0).train()
    seen = {}
    lm.register_forward_hook(lambda module, args, out: seen.update(inputs=args[0], logits=out))
    codes = torch.randint(0, 16, (3, 4, 50), generator=torch.Generator().manual_seed(0))
    loss, metrics = objective(codes, ["x y", "z", None], stage=2, generator=torch.Generator().manual_seed(5))
    inputs, logits = seen["inputs"], seen["logits"]
    assert torch.equal(inputs[:, :2], codes[:, :2])
    assert (inputs[:, 3] == lm.mask_id).all()
    spans = inputs[:, 2] == lm.mask_id
    assert spans.any() and torch.equal(inputs[:, 2][~spans], codes[:, 2][~spans])
    reference = masked_cross_entropy(logits[:, 2], codes[:, 2], spans)
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), abs=1e-6)
    assert metrics["count"] == spans.sum() and set(metrics) >= {"ce", "ce_stage2", "mask_rate", "count"}
    loss.backward()
    assert all(p.grad is not None for p in objective.parameters())  # every head in the graph (DDP needs it)


def test_objective_eval_measures_every_stage_and_training_draws_one():
    lm = _lm()
    objective = MagnetObjective(lm, cfg_dropout=0.0)
    codes = torch.randint(0, 16, (2, 4, 30))
    objective.eval()
    with torch.no_grad():
        _, metrics = objective(codes, ["a", "b"], generator=torch.Generator().manual_seed(0), rng=random.Random(0))
    assert {f"ce_stage{k}" for k in range(4)} <= set(metrics)
    objective.train()
    _, metrics = objective(codes, ["a", "b"], rng=random.Random(0))
    assert [k for k in metrics if k.startswith("ce_stage")] == [f"ce_stage{random.Random(0).randrange(4)}"]


def test_draw_stage_uniform_or_weighted():
    assert draw_stage(4, None, random.Random(3)) == random.Random(3).randrange(4)  # unchanged uniform draws
    rng = random.Random(0)
    counts = [0] * 4
    for _ in range(4000):
        counts[draw_stage(4, [6, 2, 2, 0], rng)] += 1
    assert counts[3] == 0 and abs(counts[0] / 4000 - 0.6) < 0.03 and abs(counts[1] / 4000 - 0.2) < 0.03
    for bad in ([1, 1, 1], [1, -1, 1, 1], [0, 0, 0, 0]):
        with pytest.raises(ValueError, match="stage weights"):
            draw_stage(4, bad)


def test_objective_trains_the_stages_its_weights_pick():
    objective = MagnetObjective(_lm(), cfg_dropout=0.0, stage_weights=[0, 0, 1, 0]).train()
    codes = torch.randint(0, 16, (2, 4, 30))
    for seed in range(5):
        _, metrics = objective(codes, ["a", "b"], rng=random.Random(seed))
        assert [k for k in metrics if k.startswith("ce_stage")] == ["ce_stage2"]
    state = random.getstate()
    MagnetObjective(_lm(), cfg_dropout=0.0, stage_weights=[1, 1, 1, 1])
    assert random.getstate() == state  # checking the weights draws nothing
    with pytest.raises(ValueError, match="stage weights"):
        MagnetObjective(_lm(), cfg_dropout=0.0, stage_weights=[1, 1])  # the LM has 4 codebooks


def test_word_dropout_only_in_training_mode():
    objective = MagnetObjective(_lm(word_dropout=1.0), cfg_dropout=0.0)
    objective.train()
    assert not objective.lm.encode_text(["calm piano"]).any()  # every word dropped: the null condition
    objective.eval()
    assert objective.lm.encode_text(["calm piano"]).any()
