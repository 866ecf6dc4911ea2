"""The frozen T5 text encoder used by the official checkpoints.

The T5 weights are not part of MAGNeT checkpoints: ``t5-base`` is fetched from the Hugging Face
hub (or read from ``path``). Only ``output_proj`` (T5 dim -> LM dim, with bias) is stored.
"""

from __future__ import annotations

import torch

from ..errors import CheckpointError
from .base import TextConditioner

# audiocraft names T5 models by their short names; the hub keeps them under google-t5/.
HUB_IDS = {f"t5-{s}": f"google-t5/t5-{s}" for s in ("small", "base", "large", "3b", "11b")}
T5_DIMS = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024}


class T5Conditioner(TextConditioner):
    """T5 encoder last hidden state -> ``output_proj`` -> zeroed where the mask is 0.

    The tokenizer pads to the longest text of the batch, without truncation, and appends ``</s>``.
    The T5 model is kept out of the module tree (it is frozen and not in the checkpoint); it
    follows the conditioner's device but always runs in float32.
    """

    def __init__(self, name: str, output_dim: int, text_dim: int, word_dropout: float = 0.0,
                 path: str | None = None):
        super().__init__(text_dim, output_dim, word_dropout)
        self.name, self.path = name, path
        self.__dict__["_t5"] = None  # not a submodule: not saved, not trained
        self.__dict__["_tokenizer"] = None

    def load_text_model(self) -> None:
        """Load the tokenizer and encoder (from ``path`` if given, else the hub)."""
        if self._t5 is not None:
            return
        from transformers import AutoTokenizer, T5EncoderModel

        source = self.path or HUB_IDS.get(self.name, self.name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = T5EncoderModel.from_pretrained(source, dtype=torch.float32)
        except Exception as exc:
            raise CheckpointError(
                f"could not load the T5 text encoder {source!r}: {exc}. Pass t5_path= (CLI: --t5-path) "
                "pointing to a local directory holding the T5 encoder and its tokenizer.") from exc
        if model.config.d_model != self.output_proj.in_features:
            raise CheckpointError(
                f"T5 at {source!r} has d_model {model.config.d_model}, but the checkpoint's output_proj "
                f"expects {self.output_proj.in_features}")
        self.__dict__["_tokenizer"] = tokenizer
        self.__dict__["_t5"] = model.eval().requires_grad_(False).to(self.output_proj.weight.device)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._t5 is not None:  # follow the device, stay float32
            self._t5.to(self.output_proj.weight.device)
        return self

    def tokenize(self, texts: list[str | None]) -> dict[str, torch.Tensor]:
        self.load_text_model()
        entries = self.drop_words(["" if t is None else t for t in texts])
        tokens = self._tokenizer(entries, return_tensors="pt", padding=True)
        empty = [i for i, t in enumerate(entries) if t == ""]
        tokens["attention_mask"][empty, :] = 0
        device = self.output_proj.weight.device
        return {"input_ids": tokens["input_ids"].to(device), "attention_mask": tokens["attention_mask"].to(device)}

    def forward(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.load_text_model()
        mask = tokens["attention_mask"]
        with torch.no_grad():
            hidden = self._t5(input_ids=tokens["input_ids"], attention_mask=mask).last_hidden_state
        embeds = self.output_proj(hidden.to(self.output_proj.weight.dtype))
        return embeds * mask.unsqueeze(-1).to(embeds.dtype), mask
