"""The tempo a prompt asks for, read from its text ("120 bpm", "tempo 96", "slow", "uptempo").

Used by beat-locked decoding (:mod:`magnet_audio.decoding.beats`), which puts the same span of
tokens on every beat of this tempo, and by LMs with tempo-relative positions (``tempo_rope``), which
decode at it; a continuation's tempo can also be read from its prompt's tokens (:func:`tempo_from_tokens`).
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


def tempo_from_tokens(tokens: torch.Tensor, frame_rate: float, low: float = 60.0, high: float = 180.0,
                      min_contrast: float = 1.25, min_rate: float = 0.05) -> torch.Tensor:
    """The tempo [B] of audio from its first-codebook tokens [B, T]: music repeats its tokens a beat
    and two beats apart more often than between (on the synthetic renders 0.19 and 0.25 against
    about 0.10). Each candidate tempo (``low`` to ``high`` bpm, 1 bpm apart) is scored by how often a
    token equals the one a beat and two beats earlier, weighted by a log-normal preference for 120
    bpm (one octave wide) against octave errors; the best one is returned, NaN where the clip is
    shorter than two beats of ``low``, or where the best tempo's repeat rate is below ``min_rate`` (no
    repetition: noise) or below ``min_contrast`` times the median tempo's (repetition at every lag: a drone)."""
    B, T = tokens.shape
    candidates = torch.arange(low, high + 0.5, 1.0, dtype=torch.float64)
    out = torch.full((B,), math.nan, dtype=torch.float64)
    if T <= 2 * frame_rate * 60.0 / low:
        return out
    scores = torch.zeros(B, len(candidates), dtype=torch.float64)
    for j, bpm in enumerate(candidates.tolist()):
        beat = frame_rate * 60.0 / bpm
        rates = []
        for lag in {math.floor(beat), math.ceil(beat), math.floor(2 * beat), math.ceil(2 * beat)}:
            rates.append((tokens[:, lag:] == tokens[:, :-lag]).double().mean(dim=1))
        scores[:, j] = torch.stack(rates).mean(dim=0)
    weighted = scores * torch.exp(-0.5 * torch.log2(candidates / 120.0) ** 2)
    best = weighted.argmax(dim=1)
    top = scores.gather(1, best[:, None])[:, 0]
    sure = (top >= min_rate) & (top >= min_contrast * scores.median(dim=1).values)
    return torch.where(sure, candidates[best], out)


def prompt_tempi(descriptions: list[str | None]) -> torch.Tensor:
    """The bpm [B] each prompt asks for (:func:`tempo_from_text`), NaN where it names none."""
    return torch.tensor([tempo_from_text(d) or math.nan for d in descriptions], dtype=torch.float64)
