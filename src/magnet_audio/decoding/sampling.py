"""Token sampling from probabilities [..., V] -> ids [..., 1].

The random draws are made the way the reference makes them (top-p samples in sorted order, one
``torch.multinomial`` without replacement), so a seed gives the same tokens as audiocraft.
"""

from __future__ import annotations

import torch


def multinomial(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One sample per distribution: probs [..., V] -> ids [..., 1]."""
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, num_samples=1, generator=generator)
    return ids.reshape(*probs.shape[:-1], 1)


def top_k_filter(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the probabilities >= the k-th largest (ties kept), renormalised. A new tensor."""
    kth = torch.topk(probs, k, dim=-1).values[..., -1:]
    kept = probs * (probs >= kth)
    return kept / kept.sum(dim=-1, keepdim=True)


def top_p_sorted(probs: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Nucleus filter in descending order: (renormalised sorted probs, their token ids).

    Tokens are kept while the mass before them is <= ``p``, so the token that crosses ``p`` stays.
    """
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs = sorted_probs * (mass_before <= p)
    return sorted_probs / sorted_probs.sum(dim=-1, keepdim=True), order


def sample(probs: torch.Tensor, top_k: int = 0, top_p: float = 0.0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ids [..., 1] with top-p if ``top_p`` > 0, else top-k if ``top_k`` > 0, else from ``probs``.

    Returns (ids, the distribution confidence scores come from): as in the reference, top-k scores
    use the truncated renormalised distribution and top-p scores the full one.
    """
    if top_p > 0.0:
        sorted_probs, order = top_p_sorted(probs, top_p)
        return torch.gather(order, -1, multinomial(sorted_probs, generator)), probs
    if top_k > 0:
        probs = top_k_filter(probs, top_k)
    return multinomial(probs, generator), probs
