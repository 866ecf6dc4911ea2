"""Decoding: schedules, sampling, span masking and MAGNeT's iterative decoding loop."""

from .magnet import GenerationParams, generate_codes

__all__ = ["GenerationParams", "generate_codes"]
