"""MusicGen's delay pattern: codes [B, K, T] <-> the interleaved sequence a causal LM reads.

The sequence is [B, K, S], S = T + max(delays) + 1: step 0 is all special tokens and codebook k
at time t sits at step t + 1 + delays[k]; the other positions hold the special token (id ``card``).
With delays [0, 1, 2, 3], K = 4, T = 3 (S = 7)::

    codes            sequence
    a0 a1 a2         S  a0 a1 a2 S  S  S
    b0 b1 b2   ->    S  S  b0 b1 b2 S  S
    c0 c1 c2         S  S  S  c0 c1 c2 S
    d0 d1 d2         S  S  S  S  d0 d1 d2

The LM's output at step s predicts step s + 1, so the logits of code (k, t) are the output at
step t + delays[k].
"""

from __future__ import annotations

import torch


def build_delay_pattern(codes: torch.Tensor, delays: list[int], special: int) -> torch.Tensor:
    """codes [B, K, T] -> interleaved sequence [B, K, T + max(delays) + 1] (see the module doc)."""
    B, K, T = codes.shape
    if len(delays) != K:
        raise ValueError(f"{len(delays)} delays for {K} codebooks")
    seq = codes.new_full((B, K, T + max(delays) + 1), special)
    for k, d in enumerate(delays):
        seq[:, k, 1 + d:1 + d + T] = codes[:, k]
    return seq


def revert_delay_pattern(seq: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """Interleaved sequence [B, K, S] -> codes [B, K, S - max(delays) - 1]; inverse of :func:`build_delay_pattern`."""
    B, K, S = seq.shape
    T = S - max(delays) - 1
    return torch.stack([seq[:, k, 1 + d:1 + d + T] for k, d in enumerate(delays)], dim=1)


def revert_delay_logits(logits: torch.Tensor, delays: list[int], length: int) -> torch.Tensor:
    """Outputs [B, K, S', card] over sequence steps -> the logits of codes [B, K, length, card].

    Code (k, t) lives at step t + 1 + delays[k] and is predicted by the output at step t + delays[k].
    """
    return torch.stack([logits[:, k, d:d + length] for k, d in enumerate(delays)], dim=1)


def delay_valid_mask(length: int, delays: list[int], device: torch.device | None = None) -> torch.Tensor:
    """Bool [K, S]: True where the interleaved sequence holds a code rather than the special token."""
    S = length + max(delays) + 1
    steps = torch.arange(S, device=device).view(1, -1)
    start = 1 + torch.tensor(delays, device=device).view(-1, 1)
    return (steps >= start) & (steps < start + length)
