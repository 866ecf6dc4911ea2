"""Decoding: schedules, sampling, span masking, guidance and MAGNeT's iterative decoding loop."""

from .magnet import generate_codes
from .params import FastOptions, GenerationParams, default_decoding_steps

__all__ = ["FastOptions", "GenerationParams", "default_decoding_steps", "generate_codes"]
