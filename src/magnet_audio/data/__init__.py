"""Datasets built offline: ``magnet data synth`` (MIDI composed or taken from music21, rendered with FluidSynth)."""

from .synth import PieceSpec, PartSpec, SynthConfig, make_caption, synthesize

__all__ = ["PieceSpec", "PartSpec", "SynthConfig", "make_caption", "synthesize"]
