"""Captions written from a :class:`~.spec.PieceSpec`, so that a caption says what was rendered."""

from __future__ import annotations

import random
import re

from .corpus import CORPUS_CATEGORIES
from .spec import PieceSpec
from .styles import STYLES
from .theory import DRUM_KITS, INSTRUMENTS


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" or word.lower().startswith(("8-bit", "fm ", "r&b")) else "a"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def tempo_word(bpm: float) -> str:
    """The tempo words captions use: slow < 80 <= moderate < 110 <= fast < 150 <= very fast."""
    if bpm < 80:
        return "slow"
    if bpm < 110:
        return "moderate"
    if bpm < 150:
        return "fast"
    return "very fast"


TEMPO_WORDS = {
    "slow": ("slow tempo", "at a slow tempo", "slow", "slow-paced", "unhurried tempo"),
    "moderate": ("moderate tempo", "mid-tempo", "at a moderate pace", "medium tempo"),
    "fast": ("fast tempo", "fast-paced", "brisk tempo", "at a quick pace", "uptempo"),
    "very fast": ("very fast tempo", "very fast", "breakneck tempo", "high-speed"),
}


def _inst_name(name: str, rng: random.Random) -> str:
    syns = INSTRUMENTS[name][1] if name in INSTRUMENTS else DRUM_KITS[name][1]
    return syns[0] if rng.random() < 0.5 else rng.choice(syns)


def make_caption(spec: PieceSpec, rng: random.Random) -> str:
    """A text-to-music prompt written from the spec (genre, moods, instruments, tempo and key).

    Always names the style and at least the leading instruments, and always gives the tempo (as
    "N bpm" or as a tempo word, see :func:`tempo_word`); the key is named in about 75% of captions.
    """
    if spec.source == "synth":
        noun = rng.choice(STYLES[spec.style].words)
    else:
        noun = rng.choice(CORPUS_CATEGORIES[spec.style][1] if spec.style in CORPUS_CATEGORIES else (spec.style,))
        if spec.form and spec.form != "chorale" and rng.random() < 0.7:
            noun = noun.replace("tune", spec.form).replace("song", spec.form).replace("melody", spec.form)
    moods = list(spec.moods)
    rng.shuffle(moods)
    moods = [m for m in moods if m[:4].lower() not in noun.lower()]  # no "funky funk", "groovy groove"
    mood = " and ".join(moods[:2]) if len(moods) > 1 and rng.random() < 0.5 else (moods[0] if moods else "")
    names = spec.instruments
    seen: set[str] = set()
    inst_words = []
    for n in names[:4]:
        w = _inst_name(n, rng)
        if w not in seen:
            seen.add(w)
            inst_words.append(w)
    ensemble = spec.ensemble
    if ensemble and rng.random() < 0.6:
        inst_words = [ensemble]
    solo = spec.solo and not ensemble
    insts = ("solo " + inst_words[0]) if solo else _join(inst_words)

    if rng.random() < 0.55:
        bpm = int(round(spec.bpm))
        tempo = rng.choice([f"{bpm} bpm", f"{bpm} BPM", f"at {bpm} bpm", f"{bpm} beats per minute", f"tempo {bpm}"])
        lead_tempo = rng.choice([f"{bpm} bpm", f"{bpm} BPM"])
    else:
        tempo = rng.choice(TEMPO_WORDS[tempo_word(spec.bpm)])
        lead_tempo = tempo if not tempo.startswith("at ") else rng.choice(
            [w for w in TEMPO_WORDS[tempo_word(spec.bpm)] if not w.startswith("at ")])
    key = spec.key
    if rng.random() < 0.2:
        key = key.replace("b ", " flat ").replace("# ", " sharp ")
    key_phrase = rng.choice([f"in {key}", f"in the key of {key}", f"{key} key", f"in {key}"]) \
        if rng.random() < 0.75 else ""
    meter = f"{spec.meter[0]}/{spec.meter[1]}"
    meter_phrase = f"in {meter} time" if meter != "4/4" and "3/4" not in noun and rng.random() < 0.4 else ""
    title = f"\"{spec.title}\"" if spec.source == "music21" and spec.title and rng.random() < 0.3 else ""
    by = ""
    if spec.source == "music21" and spec.artist and rng.random() < 0.3:
        surname = spec.artist.split(",")[0].split()[-1]
        by = "" if surname.lower() in noun.lower() else f" by {spec.artist.split(',')[0]}"

    template = rng.randrange(8)
    if template == 0:
        parts = [f"{mood} {noun}{by} with {insts}", key_phrase, meter_phrase, tempo]
    elif template == 1:
        lead = f"{mood} {insts} {noun}" if solo else f"{mood} {noun}{by} featuring {insts}"
        if key_phrase.startswith("in "):
            parts = [f"{lead} {key_phrase}".strip(), tempo, meter_phrase]
        else:
            parts = [lead, key_phrase, tempo, meter_phrase]
    elif template == 2:
        s = f"{mood} {noun}{by} for {insts}".strip()
        parts = [s[0].upper() + s[1:] + ". " + (tempo[0].upper() + tempo[1:]) + "." +
                 (f" {key_phrase[0].upper() + key_phrase[1:]}." if key_phrase else "")]
    elif template == 3:
        parts = [noun, mood, insts, spec.key if key_phrase else "", meter if meter_phrase else "", tempo]
    elif template == 4:
        verb = "plays" if solo or len(inst_words) == 1 else "play"
        if solo:
            insts_subject = f"a solo {inst_words[0]}"
        else:
            insts_subject = insts[0].upper() + insts[1:]
        adj = f"{mood} {noun}".strip()
        s = f"{insts_subject} {verb} {_article(adj)} {adj}"
        parts = [s[0].upper() + s[1:], key_phrase, meter_phrase, tempo]
    elif template == 5:
        parts = [f"{lead_tempo} {mood} {noun} with {insts}", key_phrase, meter_phrase]
    elif template == 6:
        parts = [f"instrumental {noun}{by} {key_phrase}".strip(), f"{insts}", f"{mood} mood" if mood else "", tempo]
    else:
        parts = [f"{mood} {noun}", title, f"{insts}", key_phrase, tempo, meter_phrase]
    text = ", ".join(p.strip() for p in parts if p and p.strip())
    text = re.sub(r"\s+", " ", text).replace(" ,", ",").strip()
    return text


def keywords(spec: PieceSpec) -> list[str]:
    words = [spec.genre, spec.style] + list(spec.moods) + spec.instruments + [tempo_word(spec.bpm), spec.mode]
    if spec.form:
        words.append(spec.form)
    out = []
    for w in words:
        if w and w not in out:
            out.append(w)
    return out
