"""MAGNeT's training objective (audiocraft ``MagnetSolver``), as pure functions plus one module.

Per batch: one codebook ``stage`` (uniform over the K codebooks, or drawn with ``stage_weights``);
per sample a mask rate ``p = cos(pi t / 2)`` with ``t ~ U(0, 1)``; a span mask of codebook ``stage`` whose expected
coverage is ``p`` (span length L = 3, the number of span starts read from a lookup table);
codebooks below the stage stay visible, those above are all mask tokens; cross-entropy on the
masked positions of the stage codebook only. Classifier-free-guidance dropout nullifies the whole
batch's text with probability ``cfg_dropout`` (one draw per batch); word dropout happens in the
text conditioner when it is in training mode.

Hybrid-MAGNeT (``lm.cfg.hybrid``, the paper's jointly trained model): one network, two losses on the
same batch and the same text memory. (1) The MAGNeT loss above, except that each sample keeps a
random prefix visible in every codebook — a uniform whole number of spans, from 0 to
``max_prefix`` of the segment — that is never masked nor scored: what the model sees when it
completes an autoregressive prefix. The spans are drawn over the frames after the prefix. (2) The
autoregressive cross-entropy of all the codes (every codebook, teacher forcing) through the LM's
causal view (:meth:`~magnet_audio.lm.magnet.MagnetLM.ar_view`, MusicGen's delay pattern). The loss
is ``ce + ar_weight * ar_ce``.

Randomness: the stage and the CFG draw come from Python's ``random`` (or a ``random.Random``
passed in), mask rates and span starts from torch's RNG (or a ``torch.Generator``), so a run that
saves and restores those states replays exactly.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..lm.magnet import MagnetLM
from ..lm.musicgen import MusicGenLM
from ..lm.patterns import build_delay_pattern, revert_delay_logits

IGNORE_INDEX = -1


def cosine_mask_rate(t: torch.Tensor) -> torch.Tensor:
    """Mask rate ``cos(pi t / 2)`` (float32) of timesteps t in [0, 1]: 1 at t=0, 0 at t=1."""
    return torch.cos(t.float() * (math.pi / 2))


@lru_cache(maxsize=32)
def span_count_lut(T: int, span_len: int) -> tuple[int, ...]:
    """Mask percentage m = 0..100 -> u, the number of span starts whose expected coverage is m %.

    With u distinct starts drawn uniformly among T frames and spans of ``span_len`` (cut at the
    end), a frame stays unmasked with probability C(T-L, u) / C(T, u). So
    ``mean[0] = 0``, ``mean[u] = 1 - v_u`` for u = 1..T-1 with ``v_1 = (T-L)/T`` and
    ``v_{u+1} = v_u (T-L-u)/(T-u)`` (float64), and ``lut[m]`` is the first u with
    ``mean[u] >= m/100`` (a left binary search), as audiocraft's ``_calc_mean_maskrate_to_u_LUT``.
    """
    if T < 1 or span_len < 1:
        raise ValueError(f"span_count_lut needs T >= 1 and span_len >= 1, got T={T}, span_len={span_len}")
    mean = [0.0]
    v = (T - span_len) / T
    for u in range(1, T):
        mean.append(1 - v)
        v *= (T - span_len - u) / (T - u)
    return tuple(bisect_left(mean, m / 100) for m in range(101))


def span_mask(rates: torch.Tensor, T: int, span_len: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool [B, T] span masks for mask rates [B] (True = masked).

    ``k = lut[round(100 p)]`` (round half to even, at least 1) distinct starts are drawn uniformly
    among all T frames; each covers ``span_len`` frames to its right, overlapping spans merge and
    spans starting in the last frames are cut at T. ``span_len <= 1`` masks ``round(T p)`` (at
    least 1) random frames instead (audiocraft's ``_non_spans_mask``).
    """
    B = rates.shape[0]
    order = torch.rand(B, T, device=rates.device, generator=generator).argsort(dim=-1)
    if span_len <= 1:
        count = (T * rates).round().clamp(min=1)
        return order < count[:, None]
    lut = torch.tensor(span_count_lut(T, span_len), device=rates.device)
    count = lut[torch.round(100 * rates).long()].clamp(min=1)
    starts = order < count[:, None]
    mask = starts.clone()
    for _ in range(span_len - 1):
        starts = F.pad(starts[:, :-1], (1, 0))  # shift right by one frame
        mask |= starts
    return mask


