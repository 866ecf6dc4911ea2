"""Span arithmetic for MAGNeT decoding: chunk scores, the most uncertain chunks and the least-probable
overlapping spans."""

from __future__ import annotations

import torch

DONT_REMASK = -1e4  # score of chunks/tokens that must stay as they are


def chunk_scores(token_probs: torch.Tensor, span_len: int, scoring: str = "max", choice_temp: float = 0.0) -> torch.Tensor:
    """Re-masking scores of non-overlapping chunks (higher = less confident).

    token_probs [B, T] (T a multiple of ``span_len``): probability of each sampled token.
    ``max``: 1 - max prob in the chunk; ``prod``: sum of -log prob. Returns [B, T // span_len].
    choice_temp > 0: MaskGIT's randomised choice instead, -(log confidence + choice_temp * g) with
    g ~ Gumbel(0, 1) per chunk (log confidence: the log of the max prob, or the summed log probs),
    so that which chunks are kept is sampled rather than always the surest (:func:`choice_noise`).
    """
    if scoring not in ("max", "prod"):
        raise ValueError(f"span_scoring must be 'max' or 'prod', got {scoring!r}")
    chunks = token_probs.reshape(token_probs.shape[0], -1, span_len)
    if choice_temp > 0:
        logp = torch.log(chunks.clamp_min(1e-30))
        confidence = logp.max(dim=-1).values if scoring == "max" else logp.sum(dim=-1)
        return -(confidence + choice_noise(confidence, choice_temp))
    if scoring == "max":
        return 1 - chunks.max(dim=-1).values
    return (-torch.log(chunks)).sum(dim=-1)


def token_scores(token_probs: torch.Tensor, choice_temp: float = 0.0) -> torch.Tensor:
    """Re-masking scores of single tokens [B, T] (higher = less confident): -log prob, minus
    ``choice_temp`` x Gumbel noise when choice_temp > 0 (:func:`choice_noise`)."""
    logp = torch.log(token_probs)
    return -(logp + choice_noise(logp, choice_temp)) if choice_temp > 0 else -logp


def choice_noise(confidence: torch.Tensor, choice_temp: float) -> torch.Tensor:
    """``choice_temp`` x Gumbel(0, 1) noise shaped like ``confidence`` (MaskGIT, Chang et al. 2022,
    "choice temperature"): added to log confidences, keeping the k highest samples k units without
    replacement in proportion to confidence ** (1 / choice_temp) instead of taking the k surest."""
    uniform = torch.rand_like(confidence).clamp(1e-20, 1 - 1e-7)
    return choice_temp * -torch.log(-torch.log(uniform))


def top_scores(scores: torch.Tensor, num: list[int]) -> torch.Tensor:
    """Bool [B, U] marking each row's ``num[b]`` highest of ``scores`` [B, U] (ties as ``topk``)."""
    top = scores.topk(max(num), dim=-1).indices
    take = torch.arange(max(num), device=scores.device)[None, :] < torch.tensor(num, device=scores.device)[:, None]
    return torch.zeros_like(scores, dtype=torch.bool).scatter(1, top, take)


def spans_mask(starts: torch.Tensor, length: int, span_len: int) -> torch.Tensor:
    """Bool [T] mask covering [s, s + span_len) for each start index in ``starts`` (cut at T)."""
    mask = torch.zeros(length, dtype=torch.bool, device=starts.device)
    for offset in range(span_len):
        idx = starts + offset
        mask[idx[idx < length]] = True
    return mask


def least_probable_spans(token_scores: torch.Tensor, num_target: int, span_len: int) -> torch.Tensor:
    """Mask the least probable overlapping (stride-1) spans, covering about ``num_target`` tokens.

    token_scores [T]: -log prob of each token (higher = less confident; -1e4 = keep). Spans are
    ranked by their summed score; the number of spans u is found by binary search between
    num_target // L and num_target - L + 1 so that the union's size is as close to the target as
    the reference's search gets (Python's round-half-even midpoints, and the mask of the last
    probe is returned). Returns bool [T].
    """
    T = token_scores.shape[-1]
    span_scores = token_scores.unfold(0, span_len, 1).sum(dim=-1)
    ranked = torch.argsort(span_scores, descending=True)
    num_target = max(num_target, span_len)
    lo, hi = num_target // span_len, num_target - span_len + 1
    mid = round(0.5 * (lo + hi))
    if mid in (lo, hi):
        return spans_mask(ranked[:mid], T, span_len)
    while lo < mid < hi:
        mask = spans_mask(ranked[:mid], T, span_len)
        if mask.sum() > num_target:
            hi = mid
        else:
            lo = mid
        mid = round(0.5 * (lo + hi))
    return mask
