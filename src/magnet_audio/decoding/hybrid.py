"""Hybrid-MAGNeT decoding: the first seconds autoregressively, the rest by MAGNeT's parallel decoding.

An autoregressive LM generates the first ``prefix_len`` frames; they become the prompt of MAGNeT's
iterative decoding, which keeps prompt tokens fixed and fills the rest of the window. The AR LM is
either

* the MAGNeT LM itself, as the paper's Hybrid-MAGNeT: one network trained jointly for both roles
  (``model.hybrid: true`` in training, see :mod:`magnet_audio.training.objectives`), whose
  :meth:`~magnet_audio.lm.magnet.MagnetLM.ar_view` runs the same weights causally over MusicGen's
  delay pattern; or
* a separate MusicGen: any AR + MAGNeT pair works as long as they read the same codec tokens (same
  codebooks and vocabulary: e.g. facebook/musicgen-small with facebook/magnet-small-10secs, both on
  EnCodec 32 kHz).

The official ``facebook/hybrid-magnet-small`` checkpoint is not supported: audiocraft's only code
for it is the unreleased ``hybrid_magnet`` branch, which says of itself "not working yet". Our
jointly trained variant follows the paper's description, not that code.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputError
from ..lm.magnet import MagnetLM
from ..lm.musicgen import MusicGenLM
from .ar import ARGenerationParams, generate_ar
from .magnet import GenerationParams, generate_codes
from .rescoring import Rescorer

ProgressCallback = Callable[[int, int], None]


def check_pair(ar_lm: MusicGenLM, magnet_lm: MagnetLM) -> None:
    """Raise :class:`InputError` if the two models do not model the same tokens."""
    a, m = ar_lm.cfg, magnet_lm.cfg
    if (a.n_q, a.card) != (m.n_q, m.card):
        raise InputError(f"the AR model has {a.n_q} codebooks of {a.card}, MAGNeT {m.n_q} of {m.card}: "
                         "they must share a codec")
    if a.frame_rate != m.frame_rate:
        raise InputError(f"the AR model runs at {a.frame_rate} Hz, MAGNeT at {m.frame_rate} Hz")


@torch.no_grad()
def generate_hybrid_codes(ar_lm: MusicGenLM, ar_memory: torch.Tensor | None, ar_params: ARGenerationParams,
                          magnet_lm: MagnetLM, magnet_memory: torch.Tensor | None, params: GenerationParams,
                          prefix_len: int, max_len: int, prompt: torch.Tensor | None = None,
                          num_samples: int | None = None, callback: ProgressCallback | None = None,
                          rescorer: Rescorer | None = None, tied: torch.Tensor | None = None,
                          tempo: torch.Tensor | None = None) -> torch.Tensor:
    """Codes [B, K, T]: ``prefix_len`` frames from ``ar_lm``, then MAGNeT up to ``max_len`` (cut to a
    multiple of the span length with ``nonoverlap`` spans, as plain MAGNeT decoding).

    ar_memory / magnet_memory: each model's cross-attention memory, [2B, L, D] (conditional rows,
        then null rows), since each model has its own text conditioner.
    prompt: codes [B, K, P] to continue; the AR model continues it up to ``prefix_len`` frames
        (nothing to do if P >= prefix_len), MAGNeT does the rest.
    callback: callback(step, total) over the AR steps, then the MAGNeT steps.
    tied: beat spans [B, max_len] for MAGNeT beyond the prefix (see :func:`.magnet.generate_codes`).
    tempo: bpm [B] for a ``tempo_rope`` MAGNeT LM (see :func:`.magnet.generate_codes`).
    """
    check_pair(ar_lm, magnet_lm)
    if not 0 < prefix_len < max_len:
        raise InputError(f"the autoregressive prefix ({prefix_len} frames) must be within the generation "
                         f"(1 to {max_len - 1} frames)")
    P = 0 if prompt is None else prompt.shape[-1]
    ar_steps = max(prefix_len - P, 0) + max(ar_lm.delays) - min(ar_lm.delays) if P < prefix_len else 0
    total = ar_steps + sum(params.decoding_steps)

    def ar_progress(step: int, _: int) -> None:
        if callback is not None:
            callback(step, total)

    def magnet_progress(step: int, _: int) -> None:
        if callback is not None:
            callback(ar_steps + step, total)

    if P < prefix_len:
        prefix = generate_ar(ar_lm, ar_memory, ar_params, prefix_len, prompt=prompt, num_samples=num_samples,
                             callback=ar_progress)
    else:
        prefix = prompt
    return generate_codes(magnet_lm, magnet_memory, params, max_len, prompt=prefix, num_samples=num_samples,
                          callback=magnet_progress, rescorer=rescorer, tied=tied, tempo=tempo)