def hybrid_prefix_lengths(batch: int, T: int, span_len: int, max_prefix: float, device: torch.device,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Visible prefix lengths [B] (frames) for hybrid training: a whole number of spans drawn
    uniformly from 0 to ``floor(max_prefix * T / span_len)`` (``max_prefix`` in [0, 1))."""
    L = max(span_len, 1)
    return torch.randint(0, int(max_prefix * T) // L + 1, (batch,), device=device, generator=generator) * L


def prefix_span_mask(rates: torch.Tensor, prefix_lens: torch.Tensor, T: int, span_len: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool [B, T] span masks that leave each sample's prefix visible: frames before
    ``prefix_lens[b]`` are never masked, the ``T - prefix_lens[b]`` frames after it get a
    :func:`span_mask` of their own length at rate ``rates[b]`` (so at least one is masked).
    With every prefix 0 this is ``span_mask(rates, T, span_len)``, with the same random draws."""
    mask = torch.zeros(rates.shape[0], T, dtype=torch.bool, device=rates.device)
    for P in sorted(set(prefix_lens.tolist())):
        rows = (prefix_lens == P).nonzero(as_tuple=True)[0]
        mask[rows, P:] = span_mask(rates[rows], T - P, span_len, generator)
    return mask


def stage_mask(stage_span_mask: torch.Tensor, num_codebooks: int, stage: int) -> torch.Tensor:
    """Bool [B, K, T]: codebooks < stage unmasked, codebook ``stage`` = the span mask [B, T],
    codebooks > stage all masked."""
    B, T = stage_span_mask.shape
    if not 0 <= stage < num_codebooks:
        raise ValueError(f"stage {stage} is not in [0, {num_codebooks})")
    mask = torch.zeros(B, num_codebooks, T, dtype=torch.bool, device=stage_span_mask.device)
    mask[:, stage] = stage_span_mask
    mask[:, stage + 1:] = True
    return mask


def masked_input(codes: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """codes [B, K, T] with ``mask_id`` where mask [B, K, T] is True."""
    return torch.where(mask, torch.full_like(codes, mask_id), codes)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (float32) over the positions where mask [B, T] is True.

    logits [B, T, card] of the stage head, targets [B, T]; other positions are ignored.
    """
    targets = torch.where(mask, targets, torch.full_like(targets, IGNORE_INDEX))
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def ar_cross_entropy(ar_lm: MusicGenLM, codes: torch.Tensor, memory: torch.Tensor | None) -> torch.Tensor:
    """Teacher-forced autoregressive cross-entropy (float32), the mean over all B x K x T codes.

    codes [B, K, T] are interleaved with ``ar_lm``'s delay pattern (the last step, which predicts
    nothing, dropped) and run causally in one pass; code (k, t) is scored by the output one step
    before it. memory: cross-attention memory [B, L, D] (None: no condition).
    """
    T = codes.shape[-1]
    seq = build_delay_pattern(codes, ar_lm.delays, ar_lm.special_token_id)[..., :-1]
    logits = revert_delay_logits(ar_lm(seq, memory), ar_lm.delays, T)  # [B, K, T, card]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1))


def draw_stage(num_codebooks: int, weights: list[float] | None = None, rng: random.Random | None = None) -> int:
    """The codebook trained by one batch: uniform over ``num_codebooks`` (``weights`` None, one
    ``randrange`` draw), else in proportion to ``weights`` (one per codebook; one ``random`` draw)."""
    rng = rng or random
    if weights is None:
        return rng.randrange(num_codebooks)
    check_stage_weights(num_codebooks, weights)
    return rng.choices(range(num_codebooks), weights=weights)[0]


def check_stage_weights(num_codebooks: int, weights: list[float]) -> None:
    """ValueError unless ``weights`` are ``num_codebooks`` values >= 0 with a positive sum."""
    if len(weights) != num_codebooks or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"stage weights {weights} must be {num_codebooks} values >= 0 with a positive sum")


def cfg_dropout(texts: list[str | None], p: float, rng: random.Random | None = None) -> list[str | None]:
    """Classifier-free guidance dropout: with probability ``p`` (one draw for the whole batch) every
    text becomes None (the null condition); otherwise the texts are returned unchanged."""
    draw = (rng or random).random()
    return [None] * len(texts) if draw < p else list(texts)


#: the share of training rows a ``beat_phase`` LM sees without the beat at frame 0 (as when audio
#: of unknown phase is continued or edited)
PHASE_DROPOUT = 0.2


def phase_dropout(tempi: torch.Tensor, p: float, rng: random.Random | None = None) -> torch.Tensor:
    """tempi [B, 2] (bpm, beat at frame 0) with the beat of each row made NaN (unknown) with
    probability ``p`` (one draw per row); the bpm is kept."""
    draws = torch.tensor([(rng or random).random() for _ in range(tempi.shape[0])])
    tempi = tempi.clone()
    tempi[draws.to(tempi.device) < p, 1] = float("nan")
    return tempi


class MagnetObjective(nn.Module):
    """The trained LM and its loss; ``forward(codes, texts)`` -> (loss, metrics).

    The :class:`~magnet_audio.training.loop.Trainer` wraps this module (in DDP when
    distributed), keeps an EMA of :attr:`model` and exports :attr:`model`. In ``.training`` mode
    the CFG dropout applies and the text conditioner drops words; in eval mode neither does.
    When ``lm.cfg.hybrid`` is set it trains the joint Hybrid-MAGNeT objective (module docstring)
    with ``ar_weight`` and ``max_prefix``. ``stage_weights`` (one per codebook, None: uniform) sets
    how often each codebook is the trained stage.
    """

    model_key = "lm"  # the attribute holding the exported model (checkpoints store objective keys)
    progress_metric = "ce"  # shown on the progress bar

    def __init__(self, lm: MagnetLM, cfg_dropout: float, ar_weight: float = 1.0, max_prefix: float = 0.5,
                 stage_weights: list[float] | None = None):
        super().__init__()
        if stage_weights is not None:
            check_stage_weights(lm.cfg.n_q, stage_weights)  # now rather than at the first batch
        self.lm = lm
        self.cfg_dropout = cfg_dropout
        self.stage_weights = stage_weights
        self.ar_weight, self.max_prefix = ar_weight, max_prefix

    @property
    def model(self) -> MagnetLM:
        return self.lm

    def forward(self, codes: torch.Tensor, texts: list[str | None], tempi: torch.Tensor | None = None,
                stage: int | None = None, generator: torch.Generator | None = None,
                rng: random.Random | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """codes [B, K, T] (ground truth), B texts and their files' bpm [B] (NaN: unknown; used by a
        ``tempo_rope`` LM only, and kept for the CFG-dropped rows: the tempo is not text), or [B, 2]
        with the beat at each crop's first frame (read by a ``beat_phase`` LM; in training
        :data:`PHASE_DROPOUT` of the rows lose it) -> (mean CE on the masked stage tokens, metrics).

        In training mode ``stage`` defaults to a draw from ``rng`` (Python's ``random`` if None),
        uniform or by ``stage_weights``. In eval mode with no ``stage``, every stage is measured (each with its own masks) and
        the loss is the CE over all their masked tokens — a validation loss that covers every
        codebook. Mask rates and spans come from ``generator`` (torch's global RNG if None).
        Metrics (detached, 0-d): ``ce``, ``ce_stage{k}`` per measured stage, ``mask_rate`` (masked
        fraction of the stage codebooks) and ``count`` (masked tokens, the averaging weight); for a
        hybrid LM also ``ar_ce`` (the autoregressive cross-entropy) and ``loss`` (the total).
        """
        K = codes.shape[1]
        if self.training:
            texts = cfg_dropout(texts, self.cfg_dropout, rng)
        if stage is None and self.training:
            stage = draw_stage(K, self.stage_weights, rng)
        if self.training and self.lm.cfg.beat_phase and tempi is not None and tempi.dim() == 2:
            tempi = phase_dropout(tempi, PHASE_DROPOUT, rng)
        stages = range(K) if stage is None else [stage]
        memory = self.lm.encode_text(texts)
        total, count, masked, metrics = 0.0, 0, 0, {}
        for k in stages:
            ce, spans = self._stage_loss(codes, memory, k, generator, tempi if self.lm.cfg.tempo_rope else None)
            n = int(spans.sum())
            total, count, masked = total + ce * n, count + n, masked + spans.numel()
            metrics[f"ce_stage{k}"] = ce.detach()
        loss = ce if len(stages) == 1 else total / count
        metrics.update(ce=loss.detach(), mask_rate=torch.tensor(count / masked), count=torch.tensor(float(count)))
        if self.lm.cfg.hybrid:
            ar_ce = ar_cross_entropy(self.lm.ar_view(), codes, memory)
            loss = loss + self.ar_weight * ar_ce
            metrics.update(ar_ce=ar_ce.detach(), loss=loss.detach())
        return loss, metrics

    def _stage_loss(self, codes: torch.Tensor, memory: torch.Tensor, stage: int, generator: torch.Generator | None,
                    tempi: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean CE of codebook ``stage`` at its masked positions, the span mask [B, T]); a hybrid
        LM keeps a random prefix of each sample visible in every codebook."""
        B, K, T = codes.shape
        rates = cosine_mask_rate(torch.rand(B, device=codes.device, generator=generator))
        if self.lm.cfg.hybrid:
            prefix = hybrid_prefix_lengths(B, T, self.lm.cfg.span_len, self.max_prefix, codes.device, generator)
            spans = prefix_span_mask(rates, prefix, T, self.lm.cfg.span_len, generator)
            visible = torch.arange(T, device=codes.device) < prefix[:, None]  # [B, T]
            mask = stage_mask(spans, K, stage) & ~visible[:, None]
        else:
            spans = span_mask(rates, T, self.lm.cfg.span_len, generator)
            mask = stage_mask(spans, K, stage)
        inputs = masked_input(codes, mask, self.lm.mask_id)
        logits = self.lm(inputs, memory, stage=stage, tempo=tempi)  # [B, K, T, card], every head (all params in the graph)
        return masked_cross_entropy(logits[:, stage], codes[:, stage], spans), spans
