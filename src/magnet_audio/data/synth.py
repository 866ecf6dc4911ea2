"""An offline text-to-music dataset: MIDI composed (or taken from the music21 corpus), rendered with FluidSynth.

``magnet data synth OUT --hours H`` writes::

    OUT/train/000000.wav   32 kHz mono PCM-16, ``clip_seconds`` long
    OUT/train/000000.json  audiocraft ``MusicInfo`` metadata (description, genre, moods, ...)
    OUT/train/000000.mid   the MIDI that was rendered (ground truth for note-level evaluation)
    OUT/heldout/...        the same for the held-out split
    OUT/train.jsonl        one line per clip: path (relative to OUT), duration, sample_rate,
    OUT/heldout.jsonl      description and the metadata of the sidecar

Every clip comes from a :class:`PieceSpec`, a structured description (style, moods, tempo, key,
mode, meter, instruments and their roles, chord progression). The MIDI is composed from the spec
and the caption is written from the same spec, so what a caption says ("upbeat funk with slap bass
and drums, 112 bpm") is what was rendered: prompt adherence can be measured against the metadata.

Two sources:

* ``synth``: music composed here, across 20 styles (pop, rock, metal, funk, jazz, lofi, hip hop,
  ambient, classical, waltz, house, techno, folk, blues, reggae, bossa nova, cinematic, ballad, disco,
  chiptune), all 12 keys, major/minor and dorian/mixolydian/phrygian/lydian, 60-180 bpm, 4/4 and
  3/4, with General MIDI instruments picked by role (melody, chords, bass, pad, arpeggio, drums).
* ``music21``: real pieces from the corpus that ships with music21 (Bach chorales, Irish, Scottish,
  American and German/Chinese folk tunes, Renaissance polyphony) with instruments assigned here
  and the tempo chosen here; key and meter come from the score.

Metadata convention: ``instrument`` is a comma-separated string (audiocraft's ``MusicInfo``
declares it a string), and ``instruments`` the same names as a list. ``bpm`` is in beats of the
meter (quarter notes; dotted quarters for 6/8, 9/8, 12/8). ``key`` reads "A minor", "D dorian".

Reproducible: each clip depends only on (seed, clip index), whatever the number of workers, and
every clip is rendered by a fresh synthesizer (the soundfont's samples are cached, so that costs
about 30 ms), so the same seed writes the same bytes.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

INSTALL_SYSTEM = "bash scripts/install_system_deps.sh  (apt-get install fluidsynth libfluidsynth3 fluid-soundfont-gm)"
INSTALL_PYTHON = "pip install 'magnet-audio[data]'  (pretty_midi, pyfluidsynth, music21)"
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
)

# ==================================================================================================
# Music theory
# ==================================================================================================

MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
}
MINOR_FAMILY = ("minor", "dorian", "phrygian")
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# Spelling of the tonic, by the pitch class of the relative major (fewest accidentals).
_FLAT_MAJORS = {1, 3, 5, 8, 10}  # Db Eb F Ab Bb major (and their modes) are written with flats
_MODE_TO_MAJOR = {"major": 0, "minor": 3, "dorian": 10, "mixolydian": 5, "phrygian": 8, "lydian": 7}


def key_name(root: int, mode: str) -> str:
    """'A minor', 'Bb major', 'F# dorian' (the spelling of the key signature)."""
    relative_major = (root + _MODE_TO_MAJOR[mode]) % 12
    names = FLAT_NAMES if relative_major in _FLAT_MAJORS else SHARP_NAMES
    if relative_major == 6:  # F#/Gb major: prefer sharps
        names = SHARP_NAMES
    return f"{names[root % 12]} {mode}"


_ROMAN = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
_CHORD_RE = re.compile(r"^(b|#)?(VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)(maj7|m7b5|7|dim|sus4|sus2|add9|9)?$")


def parse_chord(symbol: str, root: int) -> list[int]:
    """Roman numeral ('bVII', 'ii7', 'V7', 'Imaj7', 'viidim') in a key on ``root`` -> pitch classes, root first."""
    m = _CHORD_RE.match(symbol)
    if not m:
        raise ValueError(f"bad chord symbol {symbol!r}")
    acc, numeral, suffix = m.groups()
    offset = _ROMAN[numeral.upper()] + {"b": -1, "#": 1, None: 0}[acc]
    minor = numeral.islower()
    intervals = {
        None: (0, 3, 7) if minor else (0, 4, 7),
        "7": (0, 3, 7, 10) if minor else (0, 4, 7, 10),
        "maj7": (0, 4, 7, 11),
        "m7b5": (0, 3, 6, 10),
        "dim": (0, 3, 6),
        "sus4": (0, 5, 7),
        "sus2": (0, 2, 7),
        "add9": (0, 3, 7, 14) if minor else (0, 4, 7, 14),
        "9": (0, 3, 7, 10, 14) if minor else (0, 4, 7, 10, 14),
    }[suffix]
    base = (root + offset) % 12
    return [(base + i) % 12 for i in intervals]


def add_seventh(symbol: str) -> str:
    """Triad symbol -> its seventh chord (I -> Imaj7, V -> V7, ii -> ii7, viidim -> viim7b5)."""
    m = _CHORD_RE.match(symbol)
    acc, numeral, suffix = m.groups()
    if suffix is not None and suffix != "dim":
        return symbol
    if suffix == "dim":
        return f"{acc or ''}{numeral}m7b5"
    if numeral.islower():
        return f"{acc or ''}{numeral}7"
    if numeral == "V" and not acc:
        return "V7"
    return f"{acc or ''}{numeral}maj7"


# ==================================================================================================
# General MIDI instruments: name -> (program, caption synonyms, register centre)
# ==================================================================================================

INSTRUMENTS: dict[str, tuple[int, tuple[str, ...], int]] = {
    "piano": (0, ("piano", "acoustic piano", "grand piano"), 60),
    "bright piano": (1, ("bright piano", "piano"), 60),
    "electric piano": (4, ("electric piano", "Rhodes", "Rhodes piano", "e-piano"), 60),
    "fm electric piano": (5, ("FM electric piano", "DX electric piano", "electric piano"), 62),
    "harpsichord": (6, ("harpsichord",), 62),
    "clavinet": (7, ("clavinet", "clav"), 60),
    "celesta": (8, ("celesta",), 79),
    "glockenspiel": (9, ("glockenspiel", "bells"), 84),
    "music box": (10, ("music box",), 84),
    "vibraphone": (11, ("vibraphone", "vibes"), 69),
    "marimba": (12, ("marimba",), 67),
    "xylophone": (13, ("xylophone",), 79),
    "tubular bells": (14, ("tubular bells", "chimes"), 67),
    "dulcimer": (15, ("hammered dulcimer", "dulcimer"), 69),
    "organ": (16, ("organ", "Hammond organ", "drawbar organ"), 60),
    "rock organ": (18, ("rock organ", "organ"), 60),
    "church organ": (19, ("church organ", "pipe organ"), 60),
    "accordion": (21, ("accordion",), 67),
    "harmonica": (22, ("harmonica", "blues harp"), 67),
    "nylon guitar": (24, ("nylon guitar", "classical guitar", "acoustic guitar", "Spanish guitar"), 60),
    "acoustic guitar": (25, ("acoustic guitar", "steel-string guitar", "strummed acoustic guitar"), 57),
    "jazz guitar": (26, ("jazz guitar", "hollow-body guitar"), 60),
    "electric guitar": (27, ("clean electric guitar", "electric guitar", "clean guitar"), 60),
    "muted guitar": (28, ("muted guitar", "palm-muted guitar"), 55),
    "overdriven guitar": (29, ("overdriven guitar", "crunchy electric guitar", "electric guitar"), 55),
    "distorted guitar": (30, ("distorted guitar", "heavy guitars", "distorted electric guitar"), 48),
    "upright bass": (32, ("upright bass", "double bass", "acoustic bass"), 40),
    "electric bass": (33, ("electric bass", "bass guitar", "bass"), 40),
    "picked bass": (34, ("picked bass", "bass guitar", "bass"), 40),
    "fretless bass": (35, ("fretless bass", "bass"), 40),
    "slap bass": (36, ("slap bass", "slapped bass"), 40),
    "synth bass": (38, ("synth bass", "bass synth"), 40),
    "analog bass": (39, ("analog synth bass", "synth bass", "fat bass synth"), 38),
    "violin": (40, ("violin",), 74),
    "viola": (41, ("viola",), 62),
    "cello": (42, ("cello",), 50),
    "pizzicato strings": (45, ("pizzicato strings", "plucked strings"), 62),
    "harp": (46, ("harp",), 64),
    "timpani": (47, ("timpani",), 43),
    "strings": (48, ("strings", "string ensemble", "string section"), 62),
    "soft strings": (49, ("soft strings", "lush strings", "strings"), 62),
    "synth strings": (50, ("synth strings", "string synth"), 62),
    "choir": (52, ("choir", "wordless choir", "choir aahs"), 62),
    "trumpet": (56, ("trumpet",), 70),
    "trombone": (57, ("trombone",), 55),
    "tuba": (58, ("tuba",), 38),
    "muted trumpet": (59, ("muted trumpet",), 70),
    "french horn": (60, ("french horn", "horn"), 60),
    "brass section": (61, ("brass section", "brass", "horn section"), 62),
    "synth brass": (62, ("synth brass",), 62),
    "soprano sax": (64, ("soprano sax", "soprano saxophone"), 72),
    "alto sax": (65, ("alto sax", "alto saxophone", "saxophone"), 67),
    "tenor sax": (66, ("tenor sax", "tenor saxophone", "saxophone"), 60),
    "oboe": (68, ("oboe",), 72),
    "bassoon": (70, ("bassoon",), 48),
    "clarinet": (71, ("clarinet",), 67),
    "piccolo": (72, ("piccolo",), 86),
    "flute": (73, ("flute",), 76),
    "recorder": (74, ("recorder",), 76),
    "pan flute": (75, ("pan flute", "pan pipes"), 74),
    "tin whistle": (78, ("tin whistle", "whistle"), 81),
    "ocarina": (79, ("ocarina",), 76),
    "square lead": (80, ("square lead", "chiptune square wave", "8-bit lead"), 72),
    "saw lead": (81, ("saw lead", "sawtooth synth lead", "synth lead"), 69),
    "new age pad": (88, ("shimmering pad", "synth pad"), 64),
    "warm pad": (89, ("warm pad", "synth pad", "pad"), 60),
    "polysynth": (90, ("polysynth", "synth chords", "synthesizer"), 62),
    "choir pad": (91, ("choir pad", "vocal pad"), 62),
    "halo pad": (94, ("halo pad", "airy pad", "ambient pad"), 64),
    "sweep pad": (95, ("sweep pad", "evolving pad"), 62),
    "sitar": (104, ("sitar",), 60),
    "banjo": (105, ("banjo",), 64),
    "koto": (107, ("koto",), 67),
    "kalimba": (108, ("kalimba", "thumb piano"), 72),
    "fiddle": (110, ("fiddle",), 74),
    "steel drums": (114, ("steel drums", "steelpan"), 69),
}
# GM drum kits (bank 128): name -> (program, caption synonyms)
DRUM_KITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "drums": (0, ("drums", "drum kit", "live drums")),
    "room drums": (8, ("drums", "acoustic drums", "room drums")),
    "rock drums": (16, ("drums", "powerful drums", "rock drums")),
    "electronic drums": (24, ("electronic drums", "drum machine", "electronic beat")),
    "808 drums": (25, ("808 drums", "TR-808 drum machine", "808 beat", "drum machine")),
    "jazz drums": (32, ("jazz drums", "drums", "ride cymbal and drums")),
    "brushed drums": (40, ("brushed drums", "brushes", "drums played with brushes")),
    "orchestral percussion": (48, ("orchestral percussion", "timpani and cymbals", "percussion")),
}

# Drum notes (GM percussion key map)
KICK, RIM, SNARE, CLAP, CHH, PHH, OHH, LTOM, MTOM, HTOM, CRASH, RIDE, TAMB, COWBELL, SHAKER = (
    36, 37, 38, 39, 42, 44, 46, 45, 47, 50, 49, 51, 54, 56, 70)

# ==================================================================================================
# Moods (valence, energy) and styles
# ==================================================================================================

MOODS: dict[str, tuple[float, float]] = {
    "happy": (0.9, 0.6), "cheerful": (0.9, 0.6), "uplifting": (0.8, 0.7), "bright": (0.7, 0.5),
    "joyful": (0.9, 0.7), "playful": (0.7, 0.6), "upbeat": (0.8, 0.75), "catchy": (0.7, 0.6),
    "sunny": (0.8, 0.5), "hopeful": (0.6, 0.4), "lively": (0.8, 0.75), "heroic": (0.5, 0.85),
    "sad": (-0.9, 0.2), "melancholic": (-0.7, 0.3), "dark": (-0.8, 0.6), "somber": (-0.7, 0.2),
    "mysterious": (-0.4, 0.3), "tense": (-0.6, 0.7), "gritty": (-0.3, 0.6), "soulful": (-0.1, 0.4),
    "nostalgic": (-0.1, 0.3), "bittersweet": (-0.3, 0.3),
    "calm": (0.1, 0.1), "peaceful": (0.4, 0.1), "relaxed": (0.3, 0.25), "chill": (0.2, 0.3),
    "dreamy": (0.2, 0.2), "mellow": (0.2, 0.25), "laid-back": (0.3, 0.3), "gentle": (0.3, 0.15),
    "tender": (0.2, 0.15), "serene": (0.4, 0.1), "meditative": (0.0, 0.05), "atmospheric": (0.0, 0.15),
    "energetic": (0.5, 0.9), "driving": (0.0, 0.8), "aggressive": (-0.6, 1.0), "intense": (-0.3, 0.9),
    "heavy": (-0.5, 0.9), "powerful": (0.1, 0.9), "epic": (0.1, 0.9), "dramatic": (-0.3, 0.8),
    "hypnotic": (0.0, 0.7), "groovy": (0.5, 0.7), "funky": (0.6, 0.7), "danceable": (0.6, 0.8),
    "romantic": (0.4, 0.3), "elegant": (0.4, 0.35), "graceful": (0.5, 0.35), "warm": (0.4, 0.3),
    "smooth": (0.3, 0.35), "sophisticated": (0.2, 0.4), "rustic": (0.5, 0.45), "breezy": (0.5, 0.4),
    "retro": (0.6, 0.6), "solemn": (-0.3, 0.2), "reverent": (0.1, 0.15),
}

MAJOR_PROGS = ["I V vi IV", "I vi IV V", "vi IV I V", "I IV vi V", "I IV I V", "I iii IV V", "IV V iii vi",
               "I V IV V", "ii V I I", "I IV ii V"]
MINOR_PROGS = ["i bVI bIII bVII", "i iv v i", "i bVII bVI bVII", "i iv bVII bIII", "i bVI iv V", "i v bVI iv",
               "i iv i V", "i bIII bVII iv"]
MODE_PROGS = {
    "major": MAJOR_PROGS, "minor": MINOR_PROGS,
    "dorian": ["i IV i IV", "i bIII IV i", "i ii bIII IV", "i7 IV7 i7 IV7", "i bVII IV i"],
    "mixolydian": ["I bVII IV I", "I bVII I bVII", "I v IV I", "I IV bVII IV"],
    "phrygian": ["i bII i bII", "i bII bIII bII", "i bVII bVI bII", "i i bII i"],
    "lydian": ["I II I II", "I II iii II", "I II vii I"],
}
JAZZ_PROGS = {"major": ["ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 vi7 ii7 V7", "Imaj7 IVmaj7 iii7 vi7",
                        "Imaj7 VI7 ii7 V7"],
              "minor": ["i7 iv7 bVII7 bIIImaj7", "iim7b5 V7 i7 i7", "i7 bVImaj7 iim7b5 V7", "i7 iv7 i7 V7"],
              "dorian": ["i7 IV7 i7 IV7", "i7 ii7 i7 ii7"]}
BLUES_PROGS = {"major": ["I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7", "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"],
               "minor": ["i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7"],
               "mixolydian": ["I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"],
               "dorian": ["i7 i7 i7 i7 IV7 IV7 i7 i7 V7 IV7 i7 V7"]}


@dataclass(frozen=True)
class Style:
    """How one style is composed. Instrument choices are (name, pattern) pairs."""

    name: str
    words: tuple[str, ...]                       # caption nouns
    bpm: tuple[int, int]
    modes: dict                                  # mode -> weight
    moods: tuple[str, ...]
    kits: tuple[str, ...] = ()                   # drum kits ('' = none)
    drum_patterns: tuple[str, ...] = ()
    drum_prob: float = 1.0
    bass: tuple[tuple[str, str], ...] = ()
    bass_prob: float = 1.0
    chords: tuple[tuple[str, str], ...] = ()
    melody: tuple[str, ...] = ()
    melody_prob: float = 0.9
    pads: tuple[str, ...] = ()
    pad_prob: float = 0.0
    arps: tuple[str, ...] = ()
    arp_prob: float = 0.0
    solo: tuple[str, ...] = ()                   # instruments that can play the piece alone
    solo_prob: float = 0.0
    meters: tuple[tuple[int, int], ...] = ((4, 4),)
    progressions: dict | None = None             # mode -> list (None: the generic ones)
    sevenths: float = 0.0                        # probability of seventh chords
    swing: tuple[float, float] = (0.0, 0.0)
    harmonic_rhythm: int = 1                     # bars per chord
    density: float = 1.0                         # melody notes per beat
    reverb: int = 50                             # CC91
    humanize: float = 0.008                      # seconds of timing jitter


STYLES: dict[str, Style] = {s.name: s for s in [
    Style("pop", ("pop", "pop song", "pop track", "pop tune", "pop instrumental"), (90, 128),
          {"major": 4, "minor": 2}, ("upbeat", "happy", "catchy", "uplifting", "bright", "energetic", "bittersweet",
                                     "hopeful", "sunny"),
          kits=("drums", "electronic drums"), drum_patterns=("pop", "pop2"), drum_prob=0.9,
          bass=(("electric bass", "eighths"), ("synth bass", "eighths"), ("electric bass", "root_fifth")),
          chords=(("piano", "quarters"), ("electric piano", "half"), ("acoustic guitar", "strum"),
                  ("polysynth", "stabs"), ("piano", "eighths")),
          melody=("saw lead", "flute", "electric piano", "electric guitar", "piano", "marimba", "alto sax"),
          pads=("warm pad", "strings", "synth strings"), pad_prob=0.4, arps=("polysynth", "electric guitar"),
          arp_prob=0.15, density=1.2, reverb=45),
    Style("rock", ("rock", "rock song", "rock track", "guitar rock", "rock instrumental"), (100, 150),
          {"major": 2, "minor": 2, "mixolydian": 2}, ("energetic", "driving", "powerful", "gritty", "upbeat",
                                                     "intense"),
          kits=("rock drums", "drums"), drum_patterns=("rock", "rock2"),
          bass=(("picked bass", "eighths"), ("electric bass", "eighths")),
          chords=(("overdriven guitar", "power"), ("distorted guitar", "power"), ("electric guitar", "strum")),
          melody=("overdriven guitar", "rock organ", "electric guitar"), melody_prob=0.7,
          pads=("rock organ",), pad_prob=0.25, density=1.2, reverb=35, harmonic_rhythm=1),
    Style("metal", ("metal", "heavy metal", "metal track", "thrash metal riff"), (130, 180),
          {"minor": 3, "phrygian": 2}, ("aggressive", "dark", "heavy", "intense", "powerful"),
          kits=("rock drums",), drum_patterns=("metal",),
          bass=(("picked bass", "sixteenths"), ("picked bass", "eighths")),
          chords=(("distorted guitar", "chug"),), melody=("distorted guitar", "overdriven guitar"),
          melody_prob=0.5, density=1.5, reverb=25, humanize=0.004, harmonic_rhythm=2),
    Style("funk", ("funk", "funk groove", "funky jam", "funk track"), (92, 118),
          {"dorian": 3, "minor": 1, "mixolydian": 2}, ("groovy", "funky", "upbeat", "danceable", "energetic"),
          kits=("drums", "room drums"), drum_patterns=("funk",),
          bass=(("slap bass", "funk"), ("electric bass", "funk"), ("synth bass", "funk")),
          chords=(("clavinet", "stabs16"), ("muted guitar", "stabs16"), ("electric guitar", "stabs16"),
                  ("electric piano", "stabs")),
          melody=("brass section", "alto sax", "tenor sax", "trumpet", "synth brass"), melody_prob=0.6,
          progressions={"dorian": ["i7 i7 IV7 IV7", "i7 IV7 i7 IV7", "i9 i9 i9 IV9"],
                        "minor": ["i7 i7 iv7 iv7", "i7 bVII7 i7 bVII7"],
                        "mixolydian": ["I7 I7 IV7 I7", "I9 bVII I9 bVII"]},
          density=1.0, reverb=30, harmonic_rhythm=2),
    Style("jazz", ("jazz", "jazz tune", "jazz combo piece", "swing jazz", "small-group jazz"), (80, 170),
          {"major": 3, "minor": 1, "dorian": 1}, ("smooth", "relaxed", "sophisticated", "mellow", "lively",
                                                   "romantic"),
          kits=("jazz drums", "brushed drums"), drum_patterns=("swing",), drum_prob=0.85,
          bass=(("upright bass", "walking"),),
          chords=(("piano", "jazz_comp"), ("jazz guitar", "jazz_comp"), ("electric piano", "jazz_comp")),
          melody=("tenor sax", "alto sax", "trumpet", "muted trumpet", "vibraphone", "clarinet", "jazz guitar",
                  "trombone", "flute"),
          solo=("piano",), solo_prob=0.1, progressions=JAZZ_PROGS, sevenths=1.0, swing=(0.25, 0.34),
          density=1.6, reverb=45),
    Style("lofi", ("lofi", "lo-fi hip hop", "lofi beat", "lo-fi chill beat", "chillhop"), (70, 92),
          {"major": 2, "minor": 2, "dorian": 1}, ("chill", "relaxed", "mellow", "nostalgic", "dreamy", "laid-back"),
          kits=("room drums", "808 drums", "drums"), drum_patterns=("boombap", "boombap2"),
          bass=(("electric bass", "lazy"), ("synth bass", "lazy"), ("upright bass", "lazy")),
          chords=(("electric piano", "lazy_chords"), ("piano", "lazy_chords"), ("electric guitar", "lazy_chords")),
          melody=("vibraphone", "electric piano", "flute", "muted trumpet", "kalimba", "electric guitar"),
          melody_prob=0.6, pads=("warm pad",), pad_prob=0.2,
          progressions={"major": ["Imaj7 vi7 ii7 V7", "IVmaj7 iii7 vi7 Imaj7", "IVmaj7 V7 iii7 vi7",
                                  "Imaj7 IVmaj7 Imaj7 IVmaj7"],
                        "minor": ["i7 iv7 bVIImaj7 bIIImaj7", "i7 bVImaj7 iv7 v7", "i7 iv7 i7 iv7"],
                        "dorian": ["i7 IV7 i7 IV7", "i7 ii7 i7 ii7"]},
          sevenths=1.0, swing=(0.12, 0.25), density=0.8, reverb=55, harmonic_rhythm=1, humanize=0.012),
    Style("hip hop", ("hip hop beat", "boom bap beat", "hip hop instrumental", "rap beat"), (80, 98),
          {"minor": 4, "dorian": 1, "phrygian": 1}, ("gritty", "dark", "driving", "chill", "mysterious"),
          kits=("808 drums", "drums"), drum_patterns=("boombap", "trap"),
          bass=(("analog bass", "lazy"), ("synth bass", "whole")),
          chords=(("piano", "half"), ("strings", "sustain"), ("electric piano", "lazy_chords"),
                  ("pizzicato strings", "quarters")),
          melody=("piano", "flute", "strings", "music box", "saw lead", "glockenspiel"),
          melody_prob=0.6, density=0.8, reverb=40, swing=(0.0, 0.15)),
    Style("ambient", ("ambient", "ambient soundscape", "ambient piece", "atmospheric ambient music", "drone music"),
          (60, 80), {"lydian": 2, "major": 2, "minor": 2, "dorian": 1},
          ("calm", "peaceful", "dreamy", "atmospheric", "meditative", "serene", "mysterious"),
          bass_prob=0.3, bass=(("synth bass", "whole"), ("cello", "whole")),
          chords=(("halo pad", "sustain"), ("warm pad", "sustain"), ("soft strings", "sustain"),
                  ("new age pad", "sustain"), ("sweep pad", "sustain"), ("choir pad", "sustain")),
          melody=("celesta", "music box", "pan flute", "piano", "vibraphone", "harp", "glockenspiel", "kalimba"),
          melody_prob=0.7, arps=("harp", "celesta", "piano", "marimba"), arp_prob=0.35,
          density=0.35, reverb=110, harmonic_rhythm=2, humanize=0.015),
    Style("classical", ("classical piece", "classical music", "classical composition", "chamber music"),
          (60, 132), {"major": 3, "minor": 2}, ("elegant", "calm", "romantic", "dramatic", "graceful", "tender",
                                                "lively"),
          bass=(("cello", "half"), ("bassoon", "half")), bass_prob=0.6,
          chords=(("strings", "sustain"), ("piano", "alberti"), ("harpsichord", "alberti"), ("harp", "arp_up"),
                  ("strings", "half")),
          melody=("violin", "flute", "oboe", "clarinet", "french horn", "cello", "piano"),
          solo=("piano", "harpsichord", "harp", "nylon guitar"), solo_prob=0.35,
          density=1.4, reverb=70, humanize=0.01),
    Style("waltz", ("waltz", "waltz in 3/4", "classic waltz", "Viennese waltz"), (84, 180),
          {"major": 4, "minor": 1}, ("graceful", "romantic", "elegant", "playful", "nostalgic"),
          bass=(("upright bass", "waltz_bass"), ("tuba", "waltz_bass"), ("cello", "waltz_bass")),
          chords=(("strings", "waltz"), ("piano", "waltz"), ("accordion", "waltz"), ("pizzicato strings", "waltz")),
          melody=("violin", "flute", "accordion", "clarinet", "piano", "oboe"),
          solo=("piano", "accordion"), solo_prob=0.3, meters=((3, 4),), density=1.0, reverb=60),
    Style("house", ("house", "house track", "deep house groove", "house music"), (118, 128),
          {"minor": 3, "dorian": 2, "major": 1}, ("danceable", "energetic", "groovy", "uplifting", "hypnotic"),
          kits=("electronic drums", "808 drums"), drum_patterns=("house",),
          bass=(("synth bass", "offbeat"), ("analog bass", "octave")),
          chords=(("electric piano", "stabs"), ("polysynth", "stabs"), ("piano", "house_piano"), ("organ", "stabs")),
          melody=("saw lead", "fm electric piano", "polysynth"), melody_prob=0.4,
          pads=("warm pad", "synth strings"), pad_prob=0.4, sevenths=0.6, density=0.8, reverb=45, humanize=0.0),
    Style("techno", ("techno", "techno track", "driving techno", "minimal techno"), (124, 140),
          {"minor": 3, "phrygian": 1, "dorian": 1}, ("hypnotic", "driving", "dark", "energetic", "intense"),
          kits=("808 drums", "electronic drums"), drum_patterns=("techno",),
          bass=(("analog bass", "offbeat"), ("synth bass", "sixteenths")),
          chords=(("polysynth", "stabs"), ("sweep pad", "sustain")),
          melody=("saw lead",), melody_prob=0.25, arps=("saw lead", "polysynth", "square lead"), arp_prob=0.6,
          progressions={"minor": ["i i i i", "i i bVI bVII", "i i iv iv"], "phrygian": ["i i bII i"],
                        "dorian": ["i i IV i"]},
          density=0.8, reverb=40, humanize=0.0, harmonic_rhythm=2),
    Style("folk", ("folk", "folk song", "acoustic folk tune", "folk ballad", "singer-songwriter folk"), (80, 130),
          {"major": 4, "mixolydian": 1, "dorian": 1, "minor": 1}, ("warm", "cheerful", "rustic", "nostalgic",
                                                                   "gentle", "hopeful"),
          kits=("brushed drums", "room drums"), drum_patterns=("folk",), drum_prob=0.4,
          bass=(("upright bass", "root_fifth"),), bass_prob=0.6,
          chords=(("acoustic guitar", "strum"), ("nylon guitar", "fingerpick"), ("banjo", "fingerpick"),
                  ("accordion", "half")),
          melody=("fiddle", "flute", "harmonica", "tin whistle", "banjo", "accordion", "recorder"),
          solo=("acoustic guitar", "nylon guitar"), solo_prob=0.2, meters=((4, 4), (4, 4), (3, 4)),
          density=1.2, reverb=40),
    Style("blues", ("blues", "blues shuffle", "twelve-bar blues", "Chicago blues"), (70, 120),
          {"major": 3, "minor": 1, "mixolydian": 1}, ("soulful", "laid-back", "gritty", "melancholic", "groovy"),
          kits=("drums", "room drums"), drum_patterns=("shuffle",),
          bass=(("electric bass", "boogie"), ("upright bass", "walking")),
          chords=(("piano", "quarters"), ("organ", "sustain"), ("electric guitar", "shuffle_comp")),
          melody=("harmonica", "overdriven guitar", "tenor sax", "electric guitar", "piano"),
          progressions=BLUES_PROGS, swing=(0.28, 0.34), density=1.0, reverb=45),
    Style("reggae", ("reggae", "reggae groove", "roots reggae", "dub reggae"), (64, 90),
          {"major": 3, "minor": 2}, ("laid-back", "sunny", "relaxed", "groovy", "warm"),
          kits=("drums", "room drums"), drum_patterns=("onedrop",),
          bass=(("electric bass", "reggae"),),
          chords=(("electric guitar", "skank"), ("organ", "skank"), ("piano", "skank")),
          melody=("harmonica", "trumpet", "organ", "flute", "steel drums"),
          melody_prob=0.6, swing=(0.05, 0.2), density=0.8, reverb=60),
    Style("bossa nova", ("bossa nova", "Brazilian bossa nova", "bossa nova tune"), (110, 140),
          {"major": 3, "minor": 2}, ("breezy", "relaxed", "romantic", "smooth", "warm"),
          kits=("brushed drums", "jazz drums"), drum_patterns=("bossa",),
          bass=(("upright bass", "bossa"), ("electric bass", "bossa")),
          chords=(("nylon guitar", "bossa_comp"), ("electric piano", "bossa_comp")),
          melody=("flute", "alto sax", "vibraphone", "piano", "tenor sax"),
          progressions=JAZZ_PROGS, sevenths=1.0, density=1.0, reverb=45),
    Style("cinematic", ("cinematic", "cinematic orchestral piece", "film score cue", "epic orchestral music",
                        "trailer music"), (70, 110),
          {"minor": 4, "major": 1, "dorian": 1}, ("epic", "dramatic", "heroic", "tense", "dark", "powerful"),
          kits=("orchestral percussion",), drum_patterns=("cinematic",), drum_prob=0.7,
          bass=(("timpani", "pulse"), ("cello", "eighths"), ("tuba", "half")),
          chords=(("strings", "sustain"), ("strings", "eighths"), ("choir", "sustain"), ("brass section", "half")),
          melody=("french horn", "brass section", "trumpet", "strings", "choir", "cello"),
          pads=("choir", "strings"), pad_prob=0.4, density=0.9, reverb=90, harmonic_rhythm=1),
    Style("ballad", ("ballad", "slow ballad", "love ballad", "heartfelt ballad"), (60, 84),
          {"major": 3, "minor": 3}, ("calm", "sad", "tender", "romantic", "melancholic", "gentle", "hopeful"),
          kits=("brushed drums", "drums"), drum_patterns=("ballad",), drum_prob=0.35,
          bass=(("electric bass", "whole"), ("fretless bass", "whole"), ("upright bass", "half")), bass_prob=0.5,
          chords=(("piano", "ballad_arp"), ("acoustic guitar", "fingerpick"), ("electric piano", "ballad_arp")),
          melody=("piano", "violin", "cello", "flute", "soprano sax", "strings", "oboe"),
          pads=("soft strings", "warm pad"), pad_prob=0.4,
          solo=("piano", "piano", "electric piano", "nylon guitar"), solo_prob=0.5, density=0.8, reverb=65),
    Style("disco", ("disco", "disco track", "funky disco", "disco groove"), (110, 126),
          {"major": 2, "minor": 2, "dorian": 1}, ("danceable", "upbeat", "groovy", "joyful", "retro"),
          kits=("drums",), drum_patterns=("disco",),
          bass=(("electric bass", "octave"), ("slap bass", "octave"), ("synth bass", "octave")),
          chords=(("electric guitar", "stabs16"), ("piano", "eighths"), ("strings", "stabs")),
          melody=("strings", "brass section", "synth brass", "flute", "saw lead"), melody_prob=0.7,
          sevenths=0.5, density=1.0, reverb=45, humanize=0.004),
    Style("chiptune", ("chiptune", "8-bit video game music", "retro game tune", "8-bit chiptune"), (110, 170),
          {"major": 3, "minor": 2}, ("playful", "upbeat", "retro", "energetic", "cheerful"),
          kits=("electronic drums",), drum_patterns=("chip",), drum_prob=0.8,
          bass=(("square lead", "octave"),),
          chords=(), melody=("square lead",), melody_prob=1.0, arps=("square lead",), arp_prob=0.6,
          density=2.0, reverb=15, humanize=0.0),
]}

# Drum patterns: per part a string of steps (16 per 4/4 bar, 12 per 3/4 bar): 'x' accent, 'o' soft.
DRUM_PATTERNS: dict[str, dict[int, str]] = {
    "pop": {KICK: "x.......x.x.....", SNARE: "....x.......x...", CHH: "x.o.x.o.x.o.x.o."},
    "pop2": {KICK: "x..x....x.......", CLAP: "....x.......x...", CHH: "xoxoxoxoxoxoxoxo", TAMB: "....x.......x..."},
    "rock": {KICK: "x.....x.x.......", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    "rock2": {KICK: "x.x.....x.x.....", SNARE: "....x.......x...", RIDE: "x.x.x.x.x.x.x.x."},
    "metal": {KICK: "xxxxxxxxxxxxxxxx", SNARE: "....x.......x...", CRASH: "x.......x......."},
    "funk": {KICK: "x.....x...x..x..", SNARE: "....x..o.o..x..o", CHH: "xoxoxoxoxoxoxoxo"},
    "swing": {RIDE: "x...x.x.x...x.x.", PHH: "....x.......x...", KICK: "o.......o.......", SNARE: "......o.......o."},
    "boombap": {KICK: "x.......x.x.....", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    "boombap2": {KICK: "x......x..x.....", SNARE: "....x.......x...", CHH: "x.o.x.o.x.o.x.o.", OHH: "..............x."},
    "trap": {KICK: "x......x..x.....", CLAP: "........x.......", CHH: "xxxxxxxxxxxxxxxx"},
    "house": {KICK: "x...x...x...x...", CLAP: "....x.......x...", OHH: "..x...x...x...x.", CHH: "x.o.x.o.x.o.x.o."},
    "techno": {KICK: "x...x...x...x...", CLAP: "....x.......x...", CHH: "oooooooooooooooo", OHH: "..x...x...x...x."},
    "disco": {KICK: "x...x...x...x...", SNARE: "....x.......x...", OHH: "..x...x...x...x.", CHH: "x...x...x...x..."},
    "folk": {KICK: "x.......x.......", SNARE: "....o.......o...", SHAKER: "xoxoxoxoxoxoxoxo"},
    "shuffle": {KICK: "x.......x.......", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    "onedrop": {RIM: "........x.......", KICK: "........x.......", CHH: "x.x.x.x.x.x.x.x."},
    "bossa": {KICK: "x..xx..xx..xx..x", RIM: "x..x..x...x..x..", CHH: "oooooooooooooooo"},
    "ballad": {KICK: "x.........x.....", RIM: "....x.......x...", CHH: "x...x...x...x..."},
    "cinematic": {KICK: "x.......x..x....", CRASH: "x...............", LTOM: "............xoxo"},
    "chip": {KICK: "x.......x.......", SNARE: "....x.......x...", CHH: "x.x.x.x.x.x.x.x."},
    # 3/4 (12 steps)
    "waltz": {KICK: "x...........", SNARE: "....o...o...", CHH: "x...x...x..."},
    "folk3": {KICK: "x...........", SHAKER: "xoxoxoxoxoxo", TAMB: "....x...x..."},
}


# ==================================================================================================
# The piece spec
# ==================================================================================================


@dataclass
class PartSpec:
    """One instrument of a piece: what it plays (role, pattern) and how loud (CC7)."""

    role: str                 # melody, chords, bass, pad, arp, drums, drone, voice
    instrument: str           # a key of INSTRUMENTS or DRUM_KITS
    pattern: str = ""
    volume: int = 100


@dataclass
class PieceSpec:
    """Everything that decides a clip: the MIDI and the caption are both made from it."""

    index: int
    seed: int
    source: str               # "synth" or "music21"
    style: str                # a key of STYLES, or the corpus category ("chorale", "irish folk", ...)
    genre: str
    moods: list[str]
    bpm: float
    root: int                 # tonic pitch class
    mode: str                 # major, minor, dorian, ...
    meter: tuple[int, int]
    parts: list[PartSpec]
    progression: list[str] = field(default_factory=list)
    energy: float = 0.5
    swing: float = 0.0
    duration: float = 10.0
    title: str = ""
    artist: str = ""
    form: str = ""            # corpus pieces: reel, jig, chorale, ...
    origin: str = ""          # corpus pieces: the music21 corpus path (and tune number)
    ensemble: str = ""        # corpus pieces: "string quartet", "choir", ... ("" for none)

    @property
    def key(self) -> str:
        return key_name(self.root, self.mode)

    @property
    def instruments(self) -> list[str]:
        """Instrument names, most prominent first (melody, then the rest in part order), no repeats."""
        order = {"melody": 0, "voice": 0, "chords": 1, "arp": 2, "pad": 3, "bass": 4, "drone": 5, "drums": 6}
        names: list[str] = []
        for part in sorted(self.parts, key=lambda p: order.get(p.role, 9)):
            if part.instrument not in names:
                names.append(part.instrument)
        return names

    @property
    def solo(self) -> bool:
        return len(self.instruments) == 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["meter"] = list(self.meter)
        return d


# ==================================================================================================
# Sampling a spec
# ==================================================================================================


def _weighted(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def sample_synth_spec(rng: random.Random, index: int, seed: int, duration: float) -> PieceSpec:
    """A random piece of a random style: moods first, then mode, tempo and arrangement to match."""
    style = STYLES[rng.choice(sorted(STYLES))]
    moods = [rng.choice(style.moods)]
    if rng.random() < 0.5:
        valence = MOODS[moods[0]][0]
        compatible = [m for m in style.moods if m != moods[0] and abs(MOODS[m][0] - valence) < 0.8]
        if compatible:
            moods.append(rng.choice(compatible))
    valence = sum(MOODS[m][0] for m in moods) / len(moods)
    energy = min(1.0, max(0.0, sum(MOODS[m][1] for m in moods) / len(moods) + rng.uniform(-0.15, 0.15)))

    modes = dict(style.modes)
    if valence < -0.2:
        modes = {m: w for m, w in modes.items() if m in MINOR_FAMILY} or modes
    elif valence > 0.2:
        modes = {m: w for m, w in modes.items() if m not in MINOR_FAMILY} or modes
    mode = _weighted(rng, modes)
    root = rng.randrange(12)
    lo, hi = style.bpm
    position = min(1.0, max(0.0, 0.25 + 0.6 * energy + rng.uniform(-0.25, 0.25)))
    bpm = int(round(lo + (hi - lo) * position))
    meter = rng.choice(style.meters)

    progs = (style.progressions or MODE_PROGS).get(mode) or MODE_PROGS[mode]
    progression = rng.choice(progs).split()
    if style.sevenths and rng.random() < style.sevenths:
        progression = [add_seventh(c) for c in progression]

    parts: list[PartSpec] = []
    if style.solo and rng.random() < style.solo_prob:
        inst = rng.choice(style.solo)
        parts.append(PartSpec("chords", inst, "solo_accomp", 90))
        parts.append(PartSpec("melody", inst, "melody", 100))
    else:
        if style.chords:
            inst, pattern = rng.choice(style.chords)
            parts.append(PartSpec("chords", inst, pattern, 85))
        if style.melody and rng.random() < style.melody_prob:
            choices = [m for m in style.melody if m not in [p.instrument for p in parts]] or list(style.melody)
            parts.append(PartSpec("melody", rng.choice(choices), "melody", 100))
        if style.arps and rng.random() < style.arp_prob:
            parts.append(PartSpec("arp", rng.choice(style.arps), "arp", 75))
        if style.pads and rng.random() < style.pad_prob:
            pad = rng.choice(style.pads)
            if pad not in [p.instrument for p in parts]:
                parts.append(PartSpec("pad", pad, "sustain", 65))
        if style.bass and rng.random() < style.bass_prob:
            inst, pattern = rng.choice(style.bass)
            parts.append(PartSpec("bass", inst, pattern, 95))
        if style.kits and rng.random() < style.drum_prob:
            pattern = rng.choice(style.drum_patterns)
            if meter[0] == 3:
                pattern = "folk3" if style.name == "folk" else "waltz"
            parts.append(PartSpec("drums", rng.choice(style.kits), pattern, 90))
        if not parts:
            parts.append(PartSpec("melody", rng.choice(style.melody or ("piano",)), "melody", 100))
    swing = rng.uniform(*style.swing) if style.swing[1] > 0 else 0.0
    return PieceSpec(index=index, seed=seed, source="synth", style=style.name, genre=style.name, moods=moods,
                     bpm=bpm, root=root, mode=mode, meter=meter, parts=parts, progression=progression,
                     energy=round(energy, 3), swing=round(swing, 3), duration=duration,
                     title=f"{style.name.title()} sketch no. {index}", artist="magnet-audio synth")


# ==================================================================================================
# Composing the MIDI of a synthetic spec
# ==================================================================================================


class _Timeline:
    """Steps (16ths) -> seconds, with swing on off-beat 8ths and humanised timing."""

    def __init__(self, spec: PieceSpec, rng: random.Random, humanize: float):
        self.beat = 60.0 / spec.bpm
        self.step = self.beat / 4
        self.steps_per_bar = spec.meter[0] * 4
        self.bar = self.beat * spec.meter[0]
        self.swing, self.rng, self.humanize = spec.swing, rng, humanize

    def time(self, bar: int, step: float, jitter: bool = True) -> float:
        t = bar * self.bar + step * self.step
        frac = step % 4
        if self.swing and frac:  # 8th off-beats move by swing * half a beat; 16ths proportionally
            t += self.swing * self.beat * 0.5 * (frac / 2 if frac <= 2 else (4 - frac) / 2)
        if jitter and self.humanize:
            t += self.rng.gauss(0, self.humanize / 2)
        return max(0.0, t)


def _voicing(pcs: list[int], center: int, previous: list[int] | None) -> list[int]:
    """A close-position voicing of ``pcs`` near ``center``, moving little from ``previous``."""
    best, best_cost = None, float("inf")
    n = len(pcs)
    for inversion in range(n):
        order = pcs[inversion:] + pcs[:inversion]
        first = center - 6 + ((order[0] - (center - 6)) % 12)
        notes = [first]
        for pc in order[1:]:
            nxt = notes[-1] + ((pc - notes[-1]) % 12 or 12)
            notes.append(nxt)
        cost = abs(sum(notes) / n - center)
        if previous:
            cost += 0.5 * sum(min(abs(a - b) for b in previous) for a in notes) / n
        if cost < best_cost:
            best, best_cost = notes, cost
    return best


def _near(pc: int, center: int) -> int:
    """The pitch of class ``pc`` nearest ``center``."""
    return center + ((pc - center + 6) % 12) - 6


class Composer:
    """Turns a synthetic :class:`PieceSpec` into a ``pretty_midi.PrettyMIDI``."""

    def __init__(self, spec: PieceSpec, rng: random.Random):
        import pretty_midi

        self.pm_mod = pretty_midi
        self.spec, self.rng = spec, rng
        style = STYLES[spec.style]
        self.style = style
        self.tl = _Timeline(spec, rng, style.humanize)
        self.n_bars = int(math.ceil(spec.duration / self.tl.bar)) + 1
        self.scale = [(spec.root + i) % 12 for i in MODES[spec.mode]]
        hr = style.harmonic_rhythm * (2 if spec.bpm >= 150 and style.harmonic_rhythm == 1 and len(
            spec.progression) < 8 else 1)
        self.chords = [parse_chord(spec.progression[(bar // hr) % len(spec.progression)], spec.root)
                       for bar in range(self.n_bars)]
        self.vel = 58 + int(45 * spec.energy)

    # ------------------------------------------------------------------------------------------
    def compose(self):
        pm = self.pm_mod.PrettyMIDI(initial_tempo=float(self.spec.bpm))
        pm.time_signature_changes.append(self.pm_mod.TimeSignature(self.spec.meter[0], self.spec.meter[1], 0.0))
        for part in self.spec.parts:
            if part.role == "drums":
                program, is_drum = DRUM_KITS[part.instrument][0], True
            else:
                program, is_drum = INSTRUMENTS[part.instrument][0], False
            inst = self.pm_mod.Instrument(program=program, is_drum=is_drum, name=f"{part.role}:{part.instrument}")
            notes = getattr(self, f"_{part.role}")(part)
            for start, end, pitch, velocity in notes:
                if end - start < 0.02 or not 0 <= pitch <= 127:
                    continue
                velocity = int(min(127, max(1, velocity)))
                inst.notes.append(self.pm_mod.Note(velocity=velocity, pitch=int(pitch), start=start, end=end))
            inst.control_changes.append(self.pm_mod.ControlChange(7, part.volume, 0.0))
            inst.control_changes.append(self.pm_mod.ControlChange(91, self.style.reverb, 0.0))
            if part.pattern in ("ballad_arp", "alberti", "solo_accomp", "arp_up") and program <= 7:
                for bar in range(self.n_bars):  # sustain pedal, changed each bar
                    inst.control_changes.append(self.pm_mod.ControlChange(64, 100, self.tl.time(bar, 0.2, False)))
                    inst.control_changes.append(self.pm_mod.ControlChange(64, 0, self.tl.time(bar + 1, -0.3, False)))
            pm.instruments.append(inst)
        return pm

    def _v(self, base: int, spread: int = 8) -> int:
        return base + self.rng.randint(-spread, spread)

    # ------------------------------------------------------------------------------------------ chords
    def _chords(self, part: PartSpec) -> list:
        center = INSTRUMENTS[part.instrument][2]
        tl, spb = self.tl, self.tl.steps_per_bar
        notes, prev = [], None
        vel = self.vel - 8
        pattern = part.pattern
        beats = self.spec.meter[0]
        rng = self.rng
        for bar in range(self.n_bars):
            pcs = self.chords[bar]
            voice = _voicing(pcs[:4], center, prev)
            prev = voice
            root = _near(pcs[0], center - 12)

            def hit(step, length, pitches, v=vel, spread=0.0):
                t0 = tl.time(bar, step)
                for i, p in enumerate(pitches):
                    notes.append((t0 + i * spread, tl.time(bar, step + length, False), p, self._v(v)))

            if pattern in ("sustain", "solo_sustain"):
                hit(0, spb - 0.2, voice, vel - 10)
            elif pattern == "half":
                for s in range(0, spb, 8 if beats == 4 else 6):
                    hit(s, 7.5 if beats == 4 else 5.5, voice)
            elif pattern == "quarters":
                for s in range(0, spb, 4):
                    hit(s, 3.3, voice, vel + (8 if s == 0 else 0))
            elif pattern == "eighths":
                for s in range(0, spb, 2):
                    hit(s, 1.6, voice, vel + (8 if s % 4 == 0 else -6))
            elif pattern == "strum":
                strum = "D.DU.UDU" if beats == 4 else "D.DUDU"
                for i, ch in enumerate(strum):
                    if ch == ".":
                        continue
                    pitches = [root + 12] + voice if ch == "D" else list(reversed(voice))
                    hit(i * 2, 2.0 if ch == "U" else 3.5, pitches, vel + (6 if ch == "D" else -10), spread=0.012)
            elif pattern == "fingerpick":
                seq = [root, voice[-1], voice[0] + 12 if len(voice) > 2 else voice[1], voice[1]]
                for i, s in enumerate(range(0, spb, 2)):
                    p = seq[i % 4] if i % 4 else (root if i == 0 else _near(pcs[min(2, len(pcs) - 1)], center - 12))
                    hit(s, 3.5, [p], vel - 5)
            elif pattern == "power":
                low = _near(pcs[0], 45)
                for s in range(0, spb, 2):
                    hit(s, 1.7, [low, low + 7, low + 12], vel + (8 if s % 8 == 0 else 0))
            elif pattern == "chug":
                low = _near(pcs[0], 40)
                for s in range(spb):
                    if s % 8 in (0, 4) or rng.random() < 0.75:
                        hit(s, 0.8, [low, low + 7], vel + (12 if s % 4 == 0 else 0))
            elif pattern in ("stabs", "stabs16"):
                steps = ([2, 6, 10, 14] if pattern == "stabs" else
                         sorted(rng.sample([1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15], 6)))
                for s in steps:
                    if s < spb:
                        hit(s, 0.8, voice, vel + 5)
            elif pattern == "skank":
                for s in range(4, spb, 8):
                    hit(s, 1.2, voice, vel)
            elif pattern == "house_piano":
                for s in (0, 3, 6, 10, 12):
                    hit(s, 1.5, voice, vel + 5)
            elif pattern == "waltz":
                for s in (4, 8):
                    hit(s, 3, voice, vel - 5)
            elif pattern in ("alberti", "arp_up", "ballad_arp", "solo_accomp"):
                notes += self._broken(bar, pcs, center, pattern, vel)
            elif pattern == "jazz_comp":
                rootless = _voicing([pcs[1 % len(pcs)]] + pcs[2:] + pcs[:1], center, None)
                for s in rng.choice([(0, 6), (2, 10), (4, 12, 14), (0, 6, 10), (6, 14)]):
                    hit(s, rng.choice([1.5, 3.0]), rootless, vel - 6)
            elif pattern == "lazy_chords":
                hit(0, spb * 0.95, voice, vel - 6, spread=0.025)
                if rng.random() < 0.4:
                    hit(spb - 2 if beats == 4 else 8, 2, voice, vel - 14, spread=0.02)
            elif pattern == "bossa_comp":
                for s in (0, 3, 6, 10, 12):
                    hit(s, 1.6, voice, vel - 4)
            elif pattern == "shuffle_comp":
                low = _near(pcs[0], 45)
                for s in range(0, spb, 2):
                    sixth = 9 if (s // 4) % 2 else 7
                    hit(s, 1.7, [low, low + sixth], vel)
            else:
                raise ValueError(f"unknown chord pattern {pattern!r}")
        return notes

    def _broken(self, bar: int, pcs: list[int], center: int, pattern: str, vel: int) -> list:
        """Arpeggiated accompaniment: Alberti bass, rising arpeggio, a piano-ballad left hand."""
        tl, spb = self.tl, self.tl.steps_per_bar
        out = []
        if pattern == "alberti":
            v = _voicing(pcs[:3], center - 5, None)
            seq, step = [v[0], v[2], v[1], v[2]], 2
        elif pattern == "arp_up":
            v = _voicing(pcs[:4], center, None)
            seq, step = v + [x + 12 for x in v], 2 if self.spec.bpm > 90 else 1
        else:  # ballad_arp / solo_accomp: bass note, fifth, octave, third above...
            bass = _near(pcs[0], center - 17)
            third = pcs[1] if len(pcs) > 1 else pcs[0]
            seq = [bass, bass + 7, bass + 12, _near(third, bass + 16), bass + 12 + 7, _near(third, bass + 16)]
            step = 2
        for i, s in enumerate(np.arange(0, spb, step)):
            p = seq[i % len(seq)]
            end = tl.time(bar, s + step * (3 if pattern != "arp_up" else 1.5), False)
            out.append((tl.time(bar, s), end, p, self._v(vel - (0 if i == 0 else 8))))
        return out

    # ------------------------------------------------------------------------------------------ bass
    def _bass(self, part: PartSpec) -> list:
        tl, spb, rng = self.tl, self.tl.steps_per_bar, self.rng
        center = INSTRUMENTS[part.instrument][2]
        vel = self.vel
        out = []
        pattern = part.pattern
        for bar in range(self.n_bars):
            pcs = self.chords[bar]
            nxt = self.chords[min(bar + 1, self.n_bars - 1)]
            r = _near(pcs[0], center)
            fifth = r + 7 if r + 7 <= center + 9 else r - 5
            third = _near(pcs[1], r + 4) if len(pcs) > 1 else r

            def n(step, length, pitch, v=vel):
                out.append((tl.time(bar, step), tl.time(bar, step + length, False), pitch, self._v(v, 6)))

            if pattern == "whole":
                n(0, spb - 0.3, r)
            elif pattern == "half":
                n(0, spb / 2 - 0.3, r)
                n(spb / 2, spb / 2 - 0.3, fifth if rng.random() < 0.5 else r)
            elif pattern == "eighths":
                for s in range(0, spb, 2):
                    n(s, 1.7, r, vel + (6 if s % 4 == 0 else 0))
            elif pattern == "sixteenths":
                for s in range(spb):
                    n(s, 0.8, r, vel + (8 if s % 4 == 0 else -4))
            elif pattern == "root_fifth":
                for i, s in enumerate(range(0, spb, 4 if self.spec.meter[0] == 4 else 4)):
                    n(s, 3.4, r if i % 2 == 0 else fifth)
            elif pattern == "octave":
                for s in range(0, spb, 2):
                    n(s, 1.5, r if s % 4 == 0 else r + 12, vel + (5 if s % 4 == 0 else -5))
            elif pattern == "offbeat":
                for s in range(2, spb, 4):
                    n(s, 1.6, r, vel + 5)
            elif pattern == "walking":
                target = _near(nxt[0], r)
                line = [r, third if rng.random() < 0.5 else fifth, fifth if rng.random() < 0.6 else r + 12,
                        target + rng.choice([-1, 1])]
                for i, s in enumerate(range(0, spb, 4)):
                    n(s, 3.6, line[i % 4] if i < 3 else line[3])
            elif pattern == "boogie":
                line = [r, third, fifth, r + 9, r + 10, r + 9, fifth, third]
                for i, s in enumerate(range(0, spb, 2)):
                    n(s, 1.8, line[i % 8])
            elif pattern == "funk":
                steps = rng.choice([(0, 3, 6, 8, 10, 11, 14), (0, 2, 7, 8, 10, 13, 14), (0, 3, 7, 10, 12, 14, 15)])
                for s in steps:
                    p = r if s in (0, 8) else rng.choice([r, r + 12, fifth, r + 10, r + 7])
                    n(s, 0.9 if s else 1.8, p, vel + (10 if s == 0 else 0))
            elif pattern == "reggae":
                n(0, 5, r, vel + 5)
                n(6, 1.5, third)
                n(8, 3, fifth)
                n(12, 1.5, r + 12 if rng.random() < 0.5 else fifth)
                n(14, 1.5, third)
            elif pattern == "bossa":
                n(0, 5.5, r)
                n(6, 1.8, fifth)
                n(8, 5.5, fifth)
                n(14, 1.8, r)
            elif pattern == "lazy":
                n(0, 5.5, r)
                if rng.random() < 0.6:
                    n(10, 1.5, r if rng.random() < 0.5 else fifth, vel - 10)
                n(12, 3.5, rng.choice([r, fifth, third]))
            elif pattern == "waltz_bass":
                n(0, 3.6, r if bar % 2 == 0 else fifth, vel + 5)
            elif pattern == "pulse":  # timpani / cello ostinato
                for s in range(0, spb, 4):
                    n(s, 3.5, r, vel + (10 if s == 0 else -5))
            else:
                raise ValueError(f"unknown bass pattern {pattern!r}")
        return out

    # ------------------------------------------------------------------------------------------ pads, arps
    def _pad(self, part: PartSpec) -> list:
        center = INSTRUMENTS[part.instrument][2]
        out, prev = [], None
        for bar in range(self.n_bars):
            voice = _voicing(self.chords[bar][:4], center, prev)
            prev = voice
            t0, t1 = self.tl.time(bar, 0, False), self.tl.time(bar + 1, -0.1, False)
            out += [(t0, t1, p, self.vel - 20) for p in voice]
        return out

    def _arp(self, part: PartSpec) -> list:
        center = INSTRUMENTS[part.instrument][2]
        tl, spb, rng = self.tl, self.tl.steps_per_bar, self.rng
        step = 1 if self.spec.bpm < 140 and self.style.name != "ambient" else 2
        shape = rng.choice(["up", "updown", "random"])
        out = []
        for bar in range(self.n_bars):
            v = _voicing(self.chords[bar][:3], center, None)
            seq = v + [x + 12 for x in v]
            if shape == "updown":
                seq = seq + seq[-2:0:-1]
            for i, s in enumerate(range(0, spb, step)):
                p = seq[i % len(seq)] if shape != "random" else rng.choice(seq)
                out.append((tl.time(bar, s), tl.time(bar, s + step * 0.9, False), p, self._v(self.vel - 12)))
        return out

    # ------------------------------------------------------------------------------------------ melody
    def _melody(self, part: PartSpec) -> list:
        rng, tl, spb = self.rng, self.tl, self.tl.steps_per_bar
        center = INSTRUMENTS[part.instrument][2]
        if part.instrument in ("piano", "electric piano", "nylon guitar", "harp", "harpsichord", "acoustic guitar"):
            center = max(center, 67 if "guitar" not in part.instrument else 64)
        lo, hi = center - 7, center + 9
        scale_pitches = [p for p in range(lo - 12, hi + 13) if p % 12 in self.scale]
        density = self.style.density * (0.7 + 0.6 * self.spec.energy)
        grid = 1 if density > 1.7 else (2 if density > 0.45 else 4)
        positions = list(range(0, spb, grid))

        def bar_rhythm() -> list[int]:
            onsets = []
            for s in positions:
                strength = 1.0 if s % (4 * (self.spec.meter[0] // 2 or 1)) == 0 else (0.75 if s % 4 == 0 else 0.45)
                if rng.random() < min(0.95, strength * density * grid / 4 * 1.6):
                    onsets.append(s)
            return onsets or [0]

        motif_a, motif_b = bar_rhythm(), bar_rhythm()
        current = min(scale_pitches, key=lambda p: abs(p - center))
        out = []
        for bar in range(self.n_bars):
            phrase_pos = bar % 4
            rhythm = [motif_a, motif_b, motif_a, bar_rhythm()][phrase_pos]
            if phrase_pos == 3 and rng.random() < 0.5:  # cadence: fewer, longer notes
                rhythm = rhythm[: max(1, len(rhythm) // 2)]
            chord = self.chords[bar]
            for i, s in enumerate(rhythm):
                end_step = rhythm[i + 1] if i + 1 < len(rhythm) else spb
                if phrase_pos == 3 and i == len(rhythm) - 1:
                    end_step = spb + 2
                    target_pcs = [chord[0], chord[1 % len(chord)]]
                    current = min((p for p in scale_pitches if p % 12 in target_pcs and lo <= p <= hi),
                                  key=lambda p: abs(p - current), default=current)
                elif s % 4 == 0 and rng.random() < 0.65:
                    current = min((p for p in scale_pitches if p % 12 in chord and lo <= p <= hi),
                                  key=lambda p: abs(p - current) + rng.random() * 2, default=current)
                else:
                    idx = scale_pitches.index(current) if current in scale_pitches else 0
                    move = rng.choices([-2, -1, 0, 1, 2, 3, -3], weights=[12, 30, 8, 30, 12, 4, 4])[0]
                    idx = min(len(scale_pitches) - 1, max(0, idx + move))
                    current = scale_pitches[idx]
                    if current > hi:
                        current -= 12 if current - 12 >= lo else 0
                    if current < lo:
                        current += 12
                length = max(grid * 0.5, (end_step - s) * (0.92 if rng.random() < 0.8 else 0.55))
                accent = 8 if s % 4 == 0 else 0
                out.append((tl.time(bar, s), tl.time(bar, s + length, False), current, self._v(self.vel + accent)))
        return out

    # ------------------------------------------------------------------------------------------ drums
    def _drums(self, part: PartSpec) -> list:
        tl, spb, rng = self.tl, self.tl.steps_per_bar, self.rng
        pattern = DRUM_PATTERNS[part.pattern]
        vel = self.vel + 5
        out = []
        for bar in range(self.n_bars):
            fill = bar % 4 == 3 and rng.random() < 0.4 and spb == 16
            for note, steps in pattern.items():
                for s, ch in enumerate(steps[:spb]):
                    if ch == "." or (fill and s >= 12 and note not in (KICK,)):
                        continue
                    if note == CRASH and bar % 4 != 0 and part.pattern != "metal":
                        continue
                    v = vel + 10 if ch == "x" else vel - 35
                    t = tl.time(bar, s)
                    out.append((t, t + 0.1, note, self._v(v, 6)))
            if fill:
                for s, tom in zip(range(12, 16), (HTOM, HTOM, MTOM, LTOM)):
                    t = tl.time(bar, s)
                    out.append((t, t + 0.1, tom, self._v(vel, 6)))
            if bar % 4 == 0 and bar and part.pattern not in ("swing", "bossa", "onedrop", "ballad") \
                    and rng.random() < 0.5:
                t = tl.time(bar, 0)
                out.append((t, t + 0.1, CRASH, self._v(vel, 5)))
        return out

    _voice = _melody
    _drone = _pad


def compose(spec: PieceSpec, rng: random.Random):
    """The ``pretty_midi.PrettyMIDI`` of a synthetic spec."""
    return Composer(spec, rng).compose()


# ==================================================================================================
# The music21 corpus
# ==================================================================================================

# category -> (genre, caption nouns, bpm range of the beat, instrument setups)
FOLK_SOLO = ("fiddle", "flute", "tin whistle", "accordion", "violin", "piano", "harmonica", "recorder", "clarinet",
             "nylon guitar", "harp", "dulcimer", "oboe", "banjo")
CORPUS_CATEGORIES = {
    "chorale": ("classical", ("Bach chorale", "chorale by J.S. Bach", "four-part Bach chorale",
                              "baroque chorale"), (56, 92)),
    "irish": ("folk", ("traditional Irish tune", "Irish folk tune", "Celtic folk tune"), (88, 132)),
    "scottish": ("folk", ("traditional Scottish tune", "Scottish folk tune", "Celtic air"), (72, 120)),
    "fiddle": ("folk", ("traditional dance tune", "old-time folk tune", "folk dance tune"), (90, 132)),
    "german": ("folk", ("German folk song", "European folk song", "traditional folk melody"), (70, 120)),
    "chinese": ("folk", ("Chinese folk melody", "traditional Chinese folk song"), (60, 104)),
    "children": ("folk", ("children's song", "nursery tune", "simple folk song"), (80, 120)),
    "american": ("folk", ("American folk tune", "traditional folk tune"), (80, 124)),
    "renaissance": ("classical", ("Renaissance polyphony", "Renaissance motet", "early music",
                                  "Renaissance choral piece"),
                    (56, 88)),
    "medieval": ("classical", ("medieval piece", "trecento polyphony", "early music"), (60, 96)),
}
ENSEMBLES = {  # name -> instruments for voices top to bottom
    "string quartet": ("violin", "violin", "viola", "cello"),
    "church organ": ("church organ",),
    "choir": ("choir",),
    "brass quartet": ("trumpet", "trumpet", "trombone", "tuba"),
    "woodwind quartet": ("flute", "oboe", "clarinet", "bassoon"),
    "piano": ("piano",),
    "string orchestra": ("strings",),
    "harpsichord": ("harpsichord",),
    "recorder consort": ("recorder", "recorder", "recorder", "bassoon"),
}
_FORMS = ("reel", "jig", "hornpipe", "strathspey", "waltz", "polka", "march", "air", "slide", "lament", "clog",
          "schottische", "quickstep", "fling", "set dance")


def _corpus_category(path: str) -> str | None:
    top, _, rest = path.partition("/")
    name = rest.rsplit("/", 1)[-1]
    if path.endswith(".rntxt"):
        return None
    if top == "bach":
        return "chorale"
    if top == "oneills1850":
        return "irish"
    if top == "airdsAirs":
        return "scottish"
    if top == "ryansMammoth":
        return "fiddle"
    if top == "miscFolk":
        return "american"
    if top == "essenFolksong":
        if name.startswith(("test", "variant")):
            return None
        if name.startswith("han"):
            return "chinese"
        if name.startswith("kinder"):
            return "children"
        if name.startswith("irl"):
            return "irish"
        return "german"
    if top in ("palestrina", "josquin") or (top == "monteverdi" and not path.endswith(".rntxt")):
        return "renaissance"
    if top == "trecento":
        return "medieval"
    return None


class CorpusSource:
    """Pieces of the music21 corpus, in a fixed order (so a seed picks the same piece everywhere)."""

    def __init__(self):
        try:
            from music21 import corpus
        except ImportError as exc:
            raise InputError(f"the music21 corpus source needs music21: {INSTALL_PYTHON}, "
                             "or pass --corpus-fraction 0") from exc
        bundle = corpus.corpora.CoreCorpus().metadataBundle
        entries = getattr(bundle, "_metadataEntries", None)  # iterating the bundle itself takes ~20 s
        entries = list(entries.values()) if isinstance(entries, dict) else list(bundle)
        works = []
        for entry in entries:
            if entry.metadata is None:
                continue
            path = str(entry.sourcePath)
            category = _corpus_category(path)
            if category is None:
                continue
            if category == "chorale" and getattr(entry.metadata, "numberOfParts", 4) != 4:
                continue
            title = entry.metadata.title or ""
            composer = entry.metadata.composer or ""
            works.append((category, path, str(entry.number) if entry.number else "", title, composer))
        works.sort()
        self.by_category: dict[str, list] = {}
        for w in works:
            self.by_category.setdefault(w[0], []).append(w)
        if not works:
            raise InputError("the music21 corpus is empty or missing; reinstall music21 or pass --corpus-fraction 0")

    def sample(self, rng: random.Random, index: int, seed: int, duration: float):
        """(spec, PrettyMIDI) of a random corpus piece; raises on an unparsable piece."""
        import pretty_midi
        from music21 import corpus, meter, stream

        # categories weighted so no single collection dominates
        weights = {"chorale": 3, "irish": 2, "scottish": 1.5, "fiddle": 1.5, "german": 2, "chinese": 1,
                   "children": 0.5, "american": 0.5, "renaissance": 1.5, "medieval": 0.5}
        weights = {k: v for k, v in weights.items() if k in self.by_category}
        category = _weighted(rng, weights)
        _, path, number, title, composer = rng.choice(self.by_category[category])
        score = corpus.parse(path, number=int(number) if number else None)
        if isinstance(score, stream.Opus):
            score = score.scores[0]
        if score.highestTime < 400:
            try:
                score = score.expandRepeats()
            except Exception:  # badly formed repeats: play it as written
                pass
        score = score.stripTies()
        ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
        num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
        beat_ql = 4.0 / den * (3 if den == 8 and num % 3 == 0 and num > 3 else 1)
        key = score.analyze("key")
        mode = key.mode if key.mode in MODES else "major"
        root = key.tonic.pitchClass

        parts = [p for p in (score.parts if score.parts else [score]) if p.flatten().notes]
        if not parts:
            raise ValueError("no notes")
        genre, _, (lo, hi) = CORPUS_CATEGORIES[category]
        form = next((f for f in _FORMS if re.search(rf"\b{f}", title.lower())), "")
        if not form and category in ("irish", "scottish", "fiddle"):
            form = {(6, 8): "jig", (9, 8): "slip jig", (3, 4): "waltz", (2, 4): "polka"}.get((num, den), "")
        if form in ("reel", "hornpipe", "jig", "polka", "slide", "quickstep", "fling"):
            lo, hi = max(lo, 100), max(hi, 132)
        elif form in ("air", "lament"):
            lo, hi = 60, 90
        bpm = rng.randint(lo, hi)

        # instruments
        if len(parts) >= 3:
            ensembles = ["string quartet", "church organ", "choir", "brass quartet", "woodwind quartet", "piano",
                         "string orchestra"] + (["recorder consort"] if category != "chorale" else [])
            ensemble = rng.choice(ensembles)
            voices = ENSEMBLES[ensemble]
            insts = [voices[min(i * len(voices) // len(parts), len(voices) - 1)] if len(voices) > 1 else voices[0]
                     for i in range(len(parts))]
            roles = ["voice"] * len(parts)
        elif len(parts) == 2:
            ensemble = ""
            pair = rng.choice([("violin", "cello"), ("flute", "bassoon"), ("piano", "piano"), ("harpsichord",) * 2,
                               ("recorder", "recorder"), ("clarinet", "bassoon"), ("violin", "viola")])
            insts, roles = list(pair), ["voice", "voice"]
        else:
            ensemble = ""
            pool = {"chinese": ("flute", "pan flute", "koto", "dulcimer", "piano", "violin"),
                    "renaissance": ("recorder", "church organ", "choir")}.get(category, FOLK_SOLO)
            insts, roles = [rng.choice(pool)], ["melody"]

        sec_per_ql = 60.0 / (bpm * beat_ql)
        # start at a random bar of longer pieces, so clips of one piece differ
        length_s = float(score.highestTime) * sec_per_ql
        bar_ql = num * 4.0 / den
        start_ql = 0.0
        if length_s > 2 * duration and rng.random() < 0.5:
            max_bar = int((length_s - duration) / (bar_ql * sec_per_ql))
            start_ql = rng.randint(0, max(0, max_bar // 2)) * bar_ql
        pm = pretty_midi.PrettyMIDI(initial_tempo=float(bpm / beat_ql))
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, 0.0))
        reverb = 70 if category in ("chorale", "renaissance", "medieval") else 45
        melody_pitches = []
        volumes = {"voice": 90, "melody": 100}
        for part, inst_name, role in zip(parts, insts, roles):
            program = INSTRUMENTS[inst_name][0]
            inst = pretty_midi.Instrument(program=program, name=f"{role}:{inst_name}")
            for n in part.flatten().notes:
                ql = float(n.duration.quarterLength)
                if ql <= 0:  # grace note
                    continue
                start = (float(n.offset) - start_ql) * sec_per_ql
                end = start + ql * sec_per_ql * 0.95
                if end <= 0 or start >= duration + 1:
                    continue
                vel = 70 + (n.volume.velocity - 64) // 4 if n.volume.velocity else 80
                for p in n.pitches:
                    midi = p.midi
                    if inst_name in ("fiddle", "violin", "flute", "tin whistle", "recorder") and midi < 55:
                        midi += 12
                    if inst_name == "tin whistle" and midi < 62:
                        midi += 12
                    inst.notes.append(pretty_midi.Note(int(max(30, min(120, vel + rng.randint(-6, 6)))), midi,
                                                       max(0.0, start), end))
                    melody_pitches.append(midi)
            inst.control_changes.append(pretty_midi.ControlChange(7, volumes[role], 0.0))
            inst.control_changes.append(pretty_midi.ControlChange(91, reverb, 0.0))
            pm.instruments.append(inst)
        if not any(i.notes for i in pm.instruments):
            raise ValueError("no notes in the window")
        extra_parts = []
        if roles == ["melody"] and category in ("irish", "scottish", "fiddle") and rng.random() < 0.3:
            # a drone on the tonic and fifth, bagpipe-style
            low = min(melody_pitches) if melody_pitches else 60
            tonic = low - 12 - ((low - 12 - root) % 12)
            drone = pretty_midi.Instrument(program=INSTRUMENTS["strings"][0], name="drone:strings")
            end = duration + 1
            drone.notes += [pretty_midi.Note(55, tonic, 0.0, end), pretty_midi.Note(50, tonic + 7, 0.0, end)]
            drone.control_changes.append(pretty_midi.ControlChange(7, 70, 0.0))
            pm.instruments.append(drone)
            extra_parts.append(PartSpec("drone", "strings", "drone", 70))
        elif roles == ["melody"] and rng.random() < 0.2:
            # the tune doubled an octave below by a second instrument
            second = rng.choice([i for i in FOLK_SOLO if i != insts[0]])
            double = pretty_midi.Instrument(program=INSTRUMENTS[second][0], name=f"melody:{second}")
            double.notes = [pretty_midi.Note(max(30, n.velocity - 10), n.pitch - 12, n.start, n.end)
                            for n in pm.instruments[0].notes]
            double.control_changes.append(pretty_midi.ControlChange(7, 85, 0.0))
            double.control_changes.append(pretty_midi.ControlChange(91, reverb, 0.0))
            pm.instruments.append(double)
            extra_parts.append(PartSpec("melody", second, "doubling", 85))

        # moods from the mode and tempo
        fast = (bpm - lo) / max(1, hi - lo) > 0.5
        minor = mode == "minor"
        mood_pool = {(False, False): ["gentle", "serene", "warm", "peaceful"],
                     (False, True): ["lively", "cheerful", "joyful", "playful"],
                     (True, False): ["melancholic", "somber", "sad", "nostalgic"],
                     (True, True): ["dramatic", "driving", "mysterious", "intense"]}[(minor, fast)]
        if category in ("chorale", "renaissance", "medieval"):
            mood_pool = (["solemn", "somber", "reverent", "melancholic"] if minor else
                         ["serene", "reverent", "calm", "bright" if fast else "gentle"])
        moods = rng.sample(mood_pool, 1 + (rng.random() < 0.4))
        part_specs = [PartSpec(role, inst, ensemble or "score", volumes[role]) for inst, role in zip(insts, roles)]
        clean_title = title.strip().rstrip(".").strip()
        if clean_title.isupper():
            clean_title = clean_title.title()
        clean_title = re.sub(r"\s*--\s*", " - ", clean_title)
        origin = f"{path}#{number}" if number else path
        spec = PieceSpec(index=index, seed=seed, source="music21", style=category, genre=genre, moods=moods,
                         bpm=bpm, root=root, mode=mode, meter=(num, den), parts=part_specs + extra_parts,
                         duration=duration, title=clean_title or Path(path).stem, artist=composer.split("\n")[0],
                         form=form or ("chorale" if category == "chorale" else ""), origin=origin,
                         ensemble=ensemble)
        return spec, pm


# ==================================================================================================
# Captions
# ==================================================================================================


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


# ==================================================================================================
# Rendering with FluidSynth
# ==================================================================================================


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: ``path``, $MAGNET_SOUNDFONT, or a General MIDI one from the system packages."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"soundfont {p} not found")
        return p
    env = os.environ.get("MAGNET_SOUNDFONT")
    if env and Path(env).is_file():
        return Path(env)
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise InputError(f"no General MIDI soundfont found (looked for {SOUNDFONT_CANDIDATES[0]} and others). "
                     f"Install it with: {INSTALL_SYSTEM}, or pass --soundfont PATH")


def check_dependencies(soundfont: str | os.PathLike | None = None) -> Path:
    """Raise :class:`InputError` naming the install command if FluidSynth, pretty_midi or a soundfont is missing."""
    try:
        import pretty_midi  # noqa: F401
    except ImportError as exc:
        raise InputError(f"`magnet data synth` needs pretty_midi: {INSTALL_PYTHON}") from exc
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; its import loads libfluidsynth)
    except ImportError as exc:
        if "fluidsynth" in str(exc).lower() and "no module named" not in str(exc).lower():
            raise InputError(f"libfluidsynth is not installed: {INSTALL_SYSTEM}") from exc
        raise InputError(f"`magnet data synth` needs pyfluidsynth: {INSTALL_PYTHON}; "
                         f"and the FluidSynth library: {INSTALL_SYSTEM}") from exc
    except OSError as exc:
        raise InputError(f"libfluidsynth could not be loaded ({exc}): {INSTALL_SYSTEM}") from exc
    if not hasattr(fluidsynth, "Synth"):
        raise InputError("the `fluidsynth` module found is not pyfluidsynth (pip uninstall fluidsynth; "
                         f"{INSTALL_PYTHON})")
    return find_soundfont(soundfont)


class Renderer:
    """Renders ``PrettyMIDI`` objects to mono float32 with in-process FluidSynth.

    Each call makes a fresh synthesizer (FluidSynth caches the soundfont's samples, so it costs
    ~30 ms) so that no reverb tail or controller state leaks from one clip into the next.
    """

    def __init__(self, soundfont: str | os.PathLike, sample_rate: int = 32000, gain: float = 0.4):
        import fluidsynth

        self.fluidsynth = fluidsynth
        self.soundfont, self.sample_rate, self.gain = str(soundfont), sample_rate, gain
        write = fluidsynth._fl.fluid_synth_write_float
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        write.restype = ctypes.c_int
        self._write = write
        self._keep = self._new_synth()  # holds the sample cache for the renderer's lifetime

    def _new_synth(self):
        settings = {"synth.cpu-cores": 1, "synth.polyphony": 512}  # one thread: deterministic output
        try:
            synth = self.fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate), channels=16,
                                          **settings)
        except TypeError:  # old pyfluidsynth without settings keywords
            synth = self.fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate))
        sfid = synth.sfload(self.soundfont)
        if sfid < 0:
            synth.delete()
            raise InputError(f"FluidSynth could not load the soundfont {self.soundfont}")
        return synth, sfid

    def render(self, pm, seconds: float) -> np.ndarray:
        n_total = int(round(seconds * self.sample_rate))
        synth, sfid = self._new_synth()
        try:
            left = np.zeros(n_total, dtype=np.float32)
            right = np.zeros(n_total, dtype=np.float32)
            events = []  # (sample, order, kind, args)
            channel = 0
            for inst in pm.instruments:
                if inst.is_drum:
                    ch = 9
                    if synth.program_select(ch, sfid, 128, inst.program) < 0:
                        synth.program_select(ch, sfid, 128, 0)
                else:
                    if channel == 9:
                        channel += 1
                    ch = channel % 16 if channel < 16 else [c for c in range(16) if c != 9][channel % 15]
                    channel += 1
                    synth.program_select(ch, sfid, 0, inst.program)
                for cc in inst.control_changes:
                    events.append((int(round(cc.time * self.sample_rate)), 1, "cc", (ch, cc.number, cc.value)))
                for note in inst.notes:
                    s = int(round(note.start * self.sample_rate))
                    if s >= n_total:
                        continue
                    events.append((s, 2, "on", (ch, note.pitch, note.velocity)))
                    events.append((int(round(note.end * self.sample_rate)), 0, "off", (ch, note.pitch)))
            events.sort(key=lambda e: (e[0], e[1]))
            pos = 0
            for sample, _, kind, args in events:
                if sample >= n_total:
                    break
                if sample > pos:
                    self._fill(synth, left, right, pos, sample)
                    pos = sample
                if kind == "on":
                    synth.noteon(*args)
                elif kind == "off":
                    synth.noteoff(*args)
                else:
                    synth.cc(*args)
            if pos < n_total:
                self._fill(synth, left, right, pos, n_total)
        finally:
            synth.delete()
        return (left + right) * 0.5

    def _fill(self, synth, left, right, start, stop):
        n = stop - start
        self._write(synth.synth, n, left.ctypes.data + 4 * start, 0, 1, right.ctypes.data + 4 * start, 0, 1)


def is_silent(wav: np.ndarray, sample_rate: int) -> bool:
    """Silent, or silent in more than half of its 250 ms frames (-60 dB below its peak frame)."""
    if not np.isfinite(wav).all():
        return True
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    if rms < 1e-4:
        return True
    frame = sample_rate // 4
    n = len(wav) // frame
    if n < 2:
        return False
    frames = np.sqrt(np.mean(wav[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    return float(np.mean(frames < frames.max() * 1e-3)) > 0.5


def normalize(wav: np.ndarray, target_rms_db: float = -20.0, peak: float = 0.98) -> np.ndarray:
    """RMS to ``target_rms_db`` dBFS, limited so the peak stays below ``peak``."""
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    gain = 10 ** (target_rms_db / 20) / max(rms, 1e-9)
    gain = min(gain, peak / max(float(np.abs(wav).max()), 1e-9))
    return (wav * gain).astype(np.float32)


# ==================================================================================================
# The dataset
# ==================================================================================================


def clip_seed(seed: int, index: int, attempt: int = 0) -> int:
    """The RNG seed of one clip attempt: a function of (seed, index, attempt) only."""
    return int(np.random.SeedSequence([seed % 2**63, index, attempt]).generate_state(1)[0])


@dataclass
class SynthConfig:
    out: str
    n_clips: int
    seed: int = 0
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    heldout: float = 0.05
    soundfont: str | None = None
    corpus_fraction: float = 0.2
    write_midi: bool = True
    subtype: str = "PCM_16"


_WORKER: dict = {}


def _worker_init(cfg: SynthConfig, soundfont: str) -> None:
    _WORKER["cfg"] = cfg
    _WORKER["renderer"] = Renderer(soundfont, cfg.sample_rate)
    _WORKER["corpus"] = None


def _corpus() -> CorpusSource:
    if _WORKER.get("corpus") is None:
        _WORKER["corpus"] = CorpusSource()
    return _WORKER["corpus"]


def make_clip(index: int, split: str) -> dict:
    """Compose, render and write clip ``index``; returns its manifest entry."""
    import soundfile as sf

    cfg: SynthConfig = _WORKER["cfg"]
    renderer: Renderer = _WORKER["renderer"]
    last_error = None
    for attempt in range(20):
        rng = random.Random(clip_seed(cfg.seed, index, attempt))
        use_corpus = cfg.corpus_fraction > 0 and rng.random() < cfg.corpus_fraction
        try:
            if use_corpus:
                spec, pm = _corpus().sample(rng, index, cfg.seed, cfg.clip_seconds)
            else:
                spec = sample_synth_spec(rng, index, cfg.seed, cfg.clip_seconds)
                pm = compose(spec, rng)
        except InputError:
            raise
        except Exception as exc:  # an unparsable corpus piece, say: draw another piece
            last_error = exc
            continue
        wav = renderer.render(pm, cfg.clip_seconds)
        if is_silent(wav, cfg.sample_rate):
            last_error = "silent render"
            continue
        wav = normalize(wav)
        caption = make_caption(spec, random.Random(clip_seed(cfg.seed, index, 1000 + attempt)))
        break
    else:
        raise RuntimeError(f"clip {index}: no usable piece in 20 attempts (last: {last_error})")

    out_dir = Path(cfg.out) / split
    stem = f"{index:06d}"
    sf.write(out_dir / f"{stem}.wav", wav, cfg.sample_rate, subtype=cfg.subtype, format="WAV")
    if cfg.write_midi:
        pm.write(str(out_dir / f"{stem}.mid"))
    meta = clip_metadata(spec, caption, cfg)
    (out_dir / f"{stem}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    entry = {"path": f"{split}/{stem}.wav", "duration": float(cfg.clip_seconds), "sample_rate": cfg.sample_rate,
             "amplitude": None, "weight": None, "info_path": None}
    entry.update({k: v for k, v in meta.items() if k not in entry})
    return entry


def clip_metadata(spec: PieceSpec, caption: str, cfg: SynthConfig) -> dict:
    """The JSON sidecar (audiocraft ``MusicInfo`` fields plus the spec)."""
    spec_dict = spec.to_dict()
    return {
        "title": spec.title,
        "artist": spec.artist,
        "description": caption,
        "genre": spec.genre,
        "style": spec.style,
        "moods": list(spec.moods),
        "instrument": ", ".join(spec.instruments),
        "instruments": spec.instruments,
        "bpm": spec.bpm,
        "key": spec.key,
        "meter": f"{spec.meter[0]}/{spec.meter[1]}",
        "keywords": keywords(spec),
        "duration": float(cfg.clip_seconds),
        "sample_rate": cfg.sample_rate,
        "source": spec.source if spec.source == "synth" else f"music21:{spec.origin}",
        "seed": cfg.seed,
        "spec": spec_dict,
    }


def split_of(n_clips: int, heldout: float, seed: int) -> list[str]:
    """'train' or 'heldout' per clip index: round(n * heldout) clips (at least one if heldout > 0 and n > 1)."""
    n_held = int(round(n_clips * heldout))
    if heldout > 0 and n_clips > 1:
        n_held = max(1, n_held)
    n_held = min(n_held, n_clips - 1) if n_clips > 1 else 0
    order = list(range(n_clips))
    random.Random(clip_seed(seed, 2**32)).shuffle(order)
    held = set(order[:n_held])
    return ["heldout" if i in held else "train" for i in range(n_clips)]


def synthesize(cfg: SynthConfig, workers: int = 1, progress: bool = True, overwrite: bool = False) -> dict:
    """Build the dataset; returns {"train": n, "heldout": n, "seconds": wall time}."""
    import time

    if cfg.n_clips < 1:
        raise InputError("nothing to make: --hours (or --clips) gives 0 clips")
    if cfg.clip_seconds <= 0 or cfg.sample_rate < 8000:
        raise InputError("--clip-seconds must be > 0 and --sample-rate >= 8000")
    if not 0 <= cfg.heldout < 1:
        raise InputError(f"--heldout must be in [0, 1), got {cfg.heldout}")
    if not 0 <= cfg.corpus_fraction <= 1:
        raise InputError(f"--corpus-fraction must be in [0, 1], got {cfg.corpus_fraction}")
    soundfont = str(check_dependencies(cfg.soundfont))
    if cfg.corpus_fraction > 0:
        try:
            import music21  # noqa: F401
        except ImportError as exc:
            raise InputError(f"the music21 corpus source needs music21: {INSTALL_PYTHON}, "
                             "or pass --corpus-fraction 0") from exc
    out = Path(cfg.out)
    targets = [out / "train", out / "heldout", out / "train.jsonl", out / "heldout.jsonl"]
    if any(t.exists() for t in targets):
        if not overwrite:
            raise InputError(f"{out} already holds a dataset; pass --overwrite to replace it")
        for t in targets:
            if t.is_dir():
                shutil.rmtree(t)
            elif t.exists():
                t.unlink()
    try:
        for split in ("train", "heldout"):
            (out / split).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write to {out}: {exc.strerror or exc}") from exc

    splits = split_of(cfg.n_clips, cfg.heldout, cfg.seed)
    jobs = list(enumerate(splits))
    start = time.time()
    entries: dict[int, dict] = {}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress) if tqdm else None
    if workers <= 1:
        _worker_init(cfg, soundfont)
        for index, split in jobs:
            entries[index] = make_clip(index, split)
            if bar:
                bar.update()
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(cfg, soundfont)) as pool:
            for index, entry in pool.imap_unordered(_make_clip_star, jobs, chunksize=4):
                entries[index] = entry
                if bar:
                    bar.update()
    if bar:
        bar.close()
    counts = {}
    for split in ("train", "heldout"):
        lines = [json.dumps(entries[i], ensure_ascii=False) for i in sorted(entries) if splits[i] == split]
        (out / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))
        counts[split] = len(lines)
    counts["seconds"] = round(time.time() - start, 2)
    return counts


def _make_clip_star(job: tuple[int, str]) -> tuple[int, dict]:
    index, split = job
    return index, make_clip(index, split)
