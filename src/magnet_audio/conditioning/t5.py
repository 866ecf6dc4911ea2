"""The frozen T5 text encoder used by the official checkpoints.

The T5 weights are not part of MAGNeT checkpoints: ``t5-base`` is fetched from the Hugging Face
hub (or read from ``path``). Only ``output_proj`` (T5 dim -> LM dim, with bias) is stored.
"""

from __future__ import annotations

import torch

from ..errors import CheckpointError
from .base import FrozenEncoderConditioner

# audiocraft names T5 models by their short names; the hub keeps them under google-t5/.
HUB_IDS = {f"t5-{s}": f"google-t5/t5-{s}" for s in ("small", "base", "large", "3b", "11b")}


class T5Conditioner(FrozenEncoderConditioner):
    """T5 encoder last hidden state -> ``output_proj`` -> zeroed where the mask is 0.

    As in audiocraft, the tokenizer pads to the longest text of the batch without truncation and
    appends ``</s>``; a None/"" text is the null condition (all-zero mask, zero embeddings).
    """

    def __init__(self, name: str, output_dim: int, text_dim: int, word_dropout: float = 0.0,
                 path: str | None = None):
        super().__init__(text_dim, output_dim, word_dropout)
        self.name, self.path = name, path

    def _load(self):
        from transformers import AutoTokenizer, T5EncoderModel

        source = self.path or HUB_IDS.get(self.name, self.name)
        try:
            return (AutoTokenizer.from_pretrained(source),
                    T5EncoderModel.from_pretrained(source, dtype=torch.float32))
        except Exception as exc:
            raise CheckpointError(
                f"could not load the T5 text encoder {source!r}: {exc}. Pass t5_path= (CLI: --t5-path) "
                "pointing to a local directory holding the T5 encoder and its tokenizer.") from exc
