"""Text conditioning: T5 (official checkpoints), a packaged sentence encoder, and a lookup table."""

from .base import ConditionProvider, TextConditioner
from .config import SENTENCE_DIMS, ConditionerConfig
from .lut import LUTConditioner
from .sentence import SentenceConditioner
from .t5 import T5Conditioner


def build_conditioner(cfg: ConditionerConfig, output_dim: int) -> TextConditioner:
    """The conditioner ``cfg`` describes, projecting to the LM dimension ``output_dim``."""
    if cfg.model == "t5":
        return T5Conditioner(cfg.name, output_dim, cfg.text_dim, cfg.word_dropout, path=cfg.path)
    if cfg.model == "sentence":
        text_dim = SENTENCE_DIMS.get(cfg.name, cfg.text_dim)
        return SentenceConditioner(cfg.name, output_dim, text_dim, cfg.word_dropout, path=cfg.path)
    if cfg.model == "lut":
        return LUTConditioner(cfg.n_bins, cfg.text_dim, output_dim, cfg.word_dropout)
    raise ValueError(f"unknown text conditioner {cfg.model!r} (expected 't5', 'sentence' or 'lut')")


__all__ = ["ConditionerConfig", "ConditionProvider", "TextConditioner", "T5Conditioner", "SentenceConditioner",
           "LUTConditioner", "build_conditioner"]
