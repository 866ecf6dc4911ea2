"""Language models over codec tokens."""

from .magnet import MagnetLM, MagnetLMConfig

__all__ = ["MagnetLM", "MagnetLMConfig"]
