"""Classifier-free guided logits of one decoding step, exact or approximate.

A :class:`Guidance` maps the codes of a step to the guided logits of the codebook being decoded,

    logits = uncond + (cond - uncond) * coef,

cond from the text memory, uncond from the null memory (one batched pass of 2B rows), or the
conditional logits alone without memory. Shapes: codes [B, K, T] -> :class:`GuidedLogits`, the
logits [B, R, card] of codebook ``stage`` (the other heads are not run) at R positions: all T
(exact), or in fast mode's partial passes the ones recomputed, which include every masked one.
Sampling only those keeps a partial step cheap (top-p sampling from 2048 tokens takes about a
millisecond per position on a CPU thread); :meth:`GuidedLogits.full_length` puts the results back
at their positions.

:class:`ExactGuidance` computes that formula at every step. :class:`CachedGuidance` approximates it
for speed (fast mode, :class:`~.params.FastOptions`):

- approximate self-attention cache (``kv_cache_refresh`` N > 1): between full passes (every N
  steps of a stage and at its first step) only the positions that are masked or whose token
  changed since the last pass are recomputed, attending over the other positions' cached
  keys/values (:class:`~magnet_audio.lm.transformer.RowKVCache`);
- guidance skip (``cfg_skip_threshold``): no null-condition pass where ``coef`` is that close to 1;
- cached null-condition pass (``cfg_null_refresh`` N > 1): the null pass runs at the first step of
  a stage and every N steps; the steps in between reuse its logits (a stage's masked positions only
  shrink, so every position still masked has them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..lm.magnet import MagnetLM
from ..lm.transformer import RowKVCache
from .params import FastOptions

CrossKV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class GuidedLogits:
    """Guided logits [B, R, card] at ``positions`` [B, R] (every masked position is one of them), or
    at all T positions when ``positions`` is None (R = T)."""

    logits: torch.Tensor
    positions: torch.Tensor | None = None

    def full_length(self, values: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """values [B, R] (one per position) -> [B, T]: ``others`` [B, T] at the positions not computed."""
        return values if self.positions is None else others.scatter(1, self.positions, values)


class Guidance(Protocol):
    def __call__(self, codes: torch.Tensor, stage: int, step: int, coef: float) -> GuidedLogits:
        """codes [B, K, T] at step ``step`` of codebook ``stage`` -> its guided logits."""


def make_guidance(lm: MagnetLM, memory: torch.Tensor | None, batch: int, fast: FastOptions,
                  tempo: torch.Tensor | None = None, null_tempo: torch.Tensor | None = None) -> Guidance:
    """:class:`ExactGuidance`, or :class:`CachedGuidance` when ``fast`` asks for an approximation.

    memory: cross-attention memory [2B, L, D], the B conditional rows then the B null rows, or None.
    tempo: bpm [B] of each row for a ``tempo_rope`` LM, or [B, 2] (bpm, the beat at frame 0) for a
        ``beat_phase`` one, or None. null_tempo: the null rows' (None: the same as ``tempo``).
    """
    if fast.exact_guidance:
        return ExactGuidance(lm, memory, batch, tempo, null_tempo)
    return CachedGuidance(lm, memory, batch, fast, tempo, null_tempo)


def _rows_tempo(tempo: torch.Tensor | None, null_tempo: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    """The tempo of a pass over ``rows`` rows: B (the conditional rows') or 2B (then the null rows')."""
    if tempo is None or rows == len(tempo):
        return tempo
    return torch.cat([tempo, tempo if null_tempo is None else null_tempo])


class ExactGuidance:
    """The paper's guided logits: one pass over [conditional; null] rows per step.

    The memory's cross-attention keys/values are projected once per generate call.
    """

    def __init__(self, lm: MagnetLM, memory: torch.Tensor | None, batch: int, tempo: torch.Tensor | None = None,
                 null_tempo: torch.Tensor | None = None):
        self.lm, self.batch, self.tempo, self.null_tempo = lm, batch, tempo, null_tempo
        self.cross_kv: CrossKV | None = None if memory is None else lm.transformer.cross_kv(memory)

    def __call__(self, codes: torch.Tensor, stage: int, step: int, coef: float) -> GuidedLogits:
        if self.cross_kv is None:
            return GuidedLogits(self.lm.linears[stage](self.lm.hidden(codes, stage, cross_kv=None, tempo=self.tempo)))
        hidden = self.lm.hidden(torch.cat([codes, codes]), stage, cross_kv=self.cross_kv,
                                tempo=_rows_tempo(self.tempo, self.null_tempo, 2 * self.batch))
        cond, uncond = self.lm.linears[stage](hidden).split(self.batch)
        return GuidedLogits(uncond + (cond - uncond) * coef)


class CachedGuidance:
    """Guided logits with fast mode's approximations (see the module docstring).

    State kept across the steps of a generate call: the self-attention :class:`RowKVCache` and the
    stage codebook at the last pass (``last_seq`` [B, T]) for the partial passes, and the logits of
    the last null-condition pass (``null_logits`` [B, T, card], of stage ``null_stage``).
    """

    def __init__(self, lm: MagnetLM, memory: torch.Tensor | None, batch: int, fast: FastOptions,
                 tempo: torch.Tensor | None = None, null_tempo: torch.Tensor | None = None):
        self.lm, self.batch, self.tempo, self.null_tempo = lm, batch, tempo, null_tempo
        self.cross_kv: CrossKV | None = None if memory is None else lm.transformer.cross_kv(memory)
        self.cond_kv = None if self.cross_kv is None else [(k[:batch], v[:batch]) for k, v in self.cross_kv]
        self.refresh, self.null_refresh = fast.kv_cache_refresh, fast.cfg_null_refresh
        self.skip = fast.cfg_skip_threshold
        self.cache = RowKVCache(len(lm.transformer.layers)) if self.refresh > 1 else None
        self.last_seq: torch.Tensor | None = None
        self.null_stale = False  # the cache's null rows missed a pass (a step without the null pass)
        self.null_logits: torch.Tensor | None = None
        self.null_stage = -1

    def __call__(self, codes: torch.Tensor, stage: int, step: int, coef: float) -> GuidedLogits:
        B = self.batch
        guided = self.cross_kv is not None and not (self.skip > 0 and abs(coef - 1.0) <= self.skip)
        reuse_null = guided and self.null_refresh > 1 and step % self.null_refresh != 0 and self.null_stage == stage
        null_pass = guided and not reuse_null
        seq = codes[:, stage]
        rows = self._rows(seq, step, null_pass)  # [B, R] positions to recompute, None: all of them
        if null_pass:
            logits = self._forward(torch.cat([codes, codes]), stage, rows, self.cross_kv)
        else:
            logits = self._forward(codes, stage, rows, self.cond_kv)
        if self.cache is not None:
            self.last_seq = seq.clone()
            self.null_stale = self.cross_kv is not None and not null_pass
        if null_pass:
            cond, uncond = logits.split(B)
            if self.null_refresh > 1:
                self._store_null(uncond, rows, stage)
        elif reuse_null:
            cond, uncond = logits, self.null_logits if rows is None else _gather_rows(self.null_logits, rows)
        if guided:
            logits = uncond + (cond - uncond) * coef
        return GuidedLogits(logits, rows)

    def _forward(self, codes: torch.Tensor, stage: int, rows: torch.Tensor | None,
                 cross_kv: CrossKV | None) -> torch.Tensor:
        """Logits [n, R, card] of codebook ``stage`` for codes [n, K, T] (n = B or 2B) at ``rows``."""
        tempo = _rows_tempo(self.tempo, self.null_tempo, codes.shape[0])
        if self.cache is None:
            return self.lm.linears[stage](self.lm.hidden(codes, stage, cross_kv=cross_kv, tempo=tempo))
        self.cache.rows = None if rows is None else rows.repeat(codes.shape[0] // self.batch, 1)
        return self.lm.linears[stage](self.lm.hidden(codes, stage, cross_kv=cross_kv, cache=self.cache, tempo=tempo))

    def _rows(self, seq: torch.Tensor, step: int, null_pass: bool) -> torch.Tensor | None:
        """Positions [B, R] for a partial pass over seq [B, T], or None for a full one: the masked
        positions and those whose token changed since the last pass."""
        if (self.cache is None or step % self.refresh == 0 or self.last_seq is None
                or (null_pass and self.null_stale)):
            return None
        need = (seq == self.lm.mask_id) | (seq != self.last_seq)
        count = int(need.sum(dim=1).max())
        if count == seq.shape[1]:
            return None
        # stable sort: each row's needed positions first, in order (padded with others if fewer)
        return torch.sort(need.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]

    def _store_null(self, uncond: torch.Tensor, rows: torch.Tensor | None, stage: int) -> None:
        """Keep the null-condition logits [B, R, card] of ``rows`` (None: all T) for the next steps of
        ``stage``; positions outside ``rows`` are unmasked, so their logits are never read."""
        if rows is None:
            self.null_logits = uncond
        else:
            if self.null_stage != stage or self.null_logits is None:  # rows: the cache is on, last_seq set
                self.null_logits = uncond.new_zeros(uncond.shape[0], self.last_seq.shape[1], uncond.shape[-1])
            self.null_logits = self.null_logits.scatter(1, rows.unsqueeze(-1).expand_as(uncond), uncond)
        self.null_stage = stage


def _gather_rows(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """logits [B, T, card] at rows [B, R] -> [B, R, card]."""
    return logits.gather(1, rows.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
