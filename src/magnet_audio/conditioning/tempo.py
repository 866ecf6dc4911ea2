"""The tempo a prompt asks for, read from its text ("120 bpm", "tempo 96", "slow", "uptempo").

Used by beat-locked decoding (:mod:`magnet_audio.decoding.beats`), which puts the same span of
tokens on every beat of this tempo.
"""

from __future__ import annotations

import math
import re

import torch

#: Tempo words -> bpm: the middle of the ranges the synthetic captions use them for (slow < 80 <=
#: moderate < 110 <= fast < 150 <= very fast, see :func:`magnet_audio.data.synth.captions.tempo_word`), and
#: the usual Italian markings. Longer phrases are matched first ("very fast" before "fast").
TEMPO_WORDS = {
    "breakneck": 170.0, "high-speed": 170.0, "very fast": 170.0, "presto": 170.0,
    "uptempo": 130.0, "up-tempo": 130.0, "fast-paced": 130.0, "fast": 130.0, "brisk": 130.0, "quick": 130.0,
    "allegro": 130.0,
    "mid-tempo": 95.0, "midtempo": 95.0, "medium tempo": 95.0, "moderate": 95.0, "moderato": 95.0,
    "andante": 90.0,
    "downtempo": 70.0, "slow-paced": 70.0, "unhurried": 70.0, "slow": 70.0, "adagio": 70.0, "largo": 55.0,
}
_WORDS = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(TEMPO_WORDS, key=len, reverse=True)) + r")\b")
_NUMBER = re.compile(r"\b(\d{2,3}(?:\.\d+)?)\s*(?:bpm\b|beats per minute\b)|\btempo(?: of)?\s+(\d{2,3}(?:\.\d+)?)\b")
MIN_BPM, MAX_BPM = 20.0, 400.0


def tempo_from_text(text: str | None) -> float | None:
    """The tempo (bpm) a prompt asks for: a number ("128 bpm", "128 BPM", "tempo 128", "128 beats
    per minute"), else the first tempo word of :data:`TEMPO_WORDS`, else None. Numbers outside
    20-400 bpm are ignored."""
    if not text:
        return None
    lowered = text.lower()
    for match in _NUMBER.finditer(lowered):
        bpm = float(match.group(1) or match.group(2))
        if MIN_BPM <= bpm <= MAX_BPM:
            return bpm
    word = _WORDS.search(lowered)
    return TEMPO_WORDS[word.group(1)] if word else None


def prompt_tempi(descriptions: list[str | None]) -> torch.Tensor:
    """The bpm [B] each prompt asks for (:func:`tempo_from_text`), NaN where it names none."""
    return torch.tensor([tempo_from_text(d) or math.nan for d in descriptions], dtype=torch.float64)
