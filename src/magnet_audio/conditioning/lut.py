"""A lookup-table text conditioner: words -> learnt embeddings. Needs no pretrained model."""

from __future__ import annotations

import hashlib
import re

import torch
from torch import nn

from .base import TextConditioner

_WORD = re.compile(r"[a-z0-9']+")


def word_ids(text: str, n_bins: int) -> list[int]:
    """Lower-cased words hashed (sha256, stable across runs) into ids 1..n_bins-1 (0 is padding)."""
    return [1 + int(hashlib.sha256(w.encode()).hexdigest(), 16) % (n_bins - 1) for w in _WORD.findall(text.lower())]


class LUTConditioner(TextConditioner):
    """Word embeddings ``embed`` [n_bins, text_dim] projected to the LM dimension."""

    def __init__(self, n_bins: int, text_dim: int, output_dim: int, word_dropout: float = 0.0):
        super().__init__(text_dim, output_dim, word_dropout)
        self.n_bins = n_bins
        self.embed = nn.Embedding(n_bins, text_dim)

    def tokenize(self, texts: list[str | None]) -> dict[str, torch.Tensor]:
        ids = [word_ids(t, self.n_bins) if t else [] for t in self.drop_words(["" if t is None else t for t in texts])]
        length = max(1, max(len(i) for i in ids))
        tokens = torch.zeros(len(ids), length, dtype=torch.long)
        mask = torch.zeros(len(ids), length, dtype=torch.long)
        for row, seq in enumerate(ids):
            tokens[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, :len(seq)] = 1
        device = self.embed.weight.device
        return {"input_ids": tokens.to(device), "attention_mask": mask.to(device)}

    def forward(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mask = tokens["attention_mask"]
        embeds = self.output_proj(self.embed(tokens["input_ids"]))
        return embeds * mask.unsqueeze(-1).to(embeds.dtype), mask
