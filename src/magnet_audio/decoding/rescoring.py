"""Rescoring MAGNeT's predictions with an external pre-trained autoregressive model (the paper's method).

At every decoding step MAGNeT samples a candidate for each masked token and scores the candidate
spans by its own confidence; the least confident spans are re-masked. Rescoring feeds the whole
candidate sequence to an external model (MusicGen, used non-autoregressively: one teacher-forced
forward pass) and mixes the two probabilities of each sampled token,

    p(token) = (1 - w) * p_MAGNeT(token) + w * p_rescorer(token),      w = ``rescore_weight``,

before the span scores are computed from it (``max``: 1 - max over the span, ``prod``:
sum of -log p), so the combined probability decides which spans stay masked. w = 0 is plain
MAGNeT, w = 1 trusts only the rescorer.

The external model needs every codebook of the interleaved sequence before a token; codebooks
above the stage being decoded are still masked then and are fed as its special (empty) token.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch

from ..errors import InputError
from ..lm.musicgen import MusicGenLM
from .ar import code_probabilities


class Rescorer(Protocol):
    """Anything that maps a candidate sequence to its probabilities for one codebook."""

    def __call__(self, codes: torch.Tensor, stage: int) -> torch.Tensor:
        """codes [B, K, T] (ids >= card are masked) -> probability of codes[:, stage] [B, T]."""


def combine_probs(magnet_probs: torch.Tensor, rescorer_probs: torch.Tensor, weight: float) -> torch.Tensor:
    """The paper's convex combination: (1 - weight) * p_MAGNeT + weight * p_rescorer."""
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"rescore_weight must be in [0, 1], got {weight}")
    return (1.0 - weight) * magnet_probs + weight * rescorer_probs.to(magnet_probs.dtype)


class ARRescorer:
    """Scores candidates with an autoregressive LM (e.g. ``MusicGen.lm``) for given descriptions.

    The descriptions are encoded once by the rescorer's own text conditioner. ``cfg_coef`` 1.0
    (the default) uses the conditional probabilities only (one forward pass of B rows); another
    value guides them with the null condition (2B rows). ``calls`` and ``seconds`` accumulate the
    work done, to measure the cost of rescoring.
    """

    def __init__(self, lm: MusicGenLM, descriptions: list[str | None], cfg_coef: float = 1.0,
                 temperature: float = 1.0):
        self.lm, self.cfg_coef, self.temperature = lm.eval(), cfg_coef, temperature
        self.batch = len(descriptions)
        texts = list(descriptions) + ([None] * self.batch if cfg_coef != 1.0 else [])
        with torch.no_grad():
            self.cross_kv = lm.transformer.cross_kv(lm.encode_text(texts))
        self.calls, self.seconds = 0, 0.0

    def check_compatible(self, num_codebooks: int, card: int) -> None:
        """Refuse a MAGNeT model whose tokens this LM cannot read (different codec)."""
        if (num_codebooks, card) != (self.lm.cfg.n_q, self.lm.cfg.card):
            raise InputError(f"the rescorer models {self.lm.cfg.n_q} codebooks of {self.lm.cfg.card}, MAGNeT "
                             f"{num_codebooks} of {card}: they must share a codec")

    @torch.no_grad()
    def __call__(self, codes: torch.Tensor, stage: int) -> torch.Tensor:
        if codes.shape[0] != self.batch:
            raise InputError(f"the rescorer was set up for {self.batch} descriptions, got {codes.shape[0]} rows")
        start = time.perf_counter()
        probs = code_probabilities(self.lm, codes, cross_kv=self.cross_kv, cfg_coef=self.cfg_coef,
                                   temperature=self.temperature, codebooks=[stage])[:, 0]
        self.calls += 1
        self.seconds += time.perf_counter() - start
        return probs
