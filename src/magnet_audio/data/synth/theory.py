"""Music theory for the synthetic pieces: modes and key names, chord symbols (roman numerals) and
the General MIDI tables: instruments (program, caption synonyms, register centre), drum kits and
drum notes."""

from __future__ import annotations

import re


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
