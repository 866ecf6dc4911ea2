"""Pure schedule functions of MAGNeT's iterative decoding (float32 arithmetic, as the reference).

For step i of n in a stage, the timestep is s = linspace(0, 1, n)[i] and the mask rate p = cos(pi s / 2).
"""

from __future__ import annotations

import math

import torch


def mask_rates(n_steps: int) -> list[torch.Tensor]:
    """The mask rate of each of the ``n_steps`` steps, as float32 0-d tensors (1.0 first, ~0 last)."""
    return [torch.cos(s * math.pi * 0.5) for s in torch.linspace(0, 1, n_steps)]


def num_to_mask(rate: torch.Tensor | float, n: int) -> int:
    """How many of ``n`` chunks/tokens to (re-)mask at this rate: max(int(rate * n), 1), rate in float32."""
    return max(int((torch.as_tensor(rate, dtype=torch.float32) * n).item()), 1)


def guidance_coef(rate: torch.Tensor | float, max_coef: float, min_coef: float) -> float:
    """Classifier-free guidance coefficient annealed with the mask rate: ``max_coef`` when all is
    masked, ``min_coef`` at the end."""
    rate = float(rate)
    return rate * max_coef + (1 - rate) * min_coef


def temperature(temp: float, step: int, n_steps: int, anneal: bool = True) -> float:
    """Sampling temperature at ``step`` (0-based): linearly from temp*(n-1)/n down to 0 if annealed."""
    return temp * ((n_steps - 1 - step) / n_steps) if anneal else temp
