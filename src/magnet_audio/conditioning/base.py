"""Text conditioners: text -> cross-attention memory ([B, L, D] embeddings and a [B, L] mask).

A ``None`` or empty description is the null condition used for classifier-free guidance: its mask
row is all zeros, so its embeddings are exact zeros, and cross-attention to it adds nothing.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from ..errors import CheckpointError


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


class FrozenEncoderConditioner(TextConditioner):
    """A frozen pretrained Hugging Face encoder -> last hidden state -> ``output_proj`` -> masked.

    The encoder and tokenizer are kept out of the module tree (not in ``state_dict``, not trained);
    they follow the conditioner's device and always run in float32. Subclasses say where the
    model comes from (:meth:`_load`) and how to tokenize (``tokenizer_kwargs``).
    """

    tokenizer_kwargs: dict = {"padding": True}

    def __init__(self, text_dim: int, output_dim: int, word_dropout: float = 0.0):
        super().__init__(text_dim, output_dim, word_dropout)
        self.__dict__["_encoder"] = None
        self.__dict__["_tokenizer"] = None

    def _load(self):
        """(tokenizer, encoder model) — raise CheckpointError when unavailable."""
        raise NotImplementedError

    def load_text_model(self) -> None:
        if self._encoder is not None:
            return
        tokenizer, model = self._load()
        hidden = getattr(model.config, "d_model", None) or model.config.hidden_size
        if hidden != self.output_proj.in_features:
            raise CheckpointError(f"the text encoder has hidden size {hidden}, but the checkpoint's output_proj "
                                  f"expects {self.output_proj.in_features}")
        self.__dict__["_tokenizer"] = tokenizer
        self.__dict__["_encoder"] = model.eval().requires_grad_(False).to(self.output_proj.weight.device)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._encoder is not None:  # follow the device, stay float32
            self._encoder.to(self.output_proj.weight.device)
        return self

    def tokenize(self, texts: list[str | None]) -> dict[str, torch.Tensor]:
        """Pad to the longest text; rows of empty texts get an all-zero mask (the null condition)."""
        self.load_text_model()
        entries = self.drop_words(["" if t is None else t for t in texts])
        tokens = self._tokenizer(entries, return_tensors="pt", **self.tokenizer_kwargs)
        mask = tokens["attention_mask"].clone()
        mask[[i for i, t in enumerate(entries) if t == ""], :] = 0
        device = self.output_proj.weight.device
        return {"input_ids": tokens["input_ids"].to(device), "attention_mask": mask.to(device)}

    def encoder_states(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's last hidden state [B, L, text_dim]."""
        with torch.no_grad():
            return self._encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state

    def forward(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.load_text_model()
        mask = tokens["attention_mask"]
        embeds = self.output_proj(self.encoder_states(tokens).to(self.output_proj.weight.dtype))
        return embeds * mask.unsqueeze(-1).to(embeds.dtype), mask


class ConditionProvider(nn.Module):
    """Holds the conditioners by attribute name (``conditioners.description``), as checkpoints do."""

    def __init__(self, description: TextConditioner):
        super().__init__()
        self.conditioners = nn.ModuleDict({"description": description})

    @property
    def text(self) -> TextConditioner:
        return self.conditioners["description"]
