"""Text conditioners: text -> cross-attention memory ([B, L, D] embeddings and a [B, L] mask).

A ``None`` or empty description is the null condition used for classifier-free guidance: its mask
row is all zeros, so its embeddings are exact zeros, and cross-attention to it adds nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ConditionerConfig:
    """How the ``description`` text is encoded.

    model: ``t5`` (a frozen Hugging Face T5 encoder), ``lut`` (a learnt word lookup table).
    name: the text model (``t5-base`` ...); ``path`` a local directory that overrides it.
    word_dropout: probability of dropping each word in training.
    n_bins / text_dim: vocabulary size and embedding size of the ``lut`` model.
    """

    model: str = "t5"
    name: str = "t5-base"
    path: str | None = None
    word_dropout: float = 0.0
    n_bins: int = 4096
    text_dim: int = 768


class TextConditioner(nn.Module):
    """Base class: ``tokenize`` texts, then ``forward`` to (embeds [B, L, D], mask [B, L])."""

    def __init__(self, text_dim: int, output_dim: int, word_dropout: float = 0.0):
        super().__init__()
        self.output_proj = nn.Linear(text_dim, output_dim)
        self.word_dropout = word_dropout

    def drop_words(self, texts: list[str], rng: random.Random | None = None) -> list[str]:
        """Training-time word dropout: each space-separated word is kept with probability 1 - p."""
        if not self.training or self.word_dropout <= 0:
            return texts
        draw = (rng or random).random
        return [" ".join(w for w in t.split(" ") if draw() >= self.word_dropout) for t in texts]

    def load_text_model(self) -> None:
        """Load any pretrained text model now (so errors surface at load time); none by default."""

    def tokenize(self, texts: list[str | None]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode(self, texts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts (None = null condition) -> (embeds [B, L, D], mask [B, L])."""
        return self(self.tokenize(texts))


class ConditionProvider(nn.Module):
    """Holds the conditioners by attribute name (``conditioners.description``), as checkpoints do."""

    def __init__(self, description: TextConditioner):
        super().__init__()
        self.conditioners = nn.ModuleDict({"description": description})

    @property
    def text(self) -> TextConditioner:
        return self.conditioners["description"]
